package flowrun

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// These tests cover behaviours the golden scenarios cannot express:
// resuming from checkpoints, malformed checkpoints and events, and
// helpers. They live in package flowrun to reach the machine's state.

func waitInput() abi.RunInput {
	return abi.RunInput{
		Target: abi.TargetServer, APIBase: "http://prefect.test/api", InvocationID: "inv-1", Seed: 42,
		Fields: abi.Fields{Deployment: "etl/nightly", Wait: "true", PollInterval: "60", CancelOnInterrupt: "true", CancelGrace: "30"},
	}
}

func credEv(scheme string) abi.Event {
	return abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: scheme}}
}

func httpEv(status int, body string, now int64) abi.Event {
	r := &abi.HTTPResponse{Status: status, NowMS: now}
	if body != "" {
		r.Body = json.RawMessage(body)
	}
	return abi.Event{Kind: abi.EventHTTP, HTTP: r}
}

func wokeEv(now int64, it *abi.Interrupt) abi.Event {
	return abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now, Interrupt: it}}
}

// drive starts a machine and feeds it events, checking that each answers
// the outstanding command; it returns the machine and its last commands.
func drive(t *testing.T, in abi.RunInput, events ...abi.Event) (*Machine, []abi.Command) {
	t.Helper()
	m, cmds := Start(in)
	for i, ev := range events {
		last := cmds[len(cmds)-1]
		want := map[string]string{abi.CommandHTTP: abi.EventHTTP, abi.CommandSleep: abi.EventWoke, abi.CommandCredential: abi.EventCredential}[last.Kind]
		if ev.Kind != want {
			t.Fatalf("event %d: the machine wants %q, after %s", i, want, jsonOf(t, cmds))
		}
		cmds = m.Step(ev)
	}
	return m, cmds
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lastCmd(cmds []abi.Command) abi.Command { return cmds[len(cmds)-1] }

// untilCreate answers up to the create request; untilPolling up to the
// first poll sleep of a RUNNING flow run.
var (
	untilCreate = []abi.Event{
		credEv(abi.SchemeNone),
		httpEv(200, flowruntest.Deployment(), 10),
	}
	untilPolling = append(untilCreate[:len(untilCreate):len(untilCreate)],
		httpEv(201, flowruntest.Run(StateRunning, "Running", ""), 20))
)

func TestRestoreErrors(t *testing.T) {
	// A real checkpoint of version 1 (flat, before the state was grouped by
	// operation): waiting on a RUNNING flow run.
	v1, err := os.ReadFile("testdata/checkpoint-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		checkpoint string
		want       string
	}{
		{"not JSON", `not json`, "checkpoint is not valid JSON"},
		{"empty", ``, "checkpoint is not valid JSON"},
		{"truncated", `{"v":1,`, "checkpoint is not valid JSON"},
		{"nested too deeply", strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200), "nested too deeply"},
		{"an array", `[1]`, "checkpoint does not decode"},
		{"wrong type", `{"v":"1"}`, "checkpoint does not decode"},
		{"no version", `{}`, "checkpoint version 0, want 2"},
		{"newer version", `{"v":3,"action":"launch_flow_run"}`, "checkpoint version 3, want 2"},
		{"null", `null`, "checkpoint version 0, want 2"},
		{"this version, a field of the wrong type", `{"v":2,"config":"fast"}`, "checkpoint does not decode: json: cannot unmarshal string"},
		{"newer version, a field of the wrong type", `{"v":3,"config":"fast"}`, "checkpoint version 3, want 2"},
		{"version 1, from an earlier release", string(v1), "checkpoint version 1, want 2: it was written by an earlier ue-prefect"},
		{"unknown operation", `{"v":2,"pending":{"op":"teleport"}}`, `unknown operation "teleport"`},
		{"request without the request", `{"v":2,"pending":{"op":"read_flow_run"}}`, `outstanding operation "read_flow_run" without its request`},
		{"retry of a sleep", `{"v":2,"pending":{"op":"sleep_retry","req":{"method":"GET","path":"/x"},"retry":"sleep_poll"}}`, `retries unknown operation "sleep_poll"`},
		{"invalid flow run id", `{"v":2,"flow_run":{"id":"x"}}`, "invalid flow run id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Restore([]byte(tc.checkpoint))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore(%.40q) = %v, %v, want an error containing %q", tc.checkpoint, m, err, tc.want)
			}
			if tc.checkpoint == "" {
				return // Start reads an empty checkpoint as none
			}
			// Start with the same checkpoint finishes with an input error.
			in := waitInput()
			in.Checkpoint = json.RawMessage(tc.checkpoint)
			_, cmds := Start(in)
			last := lastCmd(cmds)
			if len(cmds) != 1 || last.Kind != abi.CommandFinish || last.Finish.Error == nil ||
				last.Finish.Error.Code != abi.CodeInvalidInput || last.Finish.Error.Field != "checkpoint" || last.Finish.ExitCode != abi.ExitDataValidation {
				t.Errorf("Start(checkpoint %.40q) = %s, want finish invalid_input on checkpoint", tc.checkpoint, jsonOf(t, cmds))
			}
		})
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	m, _ := drive(t, waitInput(), untilPolling...)
	cp := m.Checkpoint()
	r, err := Restore(cp)
	if err != nil {
		t.Fatalf("Restore(Checkpoint()) = %v", err)
	}
	if got := r.Checkpoint(); string(got) != string(cp) {
		t.Errorf("Restore(cp).Checkpoint() = %s, want %s", got, cp)
	}
	ev := wokeEv(60020, nil)
	if a, b := jsonOf(t, m.Step(ev)), jsonOf(t, r.Step(ev)); a != b {
		t.Errorf("restored Step(%v) = %s, want %s", ev, b, a)
	}
}

func TestResume(t *testing.T) {
	createPath := "/deployments/" + flowruntest.DeploymentID + "/create_flow_run"
	tests := []struct {
		name   string
		input  func() abi.RunInput
		events []abi.Event
		// check inspects the commands Start returns for the checkpoint.
		check func(t *testing.T, before *Machine, cmds []abi.Command)
	}{
		{
			name:  "known flow run is read again, not created",
			input: waitInput, events: untilPolling,
			check: func(t *testing.T, before *Machine, cmds []abi.Command) {
				last := lastCmd(cmds)
				if last.Kind != abi.CommandHTTP || last.HTTP.Method != "GET" || last.HTTP.Path != "/flow_runs/"+flowruntest.RunID {
					t.Errorf("resume = %s, want GET /flow_runs/%s", jsonOf(t, cmds), flowruntest.RunID)
				}
				if cmds[0].Kind != abi.CommandLog || !strings.Contains(cmds[0].Log.Message, "Resuming: re-attaching to flow run") {
					t.Errorf("resume = %s, want a log line first", jsonOf(t, cmds))
				}
			},
		},
		{
			name:  "deployment without a flow run repeats the create with the same key",
			input: waitInput, events: untilCreate,
			check: func(t *testing.T, before *Machine, cmds []abi.Command) {
				last := lastCmd(cmds)
				if last.Kind != abi.CommandHTTP || last.HTTP.Method != "POST" || last.HTTP.Path != createPath {
					t.Fatalf("resume = %s, want POST %s", jsonOf(t, cmds), createPath)
				}
				orig := before.s.Pending.Req
				if orig == nil || string(orig.Body) != string(last.HTTP.Body) {
					t.Errorf("resumed create body = %s, want the original %s", last.HTTP.Body, orig.Body)
				}
				var body struct {
					Key string `json:"idempotency_key"`
				}
				if err := json.Unmarshal(last.HTTP.Body, &body); err != nil || body.Key != "ue-prefect:"+flowruntest.DeploymentID+":inv-1" {
					t.Errorf("resumed idempotency key = %q (%v), want the original", body.Key, err)
				}
			},
		},
		{
			name: "create outstanding without waiting repeats the create",
			input: func() abi.RunInput {
				in := waitInput()
				in.Fields.Wait = "false"
				return in
			},
			events: untilCreate,
			check: func(t *testing.T, before *Machine, cmds []abi.Command) {
				// The create went out but its answer was lost: repeat it.
				if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || last.HTTP.Path != createPath {
					t.Errorf("resume = %s, want the create again", jsonOf(t, cmds))
				}
			},
		},
		{
			name: "a finished run finishes again",
			input: func() abi.RunInput {
				in := waitInput()
				in.Fields.Wait = "false"
				return in
			},
			events: untilPolling,
			check: func(t *testing.T, before *Machine, cmds []abi.Command) {
				if len(cmds) != 1 || cmds[0].Kind != abi.CommandFinish || cmds[0].Finish.ExitCode != 0 {
					t.Errorf("resume = %s, want finish exit 0", jsonOf(t, cmds))
				}
			},
		},
		{
			name:  "nothing resolved starts over",
			input: waitInput, events: nil,
			check: func(t *testing.T, before *Machine, cmds []abi.Command) {
				if len(cmds) != 1 || cmds[0].Kind != abi.CommandCredential {
					t.Errorf("resume = %s, want the credential again", jsonOf(t, cmds))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := drive(t, tc.input(), tc.events...)
			cp := before.Checkpoint()
			// A new process: its clock starts again at 5.
			m, cmds := Start(abi.RunInput{Checkpoint: cp, NowMS: 5, Seed: 9})
			tc.check(t, before, cmds)
			if m.s.Now < before.s.Now {
				t.Errorf("machine time after resume = %d, want at least %d", m.s.Now, before.s.Now)
			}
			if m.s.Now != m.s.Offset+5 {
				t.Errorf("offset after resume = %d, want machine time %d = host time 5 + offset", m.s.Offset, m.s.Now)
			}
		})
	}
}

func TestStepWrongEvent(t *testing.T) {
	tests := []struct {
		name   string
		events []abi.Event // bring the machine to its outstanding command
		ev     abi.Event
	}{
		{"http answers credential", nil, httpEv(200, `{}`, 0)},
		{"woke answers credential", nil, wokeEv(0, nil)},
		{"credential without its payload", nil, abi.Event{Kind: abi.EventCredential}},
		{"empty event", nil, abi.Event{}},
		{"unknown kind", nil, abi.Event{Kind: "telepathy", Credential: &abi.CredentialResponse{Scheme: "none"}}},
		{"woke answers http", untilCreate[:1], wokeEv(0, nil)},
		{"credential answers http", untilCreate[:1], credEv(abi.SchemeNone)},
		{"http without its payload", untilCreate[:1], abi.Event{Kind: abi.EventHTTP}},
		{"http answers sleep", untilPolling, httpEv(200, flowruntest.Run(StateRunning, "Running", ""), 0)},
		{"woke without its payload", untilPolling, abi.Event{Kind: abi.EventWoke}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := drive(t, waitInput(), tc.events...)
			cmds := m.Step(tc.ev)
			if len(cmds) != 1 || cmds[0].Kind != abi.CommandFinish {
				t.Fatalf("Step(%s) = %s, want one finish", jsonOf(t, tc.ev), jsonOf(t, cmds))
			}
			f := cmds[0].Finish
			if f.ExitCode != abi.ExitFailed || f.Error == nil || f.Error.Code != abi.CodeInternal || !strings.Contains(f.Error.Message, "does not answer the outstanding command") {
				t.Errorf("Step(%s) finish = %s, want exit 1, code internal", jsonOf(t, tc.ev), jsonOf(t, f))
			}
		})
	}
}

// TestCancelWait covers Prefect's WAIT answer to a cancellation: a delay
// within the grace period is waited out; one past it, however large,
// ends the wait.
func TestCancelWait(t *testing.T) {
	sigterm := &abi.Interrupt{Reason: "SIGTERM", ExitCode: abi.ExitInterruptedSIGTERM}
	tests := []struct {
		name      string
		delay     string
		wantSleep int64 // -1: want finish
	}{
		{"within grace", "2", 2000},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"past grace", "31", -1},
		{"a billion seconds", "1e9", -1},
		{"near the int64 limit in ms", "9223372036854774", -1},
		{"past the int64 limit in ms", "1e300", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := append(untilPolling[:len(untilPolling):len(untilPolling)], wokeEv(30_000, sigterm))
			m, cmds := drive(t, waitInput(), events...)
			if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || !strings.HasSuffix(last.HTTP.Path, "/set_state") {
				t.Fatalf("after the interrupt = %s, want the cancellation", jsonOf(t, cmds))
			}
			ev := httpEv(200, `{"status":"WAIT","details":{"delay_seconds":`+tc.delay+`}}`, 30_000)
			ev.HTTP.Interrupt = sigterm
			cmds = m.Step(ev)
			last := lastCmd(cmds)
			switch {
			case tc.wantSleep < 0 && (last.Kind != abi.CommandFinish || last.Finish.Error == nil || last.Finish.Error.Code != abi.CodeInterrupted):
				t.Errorf("Step(WAIT %s s) = %s, want finish interrupted", tc.delay, jsonOf(t, cmds))
			case tc.wantSleep >= 0 && (last.Kind != abi.CommandSleep || last.Sleep.DurationMS != tc.wantSleep):
				t.Errorf("Step(WAIT %s s) = %s, want sleep %d ms", tc.delay, jsonOf(t, cmds), tc.wantSleep)
			}
		})
	}
}

func TestUIRoot(t *testing.T) {
	tests := []struct {
		api   string
		cloud bool
		want  string
	}{
		{"https://api.prefect.cloud/api", true, "https://app.prefect.cloud"},
		{"https://api.prefect.cloud/api/", true, "https://app.prefect.cloud"},
		{"http://127.0.0.1:4200/api", false, "http://127.0.0.1:4200"},
		{"http://localhost:4200/api/", false, "http://localhost:4200"},
		{"https://prefect.example.com/prefect/api", false, "https://prefect.example.com/prefect"},
		{"https://prefect.example.com", false, "https://prefect.example.com"},
		// A self-hosted server whose host happens to start with "api." keeps it.
		{"https://api.example.com/api", false, "https://api.example.com"},
		{"not a url", false, "not a url"},
	}
	for _, tc := range tests {
		t.Run(tc.api, func(t *testing.T) {
			if got := uiRoot(tc.api, tc.cloud); got != tc.want {
				t.Errorf("uiRoot(%q, %v) = %q, want %q", tc.api, tc.cloud, got, tc.want)
			}
		})
	}
}

func TestRunURL(t *testing.T) {
	ws := &workspace{AccountID: flowruntest.AccountID, WorkspaceID: flowruntest.WorkspaceID}
	tests := []struct {
		name string
		s    state
		want string
	}{
		{"no run", state{APIBase: "http://127.0.0.1:4200/api"}, ""},
		{"server", state{Target: abi.TargetServer, APIBase: "http://127.0.0.1:4200/api", Run: flowRun{ID: flowruntest.RunID}},
			"http://127.0.0.1:4200/runs/flow-run/" + flowruntest.RunID},
		{"cloud", state{Target: abi.TargetCloud, APIBase: "https://api.prefect.cloud/api", Resolve: resolveState{Workspace: ws}, Run: flowRun{ID: flowruntest.RunID}},
			"https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/" + flowruntest.WorkspaceID + "/runs/flow-run/" + flowruntest.RunID},
		// PREFECT_UI_URL as Prefect itself stores it for Cloud: already the workspace's root.
		{"cloud UI base with the workspace", state{Target: abi.TargetCloud, APIBase: "https://api.prefect.cloud/api", Resolve: resolveState{Workspace: ws}, Run: flowRun{ID: flowruntest.RunID},
			UIBase: "https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/" + flowruntest.WorkspaceID + "/"},
			"https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/" + flowruntest.WorkspaceID + "/runs/flow-run/" + flowruntest.RunID},
		{"cloud UI base naming another workspace", state{Target: abi.TargetCloud, APIBase: "https://api.prefect.cloud/api", Resolve: resolveState{Workspace: ws}, Run: flowRun{ID: flowruntest.RunID},
			UIBase: "https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/8a0c2e46-7193-4cb4-8f5a-6b7c8d9e0f1a"},
			"https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/" + flowruntest.WorkspaceID + "/runs/flow-run/" + flowruntest.RunID},
		{"cloud UI base root", state{Target: abi.TargetCloud, APIBase: "https://api.prefect.cloud/api", Resolve: resolveState{Workspace: ws}, Run: flowRun{ID: flowruntest.RunID},
			UIBase: "https://app.prefect.cloud"},
			"https://app.prefect.cloud/account/" + flowruntest.AccountID + "/workspace/" + flowruntest.WorkspaceID + "/runs/flow-run/" + flowruntest.RunID},
		{"UI base overrides", state{Target: abi.TargetServer, APIBase: "http://127.0.0.1:4200/api", UIBase: "https://ui.example.com/", Run: flowRun{ID: flowruntest.RunID}},
			"https://ui.example.com/runs/flow-run/" + flowruntest.RunID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Machine{s: tc.s}
			if got := m.runURL(); got != tc.want {
				t.Errorf("runURL() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPathEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nightly", "nightly"},
		{"my flow", "my%20flow"},
		{"a/b", "a%2Fb"},
		{"a?b#c", "a%3Fb%23c"},
		{"..", ".."},
		{"déjà", "d%C3%A9j%C3%A0"},
		{"a:b@c", "a:b@c"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := pathEscape(tc.in); got != tc.want {
				t.Errorf("pathEscape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// lastCheckpoint is the checkpoint of the last progress command in cmds.
func lastCheckpoint(cmds []abi.Command) []byte {
	var cp []byte
	for _, c := range cmds {
		if c.Kind == abi.CommandProgress {
			cp = c.Progress.Checkpoint
		}
	}
	return cp
}

// TestCheckpointAfterEachPoll: the checkpoint a host persists is current
// after every poll, changed or not: its poll count and the log lines
// already relayed, so a resume neither restarts the max-polls budget nor
// repeats streamed logs.
func TestCheckpointAfterEachPoll(t *testing.T) {
	running := flowruntest.Run(StateRunning, "Running", "")
	logs := `[{"id":"a1","level":20,"message":"hello","timestamp":"2026-11-22T03:00:01.000000Z"}]`
	tests := []struct {
		name      string
		stream    string
		events    []abi.Event // after the first poll sleep
		wantPolls int64
		wantSeen  []string
	}{
		{"unchanged poll", "false", []abi.Event{wokeEv(60_020, nil), httpEv(200, running, 60_030)}, 1, nil},
		{"two unchanged polls", "false", []abi.Event{wokeEv(60_020, nil), httpEv(200, running, 60_030), wokeEv(120_030, nil), httpEv(200, running, 120_040)}, 2, nil},
		{"poll with streamed logs", "true", []abi.Event{wokeEv(60_020, nil), httpEv(200, running, 60_030), httpEv(200, logs, 60_040)}, 1, []string{"a1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := waitInput()
			in.Fields.StreamLogs = tc.stream
			m, cmds := drive(t, in, untilPolling...)
			var all []abi.Command
			for _, ev := range tc.events {
				cmds = m.Step(ev)
				all = append(all, cmds...)
			}
			if last := lastCmd(cmds); last.Kind != abi.CommandSleep {
				t.Fatalf("after the poll = %s, want the next poll's sleep", jsonOf(t, cmds))
			}
			cp := lastCheckpoint(all)
			if cp == nil {
				t.Fatalf("no checkpoint published since the first poll sleep: %s", jsonOf(t, all))
			}
			r, err := Restore(cp)
			if err != nil {
				t.Fatal(err)
			}
			if r.s.Poll.Polls != tc.wantPolls || strings.Join(r.s.Logs.Seen, ",") != strings.Join(tc.wantSeen, ",") {
				t.Errorf("checkpoint polls = %d, logs seen %v; want %d, %v (the machine has %d, %v)",
					r.s.Poll.Polls, r.s.Logs.Seen, tc.wantPolls, tc.wantSeen, m.s.Poll.Polls, m.s.Logs.Seen)
			}
		})
	}
}

// TestResumeKeepsPollBudget: polls made before a resume count against Max
// Number of Polls after it.
func TestResumeKeepsPollBudget(t *testing.T) {
	running := flowruntest.Run(StateRunning, "Running", "")
	in := waitInput()
	in.Fields.MaxPolls = "2"
	m, _ := drive(t, in, untilPolling...)
	var all []abi.Command
	for _, ev := range []abi.Event{wokeEv(60_020, nil), httpEv(200, running, 60_030)} {
		all = append(all, m.Step(ev)...)
	}
	// Killed during the second poll sleep; a new process resumes.
	in.Checkpoint, in.NowMS = lastCheckpoint(all), 5
	r, cmds := Start(in)
	if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || last.HTTP.Method != "GET" {
		t.Fatalf("resume = %s, want the read of the flow run", jsonOf(t, cmds))
	}
	cmds = r.Step(httpEv(200, running, 10))
	if last := lastCmd(cmds); last.Kind != abi.CommandSleep {
		t.Fatalf("after the resume read = %s, want the second poll's sleep", jsonOf(t, cmds))
	}
	cmds = r.Step(wokeEv(60_010, nil))
	if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || last.HTTP.Method != "GET" {
		t.Fatalf("after the second poll's sleep = %s, want the read of the flow run", jsonOf(t, cmds))
	}
	cmds = r.Step(httpEv(200, running, 60_020))
	if last := lastCmd(cmds); last.Kind != abi.CommandFinish || last.Finish.ExitCode != abi.ExitPollingTimeout {
		t.Fatalf("after the second poll = %s, want exit 40", jsonOf(t, cmds))
	}
	var res abi.Result
	if err := json.Unmarshal(lastCmd(cmds).Finish.Result, &res); err != nil || res.Polls != 2 {
		t.Errorf("result polls = %d (%v), want 2", res.Polls, err)
	}
}

// TestResumeBinding: a checkpoint answers only for the task it was written
// for. Another deployment, workspace, key, flow run id, target, API base or
// other parameters end with exit 20 naming the checkpoint, and nothing of
// its flow run is reported; the wait settings are the new task's.
func TestResumeBinding(t *testing.T) {
	type mod func(in *abi.RunInput)
	tests := []struct {
		name string
		mod  mod
		// want is "" to resume (read the flow run), else a substring of
		// the exit-20 message.
		want string
	}{
		{"same inputs", func(in *abi.RunInput) {}, ""},
		{"fields left empty", func(in *abi.RunInput) { in.Fields = abi.Fields{} }, ""},
		{"parameters spaced and ordered otherwise", nil, ""},
		{"the invocation id given back as the key", func(in *abi.RunInput) { in.Fields.IdempotencyKey = "inv-1" }, ""},
		{"other deployment", func(in *abi.RunInput) { in.Fields.Deployment = "etl/cleanup" }, `Deployment ID or Name "etl/nightly", not "etl/cleanup"`},
		{"other parameters", func(in *abi.RunInput) { in.Fields.Parameters = `{"parameters":{"day":"2026-11-23","limit":5}}` }, "Parameters (JSON) differ"},
		{"other tags", func(in *abi.RunInput) {
			in.Fields.Parameters = `{"parameters":{"limit":5,"day":"2026-11-22"},"tags":["x"]}`
		}, "Parameters (JSON) differ"},
		{"other idempotency key", func(in *abi.RunInput) { in.Fields.IdempotencyKey = "k2" }, `Idempotency Key "", not "k2"`},
		{"other flow run name", func(in *abi.RunInput) { in.Fields.FlowRunName = "n" }, "Flow Run Name"},
		{"a flow run id instead", func(in *abi.RunInput) { in.Fields.FlowRunID = flowruntest.RunID; in.Fields.Deployment = "" }, "Flow Run ID"},
		{"other target", func(in *abi.RunInput) { in.Target = abi.TargetCloud; in.Fields.Workspace = "acme/prod" }, `Target "server", not "cloud"`},
		{"other API base", func(in *abi.RunInput) { in.APIBase = "http://other.test/api" }, "API URL"},
		{"other workspace", func(in *abi.RunInput) { in.Fields.Workspace = "acme/prod" }, "Workspace ID or Name"},
		{"other action", func(in *abi.RunInput) { in.Action = abi.ActionListDeployments }, "Action"},
		{"bad new input", func(in *abi.RunInput) { in.Fields.PollInterval = "0" }, "Polling Interval (sec)"},
		{"other Start At", func(in *abi.RunInput) { in.Fields.StartAt = "2026-12-01T00:00:00Z" }, `Start At "", not "2026-12-01T00:00:00Z"`},
		{"another start deadline is a wait setting", func(in *abi.RunInput) { in.Fields.StartDeadline = "60" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := waitInput()
			in.Fields.Parameters = `{"parameters":{"day":"2026-11-22","limit":5}}`
			before, _ := drive(t, in, untilPolling...)
			in.Checkpoint, in.CheckpointSource, in.NowMS = before.Checkpoint(), "/var/tmp/task.cp", 5
			if tc.mod != nil {
				tc.mod(&in)
			} else {
				in.Fields.Parameters = `{ "parameters": { "limit": 5.0, "day": "2026-11-22" } }`
			}
			_, cmds := Start(in)
			last := lastCmd(cmds)
			if tc.want == "" {
				if last.Kind != abi.CommandHTTP || last.HTTP.Path != "/flow_runs/"+flowruntest.RunID {
					t.Fatalf("resume = %s, want the read of the flow run", jsonOf(t, cmds))
				}
				return
			}
			if last.Kind != abi.CommandFinish || last.Finish.ExitCode != abi.ExitDataValidation || last.Finish.Error == nil {
				t.Fatalf("resume = %s, want exit 20", jsonOf(t, cmds))
			}
			e := last.Finish.Error
			if !strings.Contains(last.Finish.StatusDescription, tc.want) {
				t.Errorf("status %q lacks %q", last.Finish.StatusDescription, tc.want)
			}
			if tc.name != "bad new input" && (e.Field != "checkpoint" || !strings.HasPrefix(last.Finish.StatusDescription, "Data Validation Error: Checkpoint: /var/tmp/task.cp was written for another task")) {
				t.Errorf("status %q (field %q), want it to name the checkpoint file", last.Finish.StatusDescription, e.Field)
			}
			var res abi.Result
			if err := json.Unmarshal(last.Finish.Result, &res); err != nil || res.FlowRunID != "" || res.FlowRunState != "" || res.IdempotencyKey != "" {
				t.Errorf("result %s reports the checkpoint's flow run (%v)", last.Finish.Result, err)
			}
		})
	}
}

// TestResumeTakesNewWaitSettings: a resume waits as the new task asks.
func TestResumeTakesNewWaitSettings(t *testing.T) {
	running := flowruntest.Run(StateRunning, "Running", "")
	before, _ := drive(t, waitInput(), untilPolling...)
	in := waitInput()
	in.Fields.PollInterval, in.Fields.MaxPolls, in.Fields.StreamLogs = "5", "1", "true"
	in.Checkpoint, in.NowMS = before.Checkpoint(), 5
	m, _ := Start(in)
	cmds := m.Step(httpEv(200, running, 10))
	if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || last.HTTP.Path != "/logs/filter" {
		t.Fatalf("after the resume read = %s, want the logs read (stream logs now on)", jsonOf(t, cmds))
	}
	cmds = m.Step(httpEv(200, `[]`, 20))
	if last := lastCmd(cmds); last.Kind != abi.CommandSleep || last.Sleep.DurationMS != 5000 {
		t.Fatalf("after the logs = %s, want a 5 s poll sleep", jsonOf(t, cmds))
	}
	m.Step(wokeEv(5020, nil))
	m.Step(httpEv(200, running, 5030))
	cmds = m.Step(httpEv(200, `[]`, 5040))
	if last := lastCmd(cmds); last.Kind != abi.CommandFinish || last.Finish.ExitCode != abi.ExitPollingTimeout {
		t.Fatalf("after one poll = %s, want exit 40 (max polls now 1)", jsonOf(t, cmds))
	}
}

// TestResumeKeepsScheduledStart: a relative Start At is resolved once; a
// resumed run (a new process, a later wall clock) repeats the create with
// the same scheduled time and idempotency key.
func TestResumeKeepsScheduledStart(t *testing.T) {
	const wall = 1795849200000 // 2026-11-28T07:00:00Z
	in := waitInput()
	in.NowUnixMS = wall
	in.Fields.StartAt, in.Fields.StartDeadline = "10m", "60"
	m, cmds := drive(t, in, untilCreate...)
	first := lastCmd(cmds)
	if first.Kind != abi.CommandHTTP || !strings.HasSuffix(first.HTTP.Path, "/create_flow_run") {
		t.Fatalf("want the create, got %s", jsonOf(t, first))
	}
	body := string(first.HTTP.Body)
	for _, want := range []string{`"scheduled_time":"2026-11-28T07:10:00Z"`, `"type":"SCHEDULED"`, `:start=in10m0s"`} {
		if !strings.Contains(body, want) {
			t.Errorf("create body %s lacks %s", body, want)
		}
	}
	again := waitInput()
	again.Fields.StartAt, again.Fields.StartDeadline = "10m", "60"
	again.NowUnixMS, again.NowMS = wall+3_600_000, 7
	again.Checkpoint = m.Checkpoint()
	_, cmds = Start(again)
	if got := lastCmd(cmds); got.Kind != abi.CommandHTTP || string(got.HTTP.Body) != body {
		t.Errorf("resumed create = %s, want the first body %s", jsonOf(t, got), body)
	}
}

// TestSameStart: Start At values name the same start when they give the
// same instant or the same duration, however written.
func TestSameStart(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"10m", "10m", true},
		{"10m", "600s", true},
		{"2026-11-28T07:05:00Z", "2026-11-28T08:05:00+01:00", true},
		{"10m", "20m", false},
		{"", "10m", false},
		{"2026-11-28T07:05:00Z", "", false},
		{"2026-11-28T07:05:00Z", "2026-11-28T07:05:01Z", false},
		{"10m", "2026-11-28T07:10:00Z", false},
	}
	for _, tc := range tests {
		if got := sameStart(tc.a, tc.b); got != tc.want {
			t.Errorf("sameStart(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestStartedSigns: a run has started on any sign Prefect gives, not only
// a state past SCHEDULED and PENDING: AwaitingRetry is a SCHEDULED state
// of a run that already ran.
func TestStartedSigns(t *testing.T) {
	run := func(stateType, name, extra string) string {
		return `{"id":"` + flowruntest.RunID + `","state_type":"` + stateType + `","state_name":"` + name + `"` + extra + `}`
	}
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"scheduled, never ran", run(StateScheduled, "Scheduled", `,"run_count":0,"start_time":null`), false},
		{"late, never ran", run(StateScheduled, "Late", `,"run_count":0,"start_time":null`), false},
		{"pending, never ran", run(StatePending, "Pending", `,"run_count":0,"start_time":null`), false},
		{"no such fields", run(StatePending, "Pending", ""), false},
		{"awaiting retry after a run", run(StateScheduled, "AwaitingRetry", `,"run_count":1,"start_time":"2026-11-28T07:00:05Z"`), true},
		{"a run count alone", run(StateScheduled, "AwaitingRetry", `,"run_count":1,"start_time":null`), true},
		{"a start time alone", run(StatePending, "Pending", `,"run_count":0,"start_time":"2026-11-28T07:00:05Z"`), true},
		{"running", run(StateRunning, "Running", `,"run_count":0,"start_time":null`), true},
		{"paused", run(StatePaused, "Paused", ""), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Machine{}
			m.s.Sched = &schedule{}
			m.noteSchedule(gjson.Parse(tc.body))
			if m.s.Sched.Started != tc.want {
				t.Errorf("started = %v, want %v", m.s.Sched.Started, tc.want)
			}
		})
	}
}

// TestResumeStartDeadline: on a resume the start deadline and the cancel
// setting are the resuming task's, and the deadline is judged on the wall
// clock, so the time the task was away counts. The checkpoint is taken
// while the run is SCHEDULED, 20 ms into a task that started at wall.
func TestResumeStartDeadline(t *testing.T) {
	const wall = 1795849200000 // 2026-11-28T07:00:00Z
	const minuteMS = 60_000
	scheduled := flowruntest.Run(StateScheduled, "Scheduled", "")
	tests := []struct {
		name     string
		deadline string // the first task's Start Deadline (sec)
		mod      func(in *abi.RunInput)
		// want: "exit 41", "cancel" (the set_state request) or "sleep N"
		// (a poll wait of N ms).
		want string
	}{
		{"back within the deadline", "3600", func(in *abi.RunInput) { in.NowUnixMS = wall + 10*minuteMS }, "sleep 60000"},
		{"61 minutes away: past the hour's deadline", "3600", func(in *abi.RunInput) { in.NowUnixMS = wall + 61*minuteMS }, "exit 41"},
		{"a wall clock that went back moves nothing", "3600", func(in *abi.RunInput) { in.NowUnixMS = wall - 60*minuteMS }, "sleep 60000"},
		{"no wall clock: the old time line", "3600", func(in *abi.RunInput) { in.NowUnixMS = 0 }, "sleep 60000"},
		{"the resuming task's shorter deadline", "3600", func(in *abi.RunInput) {
			in.NowUnixMS, in.Fields.StartDeadline = wall+2*minuteMS, "60"
		}, "exit 41"},
		{"the resuming task's cancel setting", "3600", func(in *abi.RunInput) {
			in.NowUnixMS, in.Fields.CancelOnDeadline = wall+61*minuteMS, "true"
		}, "cancel"},
		{"the resuming task drops the deadline", "3600", func(in *abi.RunInput) {
			in.NowUnixMS, in.Fields.StartDeadline = wall+61*minuteMS, ""
		}, "sleep 60000"},
		{"a checkpoint without a deadline gets the resuming task's", "", func(in *abi.RunInput) {
			in.NowUnixMS, in.Fields.StartDeadline = wall+2*minuteMS, "60"
		}, "exit 41"},
		{"the resuming task's longer deadline", "60", func(in *abi.RunInput) {
			in.NowUnixMS, in.Fields.StartDeadline = wall+2*minuteMS, "3600"
		}, "sleep 60000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := waitInput()
			in.NowUnixMS = wall
			in.Fields.StartDeadline = tc.deadline
			before, _ := drive(t, in, append(untilCreate[:len(untilCreate):len(untilCreate)], httpEv(201, scheduled, 20))...)
			again := waitInput()
			again.NowMS = 5
			again.Fields.StartDeadline = tc.deadline // the same task, unless mod says otherwise
			again.Checkpoint = before.Checkpoint()
			tc.mod(&again)
			m, cmds := Start(again)
			if last := lastCmd(cmds); last.Kind != abi.CommandHTTP || last.HTTP.Path != "/flow_runs/"+flowruntest.RunID {
				t.Fatalf("resume = %s, want the read of the flow run", jsonOf(t, cmds))
			}
			last := lastCmd(m.Step(httpEv(200, scheduled, 10)))
			var got string
			switch {
			case last.Kind == abi.CommandFinish:
				got = fmt.Sprintf("exit %d", last.Finish.ExitCode)
			case last.Kind == abi.CommandHTTP && strings.HasSuffix(last.HTTP.Path, "/set_state"):
				got = "cancel"
			case last.Kind == abi.CommandSleep:
				got = fmt.Sprintf("sleep %d", last.Sleep.DurationMS)
			default:
				got = jsonOf(t, last)
			}
			if got != tc.want {
				t.Errorf("after the resume read: %s, want %s", got, tc.want)
			}
		})
	}
}
