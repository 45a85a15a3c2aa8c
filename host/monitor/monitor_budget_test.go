package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// budgetRow is a flow run row as Prefect answers it.
func budgetRow(id, state string) map[string]any {
	name := state[:1] + strings.ToLower(state[1:])
	return map[string]any{"id": id, "name": "run-" + id[24:], "state_type": state, "state_name": name,
		"state": map[string]any{"type": state, "name": name}}
}

// TestMonitorBudgetHoldsUnderLoad: twenty runs on a server without
// /flow_runs/filter each want their own read at once, against a budget of
// fifty a minute: five at once (a tenth), then one each 1.22 s. The server
// sees the five, and never more than the budget has let out by then;
// Requests() counts them in the last minute, and the other runs wait for
// their turn, none ended by it.
func TestMonitorBudgetHoldsUnderLoad(t *testing.T) {
	const n, budget, burst = 20, 50, 5
	period := (time.Minute + budgetMargin) / budget
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Method == http.MethodPost {
			http.NotFound(w, r) // no filter endpoint: each run is read alone
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(budgetRow(r.URL.Path[len("/api/flow_runs/"):], "RUNNING"))
	}))
	defer srv.Close()
	base, err := prefect.ValidateAPIBase(srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	m, err := New(t.Context(), newTestRuntime(t), Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base,
		Credential: prefect.NoCredential()}, BatchWindow: 50 * time.Millisecond, RequestsPerMinute: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var watches []*Watch
	for i := range n {
		w, err := m.Follow(fmt.Sprint("k", i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, w)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	// allowed is the most the budget can have let out by now: the burst,
	// and one a period since the Monitor started.
	allowed := func() int { return burst + int(time.Since(t0)/period) }
	for deadline := time.Now().Add(30 * time.Second); count() < burst && time.Now().Before(deadline); {
		if c, a := count(), allowed(); c > a {
			t.Fatalf("%d requests reached the server, the budget allows %d", c, a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := count(); c < burst {
		t.Fatalf("%d requests reached the server in 30 s, want the burst of %d", c, burst)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if c, a := count(), allowed(); c > a {
			mu.Lock()
			seen := slices.Clone(got)
			mu.Unlock()
			t.Fatalf("%d requests reached the server after %v, the budget allows %d: %q", c, time.Since(t0), a, seen)
		}
	}
	a := allowed()
	if c := m.Requests(); c.LastMinute < int64(count()) || c.LastMinute > int64(a) || c.Batches+c.Direct != c.LastMinute {
		t.Errorf("Requests() = %+v, want from %d (reached the server) to %d sent in the last minute", c, count(), a)
	}
	if c := count(); c >= n {
		t.Errorf("all %d reads went out (%d requests) within %v", n, c, time.Since(t0))
	}
	for i, w := range watches {
		select {
		case <-w.Done():
			t.Errorf("run %d ended while waiting for its turn: %+v", i, w.Outcome())
		default:
		}
	}
}

// fastClock is the real clock run x times faster: a virtual clock on which
// time also passes while nothing sleeps, so that reads can gather into a
// batch while it waits, as they do in real time.
type fastClock struct {
	start time.Time
	x     time.Duration
}

func (c fastClock) Since() time.Duration { return time.Since(c.start) * c.x }
func (c fastClock) Now() time.Time       { return c.start.Add(c.Since()) }
func (c fastClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d / c.x)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestMonitorBudgetPacesAndFinishes, on a clock 20 times faster than real
// time: forty runs polled every 5 s need a read a round, each run
// COMPLETED at its third read, against a budget of two requests a minute;
// the server also answers the second request 429 with Retry-After: 90.
// Every run ends COMPLETED, no minute holds more than the budget, nothing
// goes out before the Retry-After has passed, and reads waiting for a
// token share their request.
func TestMonitorBudgetPacesAndFinishes(t *testing.T) {
	t.Parallel() // waits in real time; overlaps the package's other slow tests
	const n, budget = 40, 2
	vc := fastClock{time.Now(), 20}
	type call struct {
		at     time.Duration
		ids    int
		status int
	}
	var mu sync.Mutex
	var calls []call
	reads := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f filterQuery
		if r.URL.Path != "/api/flow_runs/filter" || json.NewDecoder(r.Body).Decode(&f) != nil {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(500)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		c := call{at: vc.Since(), ids: len(f.FlowRuns.ID.Any), status: 200}
		if len(calls) == 1 {
			c.status = 429
		}
		calls = append(calls, c)
		if c.status != 200 {
			w.Header().Set("Retry-After", "90")
			w.WriteHeader(c.status)
			return
		}
		rows := []map[string]any{}
		for _, id := range f.FlowRuns.ID.Any {
			reads[id]++
			st := "RUNNING"
			if reads[id] >= 3 {
				st = "COMPLETED"
			}
			rows = append(rows, budgetRow(id, st))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rows)
	}))
	defer srv.Close()
	base, err := prefect.ValidateAPIBase(srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(t.Context(), newTestRuntime(t), Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base,
		Credential: prefect.NoCredential()}, Clock: vc, RequestsPerMinute: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var watches []*Watch
	for i := range n {
		w, err := m.Launch(fmt.Sprint("k", i), abi.Fields{FlowRunID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), PollInterval: "5"})
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, w)
	}
	for i, w := range watches {
		select {
		case <-w.Done():
		case <-time.After(2 * time.Minute):
			t.Fatalf("run %d has no outcome", i)
		}
		if out := w.Outcome(); out.ExitCode != 0 {
			t.Errorf("run %d: exit %d: %s", i, out.ExitCode, out.StatusDescription)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// While a read waits for a token its batch stays open, and the reads
	// due meanwhile join it: about one request a run's three reads would
	// take anyway, not one per read that fell due (60 and more).
	if len(calls) > 20 {
		t.Errorf("%d requests for %d runs' 3 reads: the batches did not fill while they waited: %+v", len(calls), n, calls)
	}
	// The server sees each request at or after the instant the budget let
	// it out: the (k·budget)th request cannot come before k minutes (and
	// the margin) have passed.
	for i, c := range calls {
		if floor := time.Duration(i/budget) * (time.Minute + budgetMargin); c.at < floor {
			t.Errorf("request %d at %v, before %v: over %d a minute: %+v", i, c.at, floor, budget, calls)
		}
		if i >= budget && c.at-calls[i-budget].at < time.Minute {
			t.Errorf("requests %d and %d %v apart: over %d a minute: %+v", i-budget, i, c.at-calls[i-budget].at, budget, calls)
		}
	}
	if len(calls) > 2 && calls[2].at-calls[1].at < 90*time.Second {
		t.Errorf("a request %v after a 429 with Retry-After: 90", calls[2].at-calls[1].at)
	}
	if c := m.Requests(); c.LastMinute > budget {
		t.Errorf("Requests().LastMinute = %d, over the budget of %d", c.LastMinute, budget)
	}
}
