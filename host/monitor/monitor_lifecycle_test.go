package monitor

import (
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// countingEvents is an host.EventSource that counts live subscriptions and can
// fire an event on every subscriber of a flow run.
type countingEvents struct {
	mu   sync.Mutex
	n    int
	subs map[int]sub
}

type sub struct {
	id string
	fn func(prefect.Event)
}

func (e *countingEvents) Subscribe(path, flowRunID string, fn func(prefect.Event)) (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subs == nil {
		e.subs = map[int]sub{}
	}
	e.n++
	k := e.n
	e.subs[k] = sub{flowRunID, fn}
	var once sync.Once
	return func() { once.Do(func() { e.mu.Lock(); delete(e.subs, k); e.mu.Unlock() }) }, nil
}

func (e *countingEvents) live() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

func (e *countingEvents) fire(flowRunID string) {
	e.mu.Lock()
	var fns []func(prefect.Event)
	for _, s := range e.subs {
		if s.id == flowRunID {
			fns = append(fns, s.fn)
		}
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(prefect.Event{Name: "prefect.flow-run.Running"})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // generous: -race and a loaded machine step slowly
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorCloseEndsWatches (issue 15, 3.6 and 3.8): after Close, the
// Done channel of a run still being followed is closed and its Outcome
// says the Monitor closed (code interrupted), the store keeps the run, and
// every events subscription is ended.
func TestMonitorCloseEndsWatches(t *testing.T) {
	f := newFakePrefect(t)
	f.set(fakeID(1), "RUNNING")
	ev := &countingEvents{}
	store := NewMemoryStore()
	cfg := f.base(t)
	cfg.Store, cfg.Events = store, ev
	m := newMonitor(t, *cfg)
	w, err := m.Follow("k", fakeID(1))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the run's events subscription", func() bool { return ev.live() == 1 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done is not closed after Close")
	}
	if out := w.Outcome(); out.Error == nil || out.Error.Code != abi.CodeInterrupted {
		t.Errorf("outcome after Close: %+v", out)
	}
	if n := ev.live(); n != 0 {
		t.Errorf("%d events subscriptions left after Close", n)
	}
	if saved, _ := store.Load(); saved["k"] == nil {
		t.Error("Close dropped the run from the store")
	}
	if _, err := m.Launch("k2", abi.Fields{FlowRunID: fakeID(1)}); err == nil {
		t.Error("Launch on a closed Monitor succeeded")
	}
}

// TestMonitorConcurrentLaunch (issue 15, 3.7): concurrent Launch calls for
// one key follow one run: the same Watch, one create, one outcome, and no
// two Saves of the key at once.
func TestMonitorConcurrentLaunch(t *testing.T) {
	f := newFakePrefect(t)
	store := newFailingStore()
	var mu sync.Mutex
	outcomes := 0
	cfg := f.base(t)
	cfg.Store = store
	cfg.OnOutcome = func(string, abi.RunOutput) { mu.Lock(); outcomes++; mu.Unlock() }
	m := newMonitor(t, *cfg)
	defer m.Close()
	const n = 8
	watches := make([]*Watch, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			w, err := m.Launch("one-key", abi.Fields{Deployment: flowruntest.DeploymentID, Wait: "false"})
			if err != nil {
				t.Error(err)
			}
			watches[i] = w
		})
	}
	close(start)
	wg.Wait()
	for _, w := range watches {
		if w == nil || w.r != watches[0].r {
			t.Fatalf("Launch returned different runs for one key")
		}
	}
	if out := outcomeWithin(t, watches[0], time.Minute); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	time.Sleep(200 * time.Millisecond) // let any second follower finish
	mu.Lock()
	defer mu.Unlock()
	if outcomes != 1 || f.createCount() != 1 {
		t.Errorf("%d outcomes and %d creates, want 1 and 1", outcomes, f.createCount())
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.overlap != 0 {
		t.Errorf("%d overlapping Saves of one key", store.overlap)
	}
}

// TestMonitorLaunchSaveFails (issue 15, 3.9): when the first Save fails,
// Launch returns the error and sends nothing.
func TestMonitorLaunchSaveFails(t *testing.T) {
	f := newFakePrefect(t)
	store := newFailingStore()
	store.fail = true
	cfg := f.base(t)
	cfg.Store = store
	m := newMonitor(t, *cfg)
	defer m.Close()
	if _, err := m.Launch("k", abi.Fields{Deployment: flowruntest.DeploymentID}); err == nil {
		t.Fatal("Launch succeeded with a failing store")
	}
	time.Sleep(2 * time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total != 0 {
		t.Errorf("%d requests sent after the first Save failed", f.total)
	}
	if m.Len() != 0 {
		t.Errorf("%d runs followed after a failed Launch", m.Len())
	}
}
