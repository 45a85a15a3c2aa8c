package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// TestMonitorRidersAreNotPolls (issue 15, 3.1): a run woken early to ride
// in another run's batch reads as the CLI reads after an event: not a
// poll, and its interval is not restarted, so Max Number of Polls ends
// each run (exit 40) no sooner than its polls × its interval after its
// first read. Runs are launched at five phases of a 4 s interval, so that
// batches have riders.
func TestMonitorRidersAreNotPolls(t *testing.T) {
	t.Parallel() // waits in real time; overlaps the package's other slow tests
	const (
		n        = 5
		interval = 4 * time.Second
		maxPolls = 3
	)
	f := newFakePrefect(t)
	var log outcomeLog
	cfg := f.base(t)
	cfg.OnOutcome = log.on
	m := newMonitor(t, *cfg)
	defer m.Close()
	for i := range n {
		f.set(fakeID(i), "RUNNING")
	}
	for i := range n {
		if _, err := m.Launch(fmt.Sprint("p", i), abi.Fields{FlowRunID: fakeID(i), PollInterval: fmt.Sprint(int(interval / time.Second)), MaxPolls: fmt.Sprint(maxPolls)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval / n)
	}
	for i := range n {
		if out := log.wait(t, fmt.Sprint("p", i), 1); out.ExitCode != abi.ExitPollingTimeout {
			t.Errorf("run %d: exit %d: %s", i, out.ExitCode, out.StatusDescription)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		rs := f.reads[fakeID(i)]
		if len(rs) < maxPolls+1 {
			t.Fatalf("run %d: %d reads", i, len(rs))
		}
		// The outcome comes at the last read; the first is not a poll.
		t.Logf("run %d: reads %v", i, func() (d []time.Duration) {
			for _, r := range rs {
				d = append(d, r.Sub(rs[0]).Round(time.Millisecond))
			}
			return
		}())
		if got, want := rs[len(rs)-1].Sub(rs[0]), maxPolls*interval; got < want-100*time.Millisecond {
			t.Errorf("run %d: exit 40 %s after its first read, want %s (%d polls × %s)", i, got.Round(time.Millisecond), want, maxPolls, interval)
		}
	}
}

// limitedFilter refuses a filter request whose limit is over max with a
// 422, as a Prefect server with PREFECT_SERVER_API_DEFAULT_LIMIT=max does
// (detail names the limit), or as a validation error that only names the
// field (detail is then the FastAPI list).
func limitedFilter(f *fakePrefect, max int, named bool, refused *int) func(http.ResponseWriter, []string, int) bool {
	return func(w http.ResponseWriter, ids []string, limit int) bool {
		if limit < len(ids) {
			f.t.Errorf("a filter request with %d ids and limit %d", len(ids), limit)
		}
		if limit <= max {
			return false
		}
		f.mu.Lock()
		*refused++
		f.mu.Unlock()
		w.WriteHeader(http.StatusUnprocessableEntity)
		if named {
			fmt.Fprintf(w, `{"detail":"Invalid limit: must be less than or equal to %d."}`, max)
		} else {
			fmt.Fprint(w, `{"detail":[{"loc":["body","limit"],"msg":"ensure this value is small enough","type":"value_error"}]}`)
		}
		return true
	}
}

// TestMonitorServerLimit (issue 15, 3.2): a server whose page limit is
// lower than the batch refuses it with 422; the Monitor then sends smaller
// batches (the limit the server names, else half) and remembers the size,
// and no run fails for it.
func TestMonitorServerLimit(t *testing.T) {
	t.Parallel() // waits in real time; overlaps the package's other slow tests
	for _, tc := range []struct {
		name   string
		named  bool
		max    int
		refuse int // at most this many refused requests (the first reads may go out as two batches)
	}{
		{"detail names the limit", true, 5, 2},
		{"validation error on the field", false, 6, 3}, // 24 → 12 → 6
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 24
			f := newFakePrefect(t)
			refused := 0
			f.filter = limitedFilter(f, tc.max, tc.named, &refused)
			var log outcomeLog
			cfg := f.base(t)
			cfg.OnOutcome = log.on
			cfg.BatchWindow = 2 * time.Second
			m := newMonitor(t, *cfg)
			defer m.Close()
			for i := range n {
				f.set(fakeID(i), "RUNNING")
				if _, err := m.Launch(fmt.Sprint("k", i), abi.Fields{FlowRunID: fakeID(i), PollInterval: "1"}); err != nil {
					t.Fatal(err)
				}
			}
			// Every run has been read once; now they end.
			waitFor(t, "a read of every run", func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				return len(f.reads) == n
			})
			f.mu.Lock()
			for i := range n {
				f.runs[fakeID(i)] = "COMPLETED"
			}
			f.mu.Unlock()
			for i := range n {
				if out := log.wait(t, fmt.Sprint("k", i), 1); out.ExitCode != abi.ExitSuccess {
					t.Errorf("run %d: exit %d: %s", i, out.ExitCode, out.StatusDescription)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if refused == 0 || refused > tc.refuse {
				t.Errorf("%d refused batches, want 1 to %d", refused, tc.refuse)
			}
		})
	}
}

// TestMonitorLargeAnswer (issue 15, 3.3): a batch whose answer is over
// MaxResponseBytes is split, down to single runs, and no batch is sent
// twice: every run ends as its own read says.
func TestMonitorLargeAnswer(t *testing.T) {
	const n = 16
	f := newFakePrefect(t)
	big := strings.Repeat("x", 1500)
	f.filter = func(w http.ResponseWriter, ids []string, limit int) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		rows := []map[string]any{}
		for _, id := range ids {
			row := f.row(id)
			row["parameters"] = map[string]any{"blob": big}
			rows = append(rows, row)
			f.reads[id] = append(f.reads[id], time.Now())
		}
		_ = json.NewEncoder(w).Encode(rows)
		return true
	}
	var log outcomeLog
	cfg := f.base(t)
	cfg.OnOutcome = log.on
	cfg.MaxResponseBytes = 5000 // three rows
	cfg.BatchWindow = 2 * time.Second
	m := newMonitor(t, *cfg)
	defer m.Close()
	for i := range n {
		f.set(fakeID(i), "COMPLETED")
		if _, err := m.Follow(fmt.Sprint("k", i), fakeID(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if out := log.wait(t, fmt.Sprint("k", i), 1); out.ExitCode != abi.ExitSuccess {
			t.Errorf("run %d: exit %d: %s", i, out.ExitCode, out.StatusDescription)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, b := range f.batches {
		k := strings.Join(slices.Sorted(slices.Values(b)), ",")
		if seen[k] {
			t.Errorf("a batch of %d runs was sent twice", len(b))
		}
		seen[k] = true
	}
}
