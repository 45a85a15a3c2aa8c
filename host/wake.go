package host

import (
	"context"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/events"
)

// EventSource lets Prefect's events end a sleep early (abi.WakeOn).
// *events.Hub implements it; see prefect.NewEventHub.
type EventSource interface {
	// Subscribe calls fn for each new event on the flow run, heard on the
	// events websocket at path (relative to the API base), until the
	// returned function is called.
	Subscribe(path, flowRunID string, fn func(events.Event)) (func(), error)
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

func (w *waker) event(events.Event) {
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

// wakerFor returns the waker of a sleep's flow run, subscribing on first
// use; nil when the sleep asks for none or there is no event source.
func (cs *callState) wakerFor(on *abi.WakeOn) *waker {
	if on == nil || cs.cfg.Events == nil || on.FlowRunID == "" {
		return nil
	}
	cs.wmu.Lock()
	defer cs.wmu.Unlock()
	key := on.EventsPath + " " + on.FlowRunID
	if w, ok := cs.wakers[key]; ok {
		return w
	}
	w := &waker{}
	stop, err := cs.cfg.Events.Subscribe(on.EventsPath, on.FlowRunID, w.event)
	if err != nil {
		w = nil // a path or id the source refuses: the sleep is plain
	} else {
		w.stop = stop
	}
	if cs.wakers == nil {
		cs.wakers = map[string]*waker{}
	}
	cs.wakers[key] = w
	return w
}

func (cs *callState) stopWakers() {
	cs.wmu.Lock()
	defer cs.wmu.Unlock()
	for _, w := range cs.wakers {
		if w != nil && w.stop != nil {
			w.stop()
		}
	}
	cs.wakers = nil
}

// sleep sleeps d on the clock, ended early by ctx or an event; it reports
// whether an event ended it (or had arrived since the last sleep).
func (cs *callState) sleep(ctx context.Context, d time.Duration, w *waker) bool {
	if w == nil {
		_ = cs.clock.Sleep(ctx, d)
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
	_ = cs.clock.Sleep(sctx, d)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel = nil
	woken := w.woken
	w.woken = false
	return woken
}
