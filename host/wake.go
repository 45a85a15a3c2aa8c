package host

import (
	"context"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// EventSource lets Prefect's events end a sleep early (abi.WakeOn).
// *prefect.EventHub implements it; see prefect.NewEventHub.
type EventSource interface {
	// Subscribe calls fn for each new event on the flow run, heard on the
	// events websocket at path (relative to the API base), until the
	// returned function is called.
	Subscribe(path, flowRunID string, fn func(prefect.Event)) (func(), error)
}

// waker is one watched flow run of a run: an event either ends the sleep
// in progress or is kept for the next one.
type waker struct {
	mu      sync.Mutex
	pending bool
	woken   bool
	cancel  context.CancelFunc // the sleep in progress, if any
	stop    func()
}

func (w *waker) event(prefect.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.woken = true
		w.cancel()
		w.cancel = nil
		return
	}
	w.pending = true
}

// wakers are the flow runs of one run whose events end its sleeps
// (abi.WakeOn), each subscribed on first use.
type wakers struct {
	src EventSource // nil: no sleep is ever woken
	mu  sync.Mutex
	m   map[string]*waker
}

// get returns the waker of a sleep's flow run, subscribing on first use;
// nil when the sleep asks for none or there is no event source.
func (ws *wakers) get(on *abi.WakeOn) *waker {
	if on == nil || ws.src == nil || on.FlowRunID == "" {
		return nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	key := on.EventsPath + " " + on.FlowRunID
	if w, ok := ws.m[key]; ok {
		return w
	}
	w := &waker{}
	stop, err := ws.src.Subscribe(on.EventsPath, on.FlowRunID, w.event)
	if err != nil {
		w = nil // a path or id the source refuses: the sleep is plain
	} else {
		w.stop = stop
	}
	if ws.m == nil {
		ws.m = map[string]*waker{}
	}
	ws.m[key] = w
	return w
}

// stop ends every subscription.
func (ws *wakers) stop() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.m {
		if w != nil && w.stop != nil {
			w.stop()
		}
	}
	ws.m = nil
}

// sleep sleeps d on the clock, ended early by ctx or an event; it reports
// whether an event ended it (or had arrived since the last sleep).
func sleep(ctx context.Context, clock Clock, d time.Duration, w *waker) bool {
	if w == nil {
		_ = clock.Sleep(ctx, d)
		return false
	}
	w.mu.Lock()
	if w.pending {
		w.pending = false
		w.mu.Unlock()
		return true
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.cancel, w.woken = cancel, false
	w.mu.Unlock()
	_ = clock.Sleep(sctx, d)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel = nil
	woken := w.woken
	w.woken = false
	return woken
}
