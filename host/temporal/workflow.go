// Package uetemporal runs the ue-prefect state machine (plugin/flowrun) as a
// Temporal workflow: each HTTP exchange is an activity, each sleep a durable
// timer, an interrupt a signal or a workflow cancellation, and the machine's
// checkpoint travels in workflow state across ContinueAsNew.
//
// The workflow drives the native machine through its stable entry points
// (flowrun.Start, flowrun.Restore, Machine.Step, Machine.Checkpoint) rather
// than the .wasm: the machine reads no clock and draws no randomness, so it
// is deterministic workflow code as it stands, and a replay costs a few
// microseconds per step instead of a Wasm instantiation. Time is workflow
// time and the seed is drawn once with SideEffect.
package uetemporal

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
)

// Names under which the worker registers the workflow, its activities, its
// signal and its query. Starters use them.
const (
	// WorkflowName is the workflow type.
	WorkflowName = "ue-prefect.flow-run"
	// ActivityHTTP executes one abi.HTTPRequest against the worker's API.
	ActivityHTTP = "ue-prefect.http"
	// ActivityConnection reports the worker's target, API base and credential scheme.
	ActivityConnection = "ue-prefect.connection"
	// SignalInterrupt carries an abi.Interrupt: stop as on SIGTERM/SIGINT
	// (the machine cancels the flow run first if cancel_on_interrupt).
	SignalInterrupt = "interrupt"
	// SignalWake ends the current sleep early, as an event for the flow run
	// does in the CLI, if the sleep asked to be woken (abi.SleepRequest.WakeOn);
	// one that arrives while nothing such is waiting ends the next such sleep
	// at once, as the CLI keeps an event for its next wait. The worker's
	// Relay sends it; polling goes on regardless.
	SignalWake = "wake"
	// QueryProgress returns the latest abi.OutputFields.
	QueryProgress = "progress"
	// DefaultTaskQueue is the task queue of the command's worker and starter.
	DefaultTaskQueue = "ue-prefect"
)

// Defaults of Workflow.
const (
	DefaultStepsPerRun = 500
	DefaultHTTPTimeout = 90 * time.Second
)

// CancelledReason is the interrupt reason of a workflow cancellation, which
// ends like a SIGTERM (exit 143).
const CancelledReason = "cancellation"

// Input starts a workflow run.
type Input struct {
	// Action is abi.ActionLaunchFlowRun (the default) or a listing.
	Action string `json:"action,omitempty"`
	// Fields are the task's fields, as for the CLI.
	Fields abi.Fields `json:"fields"`
	// InvocationID scopes the derived idempotency key; empty means the
	// workflow id, so one workflow id launches at most one flow run per
	// deployment.
	InvocationID string `json:"invocation_id,omitempty"`
	// Seed seeds the machine's ids; 0 means one drawn with SideEffect.
	Seed uint64 `json:"seed,omitempty"`
	// Carry is set only by the workflow itself when it continues as new.
	Carry *Carry `json:"carry,omitempty"`
}

// Carry is what one run of the workflow hands the next across ContinueAsNew.
type Carry struct {
	Checkpoint json.RawMessage  `json:"checkpoint"`
	Pending    abi.Command      `json:"pending"`
	EpochMS    int64            `json:"epoch_ms"`
	Conn       Connection       `json:"connection"`
	Fields     abi.OutputFields `json:"fields"`
	// Woken carries a wake that arrived while no wakeable sleep waited.
	Woken bool `json:"woken,omitempty"`
}

// Connection is what the worker tells the workflow about its API.
type Connection struct {
	Target     string                 `json:"target"`
	APIBase    string                 `json:"api_base"`
	UIBase     string                 `json:"ui_base,omitempty"`
	Credential abi.CredentialResponse `json:"credential"`
}

// Workflow is the workflow definition. Its fields must be the same on every
// worker of a task queue (they shape the history).
type Workflow struct {
	// StepsPerRun bounds one run's history: after this many answered
	// commands the workflow continues as new at its next sleep (also when
	// the server suggests it). 0 means DefaultStepsPerRun.
	StepsPerRun int
	// HTTPTimeout is the start-to-close timeout of one HTTP activity; it
	// should exceed the worker's request timeout. 0 means DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// BeforeCommand, if set, sees each command before it is executed; Trace
	// sees each host-function-shaped call after it, in the canonical form of
	// host.RunConfig.Trace. Neither is called during replay. For tests.
	BeforeCommand func(abi.Command)
	Trace         func(fn string, req, resp []byte)
	// Watcher, if set, hears of each sleep that an event may end, so that
	// the worker's event relay can send SignalWake (see Relay). It is not
	// called during replay, and it does not shape the history, so workers
	// of one queue may differ in it.
	Watcher Watcher
}

// Register registers the workflow on r under WorkflowName.
func (w *Workflow) Register(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(w.Run, workflow.RegisterOptions{Name: WorkflowName})
}

// driver is one workflow run's host.
type driver struct {
	w       *Workflow
	ctx     workflow.Context // the workflow's own: cancelled by a cancellation request
	dctx    workflow.Context // disconnected: serves the machine after a cancellation
	signals workflow.ReceiveChannel
	wakes   workflow.ReceiveChannel
	epochMS int64
	conn    Connection
	fields  abi.OutputFields
	intr    *abi.Interrupt // the first interrupt, once it arrives
	told    bool           // the machine has seen intr
	woken   bool           // a wake arrived while no wakeable sleep waited
}

// Run is the workflow function.
func (w *Workflow) Run(ctx workflow.Context, in Input) (abi.RunOutput, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	d := &driver{w: w, ctx: ctx, dctx: dctx, signals: workflow.GetSignalChannel(ctx, SignalInterrupt),
		wakes: workflow.GetSignalChannel(ctx, SignalWake)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (abi.OutputFields, error) { return d.fields, nil }); err != nil {
		return fault(err), nil
	}
	var m *flowrun.Machine
	var cmds []abi.Command
	if c := in.Carry; c != nil {
		d.epochMS, d.conn, d.fields, d.woken = c.EpochMS, c.Conn, c.Fields, c.Woken
		var err error
		if m, err = flowrun.Restore(c.Checkpoint); err != nil {
			return fault(fmt.Errorf("continue-as-new checkpoint: %w", err)), nil
		}
		cmds = []abi.Command{c.Pending}
	} else {
		d.epochMS = workflow.Now(ctx).UnixMilli()
		actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5}, // configuration only: no side effect to hide
		})
		if err := workflow.ExecuteActivity(actx, ActivityConnection).Get(actx, &d.conn); err != nil {
			return fault(fmt.Errorf("worker connection: %w", err)), nil
		}
		seed := in.Seed
		if seed == 0 {
			if err := workflow.SideEffect(ctx, func(workflow.Context) any { return randomSeed() }).Get(&seed); err != nil {
				return fault(err), nil
			}
		}
		inv := in.InvocationID
		if inv == "" {
			inv = workflow.GetInfo(ctx).WorkflowExecution.ID
		}
		m, cmds = flowrun.Start(abi.RunInput{
			Action: in.Action, Target: d.conn.Target, APIBase: d.conn.APIBase, UIBase: d.conn.UIBase,
			Fields: in.Fields, InvocationID: inv, Seed: seed, NowMS: d.now(), NowUnixMS: d.epochMS,
		})
	}
	limit := w.StepsPerRun
	if limit <= 0 {
		limit = DefaultStepsPerRun
	}
	for steps := 0; ; steps++ {
		var ev abi.Event
		for _, c := range cmds {
			if c.Kind == abi.CommandSleep {
				// A sleep is the one quiet point: nothing in flight, the
				// checkpoint names the sleep as outstanding.
				d.poll()
				if d.intr == nil && (steps >= limit || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
					for d.wakes.ReceiveAsync(nil) {
						d.woken = true // a signal left in the channel would be lost
					}
					carry := &Carry{Checkpoint: m.Checkpoint(), Pending: c, EpochMS: d.epochMS, Conn: d.conn, Fields: d.fields, Woken: d.woken}
					return abi.RunOutput{}, workflow.NewContinueAsNewError(ctx, WorkflowName, Input{Action: in.Action, Carry: carry})
				}
			}
			if w.BeforeCommand != nil && !workflow.IsReplaying(ctx) {
				w.BeforeCommand(c)
			}
			switch c.Kind {
			case abi.CommandLog:
				d.log(*c.Log)
			case abi.CommandProgress:
				d.fields = c.Progress.Fields
				d.trace(abi.FuncProgress, c.Progress, nil)
			case abi.CommandFinish:
				return *c.Finish, nil
			case abi.CommandCredential:
				d.trace(abi.FuncCredential, abi.CredentialRequest{}, d.conn.Credential)
				cr := d.conn.Credential
				ev = abi.Event{Kind: abi.EventCredential, Credential: &cr}
			case abi.CommandHTTP:
				r := d.http(*c.HTTP)
				ev = abi.Event{Kind: abi.EventHTTP, HTTP: &r}
			case abi.CommandSleep:
				r := d.sleep(*c.Sleep)
				ev = abi.Event{Kind: abi.EventWoke, Woke: &r}
			default:
				return fault(fmt.Errorf("unknown command %q", c.Kind)), nil
			}
		}
		cmds = m.Step(ev)
	}
}

// now is workflow time in milliseconds since the first run started.
func (d *driver) now() int64 { return workflow.Now(d.ctx).UnixMilli() - d.epochMS }

// note records an interrupt from a signal or the cancellation; only the
// first counts, as with the CLI's Interrupter.
func (d *driver) note(it abi.Interrupt) {
	if d.intr != nil {
		return
	}
	if it.Reason == "" {
		it.Reason = "interrupt signal"
	}
	if it.ExitCode == 0 {
		it.ExitCode = abi.ExitInterruptedSIGTERM
	}
	d.intr = &it
}

// poll takes any interrupt that has arrived without blocking.
func (d *driver) poll() {
	var it abi.Interrupt
	for d.signals.ReceiveAsync(&it) {
		d.note(it)
		it = abi.Interrupt{}
	}
	if d.ctx.Err() != nil {
		d.note(abi.Interrupt{Reason: CancelledReason, ExitCode: abi.ExitInterruptedSIGTERM})
	}
}

// untold returns the interrupt if the machine has not seen it yet, and
// counts it as seen.
func (d *driver) untold() *abi.Interrupt {
	d.poll()
	if d.intr == nil || d.told {
		return nil
	}
	d.told = true
	return d.intr
}

// wait blocks until f is ready or, when stopOnInterrupt, an interrupt
// arrives or, when wakeable, a wake signal; it reports whether it was woken.
// A wake that a wait which is not wakeable receives is kept for the next
// wakeable sleep.
func (d *driver) wait(f workflow.Future, stopOnInterrupt, wakeable bool) (woken bool) {
	for !f.IsReady() && !woken {
		if stopOnInterrupt && d.intr != nil && !d.told {
			return false
		}
		sel := workflow.NewSelector(d.dctx)
		sel.AddReceive(d.wakes, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(d.dctx, nil)
			if wakeable {
				woken = true
			} else {
				d.woken = true
			}
		})
		sel.AddFuture(f, func(workflow.Future) {})
		sel.AddReceive(d.signals, func(c workflow.ReceiveChannel, _ bool) {
			var it abi.Interrupt
			c.Receive(d.dctx, &it)
			d.note(it)
		})
		if d.ctx.Err() == nil {
			sel.AddReceive(d.ctx.Done(), func(workflow.ReceiveChannel, bool) { d.poll() })
		}
		sel.Select(d.dctx)
	}
	return woken
}

// http runs one exchange as an activity with a single attempt: a retry is
// the machine's decision, as with the CLI. An interrupt that arrives while
// the exchange is in flight does not abandon it: the answer (of a create,
// say) is worth its few seconds, and the interrupt rides on it.
func (d *driver) http(req abi.HTTPRequest) abi.HTTPResponse {
	if it := d.untold(); it != nil {
		resp := abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportInterrupted, Message: "interrupted before the request was sent"},
			NowMS: d.now(), Interrupt: it}
		d.trace(abi.FuncHTTP, req, resp)
		return resp
	}
	timeout := d.w.HTTPTimeout
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	actx := workflow.WithActivityOptions(d.dctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	f := workflow.ExecuteActivity(actx, ActivityHTTP, req)
	d.wait(f, false, false)
	var resp abi.HTTPResponse
	if err := f.Get(actx, &resp); err != nil {
		resp = abi.HTTPResponse{Error: activityError(err)}
	}
	d.poll()
	resp.NowMS, resp.Interrupt = d.now(), d.intr
	if d.intr != nil {
		d.told = true
	}
	d.trace(abi.FuncHTTP, req, resp)
	return resp
}

// activityError turns a failed HTTP activity (its worker died, it timed
// out) into the transport error the machine retries like any other.
func activityError(err error) *abi.TransportError {
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return &abi.TransportError{Kind: abi.TransportTimeout, Message: "the HTTP activity timed out (" + te.TimeoutType().String() + ")"}
	}
	var ae *temporal.ActivityError
	if errors.As(err, &ae) && errors.Unwrap(ae) != nil {
		err = errors.Unwrap(ae) // the cause, without the activity's ids
	}
	return &abi.TransportError{Kind: abi.TransportReset, Message: "the HTTP activity failed: " + err.Error()}
}

// sleep is a durable timer that an interrupt the machine has not seen yet
// ends early, as the CLI's sleep does.
func (d *driver) sleep(req abi.SleepRequest) abi.SleepResponse {
	if it := d.untold(); it != nil {
		resp := abi.SleepResponse{NowMS: d.now(), Interrupt: it}
		d.trace(abi.FuncSleep, req, resp)
		return resp
	}
	if req.WakeOn != nil {
		for d.wakes.ReceiveAsync(nil) {
			d.woken = true
		}
		if d.woken {
			// A wake came while the run was busy: it ends this sleep at
			// once, and the machine reads the run.
			d.woken = false
			resp := abi.SleepResponse{NowMS: d.now(), Woken: true}
			d.trace(abi.FuncSleep, req, resp)
			return resp
		}
		if d.w.Watcher != nil && !workflow.IsReplaying(d.ctx) {
			d.w.Watcher.Watch(workflow.GetInfo(d.ctx).WorkflowExecution.ID, *req.WakeOn, time.Duration(req.DurationMS)*time.Millisecond)
		}
	}
	tctx, cancel := workflow.WithCancel(d.dctx)
	t := workflow.NewTimer(tctx, time.Duration(req.DurationMS)*time.Millisecond)
	woken := d.wait(t, true, req.WakeOn != nil)
	cancel() // ends the timer if an interrupt or a wake ended the wait
	resp := abi.SleepResponse{NowMS: d.now(), Interrupt: d.intr, Woken: woken}
	if d.intr != nil {
		d.told = true
	}
	d.trace(abi.FuncSleep, req, resp)
	return resp
}

func (d *driver) log(l abi.LogRecord) {
	lg := workflow.GetLogger(d.ctx)
	kv := []any{"level", l.Level}
	if l.Source != "" {
		kv = append(kv, "source", l.Source, "time", l.Time)
	}
	switch l.Level {
	case abi.LevelError:
		lg.Error(l.Message, kv...)
	case abi.LevelWarn:
		lg.Warn(l.Message, kv...)
	default:
		lg.Info(l.Message, kv...)
	}
	d.trace(abi.FuncLog, l, nil)
}

func (d *driver) trace(fn string, req, resp any) {
	if d.w.Trace == nil || workflow.IsReplaying(d.ctx) {
		return
	}
	rb, _ := json.Marshal(req)
	var ab []byte
	if resp != nil {
		ab, _ = json.Marshal(resp)
	}
	d.w.Trace(fn, rb, ab)
}

// fault is the outcome of a workflow-side failure: exit 1, as the CLI's.
func fault(err error) abi.RunOutput {
	ae := &abi.Error{Code: abi.CodeInternal, Message: err.Error()}
	return abi.RunOutput{
		ExitCode:          abi.ExitFailed,
		StatusDescription: abi.StatusDescription(abi.ExitFailed, ae.Error()),
		Error:             ae,
		Result:            json.RawMessage("{}"),
	}
}

func randomSeed() uint64 {
	var b [8]byte
	for binary.LittleEndian.Uint64(b[:]) == 0 {
		_, _ = rand.Read(b[:])
	}
	return binary.LittleEndian.Uint64(b[:])
}
