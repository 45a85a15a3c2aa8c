package monitor

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// TestMonitorRestartFromStore: a Monitor closed mid-wait leaves the run in
// its FileStore; a new Monitor on the store resumes it by reading the flow
// run it launched (no second create) and reports its outcome, once.
func TestMonitorRestartFromStore(t *testing.T) {
	f := newFakePrefect(t)
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var log outcomeLog
	cfg := f.base(t)
	cfg.Store, cfg.OnOutcome = store, log.on
	m := newMonitor(t, *cfg)
	if _, err := m.Launch("nightly", abi.Fields{Deployment: flowruntest.DeploymentID, PollInterval: "1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a poll of the launched run", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.reads[fakeID(900001)]) >= 1
	})
	m.Close()
	if saved, _ := store.Load(); saved["nightly"] == nil {
		t.Fatal("the unfinished run is not in the store")
	}
	f.set(fakeID(900001), "COMPLETED")
	m = newMonitor(t, *cfg)
	defer m.Close()
	if out := log.wait(t, "nightly", 1); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("resumed run: exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	if n := f.createCount(); n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
	if saved, _ := store.Load(); len(saved) != 0 {
		t.Errorf("the store keeps %d runs after the outcome", len(saved))
	}
}

// TestMonitorEventWakes: an event for a followed run ends its poll sleep
// (60 s) at once; the machine reads the run and ends it; the wake is
// counted.
func TestMonitorEventWakes(t *testing.T) {
	f := newFakePrefect(t)
	f.set(fakeID(1), "RUNNING")
	ev := &countingEvents{}
	var log outcomeLog
	cfg := f.base(t)
	cfg.Events, cfg.OnOutcome = ev, log.on
	m := newMonitor(t, *cfg)
	defer m.Close()
	start := time.Now()
	if _, err := m.Follow("k", fakeID(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the run's poll sleep", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		r := m.runs["k"]
		return r != nil && r.heapIdx >= 0 && ev.live() == 1
	})
	f.set(fakeID(1), "COMPLETED")
	ev.fire(fakeID(1))
	if out := log.wait(t, "k", 1); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("the outcome came %s after the launch: the event did not end the 60 s wait", d)
	}
	if got := m.Requests().Woken; got != 1 {
		t.Errorf("Woken = %d, want 1", got)
	}
}

// TestMonitorRetryAfterVirtual: a batch refused with 503 and Retry-After:
// 30 is retried no sooner than 30 s later on the Monitor's clock, with no
// request in between, and on a virtual clock the wait costs no real time.
func TestMonitorRetryAfterVirtual(t *testing.T) {
	f := newFakePrefect(t)
	f.set(fakeID(1), "COMPLETED")
	clock := vclock.New(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var at []time.Duration
	f.filter = func(w http.ResponseWriter, ids []string, limit int) bool {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, clock.Since())
		if len(at) == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	var log outcomeLog
	cfg := f.base(t)
	cfg.Clock, cfg.OnOutcome = clock, log.on
	m := newMonitor(t, *cfg)
	defer m.Close()
	start := time.Now()
	if _, err := m.Follow("k", fakeID(1)); err != nil {
		t.Fatal(err)
	}
	if out := log.wait(t, "k", 1); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d filter requests, want the refused one and its retry", len(at))
	}
	if gap := at[1] - at[0]; gap < 30*time.Second {
		t.Errorf("retried %s after a Retry-After of 30 s", gap)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("a virtual 30 s wait took %s of real time", d)
	}
}
