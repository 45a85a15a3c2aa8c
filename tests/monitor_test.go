package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/monitor"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// monitorRig is a Monitor on the shared real server behind a fault proxy
// that records every request.
type monitorRig struct {
	proxy *rig.FaultProxy
	rt    *host.Runtime
	mu    sync.Mutex
	outs  map[string]abi.RunOutput
	logs  []string
}

func newMonitorRig(t *testing.T, env *rig.Env) *monitorRig {
	t.Helper()
	mr := &monitorRig{proxy: rig.NewFaultProxy(env.Server.URL), outs: map[string]abi.RunOutput{}}
	t.Cleanup(mr.proxy.Close)
	rt, err := host.NewRuntime(context.Background(), host.PluginWasm, host.WithCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	mr.rt = rt
	return mr
}

func (mr *monitorRig) start(t *testing.T, store monitor.Store, ev ...host.EventSource) *monitor.Monitor {
	t.Helper()
	var src host.EventSource
	if len(ev) > 0 {
		src = ev[0]
	}
	return mr.startWith(t, monitor.Config{Store: store, Events: src})
}

// startWith starts a Monitor with cfg, whose Connection (the proxy, no
// credential), OnOutcome and Log it sets to the rig's.
func (mr *monitorRig) startWith(t *testing.T, cfg monitor.Config) *monitor.Monitor {
	t.Helper()
	base, err := prefect.ValidateAPIBase(mr.proxy.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Connection = prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()}
	cfg.OnOutcome = func(key string, out abi.RunOutput) {
		mr.mu.Lock()
		defer mr.mu.Unlock()
		mr.outs[key] = out
	}
	cfg.Log = func(key string, l abi.LogRecord) {
		mr.mu.Lock()
		defer mr.mu.Unlock()
		mr.logs = append(mr.logs, key+": "+l.Message)
	}
	m, err := monitor.New(context.Background(), mr.rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitOutcomes waits until every key has an outcome.
func (mr *monitorRig) waitOutcomes(t *testing.T, keys []string, timeout time.Duration) map[string]abi.RunOutput {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mr.mu.Lock()
		missing := 0
		for _, k := range keys {
			if _, ok := mr.outs[k]; !ok {
				missing++
			}
		}
		if missing == 0 {
			out := make(map[string]abi.RunOutput, len(mr.outs))
			for k, v := range mr.outs {
				out[k] = v
			}
			mr.mu.Unlock()
			return out
		}
		logs := strings.Join(mr.logs, "\n")
		mr.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs have no outcome after %s\n--- monitor log\n%s", missing, len(keys), timeout, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func resultOf(t *testing.T, out abi.RunOutput) map[string]any {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(out.Result, &r); err != nil {
		t.Fatalf("result is not an object: %s", out.Result)
	}
	return r
}

var flowRunPath = regexp.MustCompile(`^/api/flow_runs/[0-9a-f-]{36}$`)

// filterIDs returns the ids a POST /flow_runs/filter asked for.
func filterIDs(body []byte) []string {
	var f struct {
		FlowRuns struct {
			ID struct {
				Any []string `json:"any_"`
			} `json:"id"`
		} `json:"flow_runs"`
	}
	_ = json.Unmarshal(body, &f)
	return f.FlowRuns.ID.Any
}

// TestE2E_Monitor: runs launched and followed through a Monitor end as the
// CLI reports them, their polls go out as batched filter reads, and a run
// that does not exist is reported as the CLI reports it.
func TestE2E_Monitor(t *testing.T) {
	t.Parallel() // its own proxy (or server) and Monitor
	env := e2e(t)
	mr := newMonitorRig(t, env)
	m := mr.start(t, monitor.NewMemoryStore())
	defer m.Close()

	ctx := ctxT(t, 4*time.Minute)
	okID, err := env.Server.DeploymentID(ctx, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	_, made, err := env.Server.CreateFlowRun(ctx, okID, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("mon-%d", time.Now().UnixNano())
	cases := []struct {
		key    string
		fields abi.Fields
		exit   int
		state  string
	}{
		{tag + "-ok-1", abi.Fields{Deployment: "ok/ok", PollInterval: "1"}, 0, "COMPLETED"},
		{tag + "-ok-2", abi.Fields{Deployment: "ok/ok", PollInterval: "1"}, 0, "COMPLETED"},
		{tag + "-ok-3", abi.Fields{Deployment: "ok/ok", PollInterval: "1", Parameters: `{"parameters":{"seconds":2}}`}, 0, "COMPLETED"},
		{tag + "-fail", abi.Fields{Deployment: "fail/fail", PollInterval: "1"}, 1, "FAILED"},
		{tag + "-follow", abi.Fields{FlowRunID: made["id"].(string), PollInterval: "1"}, 0, "COMPLETED"},
		{tag + "-gone", abi.Fields{FlowRunID: rig.NewUUID(), PollInterval: "1"}, 20, ""},
	}
	var keys []string
	for _, c := range cases {
		if _, err := m.Launch(c.key, c.fields); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, c.key)
	}
	// Launching a key again follows the same run.
	if w, err := m.Launch(tag+"-ok-1", abi.Fields{Deployment: "ok/ok"}); err != nil || w.Key() != tag+"-ok-1" {
		t.Fatalf("relaunch: %v", err)
	}
	outs := mr.waitOutcomes(t, keys, 3*time.Minute)

	var polls int64
	for _, c := range cases {
		out := outs[c.key]
		if out.ExitCode != c.exit {
			t.Errorf("%s: exit %d (%s), want %d", c.key, out.ExitCode, out.StatusDescription, c.exit)
			continue
		}
		r := resultOf(t, out)
		if c.state != "" && r["flow_run_state"] != c.state {
			t.Errorf("%s: state %v, want %s", c.key, r["flow_run_state"], c.state)
		}
		if p, ok := r["polls"].(float64); ok {
			polls += int64(p)
		}
		if c.state == "" || strings.HasSuffix(c.key, "-ok-2") {
			continue
		}
		// The CLI following the same (now finished) run reports the same.
		id, _ := r["flow_run_id"].(string)
		cli := runUE(t, map[string]string{"PREFECT_API_URL": env.Server.URL}, "--flow-run-id", id, "--wait", "--poll-interval", "1")
		if cli.code != out.ExitCode || cli.doc.StatusDescription != out.StatusDescription {
			t.Errorf("%s: monitor %d %q, CLI %d %q", c.key, out.ExitCode, out.StatusDescription, cli.code, cli.doc.StatusDescription)
		}
	}
	gone := outs[tag+"-gone"]
	if gone.Error == nil || gone.Error.Code != abi.CodeNotFound {
		t.Errorf("a run missing from the batch: %+v, want not_found", gone)
	}

	// Each launched key made exactly one flow run.
	for _, c := range cases[:4] {
		r := resultOf(t, outs[c.key])
		runs, err := env.Server.FlowRunsByIdempotencyKey(ctx, r["idempotency_key"].(string))
		if err != nil || len(runs) != 1 {
			t.Errorf("%s: %d flow runs with its idempotency key (%v), want 1", c.key, len(runs), err)
		}
	}

	// Batching: no single reads of a flow run, fewer filter requests than
	// polls, and at least one carried several runs.
	singles, filters, widest := 0, 0, 0
	for _, ex := range mr.proxy.Log() {
		switch {
		case ex.Method == "GET" && flowRunPath.MatchString(ex.Path):
			singles++
		case ex.Method == "POST" && ex.Path == "/api/flow_runs/filter":
			filters++
			widest = max(widest, len(filterIDs(ex.RequestBody)))
		}
	}
	t.Logf("polls %d, filter requests %d (widest %d ids), single reads %d; monitor counters %+v", polls, filters, widest, singles, m.Requests())
	if singles != 0 || filters == 0 || int64(filters) >= polls || widest < 2 {
		t.Errorf("reads were not batched: %d single reads, %d filter requests for %d polls, widest %d", singles, filters, polls, widest)
	}
}

// TestE2E_MonitorRestart: a Monitor closed mid-wait, and one closed right
// after a launch was accepted, resume from a file store in a new Monitor
// with no duplicate flow run.
func TestE2E_MonitorRestart(t *testing.T) {
	// Not parallel: it needs its three runs running at once, and beside
	// other tests the runner started them more than 20 s apart.
	env := e2e(t)
	mr := newMonitorRig(t, env)
	dir := t.TempDir()
	store, err := monitor.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	m1 := mr.start(t, store)
	tag := fmt.Sprintf("monr-%d", time.Now().UnixNano())
	var keys []string
	var watches []*monitor.Watch
	for i := range 3 {
		key := fmt.Sprintf("%s-%d", tag, i)
		w, err := m1.Launch(key, abi.Fields{Deployment: "sleepy/sleepy", PollInterval: "1", Parameters: `{"parameters":{"seconds":20}}`})
		if err != nil {
			t.Fatal(err)
		}
		keys, watches = append(keys, key), append(watches, w)
	}
	// Wait until all three are known to be running at once, then stop
	// mid-wait. Each runs 20 s, so that a busy machine (the e2e tests run
	// side by side) still sees all three running before any ends.
	deadline := time.Now().Add(2 * time.Minute)
	for running := 0; running < len(watches); {
		running = 0
		for _, w := range watches {
			switch st := w.Fields().FlowRunState; st {
			case "RUNNING":
				running++
			case "COMPLETED", "FAILED", "CRASHED", "CANCELLED":
				t.Fatalf("%s ended %s before all three were seen running: %+v", w.Key(), st, w.Fields())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d seen RUNNING after 2 minutes", running, len(watches))
		}
		time.Sleep(100 * time.Millisecond)
	}
	late := tag + "-late"
	if _, err := m1.Launch(late, abi.Fields{Deployment: "ok/ok", PollInterval: "1"}); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, late)
	m1.Close()
	if saved, err := store.Load(); err != nil || len(saved) != len(keys) {
		t.Fatalf("store after close: %d runs (%v), want %d", len(saved), err, len(keys))
	}

	m2 := mr.start(t, store)
	defer m2.Close()
	if m2.Watch(keys[0]) == nil {
		t.Errorf("the restarted monitor does not know %s", keys[0])
	}
	outs := mr.waitOutcomes(t, keys, 3*time.Minute)
	ctx := ctxT(t, time.Minute)
	for _, k := range keys {
		out := outs[k]
		if out.ExitCode != 0 {
			t.Errorf("%s: exit %d: %s", k, out.ExitCode, out.StatusDescription)
			continue
		}
		r := resultOf(t, out)
		runs, err := env.Server.FlowRunsByIdempotencyKey(ctx, r["idempotency_key"].(string))
		if err != nil || len(runs) != 1 {
			t.Errorf("%s: %d flow runs with its idempotency key (%v), want exactly 1", k, len(runs), err)
		}
	}
	if saved, _ := store.Load(); len(saved) != 0 {
		t.Errorf("%d runs left in the store after their outcomes", len(saved))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left in the store directory", len(ents))
	}
}

// TestE2E_MonitorBatchRetry: a failed batch with Retry-After is retried as
// one batch, no sooner than the server asked, and every run still ends
// right.
func TestE2E_MonitorBatchRetry(t *testing.T) {
	t.Parallel() // its own proxy (or server) and Monitor
	env := e2e(t)
	mr := newMonitorRig(t, env)
	mr.proxy.Add(rig.Rule{Method: "POST", Path: regexp.MustCompile(`/flow_runs/filter$`), Times: 2,
		Fault: rig.Status(429, map[string]string{"Retry-After": "2"}, `{"detail":"slow down"}`)})
	m := mr.start(t, nil)
	defer m.Close()
	tag := fmt.Sprintf("monb-%d", time.Now().UnixNano())
	var keys []string
	for i := range 3 {
		key := fmt.Sprintf("%s-%d", tag, i)
		if _, err := m.Launch(key, abi.Fields{Deployment: "ok/ok", PollInterval: "1"}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	outs := mr.waitOutcomes(t, keys, 3*time.Minute)
	for _, k := range keys {
		if outs[k].ExitCode != 0 {
			t.Errorf("%s: exit %d: %s", k, outs[k].ExitCode, outs[k].StatusDescription)
		}
	}
	var filters []rig.Exchange
	for _, ex := range mr.proxy.Log() {
		if ex.Method == "POST" && ex.Path == "/api/flow_runs/filter" {
			filters = append(filters, ex)
		}
	}
	refused := 0
	for i, ex := range filters {
		if ex.Status != 429 {
			continue
		}
		refused++
		// Nothing is read before Retry-After has passed, and the refused
		// batch's runs come back together in one later request.
		want := filterIDs(ex.RequestBody)
		var again *rig.Exchange
		for j := i + 1; j < len(filters); j++ {
			answered := ex.Time.Add(ex.Duration)
			if gap := filters[j].Time.Sub(answered); gap >= 0 && gap < 2*time.Second {
				t.Errorf("a filter request %s after a 429 with Retry-After: 2", gap)
			}
			if again == nil && slices.Contains(filterIDs(filters[j].RequestBody), want[0]) {
				again = &filters[j]
			}
		}
		if again == nil {
			t.Fatalf("the refused batch %v was never read again", want)
		}
		got := filterIDs(again.RequestBody)
		for _, id := range want {
			if !slices.Contains(got, id) {
				t.Errorf("run %s of the refused batch %v is not in its retry %v", id, want, got)
			}
		}
	}
	if refused != 2 {
		t.Errorf("%d refused batches, want 2", refused)
	}
}

// TestE2E_MonitorEvents: with an events hub, runs polled only every 60 s
// end when Prefect's events say so, each confirmed by a (batched) read.
func TestE2E_MonitorEvents(t *testing.T) {
	t.Parallel() // its own proxy (or server) and Monitor
	env := e2e(t)
	mr := newMonitorRig(t, env)
	base, err := prefect.ValidateAPIBase(mr.proxy.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	hub := prefect.NewEventHub(prefect.EventHubConfig{APIBase: base}, prefect.NoCredential())
	defer hub.Close()
	m := mr.start(t, nil, hub)
	defer m.Close()
	tag := fmt.Sprintf("mone-%d", time.Now().UnixNano())
	keys := []string{tag + "-0", tag + "-1"}
	for _, k := range keys {
		if _, err := m.Launch(k, abi.Fields{Deployment: "ok/ok", PollInterval: "60"}); err != nil {
			t.Fatal(err)
		}
	}
	outs := mr.waitOutcomes(t, keys, 3*time.Minute)
	for _, k := range keys {
		if outs[k].ExitCode != 0 {
			t.Errorf("%s: exit %d: %s", k, outs[k].ExitCode, outs[k].StatusDescription)
		}
	}
	if got := m.Requests(); got.Woken == 0 {
		t.Errorf("no sleep was ended by an event: %+v", got)
	}
	for _, ex := range mr.proxy.Log() {
		if ex.Method == "GET" && flowRunPath.MatchString(ex.Path) {
			t.Errorf("a single read %s: event wakes are read in batches too", ex.Path)
		}
	}
}

// TestE2E_MonitorServerLimit (issue 15, 3.2): against a real server
// started with PREFECT_SERVER_API_DEFAULT_LIMIT=5, which refuses a page
// limit over 5 with 422, the Monitor's batches shrink to 5 runs and every
// run ends as its read says; none fails for the limit.
func TestE2E_MonitorServerLimit(t *testing.T) {
	t.Parallel() // its own proxy (or server) and Monitor
	if runtime.GOOS != "linux" && !rig.Required() {
		t.Skip("the e2e rig runs on Linux")
	}
	ctx := ctxT(t, 6*time.Minute)
	srv, err := rig.StartServer(ctx, rig.ServerOptions{Env: map[string]string{"PREFECT_SERVER_API_DEFAULT_LIMIT": "5", "PREFECT_UI_ENABLED": "false"}})
	if err != nil {
		if rig.Required() {
			t.Fatal(err)
		}
		t.Skipf("no Prefect server (set CI=true to make this a failure): %v", err)
	}
	defer srv.Stop()
	status, body, err := srv.Do(ctx, "POST", "/flow_runs/filter", map[string]any{"limit": 6})
	if err != nil || status != 422 || !strings.Contains(string(body), "less than or equal to 5") {
		t.Fatalf("the server accepted limit 6: %d %s %v", status, body, err)
	}
	// A flow and a deployment of it (no worker: the runs stay SCHEDULED).
	var flow, dep struct {
		ID string `json:"id"`
	}
	for _, step := range []struct {
		path string
		body map[string]any
		out  *struct {
			ID string `json:"id"`
		}
	}{{"/flows/", map[string]any{"name": "limited"}, &flow}, {"/deployments/", map[string]any{"name": "limited"}, &dep}} {
		if step.out == &dep {
			step.body["flow_id"] = flow.ID
		}
		status, body, err := srv.Do(ctx, "POST", step.path, step.body)
		for try := 0; try < 10 && err == nil && status == 503; try++ {
			time.Sleep(time.Second) // SQLite busy on a loaded machine: Prefect says retry
			status, body, err = srv.Do(ctx, "POST", step.path, step.body)
		}
		if err != nil || status/100 != 2 || json.Unmarshal(body, step.out) != nil {
			t.Fatalf("POST %s: %d %s %v", step.path, status, body, err)
		}
	}
	const n = 12
	var ids []string
	for range n {
		_, made, err := srv.CreateFlowRun(ctx, dep.ID, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, made["id"].(string))
	}
	mr := newMonitorRig(t, &rig.Env{Server: srv})
	m := mr.start(t, monitor.NewMemoryStore())
	defer m.Close()
	var keys []string
	for i, id := range ids {
		key := fmt.Sprint("limited-", i)
		if _, err := m.Launch(key, abi.Fields{FlowRunID: id, Wait: "false"}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	outs := mr.waitOutcomes(t, keys, 3*time.Minute)
	for _, k := range keys {
		if out := outs[k]; out.ExitCode != 0 || resultOf(t, out)["flow_run_state"] != "SCHEDULED" {
			t.Errorf("%s: exit %d: %s", k, out.ExitCode, out.StatusDescription)
		}
	}
	refused, widest := 0, 0
	for _, ex := range mr.proxy.Log() {
		if ex.Method == "POST" && ex.Path == "/api/flow_runs/filter" {
			if ex.Status == 422 {
				refused++
			} else {
				widest = max(widest, len(filterIDs(ex.RequestBody)))
			}
		}
	}
	t.Logf("%d refused batches, widest accepted %d ids; counters %+v", refused, widest, m.Requests())
	if widest > 5 || refused > 2 {
		t.Errorf("%d refused batches, widest accepted %d ids: want at most 2 and 5", refused, widest)
	}
}
