package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// lostCreates is how many launches TestE2E_LostCreateResponses makes; the
// README quotes it.
const lostCreates = 6

// TestE2E_LostCreateResponses: the server creates the run but the answer
// is lost; the retried create carries the same idempotency key, so exactly
// one run exists per launch.
func TestE2E_LostCreateResponses(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	for i := 0; i < lostCreates; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			p := rig.NewFaultProxy(env.Server.URL)
			defer p.Close()
			p.Add(rig.Rule{Method: "POST", Path: regexp.MustCompile(`/create_flow_run$`), Times: 1, Fault: rig.DropAfterUpstream})
			vars := map[string]string{"PREFECT_API_URL": p.URL(), "UE_PREFECT_DEPLOYMENT": "idle/idle"}
			if i%2 == 0 { // half with a caller key, half with the per-invocation key
				vars["UE_PREFECT_IDEMPOTENCY_KEY"] = fmt.Sprintf("lost-%d-%d", i, time.Now().UnixNano())
			}
			r := runUE(t, vars)
			wantExit(t, r, 0, "Task executed successfully.")
			creates, lostCreated := 0, false
			for _, ex := range p.Log() {
				if strings.HasSuffix(ex.Path, "/create_flow_run") {
					creates++
					if !ex.Forwarded {
						t.Errorf("create %d never reached the server", creates)
					}
					// The dropped one: did the server create the run before the answer was lost?
					lostCreated = lostCreated || (creates == 1 && ex.UpstreamStatus == 201)
				}
			}
			// Two at least: the lost one and its retry (SQLite may add a 503 under load).
			if creates < 2 {
				t.Errorf("%d creates reached the server, want the lost one and a retry", creates)
			}
			runs, err := env.Server.FlowRunsByIdempotencyKey(ctxT(t, 30*time.Second), r.str("idempotency_key"))
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0]["id"] != r.str("flow_run_id") {
				t.Errorf("%d runs with key %q, want exactly 1 (%s)", len(runs), r.str("idempotency_key"), r.str("flow_run_id"))
			}
			if lostCreated && !strings.Contains(r.stderr, "answer to an earlier attempt was lost") {
				t.Errorf("stderr does not explain the lost answer:\n%s", r.stderr)
			}
		})
	}
}

// TestE2E_TransientFaults: blips are retried and the task still reports the
// run's real outcome.
func TestE2E_TransientFaults(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	poll := regexp.MustCompile(`/flow_runs/[0-9a-f-]{36}$`)
	create := regexp.MustCompile(`/create_flow_run$`)
	byName := regexp.MustCompile(`/deployments/name/`)
	tests := []struct {
		name  string
		rules []rig.Rule
		extra []string
		want  string // in stderr
	}{
		{"429 with Retry-After seconds on create", []rig.Rule{{Method: "POST", Path: create, Times: 2, Fault: rig.Status(429, map[string]string{"Retry-After": "1"}, `{"detail":"slow down"}`)}}, nil, "HTTP 429: slow down"},
		{"429 with Retry-After date on a poll", []rig.Rule{{Method: "GET", Path: poll, Times: 1, Fault: rig.Status(429, map[string]string{"Retry-After": rig.RetryAfterDate(2 * time.Second)}, `{"detail":"later"}`)}}, nil, "HTTP 429: later"},
		{"burst of 503 on polls", []rig.Rule{{Method: "GET", Path: poll, Times: 4, Fault: rig.Status(503, nil, `{"exception_message":"Service Unavailable"}`)}}, nil, "HTTP 503: Service Unavailable"},
		{"502 and 504", []rig.Rule{{Method: "GET", Path: byName, Times: 1, Fault: rig.Status(502, nil, "<html>bad gateway</html>")}, {Method: "GET", Path: byName, Times: 1, Fault: rig.Status(504, nil, "")}}, nil, "HTTP 504"},
		{"connection reset", []rig.Rule{{Method: "GET", Path: byName, Times: 1, Fault: rig.Reset}, {Method: "GET", Path: poll, Times: 1, Fault: rig.Reset}}, nil, "reset:"},
		{"connection closed without answer", []rig.Rule{{Method: "GET", Path: poll, Times: 2, Fault: rig.Drop}}, nil, "reset:"},
		{"slow answer past the request timeout", []rig.Rule{{Method: "GET", Path: poll, Times: 1, Fault: rig.Delay(4 * time.Second)}}, []string{"--request-timeout", "1"}, "timeout:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := rig.NewFaultProxy(env.Server.URL)
			defer p.Close()
			for _, r := range tc.rules {
				p.Add(r)
			}
			r := runUE(t, map[string]string{"PREFECT_API_URL": p.URL(), "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_WAIT": "true", "UE_PREFECT_POLL_INTERVAL": "1"}, tc.extra...)
			wantExit(t, r, 0, "Task executed successfully.")
			if lastState(r) != "COMPLETED" {
				t.Errorf("final state %q", lastState(r))
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "retrying in") {
				t.Errorf("stderr lacks %q and a retry:\n%s", tc.want, r.stderr)
			}
			if n := p.PendingRules(); n != 0 {
				t.Errorf("%d faults were never triggered", n)
			}
		})
	}
}

// TestE2E_PreRunFaults: before the run exists, a 500 or a 2xx that is not
// the expected JSON on a request that is safe to repeat (the deployment
// read, the keyed create) is retried; a 500 on the create after the server
// committed the run finds that run again by its idempotency key. Each task
// ends exit 0 with exactly one flow run for its key.
func TestE2E_PreRunFaults(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	byName := regexp.MustCompile(`/deployments/name/`)
	create := regexp.MustCompile(`/create_flow_run$`)
	const ise = `{"exception_message":"Internal Server Error"}`
	tests := []struct {
		name string
		rule rig.Rule
		want string // in stderr
	}{
		{"500 on the deployment read", rig.Rule{Method: "GET", Path: byName, Times: 1, Fault: rig.Status(500, nil, ise)}, "HTTP 500: Internal Server Error); a read is safe to repeat: retrying in"},
		{"HTML with 200 on the deployment read", rig.Rule{Method: "GET", Path: byName, Times: 1, Fault: rig.Body(200, []byte("<html>checking your browser</html>"))}, "HTTP 200, the body is not JSON: <html>checking your browser</html>); a read is safe to repeat: retrying in"},
		{"500 on the create after the server committed it", rig.Rule{Method: "POST", Path: create, Times: 1, Fault: rig.StatusAfterUpstream(500, ise)}, "HTTP 500: Internal Server Error); the create is safe to repeat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := rig.NewFaultProxy(env.Server.URL)
			defer p.Close()
			p.Add(tc.rule)
			key := "prerun-" + rig.NewUUID()
			r := runUE(t, map[string]string{"PREFECT_API_URL": p.URL(), "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_IDEMPOTENCY_KEY": key})
			wantExit(t, r, 0, "Task executed successfully.")
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if n := p.PendingRules(); n != 0 {
				t.Errorf("%d faults were never triggered", n)
			}
			runs, err := env.Server.FlowRunsByIdempotencyKey(ctxT(t, 30*time.Second), r.str("idempotency_key"))
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0]["id"] != r.str("flow_run_id") {
				t.Errorf("%d runs with key %q, want exactly 1 (%s)", len(runs), r.str("idempotency_key"), r.str("flow_run_id"))
			}
			if tc.rule.Method != "POST" {
				return
			}
			// The create that got the 500 did create the run: the server
			// answered 201 behind it (the fault waits for a create the
			// server commits, past any 503 of a busy SQLite), and the
			// repeat returned that run.
			var faulted *rig.Exchange
			for _, ex := range p.Log() {
				if ex.Fault != "" {
					faulted = &ex
					break
				}
			}
			if faulted == nil || !faulted.Forwarded || faulted.UpstreamStatus != 201 || faulted.Status != 500 {
				t.Errorf("faulted create = %+v, want forwarded, 201 upstream, 500 to the client", faulted)
			}
			if !strings.Contains(r.stderr, "answer to an earlier attempt was lost") || r.doc.Result["reattached"] == true {
				t.Errorf("the run is not reported as created by this task:\n%s", r.stderr)
			}
		})
	}
}

// TestE2E_HostileServer: broken or hostile answers end in exit 1 with a
// message: never a panic, never a hang.
func TestE2E_HostileServer(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	byName := regexp.MustCompile(`/deployments/name/`)
	create := regexp.MustCompile(`/create_flow_run$`)
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	tests := []struct {
		name string
		rule rig.Rule
		want string
	}{
		{"redirect to another host", rig.Rule{Method: "GET", Path: byName, Fault: rig.Redirect("http://203.0.113.9/api/deployments/x")}, "redirect"},
		{"huge body", rig.Rule{Method: "GET", Path: byName, Fault: rig.LargeBody(200, 20<<20)}, "exceeds"},
		{"not JSON", rig.Rule{Method: "GET", Path: byName, Fault: rig.Body(200, []byte("<html>hello</html>"))}, "not JSON"},
		{"wrong types", rig.Rule{Method: "GET", Path: byName, Fault: rig.Body(200, []byte(`{"id":5,"name":["x"],"flow_id":null}`))}, "lacks id, name or flow_id"},
		{"nested too deeply", rig.Rule{Method: "GET", Path: byName, Fault: rig.Body(200, []byte(deep))}, "not JSON"},
		{"unknown state", rig.Rule{Method: "POST", Path: create, Fault: rig.Body(201, []byte(`{"id":"3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b","state_type":"EXPLODED"}`))}, "unknown state_type"},
		{"500", rig.Rule{Method: "GET", Path: byName, Fault: rig.Status(500, nil, `{"exception_message":"Internal Server Error"}`)}, "HTTP 500: Internal Server Error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := rig.NewFaultProxy(env.Server.URL)
			defer p.Close()
			p.Add(tc.rule)
			pr := startUE(t, map[string]string{"PREFECT_API_URL": p.URL(), "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_WAIT": "true", "UE_PREFECT_POLL_INTERVAL": "1"})
			r := pr.wait(90 * time.Second)
			wantExit(t, r, 1, "Execution Failed: ")
			if !strings.Contains(r.doc.StatusDescription, tc.want) {
				t.Errorf("status_description = %q, want it to mention %q", r.doc.StatusDescription, tc.want)
			}
			for _, bad := range []string{"panic", "goroutine ", "wasm error"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("stderr shows %q:\n%s", bad, r.stderr)
				}
			}
			// A request that is safe to repeat is retried within the retry
			// budget first (backoff 1+2+4+8+13 s, ±20 %), so at most about
			// 40 s; a hang would take the 90 s of the wait.
			if r.elapsed > 60*time.Second {
				t.Errorf("took %s", r.elapsed)
			}
		})
	}
}

// TestE2E_ServerRestart: the Prefect server goes away for 30 s mid-wait and
// comes back; the wait continues and ends with the right exit code.
func TestE2E_ServerRestart(t *testing.T) {
	t.Parallel()
	e2e(t)
	ctx := ctxT(t, 6*time.Minute)
	srv, err := rig.StartServer(ctx, rig.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	flows, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Stop()
	p := startUE(t, map[string]string{"PREFECT_API_URL": srv.URL, "UE_PREFECT_DEPLOYMENT": "sleepy/sleepy", "UE_PREFECT_WAIT": "true",
		"UE_PREFECT_POLL_INTERVAL": "2", "UE_PREFECT_PARAMETERS": `{"parameters":{"seconds":45}}`})
	if !p.waitFor(`"flow_run_state":"RUNNING"`, 2*time.Minute) {
		t.Fatalf("never RUNNING:\n%s\n%s", p.stderr.String(), flows.Log())
	}
	down := time.Now()
	if err := srv.Restart(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("server was unreachable for %s", time.Since(down).Round(time.Second))
	r := p.wait(4 * time.Minute)
	wantExit(t, r, 0, "Task executed successfully.")
	if lastState(r) != "COMPLETED" || !strings.Contains(r.stderr, "Contact with Prefect restored after") {
		t.Errorf("final %q; stderr:\n%s", lastState(r), r.stderr)
	}
}

// TestE2E_KillAndRestart: ue-prefect is SIGKILLed mid-wait and started
// again with the same key; it re-attaches to the run instead of launching a
// second one.
func TestE2E_KillAndRestart(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	for _, withCheckpoint := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint=%v", withCheckpoint), func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"PREFECT_API_URL": env.Server.URL, "UE_PREFECT_DEPLOYMENT": "sleepy/sleepy", "UE_PREFECT_WAIT": "true",
				"UE_PREFECT_POLL_INTERVAL": "1", "UE_PREFECT_PARAMETERS": `{"parameters":{"seconds":12}}`,
				"UE_PREFECT_IDEMPOTENCY_KEY": fmt.Sprintf("kill-%v-%d", withCheckpoint, time.Now().UnixNano())}
			cp := filepath.Join(t.TempDir(), "checkpoint.json")
			if withCheckpoint {
				vars["UE_PREFECT_CHECKPOINT"] = cp
			}
			first := startUE(t, vars)
			if !first.waitFor(`"flow_run_state":"RUNNING"`, 2*time.Minute) {
				t.Fatalf("never RUNNING:\n%s", first.stderr.String())
			}
			id := firstRunID(t, first.stderr.String())
			first.signal(syscall.SIGKILL)
			first.wait(10 * time.Second)
			if withCheckpoint {
				if _, err := os.Stat(cp); err != nil {
					t.Fatalf("no checkpoint after the kill: %v", err)
				}
			}
			second := runUE(t, vars)
			wantExit(t, second, 0, "Task executed successfully.")
			if second.str("flow_run_id") != id {
				t.Errorf("second invocation followed %q, want the first run %q", second.str("flow_run_id"), id)
			}
			marker := "Re-attached to flow run"
			if withCheckpoint {
				marker = "Resuming: re-attaching to flow run"
			}
			if !strings.Contains(second.stderr, marker) {
				t.Errorf("stderr lacks %q:\n%s", marker, second.stderr)
			}
			runs, _ := env.Server.FlowRunsByIdempotencyKey(ctxT(t, 30*time.Second), second.str("idempotency_key"))
			if len(runs) != 1 {
				t.Errorf("%d runs with the key, want 1", len(runs))
			}
			if withCheckpoint {
				if _, err := os.Stat(cp); !os.IsNotExist(err) {
					t.Errorf("checkpoint not removed after a finished run: %v", err)
				}
			}
		})
	}
}

// TestE2E_BasicAuth: a self-hosted server with PREFECT_SERVER_API_AUTH_STRING.
func TestE2E_BasicAuth(t *testing.T) {
	t.Parallel()
	e2e(t)
	ctx := ctxT(t, 5*time.Minute)
	srv, err := rig.StartServer(ctx, rig.ServerOptions{AuthString: testAuthString})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	flows, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Stop()
	file := filepath.Join(t.TempDir(), "auth")
	os.WriteFile(file, []byte(testAuthString+"\n"), 0o600)
	tests := []struct {
		name string
		vars map[string]string
		code int
		want string
	}{
		// The default 60 s interval: the run is seen ending through the
		// events socket, which authenticates with the auth string.
		{"auth string from env", map[string]string{"PREFECT_API_AUTH_STRING": testAuthString, "UE_PREFECT_WAIT": "true"}, 0, "Task executed successfully."},
		{"auth string from a file", map[string]string{"PREFECT_API_AUTH_STRING_FILE": file, "UE_PREFECT_DEPLOYMENT": "idle/idle"}, 0, "Task executed successfully."},
		{"wrong password", map[string]string{"PREFECT_API_AUTH_STRING": "prefect-admin:wrong-e2e-password"}, 20, "Data Validation Error: Credentials: Prefect refused the basic credential from env PREFECT_API_AUTH_STRING (HTTP 401: Unauthorized)"},
		{"wrong password with a quote and a backslash", map[string]string{"PREFECT_API_AUTH_STRING": testQuotedAuth}, 20, "Data Validation Error: Credentials: Prefect refused the basic credential from env PREFECT_API_AUTH_STRING (HTTP 401: Unauthorized)"},
		{"no credential", nil, 20, "Data Validation Error: Credentials: Prefect refused the none credential"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"PREFECT_API_URL": srv.URL, "UE_PREFECT_DEPLOYMENT": "ok/ok"}
			for k, v := range tc.vars {
				vars[k] = v
			}
			r := runUE(t, vars)
			wantExit(t, r, tc.code, tc.want)
			if strings.Contains(r.stdout+r.stderr, "wrong-e2e-password") {
				t.Errorf("the wrong password was printed")
			}
			if vars["UE_PREFECT_WAIT"] == "true" && (r.elapsed >= 50*time.Second || strings.Contains(r.stderr, fallbackLine)) {
				t.Errorf("waited %s with a 60 s interval: the events socket did not end the wait\n%s", r.elapsed, r)
			}
		})
	}
}

// TestE2E_Cloud: Prefect Cloud's account/workspace routing, through a
// Cloud-shaped front on the real server.
func TestE2E_Cloud(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	acct := rig.NewUUID()
	prod := rig.Workspace{AccountID: acct, AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Production", WorkspaceHandle: "prod"}
	staging := rig.Workspace{AccountID: acct, AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Staging", WorkspaceHandle: "staging"}
	other := rig.Workspace{AccountID: rig.NewUUID(), AccountName: "Other", AccountHandle: "other", WorkspaceID: rig.NewUUID(), WorkspaceName: "Production", WorkspaceHandle: "main"}
	front := rig.NewCloudFront(env.Server, testAPIKey, []rig.Workspace{prod, staging, other})
	t.Cleanup(front.Close)
	cloud := func(kv ...string) map[string]string {
		m := map[string]string{"PREFECT_CLOUD_API_URL": front.APIURL(), "PREFECT_API_KEY": testAPIKey, "UE_PREFECT_DEPLOYMENT": "ok/ok"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []cloudCase{
		{"by handle, waiting", cloud("UE_PREFECT_WORKSPACE", "acme/prod", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1"), nil, 0, "/account/" + acct + "/workspace/" + prod.WorkspaceID + "/runs/flow-run/"},
		{"by id", cloud("UE_PREFECT_WORKSPACE", staging.WorkspaceID, "UE_PREFECT_DEPLOYMENT", "idle/idle"), nil, 0, "Workspace: acme/staging"},
		{"by name narrowed by account", cloud("UE_PREFECT_WORKSPACE", "Production", "UE_PREFECT_ACCOUNT", "acme", "UE_PREFECT_DEPLOYMENT", "idle/idle"), nil, 0, "Workspace: acme/prod"},
		{"ambiguous name", cloud("UE_PREFECT_WORKSPACE", "Production"), nil, 20, `Workspace ID or Name: "Production" matches 2 workspaces: acme/prod, other/main`},
		{"unknown workspace", cloud("UE_PREFECT_WORKSPACE", "acme/nope"), nil, 20, `Workspace ID or Name: no workspace "acme/nope"; available: acme/prod, acme/staging, other/main`},
		{"full workspace API URL", map[string]string{"PREFECT_API_URL": front.WorkspaceURL(prod), "PREFECT_API_KEY": testAPIKey, "UE_PREFECT_DEPLOYMENT": "idle/idle"}, nil, 0, "Workspace: acme/prod"},
		{"workspace URL the key cannot see", map[string]string{"PREFECT_API_URL": front.APIURL() + "/accounts/" + acct + "/workspaces/" + rig.NewUUID(), "PREFECT_API_KEY": testAPIKey, "UE_PREFECT_DEPLOYMENT": "ok/ok"}, nil, 20, "Workspace ID or Name: no workspace"},
		{"wrong key", cloud("UE_PREFECT_WORKSPACE", "acme/prod", "PREFECT_API_KEY", "pnu_wrong_e2e_key_000"), nil, 20, "Credentials: Prefect refused the bearer credential from env PREFECT_API_KEY (HTTP 401"},
		{"key from a file", cloud("UE_PREFECT_WORKSPACE", "acme/prod", "PREFECT_API_KEY", "", "UE_PREFECT_DEPLOYMENT", "idle/idle"), []string{"--api-key-file", "KEYFILE"}, 0, "Workspace: acme/prod"},
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(testAPIKey+"\n"), 0o600)
	t.Run("cases", func(t *testing.T) { cloudCases(t, tests, keyFile, front) })
	// The default 60 s interval: the workspace's events socket, which
	// authenticates with the key in its first message, ends the wait.
	t.Run("waiting on events", func(t *testing.T) {
		r := runUE(t, cloud("UE_PREFECT_WORKSPACE", "acme/prod", "UE_PREFECT_WAIT", "true", "UE_PREFECT_PARAMETERS", `{"parameters":{"seconds":1}}`))
		wantExit(t, r, 0, "Task executed successfully.")
		if r.elapsed >= 50*time.Second || strings.Contains(r.stderr, fallbackLine) {
			t.Errorf("waited %s with a 60 s interval: the events socket did not end the wait\n%s", r.elapsed, r)
		}
		sockets := func() (n, authorized int) {
			for _, req := range front.Requests() {
				if req.Path == "/api/accounts/"+acct+"/workspaces/"+prod.WorkspaceID+"/events/out" {
					n++
					if req.Authorized && !req.HadAuth {
						authorized++
					}
				}
			}
			return
		}
		deadline := time.Now().Add(10 * time.Second) // the front records a socket when it closes
		for n, _ := sockets(); n == 0 && time.Now().Before(deadline); n, _ = sockets() {
			time.Sleep(100 * time.Millisecond)
		}
		if n, authorized := sockets(); n == 0 || authorized != n {
			t.Errorf("%d events sockets on the workspace, %d authenticated by message (no header), want all", n, authorized)
		}
	})
	routed := 0
	for _, req := range front.Requests() {
		if strings.Contains(req.Path, "/workspaces/") {
			routed++
			if !req.HadAuth && !(strings.HasSuffix(req.Path, "/events/out") && req.Authorized) { // a socket authenticates by message
				t.Errorf("request without a key: %+v", req)
			}
		}
	}
	if routed == 0 {
		t.Errorf("no request went through the workspace routes")
	}
}

type cloudCase struct {
	name string
	vars map[string]string
	args []string
	code int
	want string
}

func cloudCases(t *testing.T, tests []cloudCase, keyFile string, front *rig.CloudFront) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{}, tc.args...)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "KEYFILE", keyFile)
			}
			r := runUE(t, tc.vars, args...)
			if r.code != tc.code {
				t.Fatalf("exit = %d, want %d\n%s", r.code, tc.code, r)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q\n%s", tc.want, r.stderr)
			}
		})
	}
	t.Run("list-workspaces", func(t *testing.T) {
		t.Parallel()
		r := startUE(t, map[string]string{"PREFECT_CLOUD_API_URL": front.APIURL(), "PREFECT_API_KEY": testAPIKey}, "list-workspaces").wait(time.Minute)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "acme/prod\nacme/staging\nother/main" {
			t.Errorf("list-workspaces = %d %q", r.code, r.stdout)
		}
	})
}

// TestE2E_CheckpointKeptWhenContactLost: polls fail with a 500, which is
// retried like any failed read while waiting, past the outage budget (exit
// 1, the run's fate unknown); the checkpoint stays, and running again
// resumes the same run to its end.
func TestE2E_CheckpointKeptWhenContactLost(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	p := rig.NewFaultProxy(env.Server.URL)
	defer p.Close()
	p.Add(rig.Rule{Method: "GET", Path: regexp.MustCompile(`/flow_runs/[0-9a-f-]{36}$`), Fault: rig.Status(500, nil, `{"exception_message":"Internal Server Error"}`)})
	cp := filepath.Join(t.TempDir(), "checkpoint.json")
	vars := map[string]string{"PREFECT_API_URL": p.URL(), "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_WAIT": "true",
		"UE_PREFECT_POLL_INTERVAL": "1", "UE_PREFECT_OUTAGE_BUDGET": "3", "UE_PREFECT_CHECKPOINT": cp}
	lost := runUE(t, vars)
	wantExit(t, lost, 1, "Execution Failed: could not read the flow run")
	if !strings.Contains(lost.stderr, "Polling failed (HTTP 500") || !strings.Contains(lost.doc.StatusDescription, "goes on without this task") {
		t.Errorf("the 500 was not retried within the outage budget:\n%s", lost)
	}
	if _, err := os.Stat(cp); err != nil {
		t.Fatalf("checkpoint removed although the run's fate is unknown: %v\n%s", err, lost)
	}
	p.ClearRules()
	// Another task given the same checkpoint file must not take over the run.
	other := map[string]string{}
	for k, v := range vars {
		other[k] = v
	}
	other["UE_PREFECT_DEPLOYMENT"] = "fail/fail"
	wrong := runUE(t, other)
	wantExit(t, wrong, 20, "Data Validation Error: Checkpoint: "+cp+" was written for another task (Deployment ID or Name \"ok/ok\", not \"fail/fail\")")
	if wrong.str("flow_run_id") != "" {
		t.Errorf("another task reported the checkpoint's flow run: %s", wrong)
	}
	if _, err := os.Stat(cp); err != nil {
		t.Fatalf("checkpoint removed by another task: %v", err)
	}
	again := runUE(t, vars)
	wantExit(t, again, 0, "Task executed successfully.")
	if again.str("flow_run_id") != lost.str("flow_run_id") || !strings.Contains(again.stderr, "Resuming: re-attaching") {
		t.Errorf("resumed %q, want %q\n%s", again.str("flow_run_id"), lost.str("flow_run_id"), again.stderr)
	}
	if _, err := os.Stat(cp); !os.IsNotExist(err) {
		t.Errorf("checkpoint kept after a settled outcome: %v", err)
	}
}
