package rig_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

func TestMain(m *testing.M) {
	// The flow-run subtests mostly wait on the server; run them all at once
	// even on 2-CPU machines unless -parallel was given.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "16")
	}
	code := m.Run()
	rig.Shutdown()
	os.Exit(code)
}

// failWithLogs adds the rig's logs to a failing test.
func failWithLogs(t *testing.T, e *rig.Env) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- server log (tail) ---\n%s", tailStr(e.Server.Log(), 3000))
			t.Logf("--- flows log (tail) ---\n%s", tailStr(e.Flows.Log(), 6000))
		}
	})
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func TestRigStartup(t *testing.T) {
	e := rig.Shared(t)
	t.Logf("server %s healthy after %v; flows READY after %v", e.Server.URL, e.Server.StartupTime, e.Flows.StartupTime)
	ctx := context.Background()
	ids := map[string]string{}
	for _, fd := range [][2]string{{"ok", "ok"}, {"fail", "fail"}, {"crash", "crash"}, {"sleepy", "sleepy"}, {"pause", "pause"}, {"typed", "typed"}, {"alpha", "shared"}, {"beta", "shared"}, {"alpha", "alpha-only"}, {"demo", "demo"}} {
		id, err := e.Server.DeploymentID(ctx, fd[0], fd[1])
		if err != nil {
			t.Fatalf("DeploymentID(%s/%s): %v", fd[0], fd[1], err)
		}
		ids[fd[0]+"/"+fd[1]] = id
	}
	if ids["alpha/shared"] == ids["beta/shared"] {
		t.Errorf("alpha/shared and beta/shared have the same id %s, want different", ids["alpha/shared"])
	}
	// Exactly two deployments are named "shared" (the ambiguity fixture).
	status, body, err := e.Server.Do(ctx, http.MethodPost, "/deployments/filter", map[string]any{"deployments": map[string]any{"name": map[string]any{"any_": []string{"shared", "alpha-only"}}}})
	if err != nil || status != http.StatusOK {
		t.Fatalf("deployments/filter = %d, %v: %s", status, err, body)
	}
	var deps []map[string]any
	if err := json.Unmarshal(body, &deps); err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, d := range deps {
		names[d["name"].(string)]++
	}
	if names["shared"] != 2 || names["alpha-only"] != 1 {
		t.Errorf("deployment name counts = %v, want shared:2 alpha-only:1", names)
	}

	// Pickup latency of a lone run on an idle rig: create -> RUNNING.
	t0 := time.Now()
	_, run, err := e.Server.CreateFlowRun(ctx, ids["ok/ok"], map[string]any{"idempotency_key": "pickup-" + rig.NewUUID(), "parameters": map[string]any{"seconds": 1}})
	if err != nil {
		t.Fatal(err)
	}
	id := run["id"].(string)
	if _, err := e.Server.WaitForState(ctx, id, "RUNNING", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	pickup := time.Since(t0)
	if _, err := e.Server.WaitForState(ctx, id, "COMPLETED", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("lone run: create -> RUNNING %v, -> COMPLETED %v (flow sleeps 1 s)", pickup.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}

// TestFlowRunStates drives every fixture flow to its final state, in parallel.
func TestFlowRunStates(t *testing.T) {
	e := rig.Shared(t)
	failWithLogs(t, e)
	srv := e.Server
	tests := []struct {
		name       string
		flow, dep  string
		params     map[string]any
		wantCreate int    // HTTP status of create_flow_run
		via        string // intermediate state to wait for ("" = none)
		action     string // "resume" or "cancel" once in `via`
		want       string // final state type ("" = none, creation is rejected)
		wantName   string
	}{
		{name: "ok", flow: "ok", dep: "ok", params: map[string]any{"seconds": 2}, wantCreate: 201, via: "RUNNING", want: "COMPLETED", wantName: "Completed"},
		{name: "fail", flow: "fail", dep: "fail", wantCreate: 201, want: "FAILED", wantName: "Failed"},
		{name: "crash", flow: "crash", dep: "crash", wantCreate: 201, want: "CRASHED", wantName: "Crashed"},
		{name: "pause", flow: "pause", dep: "pause", wantCreate: 201, via: "PAUSED", action: "resume", want: "COMPLETED", wantName: "Completed"},
		{name: "cancel", flow: "sleepy", dep: "sleepy", params: map[string]any{"seconds": 300}, wantCreate: 201, via: "RUNNING", action: "cancel", want: "CANCELLED", wantName: "Cancelled"},
		{name: "typed ok", flow: "typed", dep: "typed", params: map[string]any{"count": 3}, wantCreate: 201, want: "COMPLETED", wantName: "Completed"},
		{name: "typed bad", flow: "typed", dep: "typed", params: map[string]any{"count": "notanint"}, wantCreate: 409},
		{name: "alpha-only", flow: "alpha", dep: "alpha-only", wantCreate: 201, want: "COMPLETED", wantName: "Completed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			depID, err := srv.DeploymentID(ctx, tc.flow, tc.dep)
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("rig-test-%s-%d", depID, time.Now().UnixNano())
			body := map[string]any{"idempotency_key": key}
			if tc.params != nil {
				body["parameters"] = tc.params
			}
			created := time.Now()
			status, run, err := srv.CreateFlowRun(ctx, depID, body)
			if tc.wantCreate != 201 {
				var he *rig.HTTPError
				if !errors.As(err, &he) || he.Status != tc.wantCreate {
					t.Fatalf("create_flow_run = %d, %v; want HTTP %d", status, err, tc.wantCreate)
				}
				t.Logf("create_flow_run rejected as expected: %v", err)
				return
			}
			if err != nil || status != 201 {
				t.Fatalf("create_flow_run = %d, %v; want 201", status, err)
			}
			id, _ := run["id"].(string)
			if got := rig.StateType(run); got != "SCHEDULED" {
				t.Errorf("state_type after create = %q, want SCHEDULED", got)
			}
			// Idempotent replay: 200 and the same run.
			status2, run2, err := srv.CreateFlowRun(ctx, depID, body)
			if err != nil || status2 != 200 {
				t.Errorf("replayed create_flow_run = %d, %v; want 200", status2, err)
			} else if run2["id"] != id {
				t.Errorf("replayed create_flow_run id = %v, want %v", run2["id"], id)
			}
			runs, err := srv.FlowRunsByIdempotencyKey(ctx, key)
			if err != nil || len(runs) != 1 {
				t.Errorf("FlowRunsByIdempotencyKey = %d runs, %v; want 1", len(runs), err)
			}

			if tc.via != "" {
				if _, err := srv.WaitForState(ctx, id, tc.via, 90*time.Second); err != nil {
					t.Fatalf("wait for %s: %v", tc.via, err)
				}
				t.Logf("create -> %s took %v", tc.via, time.Since(created).Round(time.Millisecond))
				switch tc.action {
				case "resume":
					if err := srv.ResumeFlowRun(ctx, id); err != nil {
						t.Fatalf("ResumeFlowRun: %v", err)
					}
				case "cancel":
					if err := srv.CancelFlowRun(ctx, id); err != nil {
						t.Fatalf("CancelFlowRun: %v", err)
					}
				}
			}
			t0 := time.Now()
			final, err := srv.WaitForState(ctx, id, tc.want, 120*time.Second)
			if err != nil {
				t.Fatalf("wait for %s: %v", tc.want, err)
			}
			if got := rig.StateName(final); got != tc.wantName {
				t.Errorf("state_name = %q, want %q", got, tc.wantName)
			}
			t.Logf("-> %s/%s %v later (total %v), message %q", rig.StateType(final), rig.StateName(final),
				time.Since(t0).Round(time.Millisecond), time.Since(created).Round(time.Millisecond), stateMessage(final))
		})
	}
}

func stateMessage(run map[string]any) string {
	st, _ := run["state"].(map[string]any)
	m, _ := st["message"].(string)
	return m
}

// TestLostResponseIsIdempotent: the create_flow_run response is lost (the
// server created the run); a retry with the same key returns 200 and the
// same run. This is the fact the launcher's retry logic relies on.
func TestLostResponseIsIdempotent(t *testing.T) {
	e := rig.Shared(t)
	failWithLogs(t, e)
	ctx := context.Background()
	depID, err := e.Server.DeploymentID(ctx, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	p := rig.NewFaultProxy(e.Server.URL)
	defer p.Close()
	p.Add(rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.DropAfterUpstream})
	via := &rig.Server{URL: p.URL()}
	key := "lost-" + rig.NewUUID()
	body := map[string]any{"idempotency_key": key}
	if status, _, err := via.CreateFlowRun(ctx, depID, body); err == nil {
		t.Fatalf("first create_flow_run through proxy = %d, nil error; want a transport error", status)
	} else {
		t.Logf("first attempt: %v", err)
	}
	status, run, err := via.CreateFlowRun(ctx, depID, body)
	if err != nil || status != 200 {
		t.Fatalf("retry = %d, %v; want 200", status, err)
	}
	runs, err := e.Server.FlowRunsByIdempotencyKey(ctx, key)
	if err != nil || len(runs) != 1 || runs[0]["id"] != run["id"] {
		t.Fatalf("runs with key = %v, %v; want exactly the one run %v", len(runs), err, run["id"])
	}
	if _, err := e.Server.WaitForState(ctx, run["id"].(string), "COMPLETED", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	// The server may answer a transient 503 (SQLite busy) in between; the
	// helpers retry it.
	log := p.Log()
	if len(log) < 2 || log[0].Fault != "drop-after-upstream" || !log[0].Forwarded || log[0].UpstreamStatus != 201 || log[0].Status != 0 || log[len(log)-1].Status != 200 {
		for i, ex := range log {
			t.Logf("exchange %d: %s %s fault=%q forwarded=%v upstream=%d status=%d", i, ex.Method, ex.Path, ex.Fault, ex.Forwarded, ex.UpstreamStatus, ex.Status)
		}
		t.Errorf("proxy log does not show [drop-after-upstream (upstream 201, client 0), ..., 200]")
	}
}

// TestCloudFrontRealServer reads a deployment through the Cloud-shaped front.
func TestCloudFrontRealServer(t *testing.T) {
	e := rig.Shared(t)
	ws := rig.Workspace{AccountID: rig.NewUUID(), AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Prod", WorkspaceHandle: "prod"}
	cf := rig.NewCloudFront(e.Server, "pnu_test", []rig.Workspace{ws})
	defer cf.Close()
	c := &rig.Server{URL: cf.WorkspaceURL(ws)}
	// rig.Server sends basic auth only; use a raw request with the bearer key.
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/deployments/name/ok/ok", nil)
	req.Header.Set("Authorization", "Bearer pnu_test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	if resp.StatusCode != 200 || d["name"] != "ok" {
		t.Errorf("GET via cloud front = %d %v, want 200 deployment ok", resp.StatusCode, d["name"])
	}
}

// ---- CloudFront against a tiny upstream ----

type echoUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last *http.Request
	body []byte
}

func newEcho(t *testing.T) *echoUpstream {
	u := &echoUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last, u.body = r, b
		u.mu.Unlock()
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"method":%q,"path":%q,"query":%q,"auth":%q,"body":%q}`, r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), b)
	}))
	t.Cleanup(u.Close)
	return u
}

func TestCloudFront(t *testing.T) {
	up := newEcho(t)
	ws := rig.Workspace{AccountID: rig.NewUUID(), AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Prod", WorkspaceHandle: "prod", WorkspaceDescription: "d"}
	cf := rig.NewCloudFront(&rig.Server{URL: up.URL + "/api"}, "pnu_key", []rig.Workspace{ws})
	defer cf.Close()
	wsPath := "/api/accounts/" + ws.AccountID + "/workspaces/" + ws.WorkspaceID
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		wantStatus int
		wantBody   string // substring
		wantHits   int64  // upstream hits caused
	}{
		{name: "no auth", method: "GET", path: "/api/me/workspaces", wantStatus: 401, wantBody: `{"detail":"Invalid authentication credentials"}`},
		{name: "wrong key", method: "GET", path: "/api/me/workspaces", auth: "Bearer nope", wantStatus: 401, wantBody: "Invalid authentication credentials"},
		{name: "basic not bearer", method: "GET", path: "/api/me/workspaces", auth: "Basic cG51X2tleQ==", wantStatus: 401},
		{name: "workspaces", method: "GET", path: "/api/me/workspaces", auth: "Bearer pnu_key", wantStatus: 200, wantBody: `"workspace_handle":"prod"`},
		{name: "unknown workspace", method: "GET", path: "/api/accounts/" + ws.AccountID + "/workspaces/" + rig.NewUUID() + "/flow_runs/x", auth: "Bearer pnu_key", wantStatus: 404, wantBody: `{"detail":"Workspace not found"}`},
		{name: "unknown workspace without auth", method: "GET", path: "/api/accounts/a/workspaces/b/health", wantStatus: 401},
		{name: "forward", method: "POST", path: wsPath + "/flow_runs/filter?x=1", auth: "Bearer pnu_key", body: `{"limit":1}`, wantStatus: 201, wantBody: `"path":"/api/flow_runs/filter","query":"x=1","auth":"","body":"{\"limit\":1}"`, wantHits: 1},
		{name: "forward root", method: "GET", path: wsPath, auth: "Bearer pnu_key", wantStatus: 201, wantBody: `"path":"/api/"`, wantHits: 1},
		{name: "other path", method: "GET", path: "/api/health", auth: "Bearer pnu_key", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			req, _ := http.NewRequest(tc.method, cf.Server.URL+tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, b)
			}
			if !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("body = %s, want it to contain %s", b, tc.wantBody)
			}
			if got := up.hits.Load() - before; got != tc.wantHits {
				t.Errorf("upstream hits = %d, want %d", got, tc.wantHits)
			}
			if tc.wantHits > 0 && resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("X-Upstream header = %q, want yes", resp.Header.Get("X-Upstream"))
			}
		})
	}
	reqs := cf.Requests()
	if len(reqs) != len(tests) {
		t.Fatalf("recorded %d requests, want %d", len(reqs), len(tests))
	}
	if r := reqs[0]; r.HadAuth || r.Authorized || r.Status != 401 {
		t.Errorf("request[0] = %+v, want no auth, 401", r)
	}
	if r := reqs[1]; !r.HadAuth || r.Authorized {
		t.Errorf("request[1] = %+v, want HadAuth and not Authorized", r)
	}
	if r := reqs[3]; !r.Authorized || r.Path != "/api/me/workspaces" || r.Status != 200 {
		t.Errorf("request[3] = %+v, want authorized GET /api/me/workspaces 200", r)
	}
	var list []rig.Workspace
	req, _ := http.NewRequest("GET", cf.APIURL()+"/me/workspaces", nil)
	req.Header.Set("Authorization", "Bearer pnu_key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0] != ws || list[0].Handle() != "acme/prod" {
		t.Errorf("me/workspaces = %+v, want [%+v]", list, ws)
	}
}

// ---- FaultProxy against a tiny upstream ----

func TestFaultProxy(t *testing.T) {
	slow := 300 * time.Millisecond
	tests := []struct {
		name       string
		rule       rig.Rule
		method     string
		path       string
		timeout    time.Duration
		noRedirect bool
		wantErr    string // substring of the client error ("" = no error)
		wantStatus int
		wantHeader [2]string
		wantBody   string // substring
		wantBodyN  int64  // body length, if > 0
		wantHits   int64
		minElapsed time.Duration
	}{
		{name: "passthrough", method: "POST", path: "/api/x?q=1", wantStatus: 201, wantHeader: [2]string{"X-Upstream", "yes"}, wantBody: `"path":"/api/x","query":"q=1"`, wantHits: 1},
		{name: "drop after upstream", rule: rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.DropAfterUpstream}, method: "POST", path: "/api/deployments/1/create_flow_run", wantErr: "EOF", wantHits: 1},
		{name: "status after upstream", rule: rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.StatusAfterUpstream(500, `{"exception_message":"Internal Server Error"}`)}, method: "POST", path: "/api/deployments/1/create_flow_run", wantStatus: 500, wantBody: "Internal Server Error", wantHits: 1},
		{name: "rule does not match other method", rule: rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.DropAfterUpstream}, method: "GET", path: "/api/deployments/1/create_flow_run", wantStatus: 201, wantHits: 1},
		{name: "drop", rule: rig.Rule{Times: 1, Fault: rig.Drop}, method: "GET", path: "/api/health", wantErr: "EOF", wantHits: 0},
		{name: "reset", rule: rig.Rule{Times: 1, Fault: rig.Reset}, method: "GET", path: "/api/health", wantErr: "reset", wantHits: 0},
		{name: "delay", rule: rig.Rule{Times: 1, Fault: rig.Delay(slow)}, method: "GET", path: "/api/health", wantStatus: 201, wantHits: 1, minElapsed: slow},
		{name: "delay past client timeout still reaches upstream", rule: rig.Rule{Times: 1, Fault: rig.Delay(slow)}, method: "POST", path: "/api/y", timeout: 100 * time.Millisecond, wantErr: "Client.Timeout", wantHits: 1},
		{name: "delay before past client timeout does not", rule: rig.Rule{Times: 1, Fault: rig.DelayBefore(slow)}, method: "POST", path: "/api/y", timeout: 100 * time.Millisecond, wantErr: "Client.Timeout", wantHits: 0},
		{name: "429 retry-after seconds", rule: rig.Rule{Times: 1, Fault: rig.Status(429, map[string]string{"Retry-After": "1"}, `{"detail":"slow down"}`)}, method: "GET", path: "/api/z", wantStatus: 429, wantHeader: [2]string{"Retry-After", "1"}, wantBody: "slow down"},
		{name: "429 retry-after date", rule: rig.Rule{Times: 1, Fault: rig.Status(429, map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "")}, method: "GET", path: "/api/z", wantStatus: 429, wantHeader: [2]string{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}},
		{name: "redirect", rule: rig.Rule{Times: 1, Fault: rig.Redirect("http://127.0.0.2:1/api/x")}, method: "GET", path: "/api/x", noRedirect: true, wantStatus: 302, wantHeader: [2]string{"Location", "http://127.0.0.2:1/api/x"}},
		{name: "invalid body", rule: rig.Rule{Times: 1, Fault: rig.Body(200, []byte(`{"id": `))}, method: "GET", path: "/api/x", wantStatus: 200, wantBody: `{"id": `},
		{name: "huge body", rule: rig.Rule{Times: 1, Fault: rig.LargeBody(200, 10<<20)}, method: "GET", path: "/api/x", wantStatus: 200, wantBodyN: 10 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newEcho(t)
			p := rig.NewFaultProxy(up.URL + "/api")
			defer p.Close()
			if !strings.HasSuffix(p.URL(), "/api") || !strings.HasPrefix(p.URL(), "http://127.0.0.1:") {
				t.Errorf("URL() = %q, want http://127.0.0.1:PORT/api", p.URL())
			}
			if tc.rule.Fault.String() != "" {
				p.Add(tc.rule)
			}
			c := &http.Client{Timeout: tc.timeout, Transport: &http.Transport{DisableKeepAlives: true}}
			if tc.noRedirect {
				c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			}
			url := strings.TrimSuffix(p.URL(), "/api") + tc.path
			var body io.Reader
			if tc.method == "POST" {
				body = bytes.NewReader([]byte(`{"a":1}`))
			}
			req, _ := http.NewRequest(tc.method, url, body)
			start := time.Now()
			resp, err := c.Do(req)
			elapsed := time.Since(start)
			if tc.wantErr != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("error = nil (status %d), want one containing %q", resp.StatusCode, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want it to contain %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("error = %v, want status %d", err, tc.wantStatus)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if h := tc.wantHeader; h[0] != "" && resp.Header.Get(h[0]) != h[1] {
					t.Errorf("header %s = %q, want %q", h[0], resp.Header.Get(h[0]), h[1])
				}
				if !strings.Contains(string(b), tc.wantBody) {
					t.Errorf("body = %.200s, want it to contain %s", b, tc.wantBody)
				}
				if tc.wantBodyN > 0 && int64(len(b)) != tc.wantBodyN {
					t.Errorf("body length = %d, want %d", len(b), tc.wantBodyN)
				}
			}
			if elapsed < tc.minElapsed {
				t.Errorf("elapsed = %v, want >= %v", elapsed, tc.minElapsed)
			}
			time.Sleep(slow + 100*time.Millisecond) // let delayed forwards land
			if got := up.hits.Load(); got != tc.wantHits {
				t.Errorf("upstream hits = %d, want %d", got, tc.wantHits)
			}
			log := p.Log()
			if len(log) != 1 {
				t.Fatalf("proxy log has %d exchanges, want 1", len(log))
			}
			if got, want := log[0].Forwarded, tc.wantHits == 1; got != want {
				t.Errorf("log Forwarded = %v, want %v (%+v)", got, want, log[0])
			}
			// Every rule above applies once: the next request passes.
			if p.PendingRules() != 0 && tc.rule.Method == "" {
				t.Errorf("PendingRules = %d, want 0", p.PendingRules())
			}
		})
	}
}

func TestFaultProxyBurstAndDown(t *testing.T) {
	up := newEcho(t)
	p := rig.NewFaultProxy(up.URL + "/api")
	defer p.Close()
	p.Add(rig.Rule{Path: regexp.MustCompile(`^/api/flow_runs/`), Times: 3, Fault: rig.Status(503, nil, `{"exception_message":"Service Unavailable"}`)})
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, error) {
		resp, err := c.Get(p.URL() + path)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var got []int
	for i := 0; i < 5; i++ {
		code, err := get("/flow_runs/abc")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, code)
	}
	if want := []int{503, 503, 503, 201, 201}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}

	p.Down(500 * time.Millisecond)
	if !p.IsDown() {
		t.Errorf("IsDown = false right after Down, want true")
	}
	if _, err := get("/health"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("GET while down: error = %v, want connection refused", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := get("/health")
		if err == nil && code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not come back: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerRestart runs last: it restarts the shared server under a running
// flow and checks that the run still completes and the server keeps its data.
func TestServerRestart(t *testing.T) {
	e := rig.Shared(t)
	failWithLogs(t, e)
	ctx := context.Background()
	depID, err := e.Server.DeploymentID(ctx, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	_, run, err := e.Server.CreateFlowRun(ctx, depID, map[string]any{"idempotency_key": "restart-" + rig.NewUUID(), "parameters": map[string]any{"seconds": 8}})
	if err != nil {
		t.Fatal(err)
	}
	id := run["id"].(string)
	if _, err := e.Server.WaitForState(ctx, id, "RUNNING", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := e.Server.Restart(ctx, 2*time.Second); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("restart (2 s down) took %v; start-up %v", time.Since(t0).Round(time.Millisecond), e.Server.StartupTime)
	final, err := e.Server.WaitForState(ctx, id, "COMPLETED", 90*time.Second)
	if err != nil {
		t.Fatalf("in-flight run after restart: %v", err)
	}
	t.Logf("in-flight run ended %s/%s", rig.StateType(final), rig.StateName(final))
	// The runner keeps serving after the outage: a new run is picked up.
	_, run2, err := e.Server.CreateFlowRun(ctx, depID, map[string]any{"idempotency_key": "restart2-" + rig.NewUUID()})
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if _, err := e.Server.WaitForState(ctx, run2["id"].(string), "COMPLETED", 90*time.Second); err != nil {
		t.Fatalf("run after restart: %v", err)
	}
	t.Logf("new run after restart completed in %v", time.Since(t1).Round(time.Millisecond))
}

// TestFaultProxyStatusAfterUpstream: the fault replaces only an upstream
// success (the work was done); an upstream failure is passed on and the
// fault waits for the next matching request.
func TestFaultProxyStatusAfterUpstream(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"exception_message":"Service Unavailable"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"x"}`)
	}))
	defer up.Close()
	p := rig.NewFaultProxy(up.URL + "/api")
	defer p.Close()
	p.Add(rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.StatusAfterUpstream(500, `{"exception_message":"Internal Server Error"}`)})
	post := func() int {
		resp, err := http.Post(p.URL()+"/deployments/1/create_flow_run", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(); got != http.StatusServiceUnavailable || p.PendingRules() != 1 {
		t.Errorf("first = %d with %d rules pending, want the upstream's 503 and the fault still armed", got, p.PendingRules())
	}
	if got := post(); got != http.StatusInternalServerError || p.PendingRules() != 0 {
		t.Errorf("second = %d with %d rules pending, want the fault's 500 and no rule left", got, p.PendingRules())
	}
	log := p.Log()
	if len(log) != 2 || log[0].Fault != "" || log[1].Fault != "status-after-upstream(500)" || log[1].UpstreamStatus != http.StatusCreated || hits.Load() != 2 {
		t.Errorf("log = %+v, upstream hits %d", log, hits.Load())
	}
}
