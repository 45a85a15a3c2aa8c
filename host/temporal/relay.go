package uetemporal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// Watcher hears that a workflow is about to wait on a sleep that Prefect's
// events may end early (abi.SleepRequest.WakeOn), and for how long. The
// workflow calls it on the worker that runs the workflow task, outside
// replay only; it must return at once and must not fail the workflow.
// *Relay implements it.
type Watcher interface {
	Watch(workflowID string, on abi.WakeOn, d time.Duration)
}

// Signaler sends the wake signal to a workflow (its current run).
type Signaler func(ctx context.Context, workflowID string) error

// Defaults of Relay.
const (
	// RelayGrace is how long past the end of a sleep a watch is kept: the
	// workflow reads its run and, if it waits on, renews the watch.
	RelayGrace = 2 * time.Minute
	// RelaySenders is how many signals are sent at once.
	RelaySenders = 4
	// RelaySignalTimeout bounds one signal.
	RelaySignalTimeout = 10 * time.Second
)

// Relay is one worker's bridge from Prefect's event stream to its waiting
// workflows: each workflow that waits on a flow run (Watch) is followed on
// the worker's one events hub, and an event for the run sends the workflow
// the wake signal (SignalWake), as an event ends the CLI's wait. The
// workflow then reads the run; an event concludes nothing. Polling stays
// the floor: a relay whose stream is down, or a worker without one, leaves
// each wait to its interval.
//
// A watch lasts while its workflow keeps waiting: every wakeable sleep
// renews it, and it ends RelayGrace after the last one, or as soon as a
// signal finds the workflow closed. The hub's connected notice
// (prefect.StreamConnected) wakes a workflow once after its watch begins, for an
// event that may have slipped between its last read and the subscription,
// and again only after the stream was lost and came back (so the
// reconnects that add runs to the stream's filter wake nobody).
type Relay struct {
	src    EventSource
	signal Signaler
	now    func() time.Time

	mu      sync.Mutex
	watches map[string]*watch // by workflow id
	queue   []string          // workflow ids to signal, each once
	closed  bool
	cond    *sync.Cond

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, failed, gone atomic.Int64
}

// watch is one workflow waiting on one flow run.
type watch struct {
	key      string // events path + " " + flow run id
	path     string
	stop     func()
	until    time.Time
	queued   bool
	connects int // Connected notices acted on
	failures int // the stream's failures when last connected
}

// EventSource is what a Relay follows runs on: the worker's events hub,
// or a fake in tests. (It is host.EventSource, declared here so that this
// package needs Prefect's wire but not the runtime.)
type EventSource interface {
	// Subscribe calls fn for each new event on the flow run, heard on the
	// events websocket at path, until the returned function is called.
	Subscribe(path, flowRunID string, fn func(prefect.Event)) (func(), error)
}

// statuser is what a hub may also offer: its stream's failure count.
type statuser interface {
	Status(path string) prefect.StreamStatus
}

// NewRelay returns a Relay that follows runs on src (the worker's
// prefect.EventHub; see prefect.NewEventHub) and wakes workflows with signal.
// Close stops it; it does not close src.
func NewRelay(src EventSource, signal Signaler) *Relay {
	r := &Relay{src: src, signal: signal, now: time.Now, watches: map[string]*watch{}}
	r.cond = sync.NewCond(&r.mu)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for range RelaySenders {
		r.wg.Add(1)
		go r.sender()
	}
	r.wg.Add(1)
	go r.sweeper()
	return r
}

// SignalWith returns the Signaler that sends SignalWake through c (a
// client.Client's SignalWorkflow).
func SignalWith(signalWorkflow func(ctx context.Context, workflowID, runID, signalName string, arg any) error) Signaler {
	return func(ctx context.Context, id string) error { return signalWorkflow(ctx, id, "", SignalWake, nil) }
}

// Watch implements Watcher: the workflow waits up to d on the flow run.
func (r *Relay) Watch(workflowID string, on abi.WakeOn, d time.Duration) {
	if workflowID == "" || on.FlowRunID == "" {
		return
	}
	key := on.EventsPath + " " + strings.ToLower(on.FlowRunID)
	until := r.now().Add(d + RelayGrace)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if w := r.watches[workflowID]; w != nil {
		if w.key == key {
			w.until = until
			r.mu.Unlock()
			return
		}
		delete(r.watches, workflowID)
		defer w.stop()
	}
	w := &watch{key: key, path: on.EventsPath, until: until, stop: func() {}}
	r.watches[workflowID] = w
	r.mu.Unlock()
	stop, err := r.src.Subscribe(on.EventsPath, on.FlowRunID, func(ev prefect.Event) { r.event(workflowID, w, ev) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || r.watches[workflowID] != w {
		// A path or id the hub refuses (the wait is then plain), or the
		// watch was replaced meanwhile.
		if r.watches[workflowID] == w {
			delete(r.watches, workflowID)
		}
		if err == nil {
			defer stop()
		}
		return
	}
	w.stop = stop
}

// event queues the wake signal for an event on the watched run.
func (r *Relay) event(id string, w *watch, ev prefect.Event) {
	if ev.Name == prefect.StreamConnected {
		failures := 0
		if s, ok := r.src.(statuser); ok {
			failures = s.Status(w.path).Failures
		}
		r.mu.Lock()
		again := w.connects > 0 && failures == w.failures
		w.connects++
		w.failures = failures
		r.mu.Unlock()
		if again {
			return // a reconnect to change the filter, not after a loss
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.watches[id] != w || w.queued {
		return
	}
	if r.now().After(w.until) {
		delete(r.watches, id)
		go w.stop()
		return
	}
	w.queued = true
	r.queue = append(r.queue, id)
	r.cond.Signal()
}

// sender sends queued signals until Close.
func (r *Relay) sender() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closed {
			r.cond.Wait()
		}
		if r.closed {
			r.mu.Unlock()
			return
		}
		id := r.queue[0]
		r.queue = r.queue[1:]
		w := r.watches[id]
		if w != nil {
			// An event from now on queues another signal: this one may be
			// recorded before that event happened.
			w.queued = false
		}
		r.mu.Unlock()
		if w == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, RelaySignalTimeout)
		err := r.signal(ctx, id)
		cancel()
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			r.sent.Add(1)
		case errors.As(err, &nf):
			// The workflow has closed: nobody is waiting any more.
			r.gone.Add(1)
			r.drop(id, w)
		default:
			r.failed.Add(1) // the workflow polls at its interval regardless
		}
	}
}

// drop ends the watch w of workflow id, if it is still the current one.
func (r *Relay) drop(id string, w *watch) {
	r.mu.Lock()
	if r.watches[id] != w {
		r.mu.Unlock()
		return
	}
	delete(r.watches, id)
	r.mu.Unlock()
	w.stop()
}

// sweeper ends watches whose workflows stopped renewing them.
func (r *Relay) sweeper() {
	defer r.wg.Done()
	t := time.NewTicker(RelayGrace / 4)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.sweep()
	}
}

func (r *Relay) sweep() {
	now := r.now()
	var stale []*watch
	r.mu.Lock()
	for id, w := range r.watches {
		if now.After(w.until) {
			delete(r.watches, id)
			stale = append(stale, w)
		}
	}
	r.mu.Unlock()
	for _, w := range stale {
		w.stop()
	}
}

// RelayStats counts a Relay's work.
type RelayStats struct {
	Watched int   // workflows followed now
	Sent    int64 // wake signals delivered
	Gone    int64 // signals that found the workflow closed (its watch ended)
	Failed  int64 // signals that failed otherwise (the workflow polls on)
}

// Stats reports the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	n := len(r.watches)
	r.mu.Unlock()
	return RelayStats{Watched: n, Sent: r.sent.Load(), Gone: r.gone.Load(), Failed: r.failed.Load()}
}

// Close ends every watch and stops sending. It does not close the hub.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	ws := r.watches
	r.watches = map[string]*watch{}
	r.queue = nil
	r.cond.Broadcast()
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	for _, w := range ws {
		w.stop()
	}
}
