package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// TestMonitorBatchedReads follows runs against a scripted filter endpoint
// (the real server is in tests/monitor_test.go): their reads share
// requests, a run missing from the answer ends as a run that does not
// exist, and a refused batch is retried as one batch, after its
// Retry-After, with no other request meanwhile.
func TestMonitorBatchedReads(t *testing.T) {
	t.Parallel() // waits in real time; overlaps the package's other slow tests
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	gone := ids[n-1]
	type call struct {
		at, end time.Time
		ids     []string
		status  int
	}
	var mu sync.Mutex
	var calls []call
	released := false // runs are RUNNING until released; then one 503, then COMPLETED
	refusedOnce := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/flow_runs/filter" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(500)
			return
		}
		var f filterQuery
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.Limit < len(f.FlowRuns.ID.Any) {
			t.Errorf("filter body: %v, limit %d", err, f.Limit)
		}
		mu.Lock()
		c := call{at: time.Now(), ids: f.FlowRuns.ID.Any, status: 200}
		state, name := "RUNNING", "Running"
		if released {
			state, name = "COMPLETED", "Completed"
			if !refusedOnce {
				refusedOnce, c.status = true, 503
			}
		}
		c.end = time.Now()
		calls = append(calls, c)
		mu.Unlock()
		if c.status != 200 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(c.status)
			return
		}
		var rows []map[string]any
		for _, id := range c.ids {
			if id != gone {
				rows = append(rows, map[string]any{"id": id, "name": "run-" + id[24:], "state_type": state, "state_name": name,
					"state": map[string]any{"type": state, "name": name}})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rows)
	}))
	defer srv.Close()
	base, err := prefect.ValidateAPIBase(srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(t.Context(), newTestRuntime(t), Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base,
		Credential: prefect.NoCredential()}, BatchWindow: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var watches []*Watch
	for i, id := range ids {
		w, err := m.Launch(fmt.Sprint("k", i), abi.Fields{FlowRunID: id, PollInterval: "1"})
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, w)
	}
	<-watches[n-1].Done() // the missing run ends at its first read
	mu.Lock()
	released = true
	mu.Unlock()
	for i, w := range watches {
		select {
		case <-w.Done():
		case <-time.After(2 * time.Minute):
			t.Fatalf("run %d has no outcome", i)
		}
		out := w.Outcome()
		switch {
		case ids[i] == gone:
			if out.ExitCode != abi.ExitDataValidation || out.Error == nil || out.Error.Code != abi.CodeNotFound {
				t.Errorf("the run missing from the answer: %d %+v, want exit 20 not_found", out.ExitCode, out.Error)
			}
		case out.ExitCode != 0:
			t.Errorf("run %d: exit %d: %s", i, out.ExitCode, out.StatusDescription)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	reads := 0
	for _, c := range calls {
		reads += len(c.ids)
	}
	if len(calls) >= reads/2 {
		t.Errorf("%d requests for %d reads: not batched", len(calls), reads)
	}
	ri := slices.IndexFunc(calls, func(c call) bool { return c.status != 200 })
	if ri < 0 {
		t.Fatal("no request was refused")
	}
	refused := calls[ri]
	var again *call
	for i := ri + 1; i < len(calls); i++ {
		if gap := calls[i].at.Sub(refused.end); gap >= 0 && gap < time.Second {
			t.Errorf("a request %s after a 503 with Retry-After: 1", gap)
		}
		if again == nil && slices.Contains(calls[i].ids, refused.ids[0]) {
			again = &calls[i]
		}
	}
	if again == nil {
		t.Fatal("the refused batch was not read again")
	}
	for _, id := range refused.ids {
		if !slices.Contains(again.ids, id) {
			t.Errorf("%s of the refused batch is not in its retry", id)
		}
	}
	if got := m.Requests(); got.Direct != 0 || got.Batches != int64(len(calls)) {
		t.Errorf("counters %+v, want %d batches and no other requests", got, len(calls))
	}
}

// TestFileStore: a saved checkpoint loads back under its key, is replaced
// by the next save and gone after Delete; a file that does not decode is
// an error, not a forgotten run.
func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ key, cp string }{{"a/b c", `{"v":1}`}, {"a/b c", `{"v":2}`}, {"other", `{"v":3}`}} {
		if err := s.Save(step.key, []byte(step.cp)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil || len(got) != 2 || string(got["a/b c"]) != `{"v":2}` || string(got["other"]) != `{"v":3}` {
		t.Fatalf("Load = %q, %v", got, err)
	}
	if err := s.Delete("a/b c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("never saved"); err != nil {
		t.Errorf("deleting an unknown key: %v", err)
	}
	if got, _ := s.Load(); len(got) != 1 {
		t.Errorf("after Delete: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil {
		t.Error("a broken file loaded without error")
	}
}

// TestMonitorWallClock: the Monitor gives the machine the wall clock, so a
// run attached by id is judged from its expected_start_time: a run 30 s
// late with a 31 s start deadline ends exit 41 about 1 s after its first
// read, not 31 s later.
func TestMonitorWallClock(t *testing.T) {
	const id = "00000000-0000-4000-8000-000000000041"
	expected := time.Now().Add(-30 * time.Second).UTC().Format(time.RFC3339Nano)
	row := map[string]any{"id": id, "name": "late-run", "state_type": "SCHEDULED", "state_name": "Late",
		"state": map[string]any{"type": "SCHEDULED", "name": "Late"}, "run_count": 0, "start_time": nil, "expected_start_time": expected}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/flow_runs/filter":
			json.NewEncoder(w).Encode([]any{row})
		case r.Method == http.MethodGet && r.URL.Path == "/api/flow_runs/"+id:
			json.NewEncoder(w).Encode(row)
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	base, err := prefect.ValidateAPIBase(srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(t.Context(), newTestRuntime(t), Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		BatchWindow: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	w, err := m.Launch("late", abi.Fields{FlowRunID: id, PollInterval: "60", StartDeadline: "31"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("no outcome 20 s after the launch: the deadline does not count from the expected start")
	}
	if out := w.Outcome(); out.ExitCode != abi.ExitStartDeadline {
		t.Errorf("exit %d (%s), want %d", out.ExitCode, out.StatusDescription, abi.ExitStartDeadline)
	}
	t.Logf("outcome after %s", time.Since(start).Round(time.Millisecond))
}
