package flowrun_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// FuzzParseFields feeds arbitrary text to every field: ParseFields never
// panics, and returns either a Config that encodes as JSON or an
// invalid_input error naming a field.
func FuzzParseFields(f *testing.F) {
	f.Add(uint8(0), "acme/prod", "", "etl/nightly", "run-1", `{"parameters":{"day":"mon"},"tags":["a"]}`, "true", "60", "", "Include Flow Run Metadata", "k", "yes", "30", "900", "")
	f.Add(uint8(0), "", "", testUUID, "", "", "no", " 5 ", "3", "No Metadata", "", "", "", "0", "")
	f.Add(uint8(0), "", "", "", "", "", "", "", "", "", "", "", "", "", testUUID)
	f.Add(uint8(1), "Production", "acme", "", "", "", "", "", "", "", "", "", "", "", "")
	f.Add(uint8(2), "a/b/c", "", "a/", "\x00", `{"x":null}`, "maybe", "86401", "0", "junk", "\xff", "2", "3601", "-1", "nope")
	f.Add(uint8(0), "", "", "a&b", "", `{"tags":[1]}`, "", "abc", "", "", "", "", "", "", "")
	f.Add(uint8(0), "", "", "nightly", "", `{"parameters":{"a":`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`}}`, "", "", "", "", "", "", "", "", "")
	f.Add(uint8(0), "", "", "nightly", "", `{"parameters":{},"parameters":{}}`, "", "", "", "", "", "", "", "", "")
	actions := []string{abi.ActionLaunchFlowRun, abi.ActionListWorkspaces, abi.ActionListDeployments, "", "bogus"}
	f.Fuzz(func(t *testing.T, a uint8, ws, acct, dep, name, params, wait, poll, maxPolls, meta, key, cancel, grace, outage, runID string) {
		action := actions[int(a)%len(actions)]
		in := abi.Fields{
			Workspace: ws, Account: acct, Deployment: dep, FlowRunName: name, Parameters: params, Wait: wait,
			PollInterval: poll, MaxPolls: maxPolls, IncludeMetadata: meta, IdempotencyKey: key,
			CancelOnInterrupt: cancel, CancelGrace: grace, OutageBudget: outage, FlowRunID: runID,
		}
		c, err := flowrun.ParseFields(action, in)
		if err != nil {
			if err.Code != abi.CodeInvalidInput || err.Field == "" || err.Message == "" {
				t.Fatalf("ParseFields(%q, %+v) error = %#v, want an invalid_input error naming a field", action, in, err)
			}
			return
		}
		if c.PollInterval < 1000 || c.PollInterval > abi.MaxPollInterval*1000 || c.MaxPolls < 0 || c.CancelGrace < 1000 || c.OutageBudget < 0 {
			t.Fatalf("ParseFields(%q, %+v) = %+v, a number out of range", action, in, c)
		}
		if action == abi.ActionLaunchFlowRun && c.Deployment == "" && !flowrun.IsUUID(c.FlowRunID) {
			t.Fatalf("ParseFields(%q, %+v) = %+v without a deployment or flow run id", action, in, c)
		}
		// The machine sends the parameters as part of a JSON body.
		if _, err := json.Marshal(c); err != nil {
			t.Fatalf("ParseFields(%q, %+v) = %+v, which does not encode: %v", action, in, c, err)
		}
	})
}

// FuzzCheckJSON checks CheckJSON against encoding/json: it never accepts
// what encoding/json rejects, and accepts every valid document within the
// depth limit.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[1,"a",{"b":null}]`, `{"a":"\"[[["}`, `{"a":"\\"}`, `"\ud800"`, `1e999`, `-0`, `01`, `{"a":1,}`, "\"\x7f\"", `[[[[[[[[[[]]]]]]]]]]`, " \t\r\n1", `tru`, `"\u00"`} {
		f.Add(s, uint8(64))
	}
	f.Fuzz(func(t *testing.T, s string, depth uint8) {
		maxDepth := int(depth % 130)
		got := flowrun.CheckJSON(s, maxDepth)
		valid := json.Valid([]byte(s))
		if got == "" && !valid {
			t.Fatalf("CheckJSON(%q, %d) = \"\", but encoding/json.Valid = false", s, maxDepth)
		}
		if valid && jsonDepth(s) <= maxDepth && got != "" {
			t.Fatalf("CheckJSON(%q, %d) = %q, want \"\" for a valid document %d deep", s, maxDepth, got, jsonDepth(s))
		}
	})
}

// jsonDepth is the nesting depth of a valid JSON document.
func jsonDepth(s string) int {
	dec := json.NewDecoder(strings.NewReader(s))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// MaxSteps bounds a fuzzed run: the bytes drive at most MaxSteps/2 steps;
// after that every request fails with 503 and every sleep completes, and
// the machine must give up within MaxSteps in all, by its retry and outage
// budgets.
const MaxSteps = 10_000

var (
	fuzzStatuses = []int{200, 201, 404, 409, 429, 503, 400, 401, 403, 422, 500, 502, 504, 408, 204, 302}
	fuzzKinds    = []abi.TransportKind{abi.TransportConnect, abi.TransportTimeout, abi.TransportReset, abi.TransportTLS,
		abi.TransportTooLarge, abi.TransportRedirect, abi.TransportForbidden, abi.TransportInterrupted, "bogus"}
	fuzzSchemes = []string{abi.SchemeBearer, abi.SchemeBasic, abi.SchemeNone, "", "kerberos"}
)

// fuzzCorpus holds the bodies and inputs the fuzz bytes choose from, and
// the golden scenarios encoded as seeds. It is built once, in a fixed
// order, so a byte string always means the same run.
type fuzzCorpus struct {
	bodies []string
	inputs []abi.RunInput
	seeds  []fuzzSeed
	// outcomes are the scenarios' outcomes under their own scripts.
	outcomes []abi.RunOutput
}

type fuzzSeed struct {
	variant uint8
	data    []byte
}

var (
	corpusOnce sync.Once
	corpus     fuzzCorpus
	corpusErr  error
)

func machineCorpus(tb testing.TB) *fuzzCorpus {
	corpusOnce.Do(func() { corpusErr = corpus.build() })
	if corpusErr != nil {
		tb.Fatal(corpusErr)
	}
	return &corpus
}

func (c *fuzzCorpus) build() error {
	const (
		otherUUID = "9e8d7c6b-5a49-4382-a716-f5e4d3c2b1a0"
	)
	dep := flowruntest.Deployment()
	flow := `{"id":"` + flowruntest.FlowID + `","name":"etl"}`
	running := flowruntest.Run(flowrun.StateRunning, "Running", "")
	c.bodies = []string{"", dep, flow, `[` + flow + `]`, `[` + dep + `]`,
		`[` + dep + `,` + strings.Replace(dep, flowruntest.DeploymentID, otherUUID, 1) + `]`}
	for _, st := range []string{"SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"} {
		c.bodies = append(c.bodies, flowruntest.Run(st, strings.ToUpper(st[:1])+strings.ToLower(st[1:]), "it happened"))
	}
	ws := `{"account_id":"` + flowruntest.AccountID + `","account_handle":"acme","account_name":"Acme","workspace_id":"` + flowruntest.WorkspaceID + `","workspace_handle":"prod","workspace_name":"Production"}`
	ws2 := strings.NewReplacer(flowruntest.WorkspaceID, otherUUID, "prod", "staging", "Production", "Staging").Replace(ws)
	var page []string
	for i := 0; i < 200; i++ {
		page = append(page, fmt.Sprintf(`{"id":"%08x-0000-4000-8000-000000000000","name":"d%d","flow_id":"%s"}`, i, i, flowruntest.FlowID))
	}
	c.bodies = append(c.bodies,
		`[`+ws+`]`, `[`+ws+`,`+ws2+`]`, `[`+ws+`,`+ws+`]`, `[{"account_id":"x","workspace_id":"y"}]`,
		`[`+strings.Join(page, ",")+`]`,
		// set_state answers.
		`{"status":"ACCEPT","state":{"type":"CANCELLING","name":"Cancelling"}}`,
		`{"status":"ACCEPT","state":{"type":"CANCELLED","name":"Cancelled"}}`,
		`{"status":"REJECT","state":{"type":"CANCELLED","name":"Cancelled"},"details":{"reason":"already"}}`,
		`{"status":"REJECT","state":{"type":"RUNNING"},"details":{"reason":"no"}}`,
		`{"status":"ABORT","details":{"reason":"This run has already terminated."}}`,
		`{"status":"WAIT","details":{"delay_seconds":1}}`,
		`{"status":"WAIT","details":{"delay_seconds":0}}`,
		`{"status":"WAIT","details":{"delay_seconds":-5}}`,
		`{"status":"WAIT","details":{"delay_seconds":1e9}}`,
		`{"status":"WAIT","details":{"delay_seconds":9223372036854774}}`,
		`{"status":"WAIT","details":{"delay_seconds":1e308}}`,
		// Error bodies.
		`{"detail":"Not found"}`,
		`{"detail":[{"loc":["body","parameters"],"msg":"field required","type":"missing"}]}`,
		`{"exception_message":"Invalid Parameters","exception_detail":[{"loc":["day"],"msg":"required"},{"loc":[],"msg":""}]}`,
		`{"detail":"Run is in PAUSED state.","status":"REJECT"}`,
		// Broken objects.
		`{}`, `[]`, `null`, `"str"`, `true`, `1e999`, `123456789012345678901234567890`, `[1,2,3]`, `[null]`, `[{}]`,
		`{"id":123}`, `{"id":["x"]}`, `{"id":null,"name":null}`, `{"state_type":"RUNNING"}`,
		`{"id":"`+flowruntest.RunID+`","state_type":"WEIRD"}`,
		`{"id":"`+flowruntest.RunID+`","state_type":null}`,
		`{"id":"`+flowruntest.RunID+`","state_type":"RUNNING","name":1e999,"state":{"message":{"a":[1]}}}`,
		strings.Replace(running, flowruntest.RunID, otherUUID, 1),
		strings.Replace(running, flowruntest.RunID, strings.ToUpper(flowruntest.RunID), 1),
		strings.Replace(running, `"state_type":"RUNNING"`, `"state_type":123`, 1),
		strings.Replace(running, `"id":"`+flowruntest.RunID+`"`, `"id":42`, 1),
		`[`+running+`]`,
		strings.Replace(dep, `"flow_id"`, `"flow"`, 1),
		strings.Replace(dep, `"id":"`+flowruntest.DeploymentID+`"`, `"id":["`+flowruntest.DeploymentID+`"]`, 1),
		strings.Replace(dep, `"name":"nightly"`, `"name":""`, 1),
		strings.Replace(dep, `"properties":{`, `"properties":{"x":{},`, 1),
		strings.Replace(dep, `"parameter_openapi_schema":{`, `"paused":true,"status":"NOT_READY","parameter_openapi_schema":{`, 1),
		strings.Replace(flow, `"name":"etl"`, `"name":7`, 1),
		`{"id":"`+flowruntest.FlowID+`"}`,
		strings.Repeat("[", 200)+strings.Repeat("]", 200),
		`{"a":`+strings.Repeat(`{"a":`, 130)+`1`+strings.Repeat("}", 131),
		`<html><body>502 Bad Gateway</body></html>`,
		`{"id":"`,
		"\xff\xfe not utf-8",
		strings.Replace(running, `"tidy-fox"`, "\"tidy-f\xf6x\"", 1),
		"{\"detail\":\"locked \xff\"}",
	)

	// The input variants: the four kinds of launch, both targets and both
	// listings, then every scenario's own input.
	server := func(fields abi.Fields) abi.RunInput {
		return abi.RunInput{Target: abi.TargetServer, APIBase: "http://prefect.test/api", InvocationID: "inv-f", Seed: 7, Fields: fields}
	}
	cloud := func(action string, fields abi.Fields) abi.RunInput {
		return abi.RunInput{Action: action, Target: abi.TargetCloud, APIBase: "https://api.prefect.cloud/api", InvocationID: "inv-f", Seed: 7, Fields: fields}
	}
	c.inputs = []abi.RunInput{
		server(abi.Fields{Deployment: "etl/nightly", Wait: "true", PollInterval: "5"}),
		server(abi.Fields{Deployment: "nightly", Wait: "true", CancelOnInterrupt: "true", CancelGrace: "5", PollInterval: "1"}),
		server(abi.Fields{Deployment: flowruntest.DeploymentID, Parameters: `{"parameters":{"day":"mon"},"tags":["t"]}`}),
		server(abi.Fields{FlowRunID: flowruntest.RunID, Wait: "true", MaxPolls: "3", IncludeMetadata: "No Metadata"}),
		server(abi.Fields{Deployment: "etl/nightly", Wait: "true", OutageBudget: "0", PollInterval: "1"}),
		server(abi.Fields{Deployment: "etl/nightly", Wait: "true", CancelOnInterrupt: "true", CancelGrace: "3600", PollInterval: "86400", OutageBudget: "3600"}),
		cloud("", abi.Fields{Workspace: "acme/prod", Deployment: "etl/nightly", Wait: "true", CancelOnInterrupt: "true"}),
		cloud("", abi.Fields{Workspace: "Production", Deployment: "nightly"}),
		cloud(abi.ActionListWorkspaces, abi.Fields{}),
		cloud(abi.ActionListDeployments, abi.Fields{Workspace: "prod"}),
		{Action: abi.ActionListDeployments, Target: abi.TargetServer, APIBase: "http://127.0.0.1:4200/api", Seed: 1},
		server(abi.Fields{Deployment: "etl/nightly", PollInterval: "x"}),
	}

	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no scenarios: %v", err)
	}
	var scenarios []*flowruntest.Scenario
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sc, err := flowruntest.Parse(string(text))
		if err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		scenarios = append(scenarios, sc)
		c.inputs = append(c.inputs, sc.Input)
		for _, ex := range sc.Exchanges {
			r := ex.Response
			if r.Status != 0 && !slices.Contains(fuzzStatuses, r.Status) {
				fuzzStatuses = append(fuzzStatuses, r.Status)
			}
			for _, b := range []string{string(r.Body), r.BodyText} {
				if b != "" && !slices.Contains(c.bodies, b) {
					c.bodies = append(c.bodies, b)
				}
			}
		}
	}
	if len(c.bodies) > 256 || len(c.inputs) > 256 || len(fuzzStatuses) > 256 {
		return fmt.Errorf("corpus too large for one-byte choices: %d bodies, %d inputs", len(c.bodies), len(c.inputs))
	}
	for i, sc := range scenarios {
		data, err := c.encode(sc)
		if err != nil {
			return fmt.Errorf("%s: %v", files[i], err)
		}
		c.seeds = append(c.seeds, fuzzSeed{variant: uint8(len(c.inputs) - len(scenarios) + i), data: data})
		c.outcomes = append(c.outcomes, flowrun.Run(flowruntest.NewScript(sc), sc.Input))
	}
	return nil
}

// encode turns a scenario into the fuzz bytes that replay it: the
// scenario's script answers, and each answer is written as the byte
// choices fuzzEvents decodes.
func (c *fuzzCorpus) encode(sc *flowruntest.Scenario) ([]byte, error) {
	s := flowruntest.NewScript(sc)
	var data []byte
	m, cmds := flowrun.Start(sc.Input)
	var intr *abi.Interrupt
	for steps := 0; steps < MaxSteps; steps++ {
		last := cmds[len(cmds)-1]
		var ev abi.Event
		switch last.Kind {
		case abi.CommandFinish:
			return data, nil
		case abi.CommandCredential:
			r := s.Credential(abi.CredentialRequest{})
			a := byte(slices.Index(fuzzSchemes, r.Scheme))
			if r.Error != "" {
				a |= 8
			}
			data = append(data, a)
			ev = abi.Event{Kind: abi.EventCredential, Credential: &r}
		case abi.CommandSleep:
			r := s.Sleep(*last.Sleep)
			a := byte(0)
			if r.Interrupt != nil && intr == nil {
				a = 1
				if r.Interrupt.ExitCode == abi.ExitInterruptedSIGINT {
					a |= 2
				}
			}
			intr = r.Interrupt
			if r.Woken {
				// Woken by an event: how long the sleep lasted, in two bytes.
				waited := r.NowMS - s.NowMSBefore()
				if waited < 0 || waited > 0xffff {
					return nil, fmt.Errorf("a woken sleep of %d ms does not fit the encoding", waited)
				}
				data = append(data, a|2, byte(waited>>8), byte(waited))
			} else {
				data = append(data, a)
			}
			ev = abi.Event{Kind: abi.EventWoke, Woke: &r}
		case abi.CommandHTTP:
			r := s.HTTP(*last.HTTP)
			a := byte(0)
			if r.Interrupt != nil && intr == nil {
				a |= 0x20
				if r.Interrupt.ExitCode == abi.ExitInterruptedSIGINT {
					a |= 0x40
				}
			}
			intr = r.Interrupt
			if r.Error != nil {
				data = append(data, a|12, byte(slices.Index(fuzzKinds, r.Error.Kind)))
			} else {
				body := string(r.Body)
				if body == "" {
					body = r.BodyText
				}
				if r.RetryAfterMS > 0 {
					a |= 0x10
				}
				data = append(data, a, byte(slices.Index(fuzzStatuses, r.Status)), byte(slices.Index(c.bodies, body)))
				if r.RetryAfterMS > 0 {
					data = append(data, byte(min(r.RetryAfterMS/1000, 254)))
				}
			}
			ev = abi.Event{Kind: abi.EventHTTP, HTTP: &r}
		}
		cmds = m.Step(ev)
	}
	return nil, errors.New("the scenario does not finish")
}

// fuzzEvents answers the machine's commands from fuzz bytes, then, once
// they run out, with failures that only the machine's budgets end.
type fuzzEvents struct {
	c    *fuzzCorpus
	data []byte
	now  int64
	intr *abi.Interrupt
}

func (e *fuzzEvents) next() (byte, bool) {
	if len(e.data) == 0 {
		return 0, false
	}
	b := e.data[0]
	e.data = e.data[1:]
	return b, true
}

func (e *fuzzEvents) advance(ms int64) {
	if ms > 0 {
		e.now = min(e.now+ms, 1<<52) // saturate: the host's clock is monotonic
	}
}

func (e *fuzzEvents) interrupt(sigint bool) {
	if e.intr != nil {
		return // once reported, the first interrupt is repeated
	}
	e.intr = &abi.Interrupt{Reason: "SIGTERM", ExitCode: abi.ExitInterruptedSIGTERM}
	if sigint {
		e.intr = &abi.Interrupt{Reason: "SIGINT", ExitCode: abi.ExitInterruptedSIGINT}
	}
}

// answer returns the event for the last command; exhausted forces the
// fallback answers.
func (e *fuzzEvents) answer(cmd abi.Command, exhausted bool) abi.Event {
	if exhausted {
		e.data = nil
	}
	switch cmd.Kind {
	case abi.CommandCredential:
		a, ok := e.next()
		if !ok {
			return abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: abi.SchemeBearer, Source: "env PREFECT_API_KEY"}}
		}
		r := &abi.CredentialResponse{Scheme: fuzzSchemes[int(a&7)%len(fuzzSchemes)], Source: "env PREFECT_API_KEY"}
		if a&8 != 0 {
			r.Error = "cannot read secret file /run/secrets/prefect"
		}
		return abi.Event{Kind: abi.EventCredential, Credential: r}
	case abi.CommandSleep:
		d := cmd.Sleep.DurationMS
		a, ok := e.next()
		woken := false
		switch {
		case ok && a&1 != 0:
			e.interrupt(a&2 != 0)
			e.advance(d * int64(a>>2) / 64)
		case ok && a&2 != 0:
			// An event ends the sleep early (whether or not it asked to be
			// woken: the machine must cope either way).
			hi, _ := e.next()
			lo, _ := e.next()
			e.advance(min(d, int64(hi)<<8|int64(lo)))
			woken = true
		default:
			e.advance(d)
		}
		return abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: e.now, Interrupt: e.intr, Woken: woken}}
	default:
		r := &abi.HTTPResponse{}
		a, ok := e.next()
		if !ok {
			r.Status = 503
			r.Body = json.RawMessage(`{"detail":"Service Unavailable"}`)
		} else {
			if a&0x80 != 0 {
				d, _ := e.next()
				e.advance(int64(d) * int64(d) * 100)
			}
			if a&0x20 != 0 {
				e.interrupt(a&0x40 != 0)
			}
			if a&0x0f >= 12 {
				k, _ := e.next()
				r.Error = &abi.TransportError{Kind: fuzzKinds[int(k)%len(fuzzKinds)], Message: "fuzzed failure"}
			} else {
				s, _ := e.next()
				b, _ := e.next()
				r.Status = fuzzStatuses[int(s)%len(fuzzStatuses)]
				if body := e.c.bodies[int(b)%len(e.c.bodies)]; json.Valid([]byte(body)) {
					r.Body = json.RawMessage(body)
				} else {
					r.BodyText = body
				}
				if a&0x10 != 0 {
					ra, _ := e.next()
					r.RetryAfterMS = int64(ra) * 1000
					if ra == 255 {
						r.RetryAfterMS = 1 << 40
					}
				}
			}
		}
		r.NowMS, r.Interrupt = e.now, e.intr
		return abi.Event{Kind: abi.EventHTTP, HTTP: r}
	}
}

// FuzzMachine drives a machine with arbitrary answers and checks its
// contract at every step; see runFuzzMachine.
func FuzzMachine(f *testing.F) {
	c := machineCorpus(f)
	for _, s := range c.seeds {
		f.Add(s.variant, s.data)
	}
	for v := range c.inputs[:12] {
		f.Add(uint8(v), []byte{})
		f.Add(uint8(v), []byte{0, 0, 1, 0, 0, 2, 1, 0, 3, 0x10, 4, 10, 0x2c, 0, 0x80, 200, 0, 0, 9})
	}
	f.Fuzz(func(t *testing.T, variant uint8, data []byte) {
		runFuzzMachine(t, c, c.inputs[int(variant)%len(c.inputs)], data)
	})
}

// TestMachineSeeds runs FuzzMachine's checks over every golden scenario
// and a few hand-made byte strings, so plain go test covers them.
func TestMachineSeeds(t *testing.T) {
	c := machineCorpus(t)
	if len(c.seeds) == 0 {
		t.Fatal("no seeds")
	}
	for i, s := range c.seeds {
		t.Run(fmt.Sprint("scenario", i), func(t *testing.T) {
			got := runFuzzMachine(t, c, c.inputs[s.variant], s.data)
			// The seed replays its scenario: the same outcome as the script,
			// but for transport messages and credential sources, which the
			// bytes do not encode.
			want := c.outcomes[i]
			if got.ExitCode != want.ExitCode || !bytes.Equal(got.Result, want.Result) || (got.Error == nil) != (want.Error == nil) ||
				got.Error != nil && (got.Error.Code != want.Error.Code || got.Error.Field != want.Error.Field) {
				t.Errorf("seed outcome = %s, want the scenario's %s", mustJSON(t, got), mustJSON(t, want))
			}
		})
	}
	for v, in := range c.inputs {
		t.Run(fmt.Sprint("exhausted", v), func(t *testing.T) {
			runFuzzMachine(t, c, in, nil)
		})
	}
}

// runFuzzMachine steps a machine started from in with answers from data
// and checks, at every step: commands are well formed and end with one
// that expects an answer (or finish); Checkpoint survives Restore exactly
// and the restored machine answers the same event identically; machine
// time never goes backwards; the run finishes within MaxSteps; and a
// finished machine keeps finishing the same way.
func runFuzzMachine(t *testing.T, c *fuzzCorpus, in abi.RunInput, data []byte) *abi.RunOutput {
	t.Helper()
	ev := &fuzzEvents{c: c, data: data, now: in.NowMS}
	m, cmds := flowrun.Start(in)
	lastNow := int64(-1 << 62)
	for step := 0; ; step++ {
		last := checkCommands(t, step, cmds)
		if last.Kind == abi.CommandFinish {
			checkFinish(t, last.Finish)
			for _, e := range []abi.Event{{}, {Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 200}}} {
				again := m.Step(e)
				if len(again) != 1 || again[0].Kind != abi.CommandFinish || !bytes.Equal(mustJSON(t, again[0].Finish), mustJSON(t, last.Finish)) {
					t.Fatalf("Step(%+v) after finish = %s, want the same finish", e, mustJSON(t, again))
				}
			}
			return last.Finish
		}
		if step >= MaxSteps {
			t.Fatalf("no finish after %d steps; last commands %s", MaxSteps, mustJSON(t, cmds))
		}
		cp := m.Checkpoint()
		now := checkpointNow(t, cp)
		if now < lastNow {
			t.Fatalf("step %d: machine time went back from %d to %d", step, lastNow, now)
		}
		lastNow = now
		m2, err := flowrun.Restore(cp)
		if err != nil {
			t.Fatalf("step %d: Restore(Checkpoint()) = %v", step, err)
		}
		if cp2 := m2.Checkpoint(); !bytes.Equal(cp, cp2) {
			t.Fatalf("step %d: Restore(cp).Checkpoint() =\n%s, want\n%s", step, cp2, cp)
		}
		e := wire(t, ev.answer(last, step >= MaxSteps/2))
		cmds = m.Step(e)
		if cmds2 := m2.Step(e); !bytes.Equal(mustJSON(t, cmds), mustJSON(t, cmds2)) {
			t.Fatalf("step %d: a restored machine answered %s with\n%s, want\n%s", step, mustJSON(t, e), mustJSON(t, cmds2), mustJSON(t, cmds))
		}
	}
}

// wire returns an event as the plugin receives it: encoded by the host and
// decoded by the plugin, which replaces invalid UTF-8 in strings (but not
// in the raw JSON of a body).
func wire(t *testing.T, e abi.Event) abi.Event {
	t.Helper()
	var out abi.Event
	if err := json.Unmarshal(mustJSON(t, e), &out); err != nil {
		t.Fatalf("Unmarshal(%s) = %v", mustJSON(t, e), err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%v) = %v", v, err)
	}
	return b
}

func checkpointNow(t *testing.T, cp []byte) int64 {
	t.Helper()
	var s struct {
		Now int64 `json:"now_ms"`
	}
	if err := json.Unmarshal(cp, &s); err != nil {
		t.Fatalf("checkpoint %s: %v", cp, err)
	}
	return s.Now
}

// checkCommands checks one step's commands and returns the last.
func checkCommands(t *testing.T, step int, cmds []abi.Command) abi.Command {
	t.Helper()
	if len(cmds) == 0 {
		t.Fatalf("step %d: no commands", step)
	}
	for i, c := range cmds {
		bad := ""
		switch c.Kind {
		case abi.CommandLog:
			if c.Log == nil || c.Log.Message == "" || !slices.Contains([]string{abi.LevelDebug, abi.LevelInfo, abi.LevelWarn, abi.LevelError}, c.Log.Level) {
				bad = "bad log"
			}
		case abi.CommandProgress:
			if c.Progress == nil || !json.Valid(c.Progress.Checkpoint) {
				bad = "bad progress"
			}
		case abi.CommandHTTP:
			r := c.HTTP
			switch {
			case r == nil:
				bad = "no request"
			case r.Method != "GET" && r.Method != "POST":
				bad = "bad method"
			case !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "//") || strings.Contains(r.Path, "/../") || strings.ContainsAny(r.Path, "?#\\ "):
				bad = "bad path"
			case r.Method == "POST" && !json.Valid(r.Body), r.Method == "GET" && len(r.Body) > 0:
				bad = "bad body"
			}
		case abi.CommandSleep:
			if c.Sleep == nil || c.Sleep.DurationMS < 0 || c.Sleep.DurationMS > abi.MaxPollInterval*1000 {
				bad = "bad sleep"
			}
		case abi.CommandCredential:
		case abi.CommandFinish:
			if c.Finish == nil {
				bad = "no outcome"
			}
		default:
			bad = "unknown kind"
		}
		answered := c.Kind == abi.CommandHTTP || c.Kind == abi.CommandSleep || c.Kind == abi.CommandCredential || c.Kind == abi.CommandFinish
		if answered != (i == len(cmds)-1) {
			bad = "only the last command may expect an answer, and it must"
		}
		if bad != "" {
			t.Fatalf("step %d: command %d of %s: %s", step, i, mustJSON(t, cmds), bad)
		}
	}
	return cmds[len(cmds)-1]
}

// checkFinish checks an outcome is self-consistent.
func checkFinish(t *testing.T, out *abi.RunOutput) {
	t.Helper()
	if !json.Valid(out.Result) || !bytes.HasPrefix(out.Result, []byte("{")) {
		t.Fatalf("finish result %s is not a JSON object", out.Result)
	}
	if (out.ExitCode == abi.ExitSuccess) != (out.Error == nil) {
		t.Fatalf("finish %s: exit 0 if and only if there is no error", mustJSON(t, out))
	}
	if !strings.HasPrefix(out.StatusDescription, strings.TrimSpace(abi.StatusDescription(out.ExitCode, ""))) {
		t.Fatalf("finish %s: status description does not match exit code %d", mustJSON(t, out), out.ExitCode)
	}
	if out.Error == nil {
		return
	}
	switch {
	case out.Error.Code == "" || out.Error.Message == "":
		t.Fatalf("finish %s: error without a code or message", mustJSON(t, out))
	case out.Error.Code == abi.CodeInterrupted:
		if out.ExitCode != abi.ExitInterruptedSIGINT && out.ExitCode != abi.ExitInterruptedSIGTERM {
			t.Fatalf("finish %s: interrupted with exit %d", mustJSON(t, out), out.ExitCode)
		}
	case out.ExitCode != out.Error.Code.ExitCode():
		t.Fatalf("finish %s: exit %d, but code %s means %d", mustJSON(t, out), out.ExitCode, out.Error.Code, out.Error.Code.ExitCode())
	}
}
