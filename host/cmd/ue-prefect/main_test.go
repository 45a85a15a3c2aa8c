package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ue-prefect-cli-test-")
	if err != nil {
		panic(err)
	}
	cacheDir = filepath.Join(dir, "cache")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func noSignals(chan<- os.Signal) func() { return func() {} }

// counter is a loopback server that counts requests; bad input must send none.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, `{"detail":"unexpected"}`, 500)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func runCLI(t *testing.T, args []string, env map[string]string) (int, string, string) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	environ = append(environ, "UE_PREFECT_CACHE_DIR="+cacheDir)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, environ, &stdout, &stderr, noSignals)
	return code, stdout.String(), stderr.String()
}

func TestRun_BadInput(t *testing.T) {
	srv, n := counter(t)
	api := srv.URL + "/api"
	const secret = "pnu_super_secret_key_1234567890"
	dir := t.TempDir()
	params := filepath.Join(dir, "params.json")
	os.WriteFile(params, []byte(`{"parameters": {"x": 1}, "nope": 1}`), 0o600)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		field string // the label the message must start with
		want  string // a substring of the message
	}{
		{"no target", []string{"--deployment", "a/b"}, nil, "Target", "not given"},
		{"bad target", []string{"--target", "mars", "--deployment", "a/b"}, map[string]string{"PREFECT_API_URL": api}, "Target", `"mars"`},
		{"server without url", []string{"--target", "server", "--deployment", "a/b"}, nil, "API URL", "required for a self-hosted server"},
		{"relative url", []string{"--api-url", "prefect/api", "--deployment", "a/b"}, nil, "API URL", "not an absolute http(s) URL"},
		{"http to a remote host", []string{"--api-url", "http://prefect.example.com/api", "--deployment", "a/b"}, nil, "API URL", "plain http"},
		{"credentials in url", []string{"--api-url", "https://user:hunter2@prefect.example.com/api", "--deployment", "a/b"}, nil, "API URL", "must not contain credentials"},
		{"missing deployment", nil, map[string]string{"PREFECT_API_URL": api}, "Deployment ID or Name", "required"},
		{"deployment with two slashes", []string{"--deployment", "a/b/c"}, map[string]string{"PREFECT_API_URL": api}, "Deployment ID or Name", "cannot contain"},
		{"deployment half", []string{"--deployment", "a/"}, map[string]string{"PREFECT_API_URL": api}, "Deployment ID or Name", "both parts"},
		{"parameters not json", []string{"--deployment", "a/b", "--parameters", "{"}, map[string]string{"PREFECT_API_URL": api}, "Parameters (JSON)", "not valid JSON"},
		{"start in the past", []string{"--deployment", "a/b", "--start-at", "2020-01-01T00:00:00Z"}, map[string]string{"PREFECT_API_URL": api}, "Start At", "in the past"},
		{"start unparsable", nil, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_DEPLOYMENT": "a/b", "UE_PREFECT_START_AT": "tomorrow 9am"}, "Start At", "neither an RFC 3339 time"},
		{"start deadline without wait", []string{"--deployment", "a/b", "--start-deadline", "60"}, map[string]string{"PREFECT_API_URL": api}, "Start Deadline (sec)", "needs Wait"},
		{"parameters not object", []string{"--deployment", "a/b", "--parameters", "[1]"}, map[string]string{"PREFECT_API_URL": api}, "Parameters (JSON)", "must be a JSON object"},
		{"parameters unknown key from file", []string{"--deployment", "a/b", "--parameters", "@" + params}, map[string]string{"PREFECT_API_URL": api}, "Parameters (JSON)", `unknown key "nope"`},
		{"parameters missing file", []string{"--deployment", "a/b", "--parameters", "@/nonexistent/p.json"}, map[string]string{"PREFECT_API_URL": api}, "Parameters (JSON)", "cannot read"},
		{"tags not strings", nil, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_DEPLOYMENT": "a/b", "UE_PREFECT_PARAMETERS": `{"tags":[1]}`}, "Parameters (JSON)", "tags"},
		{"too deep", []string{"--deployment", "a/b", "--parameters", `{"parameters":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}"}, map[string]string{"PREFECT_API_URL": api}, "Parameters (JSON)", "nested too deeply"},
		{"poll interval zero", []string{"--deployment", "a/b", "--wait", "--poll-interval", "0"}, map[string]string{"PREFECT_API_URL": api}, "Polling Interval (sec)", "out of range"},
		{"poll interval text", nil, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_DEPLOYMENT": "a/b", "UE_PREFECT_POLL_INTERVAL": "soon"}, "Polling Interval (sec)", "not a whole number"},
		{"max polls zero", []string{"--deployment", "a/b", "--max-polls", "0"}, map[string]string{"PREFECT_API_URL": api}, "Max Number of Polls", "leave it empty"},
		{"wait not bool", nil, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_DEPLOYMENT": "a/b", "UE_PREFECT_WAIT": "maybe"}, "Wait for Success or Failure", "not a boolean"},
		{"metadata option", nil, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_DEPLOYMENT": "a/b", "UE_PREFECT_INCLUDE_METADATA": "Some"}, "Extension Output Options", "not an option"},
		{"flow run id not uuid", []string{"--flow-run-id", "abc"}, map[string]string{"PREFECT_API_URL": api}, "Flow Run ID", "not a flow run id"},
		{"cloud without key", []string{"--target", "cloud", "--deployment", "a/b", "--cloud-api-url", api}, nil, "Credentials", "API key"},
		{"key file missing", []string{"--api-key-file", "/nonexistent/key", "--deployment", "a/b"}, map[string]string{"PREFECT_API_URL": api}, "Credentials", "cannot read secret file"},
		{"auth string not user:pass", []string{"--deployment", "a/b"}, map[string]string{"PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": secret}, "Credentials", "not user:password"},
		{"unknown command", []string{"explode"}, nil, "Action", "unknown command"},
		{"host boolean not bool", []string{"--deployment", "a/b"}, map[string]string{"PREFECT_API_URL": api, "UE_PREFECT_NO_CACHE": "maybe"}, "no_cache", `"maybe" is not a boolean`},
		{"host boolean flag not bool", []string{"--deployment", "a/b", "--allow-insecure-http=sure"}, map[string]string{"PREFECT_API_URL": api}, "allow_insecure_http", `"sure" is not a boolean`},
		{"unknown flag", []string{"--frobnicate"}, nil, "Action", "flag provided but not defined"},
		{"cloud workspace url with bad poll", []string{"--deployment", "a/b", "--poll-interval", "-1"}, map[string]string{
			"PREFECT_API_URL": api + "/accounts/4c6e8a02-3d5f-4e70-9b1c-2d3e4f5a6b7c/workspaces/5d7f9b13-4e60-4f81-8c2d-3e4f5a6b7c8d", "PREFECT_API_KEY": secret,
			"PREFECT_CLOUD_API_URL": api}, "Polling Interval (sec)", "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := n.Load()
			code, stdout, stderr := runCLI(t, tc.args, tc.env)
			if code != 20 {
				t.Fatalf("exit = %d, want 20\nstderr: %s", code, stderr)
			}
			if got := n.Load() - before; got != 0 {
				t.Errorf("%d requests were sent, want none before validation", got)
			}
			var doc extensionOutput
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
			}
			prefix := "Data Validation Error: " + tc.field + ": "
			if !strings.HasPrefix(doc.StatusDescription, prefix) || !strings.Contains(doc.StatusDescription, tc.want) {
				t.Errorf("status_description = %q, want prefix %q and %q", doc.StatusDescription, prefix, tc.want)
			}
			if doc.ExitCode != 20 || doc.Status != "FAILURE" {
				t.Errorf("exit_code, status = %d, %q; want 20, FAILURE", doc.ExitCode, doc.Status)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			for _, s := range []string{secret, "hunter2"} {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("output contains the secret %q", s)
				}
			}
		})
	}
}

func TestRun_Help(t *testing.T) {
	code, stdout, _ := runCLI(t, []string{"--help"}, nil)
	if code != 0 || !strings.Contains(stdout, "Usage:") {
		t.Errorf("--help = %d, %q", code, stdout)
	}
}

// A file the CLI cannot write is said, not ignored; the run's own outcome
// stands.
func TestRun_UnwritableOutputFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "missing-dir", "out.json")
	code, stdout, stderr := runCLI(t, []string{"--deployment", "a/b/c", "--extension-output", out}, map[string]string{"PREFECT_API_URL": "http://127.0.0.1:9/api"})
	if code != 20 {
		t.Fatalf("exit = %d, want 20 (the bad deployment)\nstderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "warning: cannot write the extension output to "+out) {
		t.Errorf("stderr does not report the unwritable file:\n%s", stderr)
	}
	if !strings.Contains(stdout, `"exit_code": 20`) {
		t.Errorf("stdout lacks the document:\n%s", stdout)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cp.json")
	for _, data := range []string{`{"v":1}`, `{"v":2}`} {
		if err := writeFileAtomic(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != data {
			t.Errorf("file = %s, want %s", b, data)
		}
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "no", "such", "dir"), []byte("x")); err == nil {
		t.Error("writing into a missing directory reported no error")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".ue-prefect-*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestFateUnknown: the checkpoint is kept whenever the flow run's fate is
// unknown, and removed once the outcome is settled.
func TestFateUnknown(t *testing.T) {
	tests := []struct {
		name   string
		code   abi.Code
		result string
		want   bool
	}{
		{"success", "", `{"flow_run_id":"x","flow_run_state":"COMPLETED"}`, false},
		{"flow run failed", abi.CodeFlowRunFailed, `{"flow_run_id":"x"}`, false},
		{"polling timeout: the run is left alone on purpose", abi.CodePollingTimeout, `{"flow_run_id":"x"}`, false},
		{"bad input", abi.CodeInvalidInput, `{}`, false},
		{"create rejected", abi.CodeRejected, `{"idempotency_key":"k"}`, false},
		{"interrupted", abi.CodeInterrupted, `{"flow_run_id":"x"}`, true},
		{"unreachable past the outage budget", abi.CodeUnavailable, `{"flow_run_id":"x"}`, true},
		{"internal fault", abi.CodeInternal, `{}`, true},
		{"broken answer to the create", abi.CodeBadResponse, `{"idempotency_key":"k"}`, true},
		{"host refused a request", abi.CodeRefused, `{"flow_run_id":"x"}`, true},
		{"create answered 500: may exist", abi.CodeServerError, `{"idempotency_key":"k"}`, true},
		{"flow run deleted while waiting", abi.CodeServerError, `{"flow_run_id":"x","idempotency_key":"k"}`, false},
		{"server error before the create", abi.CodeServerError, `{}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := abi.RunOutput{Result: json.RawMessage(tc.result)}
			if tc.code != "" {
				out.Error = &abi.Error{Code: tc.code, Message: "m"}
			}
			if got := fateUnknown(out); got != tc.want {
				t.Errorf("fateUnknown(%s, %s) = %v, want %v", tc.code, tc.result, got, tc.want)
			}
		})
	}
}

// waitingCheckpoint is the checkpoint of a task waiting for a RUNNING flow
// run of etl/nightly on api.
func waitingCheckpoint(t *testing.T, api string) []byte {
	t.Helper()
	m, _ := flowrun.Start(abi.RunInput{Target: abi.TargetServer, APIBase: api, InvocationID: "inv-1", Seed: 1,
		Fields: abi.Fields{Deployment: "etl/nightly", Wait: "true"}})
	m.Step(abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: abi.SchemeNone}})
	m.Step(abi.Event{Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 200, Body: json.RawMessage(flowruntest.Deployment())}})
	cmds := m.Step(abi.Event{Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 201, Body: json.RawMessage(flowruntest.Run("RUNNING", "Running", ""))}})
	if last := cmds[len(cmds)-1]; last.Kind != abi.CommandSleep {
		t.Fatalf("the machine is not waiting: %+v", last)
	}
	return m.Checkpoint()
}

// TestRun_CheckpointOfAnotherTask: a checkpoint written for other inputs
// is exit 20 naming the file, before any request; the file is left alone
// and nothing of its flow run is reported.
func TestRun_CheckpointOfAnotherTask(t *testing.T) {
	srv, n := counter(t)
	api := srv.URL + "/api"
	tests := []struct {
		name       string
		args       []string
		checkpoint []byte
		want       string
	}{
		{"other deployment", []string{"--deployment", "etl/cleanup", "--wait"}, nil,
			`was written for another task (Deployment ID or Name "etl/nightly", not "etl/cleanup") and follows flow run ` + flowruntest.RunID},
		{"other parameters", []string{"--deployment", "etl/nightly", "--wait", "--parameters", `{"parameters":{"day":"x"}}`}, nil, "Parameters (JSON) differ"},
		{"bad new input", []string{"--deployment", "etl/nightly", "--wait", "--poll-interval", "0"}, nil, "Polling Interval (sec)"},
		{"not JSON", []string{"--deployment", "etl/nightly", "--wait"}, []byte(`{"v":1,`), "is not valid JSON"},
		{"not a checkpoint", []string{"--deployment", "etl/nightly", "--wait"}, []byte(`{"v":99}`), "checkpoint version 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := tc.checkpoint
			if cp == nil {
				cp = waitingCheckpoint(t, api)
			}
			file := filepath.Join(t.TempDir(), "task.checkpoint")
			if err := os.WriteFile(file, cp, 0o600); err != nil {
				t.Fatal(err)
			}
			before := n.Load()
			code, stdout, stderr := runCLI(t, append(tc.args, "--checkpoint", file), map[string]string{"PREFECT_API_URL": api})
			if code != 20 {
				t.Fatalf("exit = %d, want 20\nstderr: %s", code, stderr)
			}
			if got := n.Load() - before; got != 0 {
				t.Errorf("%d requests were sent, want none", got)
			}
			var doc extensionOutput
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("stdout: %v\n%s", err, stdout)
			}
			if !strings.Contains(doc.StatusDescription, tc.want) || (tc.name != "bad new input" && !strings.Contains(doc.StatusDescription, "Checkpoint: "+file)) {
				t.Errorf("status_description = %q, want it to name %s and say %q", doc.StatusDescription, file, tc.want)
			}
			if strings.Contains(string(doc.Result), flowruntest.RunID) || doc.Changed {
				t.Errorf("result %s (changed %v) reports the checkpoint's flow run", doc.Result, doc.Changed)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != string(cp) {
				t.Errorf("the checkpoint file was changed or removed (%v)", err)
			}
		})
	}
}
