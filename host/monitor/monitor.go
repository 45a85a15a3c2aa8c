package monitor

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// Batched reads.
const (
	// MaxBatch is the most flow runs one POST /flow_runs/filter reads, the
	// server's page limit.
	MaxBatch = 200
	// DefaultBatchWindow is how long a due read waits for others to share
	// its request.
	DefaultBatchWindow = time.Second
)

// Config configures a Monitor.
type Config struct {
	// Connection is how every run reaches Prefect, as in host.RunConfig.
	prefect.Connection
	// Clock supplies time; nil means host.RealClock().
	Clock host.Clock

	// Store keeps unfinished runs' checkpoints; nil means a new
	// MemoryStore. Give a FileStore or your own to survive a restart.
	Store Store
	// Instances is how many plugin instances step runs; 0 means 2.
	Instances int
	// BatchWindow is how long a due read waits for others to share its
	// request; 0 means DefaultBatchWindow.
	BatchWindow time.Duration
	// MaxInFlight bounds concurrent requests other than batched reads
	// (deployment reads, creates); 0 means 16.
	MaxInFlight int

	// OnOutcome receives each run's outcome, once per process; the run is
	// deleted from the Store after it returns, so an outcome whose
	// delivery a crash interrupted is delivered again after the restart.
	OnOutcome func(key string, out abi.RunOutput)
	// Events, if set, ends a run's poll sleep as soon as Prefect reports an
	// event for its flow run (abi.WakeOn; prefect.NewEventHub, one per process);
	// the machine then reads the run and decides. Polling stays the floor.
	Events host.EventSource

	// Log receives each run's lines for people.
	Log func(key string, l abi.LogRecord)
	// Progress receives each run's output fields when they change.
	Progress func(key string, f abi.OutputFields)
}

// Monitor follows many flow runs with a few plugin instances. A waiting
// run is its checkpoint, parked until its next event: the end of its sleep,
// an HTTP answer, or an early wake. The state machine decides everything;
// the Monitor only carries out its commands. Reads of runs due in the same
// window go out together as POST /flow_runs/filter, up to MaxBatch ids per
// request, and each machine gets its row as the answer to its own GET
// /flow_runs/{id}.
//
// A Monitor lives long, so give it a host.Runtime on compiled code: from a
// warm compile cache, or host.WithoutCache. With a cold cache
// host.NewRuntime runs the plugin in the interpreter for the life of that
// Runtime (right for one short CLI run, several times slower per step
// here); after its WaitCache, a new Runtime loads the compiled code.
type Monitor struct {
	rt    *host.Runtime
	cfg   Config
	clock host.Clock
	doer  *prefect.Client
	store Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu        sync.Mutex
	cond      *sync.Cond // signals jobs
	jobs      []job
	runs      map[string]*mrun
	byRun     map[string][]*mrun // flow run id → runs following it
	sleeping  sleepHeap
	queues    map[string]*pollQueue // API prefix → reads waiting for a batch
	holdUntil time.Duration         // no request before this (a Retry-After)
	noBatch   bool                  // the server has no /flow_runs/filter
	batchMax  int                   // the most runs one batch reads: MaxBatch, less for a server that refused that
	kick      chan struct{}
	closed    bool
	// For tests: trace sees each host-function call a run makes, as
	// host.RunConfig.Trace does; beforeSleep sees each sleep before it begins.
	trace       func(fn string, req, resp []byte)
	beforeSleep func(key string, req abi.SleepRequest)
	kept        map[string][]byte // checkpoints of ended runs whose fate is unknown
	reqs        Counters
}

// Counters counts a Monitor's requests.
type Counters struct {
	// Batches is the number of POST /flow_runs/filter requests sent, and
	// BatchedReads the reads they answered.
	Batches, BatchedReads int64
	// Direct is the number of other requests.
	Direct int64
	// Woken is the number of poll sleeps an event ended early.
	Woken int64
}

// Watch is one followed run.
type Watch struct{ r *mrun }

// Key returns the run's key.
func (w *Watch) Key() string { return w.r.key }

// Done is closed when the outcome is known, or when the Monitor is closed
// before it is.
func (w *Watch) Done() <-chan struct{} { return w.r.done }

// Outcome returns the run's outcome once Done is closed: the exit code,
// status description and result the CLI would report. A run the Monitor
// was closed on before its outcome was known reports ClosedOutcome (code
// interrupted, exit 143, as the CLI stopped by SIGTERM); it is not
// finished: it stays in the store and a new Monitor on the store resumes
// it. OnOutcome is not called for it.
func (w *Watch) Outcome() abi.RunOutput {
	<-w.r.done
	return w.r.out
}

// Fields returns the latest output fields.
func (w *Watch) Fields() abi.OutputFields {
	w.r.m.mu.Lock()
	defer w.r.m.mu.Unlock()
	return w.r.fields
}

type mrun struct {
	m      *Monitor
	key    string
	cp     []byte
	fields abi.OutputFields
	done   chan struct{}
	out    abi.RunOutput
	ended  bool // done is closed (guarded by m.mu)
	// resumed is set when the run started from a stored checkpoint.
	resumed bool

	// started is closed once the first step's checkpoint is saved (or
	// could not be: startErr); a Launch returns then.
	started  chan struct{}
	startErr error

	// Set while parked in a sleep (guarded by m.mu).
	heapIdx  int
	due      time.Duration
	sleepFor time.Duration
	// wakeable is set for a sleep that waits for news (the machine sent
	// abi.WakeOn: a poll), never for a retry backoff: only such a sleep
	// may end early, for a batch with room or an event.
	wakeable bool
	// pending is set when an event came while the run was not in a
	// wakeable sleep; its next one then ends at once.
	pending bool
	// rode is set when the run was woken to ride in a batch; it rides
	// again only after its next poll came due.
	rode   bool
	unsub  func() // the events subscription, if any
	subKey string
	prefix string      // the API prefix of its last poll
	cmd    abi.Command // the command its next event answers (for trace)
}

type job struct {
	r      *mrun
	in     abi.StepInput
	cohort *cohort
	first  bool // the first step of a Launch, which waits for its Save
}

// New starts a Monitor on rt and resumes every run in the store.
// It runs until Close or until ctx ends.
func New(ctx context.Context, rt *host.Runtime, cfg Config) (*Monitor, error) {
	if cfg.APIBase == nil {
		return nil, fmt.Errorf("monitor: Config.APIBase is required")
	}
	if cfg.Target != abi.TargetCloud && cfg.Target != abi.TargetServer {
		return nil, fmt.Errorf("monitor: Config.Target %q is not %q or %q", cfg.Target, abi.TargetCloud, abi.TargetServer)
	}
	m := &Monitor{rt: rt, cfg: cfg, clock: cfg.Clock, store: cfg.Store,
		runs: map[string]*mrun{}, kept: map[string][]byte{}, byRun: map[string][]*mrun{}, queues: map[string]*pollQueue{},
		kick: make(chan struct{}, 1), batchMax: MaxBatch}
	m.cond = sync.NewCond(&m.mu)
	if m.clock == nil {
		m.clock = host.RealClock()
	}
	if m.store == nil {
		m.store = NewMemoryStore()
	}
	if m.cfg.BatchWindow <= 0 {
		m.cfg.BatchWindow = DefaultBatchWindow
	}
	if m.cfg.Instances <= 0 {
		m.cfg.Instances = 2
	}
	if m.cfg.MaxInFlight <= 0 {
		m.cfg.MaxInFlight = 16
	}
	m.sem = make(chan struct{}, m.cfg.MaxInFlight)
	m.doer = newClient(rt, cfg.Connection, m.clock)
	saved, err := m.store.Load()
	if err != nil {
		return nil, fmt.Errorf("monitor: loading the checkpoint store: %w", err)
	}
	var steppers []*host.Stepper
	for range m.cfg.Instances {
		s, err := rt.NewStepper(ctx)
		if err != nil {
			for _, s := range steppers {
				s.Close(ctx)
			}
			return nil, err
		}
		steppers = append(steppers, s)
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	for _, s := range steppers {
		m.wg.Add(1)
		go m.worker(s)
	}
	m.wg.Add(1)
	go m.loop()
	for key, cp := range saved {
		r := m.newRun(key)
		close(r.started)
		r.cp, r.resumed = cp, true
		m.mu.Lock()
		m.runs[key] = r
		m.mu.Unlock()
		in := m.baseInput()
		in.Checkpoint = cp
		m.push(job{r: r, in: abi.StepInput{Input: &in}})
	}
	return m, nil
}

func (m *Monitor) baseInput() abi.RunInput {
	var b [8]byte
	_, _ = rand.Read(b[:])
	// The wall clock schedules a Start At, places an attached run's
	// expected start, and on a restart from the store tells the machine
	// how long it was away, so start deadlines count the downtime.
	in := abi.RunInput{Target: m.cfg.Target, APIBase: m.cfg.APIBase.String(), UIBase: m.cfg.UIBase,
		Seed: binary.LittleEndian.Uint64(b[:]) | 1, InvocationID: randomID(), NowMS: m.nowMS(), NowUnixMS: m.clock.Now().UnixMilli()}
	return in
}

func (m *Monitor) nowMS() int64 { return m.clock.Since().Milliseconds() }

// newRun makes a run for key; the caller registers it in m.runs.
func (m *Monitor) newRun(key string) *mrun {
	return &mrun{m: m, key: key, done: make(chan struct{}), started: make(chan struct{}), heapIdx: -1}
}

// ClosedOutcome is the outcome a Watch reports when its Monitor was closed
// before the run's outcome was known (see Watch.Outcome).
func ClosedOutcome() abi.RunOutput {
	return abi.Failure(&abi.Error{Code: abi.CodeInterrupted,
		Message: "the Monitor was closed before the run's outcome was known; the run stays in the store and a new Monitor on the store resumes it"})
}

// end closes r.done once, with out (m.mu held).
func (r *mrun) end(out abi.RunOutput) {
	if r.ended {
		return
	}
	r.ended = true
	r.out = out
	close(r.done)
}

// Launch starts following a run under key, which is also its idempotency
// key unless fields name another: launching the same key again, here or
// after a restart, never creates a second flow run. Wait defaults to
// "true". With fields.FlowRunID set it follows that existing run instead.
// When Launch returns without error the run is in the store; when its
// first Save fails, Launch returns the error and nothing has been sent. A
// key that is already being followed (by this or a concurrent call)
// returns its Watch, once its first Save is done.
func (m *Monitor) Launch(key string, fields abi.Fields) (*Watch, error) {
	if key == "" {
		return nil, fmt.Errorf("monitor: Monitor.Launch: empty key")
	}
	if fields.Wait == "" {
		fields.Wait = "true"
	}
	if fields.IdempotencyKey == "" && fields.FlowRunID == "" {
		fields.IdempotencyKey = key
	}
	in := m.baseInput()
	in.Fields = fields
	return m.launch(key, in)
}

// launch follows a run under key from in, or returns the Watch of the run
// already followed under key.
func (m *Monitor) launch(key string, in abi.RunInput) (*Watch, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("monitor: Monitor is closed")
	}
	r, ok := m.runs[key]
	if !ok {
		r = m.newRun(key)
		m.runs[key] = r
		if cp := m.kept[key]; cp != nil {
			// The checkpoint a run of unknown fate left: resume it, as
			// the CLI run again with its checkpoint file does.
			delete(m.kept, key)
			in.Checkpoint, r.cp, r.resumed = cp, cp, true
		}
		m.jobs = append([]job{{r: r, in: abi.StepInput{Input: &in}, first: true}}, m.jobs...)
		m.cond.Signal()
	}
	m.mu.Unlock()
	select {
	case <-r.started:
	case <-m.ctx.Done():
		return nil, fmt.Errorf("monitor: Monitor is closed")
	}
	if r.startErr != nil {
		return nil, fmt.Errorf("monitor: saving the run's checkpoint: %w", r.startErr)
	}
	return &Watch{r}, nil
}

// Follow follows the existing flow run flowRunID under key.
func (m *Monitor) Follow(key, flowRunID string) (*Watch, error) {
	return m.Launch(key, abi.Fields{FlowRunID: flowRunID})
}

// Watch returns the run followed under key, or nil. After a restart it
// finds the runs resumed from the store.
func (m *Monitor) Watch(key string) *Watch {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[key]; ok {
		return &Watch{r}
	}
	return nil
}

// Len returns how many runs are being followed.
func (m *Monitor) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.runs)
}

// Requests returns the request counters.
func (m *Monitor) Requests() Counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reqs
}

// Waker ends a run's wait early, for an event source of the embedder's
// own that hears a flow run change before the next poll (with
// Config.Events the Monitor subscribes to Prefect's events itself).
// The machine then reads the run and decides; an event alone concludes
// nothing.
type Waker interface {
	// Wake ends the wait of every run following flowRunID, if it is
	// waiting for news rather than backing off, and reports how many.
	Wake(flowRunID string) int
	// Watched lists the flow run ids being followed.
	Watched() []string
}

var _ Waker = (*Monitor)(nil)

// Wake implements Waker.
func (m *Monitor) Wake(flowRunID string) int {
	m.mu.Lock()
	var woke []*mrun
	for _, r := range m.byRun[strings.ToLower(flowRunID)] {
		if r.heapIdx >= 0 && r.wakeable {
			heap.Remove(&m.sleeping, r.heapIdx)
			m.reqs.Woken++
			woke = append(woke, r)
		}
	}
	m.mu.Unlock()
	for _, r := range woke {
		m.wakeJob(r, true)
	}
	return len(woke)
}

// event ends r's poll sleep for an event on its flow run, or keeps the
// event for its next one. It runs on the event source's goroutine.
func (m *Monitor) event(r *mrun) {
	m.mu.Lock()
	if r.heapIdx >= 0 && r.wakeable {
		heap.Remove(&m.sleeping, r.heapIdx)
		m.reqs.Woken++
		m.mu.Unlock()
		m.wakeJob(r, true)
		return
	}
	r.pending = true
	m.mu.Unlock()
}

// subscribe follows r's flow run on the event source, once per run.
func (m *Monitor) subscribe(r *mrun, on *abi.WakeOn) {
	if m.cfg.Events == nil || on == nil || on.FlowRunID == "" {
		return
	}
	key := on.EventsPath + " " + strings.ToLower(on.FlowRunID)
	if r.subKey == key {
		return
	}
	if r.unsub != nil {
		r.unsub()
		r.unsub = nil
	}
	r.subKey = key
	if stop, err := m.cfg.Events.Subscribe(on.EventsPath, on.FlowRunID, func(prefect.Event) { m.event(r) }); err == nil {
		r.unsub = stop
	}
}

// Watched implements Waker.
func (m *Monitor) Watched() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.byRun))
	for id := range m.byRun {
		ids = append(ids, id)
	}
	return ids
}

// Close stops the Monitor. Unfinished runs stay in the store as they were
// after their last step; a new Monitor on the same store resumes them.
// Their events subscriptions end, and their Watches' Done channels close
// with ClosedOutcome.
func (m *Monitor) Close() error {
	m.mu.Lock()
	m.closed = true
	m.cond.Broadcast()
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		if r.unsub != nil {
			r.unsub()
			r.unsub = nil
		}
		r.end(ClosedOutcome())
	}
	return nil
}

func (m *Monitor) stopped() bool { return m.ctx.Err() != nil }

// push queues a step for a worker. (A first step, which a Launch waits
// for, goes ahead of the others: see launch.)
func (m *Monitor) push(j job) {
	m.mu.Lock()
	m.jobs = append(m.jobs, j)
	m.cond.Signal()
	m.mu.Unlock()
}

func (m *Monitor) wakeJob(r *mrun, woken bool) {
	m.push(job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: m.nowMS(), Woken: woken}}}})
}

func (m *Monitor) worker(s *host.Stepper) {
	defer m.wg.Done()
	defer func() {
		if s != nil { // nil when a replacement instance could not be made
			s.Close(context.Background())
		}
	}()
	for {
		m.mu.Lock()
		for len(m.jobs) == 0 && !m.closed {
			m.cond.Wait()
		}
		if m.closed {
			m.mu.Unlock()
			return
		}
		j := m.jobs[0]
		m.jobs[0] = job{}
		m.jobs = m.jobs[1:]
		m.mu.Unlock()
		if m.trace != nil && j.in.Event != nil {
			m.traceEvent(j.r, j.in.Event)
		}
		var err error
		if s, err = m.advance(s, j); err != nil {
			return
		}
	}
}

// advance steps one run from one event until it waits for something, and
// parks it or hands its command on. It returns the stepper to use next
// (a fresh one after a plugin fault).
func (m *Monitor) advance(s *host.Stepper, j job) (*host.Stepper, error) {
	r, in := j.r, j.in
	parked := false
	defer func() {
		if j.cohort != nil && !parked {
			m.cohortDone(j.cohort, nil)
		}
	}()
	for {
		if m.stopped() {
			return s, nil
		}
		out, err := s.Step(m.ctx, in)
		if err != nil {
			if m.stopped() {
				return s, nil
			}
			s.Close(m.ctx)
			var nerr error
			if s, nerr = m.rt.NewStepper(m.ctx); nerr != nil {
				return nil, nerr
			}
			m.finish(r, fault(err))
			if j.first {
				close(r.started)
			}
			return s, nil
		}
		var serr error
		if fin := finishOf(out); fin == nil || !r.keeps(*fin) {
			r.cp = out.Checkpoint
			serr = m.store.Save(r.key, r.cp)
		} // else the store keeps the checkpoint before the end, which resumes
		if j.first {
			j.first = false
			if serr != nil {
				// Nothing is sent for a run that is not in the store.
				m.mu.Lock()
				r.startErr = serr
				delete(m.runs, r.key)
				r.end(fault(fmt.Errorf("saving the run's checkpoint: %w", serr)))
				m.mu.Unlock()
				close(r.started)
				return s, nil
			}
			close(r.started)
		}
		if serr != nil {
			m.log(r, abi.LogRecord{Level: abi.LevelWarn, Message: "Could not save the checkpoint: " + serr.Error()})
		}
		var last *abi.Command
		for i := range out.Commands {
			c := &out.Commands[i]
			switch c.Kind {
			case abi.CommandLog:
				m.traceCall(abi.FuncLog, c.Log, nil)
				m.log(r, *c.Log)
			case abi.CommandProgress:
				m.traceCall(abi.FuncProgress, c.Progress, nil)
				m.progress(r, c.Progress.Fields)
			default:
				last = c
			}
		}
		if last == nil {
			m.finish(r, fault(errors.New("the state machine stopped without a command")))
			return s, nil
		}
		switch last.Kind {
		case abi.CommandCredential:
			cred := abi.CredentialResponse{Scheme: m.cfg.Credential.Scheme(), Source: m.cfg.Credential.Source()}
			m.traceCall(abi.FuncCredential, abi.CredentialRequest{}, cred)
			in = abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventCredential, Credential: &cred}}
			continue
		case abi.CommandFinish:
			m.finish(r, *last.Finish)
		case abi.CommandSleep:
			r.cmd = *last
			if m.beforeSleep != nil {
				m.beforeSleep(r.key, *last.Sleep)
			}
			parked = true
			m.subscribe(r, last.Sleep.WakeOn)
			m.park(r, time.Duration(last.Sleep.DurationMS)*time.Millisecond, last.Sleep.WakeOn != nil, j.cohort)
		case abi.CommandHTTP:
			r.cmd = *last
			m.request(r, *last.HTTP)
		default:
			m.finish(r, fault(fmt.Errorf("the state machine gave an unknown command %q", last.Kind)))
		}
		return s, nil
	}
}

// traceCall passes one host-function call to m.trace, if set.
func (m *Monitor) traceCall(fn string, req, resp any) {
	if m.trace == nil {
		return
	}
	rb, _ := json.Marshal(req)
	var ab []byte
	if resp != nil {
		ab, _ = json.Marshal(resp)
	}
	m.trace(fn, rb, ab)
}

// traceEvent traces the call that ev answers: r's last command.
func (m *Monitor) traceEvent(r *mrun, ev *abi.Event) {
	switch {
	case ev.HTTP != nil && r.cmd.HTTP != nil:
		m.traceCall(abi.FuncHTTP, r.cmd.HTTP, ev.HTTP)
	case ev.Woke != nil && r.cmd.Sleep != nil:
		m.traceCall(abi.FuncSleep, r.cmd.Sleep, ev.Woke)
	}
}

func (m *Monitor) log(r *mrun, l abi.LogRecord) {
	if f := m.cfg.Log; f != nil {
		f(r.key, l)
	}
}

func (m *Monitor) progress(r *mrun, f abi.OutputFields) {
	m.mu.Lock()
	if id := strings.ToLower(f.FlowRunID); id != "" && !strings.EqualFold(r.fields.FlowRunID, id) {
		m.byRun[id] = append(m.byRun[id], r)
	}
	r.fields = f
	m.mu.Unlock()
	if p := m.cfg.Progress; p != nil {
		p(r.key, f)
	}
}

// finishOf returns the outcome a step ends the run with, or nil.
func finishOf(out abi.StepOutput) *abi.RunOutput {
	for _, c := range out.Commands {
		if c.Kind == abi.CommandFinish {
			return c.Finish
		}
	}
	return nil
}

// keeps reports whether the run's checkpoint must stay in the store after
// it ended with out, as the CLI keeps its checkpoint file: when the flow
// run's fate is unknown (Prefect unreachable or its answers broken past
// the budgets, an internal fault, a create whose failure may hide a
// created run), and when a stored checkpoint was refused as input (one of
// another version, for the release that wrote it).
func (r *mrun) keeps(out abi.RunOutput) bool {
	if out.Error == nil {
		return false
	}
	switch out.Error.Code {
	case abi.CodeInterrupted, abi.CodeUnavailable, abi.CodeInternal, abi.CodeBadResponse, abi.CodeRefused:
		return true
	case abi.CodeInvalidInput:
		return r.resumed
	case abi.CodeServerError:
		var res struct {
			ID  string `json:"flow_run_id"`
			Key string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(out.Result, &res)
		return res.ID == "" && res.Key != ""
	}
	return false
}

// finish hands the outcome over and forgets the run, and its checkpoint
// unless its fate is unknown (see keeps).
func (m *Monitor) finish(r *mrun, out abi.RunOutput) {
	if m.stopped() {
		return
	}
	if r.unsub != nil {
		r.unsub()
		r.unsub = nil
	}
	if f := m.cfg.OnOutcome; f != nil {
		f(r.key, out)
	}
	keep := r.keeps(out)
	if !keep {
		if err := m.store.Delete(r.key); err != nil {
			m.log(r, abi.LogRecord{Level: abi.LevelWarn, Message: "Could not delete the checkpoint: " + err.Error()})
		}
	}
	m.mu.Lock()
	if keep && len(r.cp) > 0 {
		m.kept[r.key] = r.cp
	}
	if m.runs[r.key] == r {
		delete(m.runs, r.key)
	}
	if id := strings.ToLower(r.fields.FlowRunID); id != "" {
		rs := m.byRun[id]
		for i, x := range rs {
			if x == r {
				rs = append(rs[:i], rs[i+1:]...)
				break
			}
		}
		if len(rs) == 0 {
			delete(m.byRun, id)
		} else {
			m.byRun[id] = rs
		}
	}
	r.end(out)
	m.mu.Unlock()
}

// park puts r to sleep for d. In a cohort (the runs of one failed batch)
// it waits for the others, so that they all wake together at the latest of
// their times and their retries share one request again.
func (m *Monitor) park(r *mrun, d time.Duration, wakeable bool, c *cohort) {
	m.mu.Lock()
	r.due = m.clock.Since() + d
	r.sleepFor = d
	r.wakeable = wakeable
	if wakeable && r.pending && c == nil {
		r.pending = false
		m.reqs.Woken++
		m.mu.Unlock()
		m.wakeJob(r, true)
		return
	}
	m.mu.Unlock()
	if c != nil {
		m.cohortDone(c, r)
		return
	}
	m.mu.Lock()
	heap.Push(&m.sleeping, r)
	m.mu.Unlock()
	m.poke()
}

func (m *Monitor) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// cohort gathers the runs answered by one failed batch until each has
// either parked (its retry sleep) or gone elsewhere.
type cohort struct {
	left   int
	due    time.Duration
	parked []*mrun
}

func (m *Monitor) cohortDone(c *cohort, r *mrun) {
	m.mu.Lock()
	c.left--
	if r != nil {
		c.parked = append(c.parked, r)
		c.due = max(c.due, r.due)
	}
	last := c.left == 0
	if last {
		for _, p := range c.parked {
			p.due = c.due
			heap.Push(&m.sleeping, p)
		}
	}
	m.mu.Unlock()
	if last {
		m.poke()
	}
}

// pollPath matches a read of one flow run, with the Cloud workspace prefix.
var pollPath = regexp.MustCompile(`^((?:/accounts/[0-9a-fA-F-]{36}/workspaces/[0-9a-fA-F-]{36})?)/flow_runs/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

// request carries out an HTTP command: a read of one flow run joins a
// batch, anything else goes out alone.
func (m *Monitor) request(r *mrun, req abi.HTTPRequest) {
	if req.Method == http.MethodGet {
		if sm := pollPath.FindStringSubmatch(req.Path); sm != nil {
			m.mu.Lock()
			if !m.noBatch {
				m.enqueue(r, sm[1], strings.ToLower(sm[2]))
				m.mu.Unlock()
				return
			}
			m.mu.Unlock()
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		resp := m.direct(req)
		if m.stopped() {
			return
		}
		m.answer(r, resp, nil)
	}()
}

// direct sends one request, after any Retry-After the server asked for.
func (m *Monitor) direct(req abi.HTTPRequest) abi.HTTPResponse {
	select {
	case m.sem <- struct{}{}:
	case <-m.ctx.Done():
		return abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportInterrupted, Message: "the monitor is closing"}}
	}
	defer func() { <-m.sem }()
	m.waitHold()
	m.mu.Lock()
	m.reqs.Direct++
	m.mu.Unlock()
	resp := m.doer.Do(m.ctx, req)
	m.noteHold(resp)
	return resp
}

func (m *Monitor) waitHold() {
	m.mu.Lock()
	d := m.holdUntil - m.clock.Since()
	m.mu.Unlock()
	if d > 0 {
		_ = m.clock.Sleep(m.ctx, d)
	}
}

// noteHold holds every request back until a Retry-After has passed.
func (m *Monitor) noteHold(resp abi.HTTPResponse) {
	if resp.RetryAfterMS <= 0 || (resp.Status != http.StatusTooManyRequests && resp.Status != http.StatusServiceUnavailable) {
		return
	}
	until := m.clock.Since() + time.Duration(min(resp.RetryAfterMS, 5*60*1000))*time.Millisecond
	m.mu.Lock()
	m.holdUntil = max(m.holdUntil, until)
	m.mu.Unlock()
}

// answer steps r with an HTTP response.
func (m *Monitor) answer(r *mrun, resp abi.HTTPResponse, c *cohort) {
	resp.NowMS = m.nowMS()
	m.push(job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventHTTP, HTTP: &resp}}, cohort: c})
}

// pollQueue holds the reads waiting for one batch.
type pollQueue struct {
	prefix   string
	items    []pollItem
	flushAt  time.Duration
	extended int // windows added because steps were still queued
}

// maxExtend bounds how many more windows a batch waits for the steps still
// queued (runs woken but not yet stepped, whose reads would join it): when
// stepping lags (a busy machine), batches then still fill.
const maxExtend = 4

type pollItem struct {
	r  *mrun
	id string
}

// enqueue adds a read to its prefix's queue (m.mu held). The first read of
// a window also wakes, early, sleepers whose read would come soon anyway,
// to fill the request up to MaxBatch: reads then fall into step and one
// request per MaxBatch runs serves each interval.
func (m *Monitor) enqueue(r *mrun, prefix, id string) {
	r.prefix = prefix
	q := m.queues[prefix]
	if q == nil {
		q = &pollQueue{prefix: prefix}
		m.queues[prefix] = q
	}
	q.items = append(q.items, pollItem{r, id})
	if len(q.items) >= m.batchMax {
		batch := q.items[:m.batchMax:m.batchMax]
		q.items = append([]pollItem(nil), q.items[m.batchMax:]...)
		m.sendBatch(q.prefix, batch)
	}
	if len(q.items) == 1 {
		q.flushAt = max(m.clock.Since()+m.cfg.BatchWindow, m.holdUntil)
		m.pickRiders(q)
		m.poke()
	}
}

// pickRiders wakes sleepers whose read the open batch can carry (m.mu
// held): only runs waiting for news (not backing off), of the same API
// prefix, past half of their sleep, nearest first, and only as many as
// the batch has room for after the runs due within the window. A rider is
// woken as by an event (abi.SleepResponse.Woken), as the CLI's poll wait
// ends early: its read is not a poll and its next poll stays due when it
// was, so Max Number of Polls still means polls × interval. A run rides
// at most once per poll interval.
func (m *Monitor) pickRiders(q *pollQueue) {
	dueSoon := 0
	var cands []*mrun
	for _, s := range m.sleeping {
		switch {
		case s.due <= q.flushAt:
			dueSoon++
		case s.wakeable && !s.rode && s.prefix == q.prefix && s.due-q.flushAt <= s.sleepFor/2:
			cands = append(cands, s)
		}
	}
	room := m.batchMax - (len(q.items)+dueSoon)%m.batchMax
	if room == m.batchMax || len(cands) == 0 {
		return
	}
	sortByDue(cands)
	if len(cands) > room {
		cands = cands[:room]
	}
	for _, s := range cands {
		heap.Remove(&m.sleeping, s.heapIdx)
		s.rode = true
		// Woken, as after an event: the machine reads the run, but the
		// read is not a poll and its next poll stays due when it was.
		m.jobs = append(m.jobs, job{r: s, in: abi.StepInput{Checkpoint: s.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: m.nowMS(), Woken: true}}}})
	}
	m.cond.Broadcast()
}

func sortByDue(rs []*mrun) {
	for i := 1; i < len(rs); i++ { // insertion sort: candidates are few
		for j := i; j > 0 && rs[j].due < rs[j-1].due; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// sendBatch sends one batch in the background (m.mu held).
func (m *Monitor) sendBatch(prefix string, items []pollItem) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.batch(prefix, items)
	}()
}

// batch reads items with one POST /flow_runs/filter and answers each
// machine as if it had read its own run: its row with 200, or 404 when the
// run is not in the answer (deleted). A failed request answers every
// machine with the failure, so each applies its own retry and outage
// budget; their retry sleeps are then aligned (see cohort) so the retry is
// one request again, and a Retry-After holds every request back.
func (m *Monitor) batch(prefix string, items []pollItem) {
	m.waitHold()
	if m.stopped() {
		return
	}
	ids := make([]string, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		if !seen[it.id] {
			seen[it.id] = true
			ids = append(ids, it.id)
		}
	}
	// The limit is the number of ids: never more than the server allows
	// when it accepted a batch this size, and never a page that could
	// leave out a run that exists.
	body, _ := json.Marshal(map[string]any{"flow_runs": map[string]any{"id": map[string]any{"any_": ids}}, "limit": len(ids)})
	m.mu.Lock()
	m.reqs.Batches++
	m.reqs.BatchedReads += int64(len(items))
	m.mu.Unlock()
	resp := m.doer.Do(m.ctx, abi.HTTPRequest{Method: http.MethodPost, Path: prefix + "/flow_runs/filter", Body: body})
	if m.stopped() {
		return
	}
	m.noteHold(resp)
	if resp.Error == nil && (resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed) {
		// No filter endpoint (a proxy that allows only single reads): read
		// one by one from now on.
		m.mu.Lock()
		m.noBatch = true
		m.mu.Unlock()
		for _, it := range items {
			m.request(it.r, abi.HTTPRequest{Method: http.MethodGet, Path: prefix + "/flow_runs/" + it.id})
		}
		return
	}
	if n, ok := limitRefused(resp, len(ids)); ok {
		// A server with a lower page limit: smaller batches from now on.
		m.shrinkBatch(prefix, items, ids, n)
		return
	}
	if resp.Error != nil && resp.Error.Kind == abi.TransportTooLarge && len(ids) > 1 {
		// An answer over MaxResponseBytes: halve the batch (down to
		// single runs) rather than fail every run, or send it again.
		m.shrinkBatch(prefix, items, ids, (len(ids)+1)/2)
		return
	}
	var rows []json.RawMessage
	if resp.Error != nil || resp.Status < 200 || resp.Status > 299 || json.Unmarshal(resp.Body, &rows) != nil {
		// A failure, or an answer that is not a list: every machine sees it
		// as the answer to its own read and decides.
		c := &cohort{left: len(items)}
		for _, it := range items {
			m.answer(it.r, resp, c)
		}
		return
	}
	byID := make(map[string]json.RawMessage, len(rows))
	for _, row := range rows {
		var h struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(row, &h) == nil {
			byID[strings.ToLower(h.ID)] = row
		}
	}
	for _, it := range items {
		if row, ok := byID[it.id]; ok {
			m.answer(it.r, abi.HTTPResponse{Status: http.StatusOK, Body: row}, nil)
		} else {
			m.answer(it.r, abi.HTTPResponse{Status: http.StatusNotFound, Body: json.RawMessage(`{"detail":"Flow run not found"}`)}, nil)
		}
	}
}

// limitRefusal matches Prefect's refusal of a page limit over
// PREFECT_SERVER_API_DEFAULT_LIMIT.
var limitRefusal = regexp.MustCompile(`(?i)limit: must be less than or equal to (\d+)`)

// limitRefused reports whether resp refuses a batch of n ids for its
// limit (a 422 that names the limit field) and the largest batch to try
// next: the limit the server names, else half.
func limitRefused(resp abi.HTTPResponse, n int) (int, bool) {
	if resp.Error != nil || resp.Status != http.StatusUnprocessableEntity || n <= 1 {
		return 0, false
	}
	body := string(resp.Body) + resp.BodyText
	if sm := limitRefusal.FindStringSubmatch(body); sm != nil {
		var max int
		if _, err := fmt.Sscan(sm[1], &max); err == nil && max >= 1 && max < n {
			return max, true
		}
	}
	if !strings.Contains(strings.ToLower(body), "limit") {
		return 0, false
	}
	return n / 2, true
}

// shrinkBatch remembers size as the largest batch and sends items again
// in batches of at most size distinct ids, at once.
func (m *Monitor) shrinkBatch(prefix string, items []pollItem, ids []string, size int) {
	size = max(size, 1)
	m.mu.Lock()
	m.batchMax = min(m.batchMax, size)
	m.mu.Unlock()
	byID := map[string][]pollItem{}
	for _, it := range items {
		byID[it.id] = append(byID[it.id], it)
	}
	for len(ids) > 0 {
		n := min(size, len(ids))
		var part []pollItem
		for _, id := range ids[:n] {
			part = append(part, byID[id]...)
		}
		ids = ids[n:]
		m.batch(prefix, part)
	}
}

// loop wakes sleepers when they are due and sends batches when their
// window closes.
func (m *Monitor) loop() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		now := m.clock.Since()
		for len(m.sleeping) > 0 && m.sleeping[0].due <= now {
			r := heap.Pop(&m.sleeping).(*mrun)
			r.rode = false
			m.jobs = append(m.jobs, job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now.Milliseconds()}}}})
			m.cond.Signal()
		}
		next := time.Duration(-1)
		for _, q := range m.queues {
			if len(q.items) == 0 {
				continue
			}
			if q.flushAt <= now && len(m.jobs) > 0 && len(q.items) < m.batchMax && q.extended < maxExtend {
				q.flushAt = now + m.cfg.BatchWindow
				q.extended++
			}
			if q.flushAt <= now {
				m.sendBatch(q.prefix, q.items)
				q.items, q.extended = nil, 0
				continue
			}
			if next < 0 || q.flushAt < next {
				next = q.flushAt
			}
		}
		if len(m.sleeping) > 0 && (next < 0 || m.sleeping[0].due < next) {
			next = m.sleeping[0].due
		}
		m.cond.Broadcast()
		m.mu.Unlock()
		if next < 0 {
			select {
			case <-m.kick:
			case <-m.ctx.Done():
				return
			}
			continue
		}
		wctx, cancel := context.WithCancel(m.ctx)
		go func() {
			select {
			case <-m.kick:
				cancel()
			case <-wctx.Done():
			}
		}()
		_ = m.clock.Sleep(wctx, next-now)
		cancel()
		if m.stopped() {
			return
		}
	}
}

// sleepHeap orders parked runs by due time.
type sleepHeap []*mrun

func (h sleepHeap) Len() int           { return len(h) }
func (h sleepHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h sleepHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *sleepHeap) Push(x any) {
	r := x.(*mrun)
	r.heapIdx = len(*h)
	*h = append(*h, r)
}
func (h *sleepHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.heapIdx = -1
	*h = old[:len(old)-1]
	return r
}

// fault is the outcome of a plugin or Monitor fault, as host.Runtime.Run
// reports one: exit 1 with the fault as its message.
func fault(err error) abi.RunOutput {
	var ae *abi.Error
	if !errors.As(err, &ae) {
		ae = &abi.Error{Code: abi.CodeInternal, Message: err.Error()}
	}
	return abi.Failure(ae)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newClient is the Monitor's prefect.Client: a Connection without a
// User-Agent gets the runtime's.
func newClient(rt *host.Runtime, c prefect.Connection, clock host.Clock) *prefect.Client {
	if c.UserAgent == "" {
		c.UserAgent = rt.UserAgent()
	}
	// New checks APIBase first, the one error NewClient has.
	d, _ := prefect.NewClient(c, clock.Now)
	return d
}
