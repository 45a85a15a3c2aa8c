package monitor

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/internal/randid"
	"github.com/ue-prefect/ue-prefect/host/prefect"
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
	// RequestsPerMinute is a budget: the Monitor sends at most this many
	// requests (batched reads, deployment reads, creates, cancels, logs)
	// in any minute: up to a tenth of them at once, then evenly spaced.
	// The others wait for their turn; batched reads keep filling while
	// they do. Prefect Cloud answers 429 past its plan's limit (625 a
	// minute on Hobby, 5,000 on Pro). A Retry-After holds every request
	// back on top of it. 0 means no limit.
	RequestsPerMinute int

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
// Polls are aligned so that their reads share batches: a poll that comes
// due while another run of the same API prefix has one due within a tenth
// of its poll interval (at most MaxAlignHold) is held until that one, and
// both then poll in step. A hold only lengthens an interval, by at most
// that tenth, never shortens one, so Max Number of Polls ends a run no
// sooner than its polls × its interval; a read an event brings forward,
// a retry backoff and a poll wait that ends at the Start Deadline
// (abi.SleepRequest.Exact) are never held. In steady state the Monitor sends
// about ⌈N/MaxBatch⌉ + AlignFraction read requests per poll interval.
//
// A Monitor lives long, so give it a host.Runtime on compiled code: from a
// warm compile cache, or host.WithoutCache. With a cold cache
// host.NewRuntime runs the plugin in the interpreter for the life of that
// Runtime (right for one short CLI run, several times slower per step
// here); after its WaitCache, a new Runtime loads the compiled code.
type Monitor struct {
	pool
	schedule
	batcher

	rt    *host.Runtime
	cfg   Config
	clock host.Clock
	store Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	runs   map[string]*mrun
	byRun  map[string][]*mrun // flow run id → runs following it
	closed bool
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
	// Held is the number of due polls held for a later one of their API
	// prefix, to share its batch (see Monitor).
	Held int64
	// LastMinute is the number of requests sent in the last minute, of
	// any kind: what Config.RequestsPerMinute bounds.
	LastMinute int64
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
		runs: map[string]*mrun{}, kept: map[string][]byte{}, byRun: map[string][]*mrun{}}
	m.pool.m, m.schedule.m, m.batcher.m = m, m, m
	m.queues = map[string]*pollQueue{}
	m.aligns = map[string]*alignment{}
	m.kick = make(chan struct{}, 1)
	m.batchMax = MaxBatch
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
	m.budget = newBudget(cfg.RequestsPerMinute, cfg.RequestsPerMinute/10, m.clock) // six seconds' worth at once
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
		Seed: binary.LittleEndian.Uint64(b[:]) | 1, InvocationID: randid.New(), NowMS: m.nowMS(), NowUnixMS: m.clock.Now().UnixMilli()}
	return in
}

func (m *Monitor) nowMS() int64 { return m.clock.Since().Milliseconds() }

// newRun makes a run for key; the caller registers it in m.runs.
func (m *Monitor) newRun(key string) *mrun {
	return &mrun{m: m, key: key, done: make(chan struct{}), started: make(chan struct{}), heapIdx: -1}
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

// Forget removes key's checkpoint from the store and from the Monitor, so
// that the next Launch of key starts afresh. It is for a checkpoint kept
// because the run's fate was unknown (see Store), which a Launch of the
// same key resumes, and which refuses other inputs with exit 20 on
// Checkpoint: the flow run it followed is no longer followed (check it on
// Prefect first). Forget refuses, with an error, while key is being
// followed (a Launch, Follow or resumed run whose Watch is not done; so
// not from OnOutcome, which runs before Done closes) and once the Monitor
// is closed (delete from the Store directly then). An unknown key is not
// an error.
func (m *Monitor) Forget(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("monitor: Monitor.Forget(%q): the Monitor is closed", key)
	}
	if _, ok := m.runs[key]; ok {
		return fmt.Errorf("monitor: Monitor.Forget(%q): the run is being followed; wait for its outcome (Watch.Done) first", key)
	}
	// Under m.mu: no Launch of key can start until the store forgot it.
	if err := m.store.Delete(key); err != nil {
		return fmt.Errorf("monitor: Monitor.Forget(%q): %w", key, err)
	}
	delete(m.kept, key)
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
	c := m.reqs
	c.LastMinute = int64(m.budget.Sent())
	return c
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
