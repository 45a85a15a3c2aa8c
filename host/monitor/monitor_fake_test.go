package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// fakePrefect is a small Prefect server for Monitor tests: flow runs in a
// map, read one by one or with POST /flow_runs/filter, and the deployment
// of flowruntest's @deployment macro to launch from.
type fakePrefect struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	runs    map[string]string // id → state type
	reads   map[string][]time.Time
	batches [][]string // ids of each filter request, in order
	creates []map[string]any
	total   int // requests of any kind
	// filter, if set, answers a filter request instead of the default; it
	// returns false to let the default answer.
	filter func(w http.ResponseWriter, ids []string, limit int) bool
	// createGate, if set, is received from before a create is answered.
	createGate chan struct{}
}

var fakeRunPath = regexp.MustCompile(`^/api/flow_runs/([0-9a-f-]{36})$`)

func newFakePrefect(t *testing.T) *fakePrefect {
	f := &fakePrefect{t: t, runs: map[string]string{}, reads: map[string][]time.Time{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePrefect) base(t *testing.T) *Config {
	base, err := prefect.ValidateAPIBase(f.srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		BatchWindow: 50 * time.Millisecond}
}

// filterQuery is what the fakes read of a POST /flow_runs/filter body: the
// ids asked for and the row limit.
type filterQuery struct {
	FlowRuns struct {
		ID struct {
			Any []string `json:"any_"`
		} `json:"id"`
	} `json:"flow_runs"`
	Limit int `json:"limit"`
}

// newMonitor is New(t.Context(), newTestRuntime(t), cfg); the test fails
// if it errs.
func newMonitor(t *testing.T, cfg Config) *Monitor {
	t.Helper()
	m, err := New(t.Context(), newTestRuntime(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fakeID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func (f *fakePrefect) set(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id] = state
}

func (f *fakePrefect) row(id string) map[string]any {
	st := f.runs[id]
	name := strings.ToUpper(st[:1]) + strings.ToLower(st[1:])
	return map[string]any{"id": id, "name": "run-" + id[24:], "flow_id": flowruntest.FlowID, "deployment_id": flowruntest.DeploymentID,
		"state_type": st, "state_name": name, "state": map[string]any{"type": st, "name": name}, "parameters": map[string]any{}, "tags": []string{}}
}

func (f *fakePrefect) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	f.total++
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/flow_runs/filter":
		var q filterQuery
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			w.WriteHeader(400)
			return
		}
		ids := q.FlowRuns.ID.Any
		f.mu.Lock()
		f.batches = append(f.batches, ids)
		hook := f.filter
		f.mu.Unlock()
		if hook != nil && hook(w, ids, q.Limit) {
			return
		}
		f.mu.Lock()
		rows := []map[string]any{}
		for _, id := range ids {
			if _, ok := f.runs[id]; ok {
				f.reads[id] = append(f.reads[id], time.Now())
				rows = append(rows, f.row(id))
			}
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(rows)
	case r.Method == http.MethodGet && fakeRunPath.MatchString(r.URL.Path):
		id := fakeRunPath.FindStringSubmatch(r.URL.Path)[1]
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.runs[id]; !ok {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"detail":"Flow run not found"}`)
			return
		}
		f.reads[id] = append(f.reads[id], time.Now())
		_ = json.NewEncoder(w).Encode(f.row(id))
	case r.Method == http.MethodGet && r.URL.Path == "/api/deployments/"+flowruntest.DeploymentID:
		fmt.Fprint(w, flowruntest.Deployment())
	case r.Method == http.MethodGet && r.URL.Path == "/api/flows/"+flowruntest.FlowID:
		fmt.Fprint(w, `{"id":"`+flowruntest.FlowID+`","name":"etl"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/deployments/"+flowruntest.DeploymentID+"/create_flow_run":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if g := f.createGate; g != nil {
			<-g
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.creates = append(f.creates, body)
		id := fakeID(900000 + len(f.creates))
		f.runs[id] = "SCHEDULED"
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(f.row(id))
	default:
		f.t.Errorf("fake Prefect: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(500)
	}
}

func (f *fakePrefect) createCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.creates)
}

// outcomeWithin waits for w's outcome.
func outcomeWithin(t *testing.T, w *Watch, d time.Duration) abi.RunOutput {
	t.Helper()
	select {
	case <-w.Done():
		return w.Outcome()
	case <-time.After(d):
		t.Fatalf("run %s has no outcome after %s", w.Key(), d)
		return abi.RunOutput{}
	}
}

// failingStore is a MemoryStore whose Saves fail while fail is set, and
// which reports overlapping Saves of one key.
type failingStore struct {
	*MemoryStore
	mu      sync.Mutex
	fail    bool
	busy    map[string]bool
	overlap int
	saves   int
}

func newFailingStore() *failingStore {
	return &failingStore{MemoryStore: NewMemoryStore(), busy: map[string]bool{}}
}

func (s *failingStore) Save(key string, cp []byte) error {
	s.mu.Lock()
	s.saves++
	if s.busy[key] {
		s.overlap++
	}
	s.busy[key] = true
	fail := s.fail
	s.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // widen the window an overlapping Save would hit
	s.mu.Lock()
	s.busy[key] = false
	s.mu.Unlock()
	if fail {
		return fmt.Errorf("disk full")
	}
	return s.MemoryStore.Save(key, cp)
}
