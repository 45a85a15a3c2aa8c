package flowrun

import (
	"fmt"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Machine is the launch/poll state machine. It is not safe for concurrent
// use; one driver steps it at a time.
type Machine struct {
	s   state
	out []abi.Command
	// answer is the response the handler of a repeatable op is taking,
	// while it takes it: a handler that finds the body is not what the
	// endpoint returns then repeats the request instead of failing
	// (badResponse).
	answer *abi.HTTPResponse
}

// An op is what the outstanding command is for. The machine has exactly
// one outstanding command at a time, and the event that answers it goes
// to the op's entry in handlers.
type op string

const (
	opCredential        op = "credential"                 // resolve.go
	opWorkspaces        op = "read_workspaces"            // resolve.go
	opDeployment        op = "read_deployment"            // resolve.go
	opDeploymentByName  op = "read_deployment_by_name"    // resolve.go
	opDeploymentsByName op = "filter_deployments_by_name" // resolve.go
	opFlow              op = "read_flow"                  // resolve.go
	opDeploymentsAll    op = "filter_deployments"         // list.go
	opFlows             op = "filter_flows"               // list.go
	opCreate            op = "create_flow_run"            // launch.go
	opRead              op = "read_flow_run"              // poll.go
	opSleepPoll         op = "sleep_poll"                 // poll.go
	opLogs              op = "read_logs"                  // logs.go
	opSleepLogs         op = "sleep_logs"                 // logs.go
	opCancel            op = "cancel_flow_run"            // cancel.go
	opCancelRead        op = "read_cancelled_flow_run"    // cancel.go
	opSleepCancel       op = "sleep_cancel"               // cancel.go
	opSleepRetry        op = "sleep_retry"                // http.go
)

// A handler takes the event that answers an op. Exactly one of credential,
// http and woke is set, and so names the command the op issues.
type handler struct {
	credential func(*Machine, *abi.CredentialResponse)
	// http takes an answer that passed the common checks of [Machine.onHTTP]:
	// not a transport error, not retryable, and JSON if it is a 2xx.
	http func(*Machine, *abi.HTTPResponse)
	// failed, when set, takes a failed request instead (a transport error,
	// a status other than 200, a body that is not JSON): no retry, no
	// failure of the run.
	failed func(*Machine, *abi.HTTPResponse)
	woke   func(*Machine)
	// repeatable marks a request that is safe to repeat whatever became of
	// an earlier attempt: a read, or the create, whose idempotency key
	// makes a repeat return the run an earlier attempt created. For it a
	// 500, and a 2xx whose body is not what the endpoint returns, are
	// transient too (http.go, onHTTP).
	repeatable bool
}

// handlers is the machine's table of operations: each op, and the
// function in its operation's file that takes its answer.
var handlers = map[op]handler{
	opCredential:        {credential: (*Machine).onCredential},
	opWorkspaces:        {http: (*Machine).onWorkspaces, repeatable: true},
	opDeployment:        {http: (*Machine).onDeployment, repeatable: true},
	opDeploymentByName:  {http: (*Machine).onDeployment, repeatable: true},
	opDeploymentsByName: {http: (*Machine).onDeploymentsByName, repeatable: true},
	opFlow:              {http: (*Machine).onFlow, repeatable: true},
	opDeploymentsAll:    {http: (*Machine).onDeploymentsAll, repeatable: true},
	opFlows:             {http: (*Machine).onFlows, repeatable: true},
	opCreate:            {http: (*Machine).onCreate, repeatable: true},
	opRead:              {http: (*Machine).onRead, repeatable: true},
	opSleepPoll:         {woke: (*Machine).wokePoll},
	opLogs:              {http: (*Machine).onLogs, failed: (*Machine).onLogsFailed},
	opSleepLogs:         {woke: (*Machine).sendLogs},
	opCancel:            {http: (*Machine).onCancel},
	opCancelRead:        {http: (*Machine).onCancelRead},
	opSleepCancel:       {woke: (*Machine).sendCancelRead},
	opSleepRetry:        {woke: (*Machine).resend},
}

// Start begins a run. With in.Checkpoint set it resumes the checkpointed
// run instead (see [Machine.resume]). It returns the machine and its first
// commands.
func Start(in abi.RunInput) (*Machine, []abi.Command) {
	m := &Machine{}
	if len(in.Checkpoint) > 0 {
		if err := m.restore(in.Checkpoint); err != nil {
			m.s = state{V: CheckpointVersion}
			m.fail(abi.Errorf(abi.CodeInvalidInput, "checkpoint", "%s%v", sourcePrefix(in), err))
			return m, m.take()
		}
		if err := m.rebind(in); err != nil {
			// Another task's checkpoint: report nothing of its flow run.
			m.s = state{V: CheckpointVersion, Action: m.s.Action}
			m.fail(err)
			return m, m.take()
		}
		m.resume(in)
		return m, m.take()
	}
	action := in.Action
	if action == "" {
		action = abi.ActionLaunchFlowRun
	}
	m.s = state{
		V:            CheckpointVersion,
		Action:       action,
		Target:       in.Target,
		APIBase:      in.APIBase,
		UIBase:       in.UIBase,
		InvocationID: in.InvocationID,
		RNG:          in.Seed,
		Now:          in.NowMS,
	}
	if in.NowUnixMS > 0 {
		m.s.WallOffset = in.NowUnixMS - in.NowMS
	}
	cfg, err := ParseFields(action, in.Fields)
	m.s.Cfg = cfg
	switch {
	case err != nil:
		m.fail(err)
	case in.Target != abi.TargetCloud && in.Target != abi.TargetServer:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "target", "%q is not a target; expected %q or %q", clip(in.Target), abi.TargetCloud, abi.TargetServer))
	case action == abi.ActionListWorkspaces && in.Target != abi.TargetCloud:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "target", "workspaces exist only on Prefect Cloud"))
	case in.InvocationID == "" && cfg.IdempotencyKey == "" && action == abi.ActionLaunchFlowRun:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "idempotency_key", "neither an idempotency key nor an invocation id was given"))
	case !m.resolveStart(in.NowUnixMS):
	default:
		m.askCredential()
	}
	return m, m.take()
}

// Step feeds one event, the answer to the last command, and returns the
// next commands.
func (m *Machine) Step(ev abi.Event) []abi.Command {
	if m.s.Done != nil {
		m.emit(abi.Command{Kind: abi.CommandFinish, Finish: m.s.Done})
		return m.take()
	}
	h := handlers[m.s.Pending.Op]
	switch {
	case ev.Kind == abi.EventHTTP && ev.HTTP != nil && h.http != nil:
		m.observe(ev.HTTP.NowMS)
		m.noteInterrupt(ev.HTTP.Interrupt)
		m.onHTTP(h, utf8Body(ev.HTTP))
	case ev.Kind == abi.EventWoke && ev.Woke != nil && h.woke != nil:
		m.observe(ev.Woke.NowMS)
		m.noteInterrupt(ev.Woke.Interrupt)
		m.noteWoken(ev.Woke)
		h.woke(m)
	case ev.Kind == abi.EventCredential && ev.Credential != nil && h.credential != nil:
		h.credential(m, ev.Credential)
	default:
		m.fail(abi.Errorf(abi.CodeInternal, "", "event %q does not answer the outstanding command %q", clip(ev.Kind), m.s.Pending.Op))
	}
	return m.take()
}

// Done returns the outcome once the machine has finished, else nil.
func (m *Machine) Done() *abi.RunOutput { return m.s.Done }

func (m *Machine) take() []abi.Command {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) emit(c abi.Command) { m.out = append(m.out, c) }

// pendingProgress reports whether this step has already published the
// output fields and checkpoint.
func (m *Machine) pendingProgress() bool {
	for _, c := range m.out {
		if c.Kind == abi.CommandProgress {
			return true
		}
	}
	return false
}

func (m *Machine) logf(level, format string, args ...any) {
	m.emit(abi.Command{Kind: abi.CommandLog, Log: &abi.LogRecord{Level: level, Message: fmt.Sprintf(format, args...)}})
}

// progress publishes the output fields and the checkpoint.
func (m *Machine) progress() {
	m.emit(abi.Command{Kind: abi.CommandProgress, Progress: &abi.Progress{
		Fields: abi.OutputFields{
			FlowRunID:    m.s.Run.ID,
			FlowRunName:  m.s.Run.Name,
			FlowRunState: m.s.Run.StateType,
			FlowRunURL:   m.runURL(),
		},
		Checkpoint: m.Checkpoint(),
	}})
}
