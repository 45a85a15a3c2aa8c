package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// server returns the env of a plain self-hosted invocation.
func server(env *rig.Env, kv ...string) map[string]string {
	m := map[string]string{"PREFECT_API_URL": env.Server.URL}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func wantExit(t *testing.T, r result, code int, status string) {
	t.Helper()
	if r.code != code || r.doc.ExitCode != code {
		t.Fatalf("exit = %d (document %d), want %d\n%s", r.code, r.doc.ExitCode, code, r)
	}
	if !strings.HasPrefix(r.doc.StatusDescription, status) {
		t.Fatalf("status_description = %q, want prefix %q\n%s", r.doc.StatusDescription, status, r)
	}
}

// lastState is the flow_run_state of the last output-field line.
func lastState(r result) string {
	if len(r.fields) == 0 {
		return ""
	}
	return r.fields[len(r.fields)-1]["flow_run_state"]
}

func states(r result) []string {
	var s []string
	for _, f := range r.fields {
		if len(s) == 0 || s[len(s)-1] != f["flow_run_state"] {
			s = append(s, f["flow_run_state"])
		}
	}
	return s
}

// TestE2E_LaunchOnly: launch without waiting publishes the output fields,
// exits 0 with "Task executed successfully." and the run exists on Prefect.
func TestE2E_LaunchOnly(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext.json")
	fields := filepath.Join(dir, "fields.json")
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_FLOW_RUN_NAME", "e2e-launch-only",
		"UE_PREFECT_EXTENSION_OUTPUT", ext, "UE_PREFECT_OUTPUT_FIELDS", fields))
	wantExit(t, r, 0, "Task executed successfully.")
	if len(r.fields) == 0 || r.fields[0]["flow_run_id"] == "" || r.fields[0]["flow_run_name"] != "e2e-launch-only" || r.fields[0]["flow_run_state"] != "SCHEDULED" {
		t.Fatalf("output fields = %v, want id, name e2e-launch-only, SCHEDULED", r.fields)
	}
	id := r.fields[0]["flow_run_id"]
	if r.str("flow_run_id") != id || !r.doc.Changed || r.doc.Status != "SUCCESS" {
		t.Errorf("result flow_run_id = %q changed=%v status=%q, want %q true SUCCESS", r.str("flow_run_id"), r.doc.Changed, r.doc.Status, id)
	}
	if _, ok := r.doc.Result["flow_run"].(map[string]any); !ok {
		t.Errorf("result.flow_run (metadata) missing by default: %v", r.doc.Result)
	}
	if !strings.Contains(r.str("flow_run_url"), "/runs/flow-run/"+id) || !strings.Contains(r.stderr, r.str("flow_run_url")) {
		t.Errorf("flow run URL %q not reported on stderr", r.str("flow_run_url"))
	}
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), id)
	if err != nil || run["name"] != "e2e-launch-only" {
		t.Fatalf("flow run on the server = %v, %v", run, err)
	}
	// The same document went to the file; the output fields file holds the last fields.
	b, err := os.ReadFile(ext)
	if err != nil || strings.TrimSpace(string(b)) != strings.TrimSpace(r.stdout) {
		t.Errorf("extension output file differs from stdout (%v)", err)
	}
	var ff map[string]string
	if b, err := os.ReadFile(fields); err != nil || json.Unmarshal(b, &ff) != nil || ff["flow_run_id"] != id {
		t.Errorf("output fields file = %s, %v", b, err)
	}
	var inv struct {
		Extension string         `json:"extension"`
		Fields    map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(r.doc.Invocation, &inv); err != nil || inv.Extension != "ue-prefect" || inv.Fields["deployment"] != "idle/idle" {
		t.Errorf("invocation = %s", r.doc.Invocation)
	}
}

// TestE2E_WaitOutcomes: waiting ends with the exit code of the final state.
func TestE2E_WaitOutcomes(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	tests := []struct {
		name       string
		deployment string
		params     string
		code       int
		status     string
		final      string
	}{
		{"completed", "ok/ok", `{"parameters":{"seconds":2}}`, 0, "Task executed successfully.", "COMPLETED"},
		{"failed", "fail/fail", "", 1, "Execution Failed: flow run", "FAILED"},
		{"crashed", "crash/crash", "", 1, "Execution Failed: flow run", "CRASHED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", tc.deployment, "UE_PREFECT_WAIT", "true",
				"UE_PREFECT_POLL_INTERVAL", "1", "UE_PREFECT_PARAMETERS", tc.params))
			wantExit(t, r, tc.code, tc.status)
			if got := lastState(r); got != tc.final {
				t.Errorf("last Flow Run State = %q, want %q (states %v)", got, tc.final, states(r))
			}
			if tc.code != 0 && !strings.Contains(r.doc.StatusDescription, "ended "+tc.final) {
				t.Errorf("status_description %q does not name %s", r.doc.StatusDescription, tc.final)
			}
			if s := states(r); len(s) < 2 || s[0] != "SCHEDULED" {
				t.Errorf("states %v: want SCHEDULED first and a change published on the way", s)
			}
			if !strings.Contains(r.stderr, "after ") {
				t.Errorf("stderr lacks state changes with elapsed time:\n%s", r.stderr)
			}
		})
	}
}

// TestE2E_CancelledInPrefect: someone cancels the run in Prefect while the
// task waits: CANCELLING keeps waiting, CANCELLED is exit 1.
func TestE2E_CancelledInPrefect(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	p := startUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "sleepy/sleepy", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1"))
	if !p.waitFor(`"flow_run_state":"RUNNING"`, 90*time.Second) {
		t.Fatalf("never RUNNING:\n%s", p.stderr.String())
	}
	id := firstRunID(t, p.stderr.String())
	if err := env.Server.CancelFlowRun(ctxT(t, 30*time.Second), id); err != nil {
		t.Fatal(err)
	}
	r := p.wait(3 * time.Minute)
	wantExit(t, r, 1, "Execution Failed: flow run")
	if lastState(r) != "CANCELLED" || !strings.Contains(r.doc.StatusDescription, "CANCELLED") {
		t.Errorf("final state %q, status %q; want CANCELLED", lastState(r), r.doc.StatusDescription)
	}
}

// TestE2E_PausedThenResumed: PAUSED is not terminal; after a resume the run
// completes and the task exits 0.
func TestE2E_PausedThenResumed(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	p := startUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "pause/pause", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1"))
	if !p.waitFor(`"flow_run_state":"PAUSED"`, 90*time.Second) {
		t.Fatalf("never PAUSED:\n%s", p.stderr.String())
	}
	time.Sleep(2 * time.Second) // still waiting while paused
	select {
	case <-p.done:
		t.Fatalf("ended while PAUSED:\n%s", p.stderr.String())
	default:
	}
	if err := env.Server.ResumeFlowRun(ctxT(t, 30*time.Second), firstRunID(t, p.stderr.String())); err != nil {
		t.Fatal(err)
	}
	r := p.wait(2 * time.Minute)
	wantExit(t, r, 0, "Task executed successfully.")
	if s := states(r); !slices.Contains(s, "PAUSED") || lastState(r) != "COMPLETED" {
		t.Errorf("states = %v, want PAUSED on the way to COMPLETED", s)
	}
}

// TestE2E_MaxPolls: Max Number of Polls reached is exit 40 with 1.0's
// wording, and the flow run is left alone.
func TestE2E_MaxPolls(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "sleepy/sleepy", "UE_PREFECT_WAIT", "true",
		"UE_PREFECT_POLL_INTERVAL", "1", "UE_PREFECT_MAX_POLLS", "3", "UE_PREFECT_PARAMETERS", `{"parameters":{"seconds":120}}`))
	wantExit(t, r, 40, "Polling Timeout: maximum polling timeout reached.")
	if r.doc.StatusDescription != "Polling Timeout: maximum polling timeout reached." {
		t.Errorf("status_description = %q", r.doc.StatusDescription)
	}
	id := r.str("flow_run_id")
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), id)
	if err != nil || rig.StateType(run) == "CANCELLING" || rig.StateType(run) == "CANCELLED" {
		t.Fatalf("the run was not left alone: %v %v", rig.StateType(run), err)
	}
	if p := r.doc.Result["polls"]; p != float64(3) {
		t.Errorf("polls = %v, want 3", p)
	}
	_ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), id) // tidy up
}

// TestE2E_BlockReferenceDefault: a deployment that enforces its schema and
// whose default for a block-typed parameter is a block reference launches:
// Prefect 3's server accepts the reference (preprocess_schema), so the
// client-side check, never stricter than Prefect, must too.
func TestE2E_BlockReferenceDefault(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "blocky/blocky", "UE_PREFECT_PARAMETERS", `{"parameters":{"note":"e2e"}}`))
	wantExit(t, r, 0, "Task executed successfully.")
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id"))
	if err != nil {
		t.Fatal(err)
	}
	params, _ := run["parameters"].(map[string]any)
	creds, _ := params["creds"].(map[string]any)
	ref, _ := creds["$ref"].(map[string]any)
	if ref["block_document_id"] == nil || params["note"] != "e2e" {
		t.Errorf("run parameters = %v, want the deployment's block reference and note", params)
	}
	_ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id")) // nothing serves it
}

// TestE2E_Parameters: parameters, context, job variables, tags and the flow
// run name reach Prefect; typed parameters are validated by the server.
func TestE2E_Parameters(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	t.Run("typed values reach the run", func(t *testing.T) {
		t.Parallel()
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "typed/typed", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1",
			"UE_PREFECT_FLOW_RUN_NAME", "typed-e2e",
			"UE_PREFECT_PARAMETERS", `{"parameters":{"count":3,"flag":true,"label":"ünï"},"context":{"source":"uac"},"job_variables":{"env":{"X":"1"}},"tags":["uac","e2e"]}`))
		wantExit(t, r, 0, "Task executed successfully.")
		run, _ := r.doc.Result["flow_run"].(map[string]any)
		params, _ := run["parameters"].(map[string]any)
		if params["count"] != float64(3) || params["flag"] != true || params["label"] != "ünï" || run["name"] != "typed-e2e" {
			t.Errorf("run parameters/name = %v %v", params, run["name"])
		}
		tags, _ := run["tags"].([]any)
		if !slices.Contains(tags, any("uac")) || !slices.Contains(tags, any("e2e")) {
			t.Errorf("tags = %v, want uac and e2e", tags)
		}
		if jv, _ := run["job_variables"].(map[string]any); jv["env"] == nil {
			t.Errorf("job_variables = %v", run["job_variables"])
		}
	})
	t.Run("enforced schema, wrong type: exit 20 naming the parameter, before launch", func(t *testing.T) {
		t.Parallel()
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "typed/typed", "UE_PREFECT_PARAMETERS", `{"parameters":{"count":"many"}}`))
		wantExit(t, r, 20, `Data Validation Error: Parameters (JSON): deployment "typed" enforces its parameter schema: parameter "count"`)
		if r.str("flow_run_id") != "" {
			t.Errorf("a run was created: %s", r.str("flow_run_id"))
		}
	})
	t.Run("unknown parameter: exit 20 before launch", func(t *testing.T) {
		t.Parallel()
		did, _ := env.Server.DeploymentID(ctxT(t, 30*time.Second), "typed", "typed")
		before, _ := env.Server.FlowRunsByDeployment(ctxT(t, 30*time.Second), did)
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "typed/typed", "UE_PREFECT_PARAMETERS", `{"parameters":{"count":1,"cuont":2}}`))
		wantExit(t, r, 20, `Data Validation Error: Parameters (JSON): deployment "typed" has no parameter "cuont"`)
		after, _ := env.Server.FlowRunsByDeployment(ctxT(t, 30*time.Second), did)
		if len(after) > len(before)+1 { // parallel subtests may add one legitimately
			t.Errorf("a run was launched despite the invalid parameter")
		}
	})
	t.Run("no metadata option", func(t *testing.T) {
		t.Parallel()
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_INCLUDE_METADATA", "No Metadata"))
		wantExit(t, r, 0, "Task executed successfully.")
		if _, ok := r.doc.Result["flow_run"]; ok || r.str("flow_run_id") == "" {
			t.Errorf("result = %v: want the output fields but no flow_run metadata", r.doc.Result)
		}
	})
}

// TestE2E_DeploymentResolution: a deployment by id, flow/deployment, or a
// unique bare name; unknown or ambiguous names are exit 20 listing choices.
func TestE2E_DeploymentResolution(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	id, err := env.Server.DeploymentID(ctxT(t, 30*time.Second), "idle", "idle")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ref string
		code      int
		want      []string
	}{
		{"by id", id, 0, []string{"Deployment: idle/idle"}},
		{"by flow/deployment", "idle/idle", 0, []string{"Deployment: idle/idle"}},
		{"by unique bare name", "idle", 0, []string{"Deployment: idle/idle"}},
		{"ambiguous bare name", "shared", 20, []string{"Deployment ID or Name: \"shared\" matches 2 deployments: alpha/shared, beta/shared"}},
		{"unknown flow/deployment", "ok/nope", 20, []string{`no deployment "ok/nope"; available:`, "ok/ok", "typed/typed"}},
		{"unknown id", "00000000-0000-4000-8000-000000000000", 20, []string{"no deployment", "alpha/alpha-only", "idle/idle"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", tc.ref))
			if r.code != tc.code {
				t.Fatalf("exit = %d, want %d\n%s", r.code, tc.code, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestE2E_ListDeployments: values for a dynamic-choice field.
func TestE2E_ListDeployments(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	r := startUE(t, server(env), "list-deployments").wait(time.Minute)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, want := range []string{"ok/ok", "alpha/shared", "beta/shared", "typed/typed"} {
		if !slices.Contains(lines, want) {
			t.Errorf("list-deployments lacks %q: %q", want, lines)
		}
	}
	if !slices.IsSorted(lines) || r.code != 0 {
		t.Errorf("exit %d, lines not sorted: %q", r.code, lines)
	}
	j := startUE(t, server(env), "list-deployments", "--json").wait(time.Minute)
	var doc extDoc
	if err := json.Unmarshal([]byte(j.stdout), &doc); err != nil || doc.ExitCode != 0 {
		t.Fatalf("--json: %v\n%s", err, j.stdout)
	}
	if vals, _ := doc.Result["values"].([]any); len(vals) != len(lines) {
		t.Errorf("--json values %d, lines %d", len(vals), len(lines))
	}
}

// TestE2E_RerunAndReattach: without a key every invocation launches a new
// run (1.0's re-run); with the same key the second invocation re-attaches.
func TestE2E_RerunAndReattach(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	a := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle"))
	b := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle"))
	if a.str("flow_run_id") == "" || a.str("flow_run_id") == b.str("flow_run_id") {
		t.Errorf("two runs without a key = %q, %q; want two different runs", a.str("flow_run_id"), b.str("flow_run_id"))
	}
	key := "uac-" + t.Name() + time.Now().Format("150405.000")
	c := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "ok/ok", "UE_PREFECT_IDEMPOTENCY_KEY", key))
	d := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "ok/ok", "UE_PREFECT_IDEMPOTENCY_KEY", key, "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1"))
	wantExit(t, d, 0, "Task executed successfully.")
	if c.str("flow_run_id") != d.str("flow_run_id") || d.doc.Result["reattached"] != true || d.doc.Changed {
		t.Errorf("same key: %q then %q (reattached=%v changed=%v); want the same run, re-attached", c.str("flow_run_id"), d.str("flow_run_id"), d.doc.Result["reattached"], d.doc.Changed)
	}
	if !strings.Contains(d.stderr, "Re-attached to flow run") {
		t.Errorf("stderr does not say it re-attached:\n%s", d.stderr)
	}
	// The same key with the same inputs re-attaches quietly, although the run
	// holds the deployment's default parameters and tags merged with ours; with
	// other inputs it re-attaches too (Prefect's semantics), but warns and says
	// so in the result.
	key2 := key + "-inputs"
	mine := `{"parameters":{"note":"mine"},"tags":["t1"]}`
	e := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_IDEMPOTENCY_KEY", key2, "UE_PREFECT_PARAMETERS", mine))
	f := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_IDEMPOTENCY_KEY", key2, "UE_PREFECT_PARAMETERS", mine))
	wantExit(t, f, 0, "Task executed successfully.")
	if f.str("flow_run_id") != e.str("flow_run_id") || strings.Contains(f.stderr, "other inputs") || f.doc.Result["launched_with_other_inputs"] != nil {
		t.Errorf("same key and inputs: want a quiet re-attach to %q\n%s", e.str("flow_run_id"), f)
	}
	g := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_IDEMPOTENCY_KEY", key2, "UE_PREFECT_PARAMETERS", `{"parameters":{"note":"other"}}`))
	wantExit(t, g, 0, "Task executed successfully.")
	other, _ := g.doc.Result["launched_with_other_inputs"].([]any)
	if g.str("flow_run_id") != e.str("flow_run_id") || !strings.Contains(g.stderr, "warning: Idempotency Key \""+key2+"\" launched flow run") ||
		len(other) != 2 || other[0] != "parameters" || other[1] != "tags" {
		t.Errorf("same key, other inputs: want the same run, a warning and launched_with_other_inputs [parameters tags]\n%s", g)
	}
}

// TestE2E_Interrupt: SIGTERM ends the wait promptly with exit 143; by
// default the run is left alone, with --cancel-on-interrupt it is cancelled.
func TestE2E_Interrupt(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	for _, cancel := range []bool{false, true} {
		name := "leave"
		if cancel {
			name = "cancel"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "sleepy/sleepy", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "30",
				"UE_PREFECT_CANCEL_ON_INTERRUPT", map[bool]string{true: "true", false: "false"}[cancel]))
			if !p.waitFor(`ue-prefect::output`, 60*time.Second) {
				t.Fatalf("no flow run:\n%s", p.stderr.String())
			}
			id := firstRunID(t, p.stderr.String())
			if _, err := env.Server.WaitForState(ctxT(t, 90*time.Second), id, "RUNNING", 90*time.Second); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			p.signal(syscall.SIGTERM)
			r := p.wait(time.Minute)
			took := time.Since(sent)
			wantExit(t, r, 143, "Interrupted: SIGTERM received")
			run, _ := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), id)
			if cancel {
				if st := rig.StateType(run); st != "CANCELLED" && st != "CANCELLING" {
					t.Errorf("state after cancel-on-interrupt = %s, want CANCELLED", st)
				}
				if !strings.Contains(r.doc.StatusDescription, "cancelling flow run") {
					t.Errorf("status %q", r.doc.StatusDescription)
				}
			} else {
				if took > 5*time.Second {
					t.Errorf("SIGTERM took %s to end the wait", took)
				}
				if st := rig.StateType(run); st != "RUNNING" {
					t.Errorf("state after a plain interrupt = %s, want RUNNING (left alone)", st)
				}
				_ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), id)
			}
		})
	}
}

func firstRunID(t *testing.T, stderr string) string {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(line, "ue-prefect::output "); ok {
			var f map[string]string
			if json.Unmarshal([]byte(rest), &f) == nil && f["flow_run_id"] != "" {
				return f["flow_run_id"]
			}
		}
	}
	t.Fatalf("no flow_run_id in:\n%s", stderr)
	return ""
}

// TestE2E_StreamLogs: with --stream-logs the flow run's own log lines reach
// stderr, each once, in order, including lines shipped after the run ended.
func TestE2E_StreamLogs(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "demo/demo", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1",
		"UE_PREFECT_STREAM_LOGS", "true", "UE_PREFECT_PARAMETERS", `{"parameters":{"name":"logs"}}`))
	wantExit(t, r, 0, "Task executed successfully.")
	last := -1
	for _, want := range []string{"demo flow starting for logs", "working... step 1/3", "working... step 2/3", "working... step 3/3", "done: Hello, logs!"} {
		i := strings.Index(r.stderr, "│ INFO  │ "+want)
		if i < 0 {
			t.Errorf("stderr lacks the flow's log line %q\n%s", want, r.stderr)
			continue
		}
		if i < last {
			t.Errorf("log line %q is out of order", want)
		}
		last = i
		if n := strings.Count(r.stderr, want); n != 1 {
			t.Errorf("log line %q relayed %d times, want once", want, n)
		}
	}
	if strings.Contains(r.stdout, "working... step") {
		t.Errorf("flow logs leaked into stdout, which carries only the document")
	}
}
