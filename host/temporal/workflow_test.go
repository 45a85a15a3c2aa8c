package uetemporal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// scripted answers the HTTP activity from a scenario; an exchange that
// carries an interrupt signals the workflow before answering, as a SIGTERM
// arriving while the request is in flight.
type scripted struct {
	mu     sync.Mutex
	script *flowruntest.Script
	signal func(abi.Interrupt)
}

func (s *scripted) HTTP(r abi.HTTPRequest) abi.HTTPResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex, _ := s.script.Next(r.Method, r.Path)
	if ex.Interrupt != nil {
		s.signal(*ex.Interrupt)
	}
	return ex.Response
}

type outcome struct {
	out  abi.RunOutput
	runs int // workflow runs (1 + continue-as-new count)
}

// runScenario runs one scenario as a workflow under the test environment
// (time skipping), answering HTTP from s, recording the trace in s.Trace
// and delivering the scenario's interrupt as a signal, or as a workflow
// cancellation when cancel is set. A workflow that continues as new is
// started again from its ContinueAsNew input, as the server would.
func runScenario(t *testing.T, s *flowruntest.Script, stepsPerRun int, cancel bool) outcome {
	t.Helper()
	var o outcome
	var suite testsuite.WorkflowTestSuite
	sc := s.Sc
	in := Input{Action: sc.Input.Action, Fields: sc.Input.Fields, InvocationID: sc.Input.InvocationID, Seed: sc.Input.Seed}
	var clock time.Time
	if sc.Input.NowUnixMS != 0 {
		clock = time.UnixMilli(sc.Input.NowUnixMS) // the wall clock the scenario schedules against
	}
	for o.runs = 1; ; o.runs++ {
		if o.runs > 100 {
			t.Fatal("the workflow keeps continuing as new")
		}
		env := suite.NewTestWorkflowEnvironment()
		if !clock.IsZero() {
			env.SetStartTime(clock) // the server's clock runs on across ContinueAsNew
		}
		interrupt := func(it abi.Interrupt) {
			if cancel {
				env.CancelWorkflow()
			} else {
				env.SignalWorkflow(SignalInterrupt, it)
			}
		}
		wf := &Workflow{
			StepsPerRun: stepsPerRun,
			Trace:       s.Trace.Call,
			BeforeCommand: func(c abi.Command) {
				if c.Kind != abi.CommandSleep {
					return
				}
				if s.SleepInterrupted() {
					interrupt(*sc.Interrupt)
				} else if ms, ok := s.SleepWoken(*c.Sleep); ok {
					env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalWake, nil) }, time.Duration(ms)*time.Millisecond)
				}
			},
		}
		wf.Register(env)
		acts := &Activities{
			Effects: &scripted{script: s, signal: interrupt},
			Conn:    Connection{Target: sc.Input.Target, APIBase: sc.Input.APIBase, UIBase: sc.Input.UIBase, Credential: sc.Credential},
		}
		acts.Register(env)
		env.ExecuteWorkflow(WorkflowName, in)
		if !env.IsWorkflowCompleted() {
			t.Fatal("workflow did not complete")
		}
		clock = env.Now()
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			in = Input{}
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("workflow error: %v", err)
		}
		if err := env.GetWorkflowResult(&o.out); err != nil {
			t.Fatal(err)
		}
		return o
	}
}

const testdata = "../../plugin/flowrun/testdata"

func scenarios(t *testing.T) map[string]*flowruntest.Scenario {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testdata, "scenarios", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	all := map[string]*flowruntest.Scenario{}
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := flowruntest.Parse(string(text))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all[strings.TrimSuffix(filepath.Base(f), ".txt")] = sc
	}
	return all
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "golden", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGoldenScenarios: every golden scenario of the state machine gives
// the identical trace as a workflow under the SDK's test environment, in
// one workflow run and continuing as new after every answered command.
func TestGoldenScenarios(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		steps int
	}{{"one-run", 0}, {"continue-as-new-each-step", 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			flowruntest.Each(t, testdata, func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
				o := runScenario(t, s, tc.steps, false)
				if tc.steps == 1 && o.runs < 2 && strings.Contains(s.Trace.String(), "==> sleep") {
					t.Errorf("the workflow slept but never continued as new")
				}
				return o.out
			})
		})
	}
}

// TestCancellation: a workflow cancellation is an interrupt like SIGTERM
// (exit 143) that the machine keeps being served after: the traces are the
// goldens' with the reason "cancellation".
func TestCancellation(t *testing.T) {
	all := scenarios(t)
	for _, name := range []string{"interrupt_cancel", "interrupt_cancel_terminal", "interrupt_leave", "interrupt_during_create"} {
		t.Run(name, func(t *testing.T) {
			sc := all[name]
			if sc == nil {
				t.Fatalf("no scenario %s", name)
			}
			s := flowruntest.NewScript(sc)
			o := runScenario(t, s, 0, true)
			s.Trace.Finish(o.out)
			want := strings.ReplaceAll(golden(t, name), "SIGTERM", CancelledReason)
			if got := s.Trace.String(); got != want {
				t.Errorf("trace differs:\n--- got\n%s--- want\n%s", got, want)
			}
			if o.out.ExitCode != abi.ExitInterruptedSIGTERM {
				t.Errorf("exit %d, want %d", o.out.ExitCode, abi.ExitInterruptedSIGTERM)
			}
		})
	}
}

// failingOnce fails the first HTTP activity for one path, as a worker that
// died mid-request, then answers from the script.
type failingOnce struct {
	scripted
	path  string
	calls int
}

func (f *failingOnce) HTTPActivity(ctx context.Context, r abi.HTTPRequest) (abi.HTTPResponse, error) {
	if r.Path == f.path {
		if f.calls++; f.calls == 1 {
			return abi.HTTPResponse{}, errors.New("worker lost")
		}
	}
	return f.HTTP(r), nil
}

// TestActivityFailureIsTheMachines: a failed HTTP activity is not retried
// by the SDK: the machine sees a transport error and repeats the
// (idempotent) create itself, as the CLI does.
func TestActivityFailureIsTheMachines(t *testing.T) {
	sc := scenarios(t)["wait_completed"]
	// The create's answer is scripted once; the failed attempt consumes none.
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	var trace flowruntest.Trace
	(&Workflow{Trace: trace.Call}).Register(env)
	create := flowruntest.Expand("/deployments/DEP/create_flow_run")
	f := &failingOnce{scripted: scripted{script: flowruntest.NewScript(sc)}, path: create}
	env.RegisterActivityWithOptions(f.HTTPActivity, activity.RegisterOptions{Name: ActivityHTTP})
	acts := &Activities{Conn: Connection{Target: sc.Input.Target, APIBase: sc.Input.APIBase, Credential: sc.Credential}}
	env.RegisterActivityWithOptions(acts.Connection, activity.RegisterOptions{Name: ActivityConnection})
	env.ExecuteWorkflow(WorkflowName, Input{Fields: sc.Input.Fields, InvocationID: sc.Input.InvocationID, Seed: sc.Input.Seed})
	var out abi.RunOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != abi.ExitSuccess {
		t.Errorf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	if f.calls != 2 {
		t.Errorf("create attempted %d times, want 2 (one failed activity, one machine retry)", f.calls)
	}
	got := trace.String()
	if !strings.Contains(got, `<== error reset "the HTTP activity failed: worker lost`) {
		t.Errorf("the machine did not see the failed activity:\n%s", got)
	}
	if !strings.Contains(got, "==> sleep") || strings.Count(got, `==> prefect_http {"method":"POST","path":"`+create) != 2 {
		t.Errorf("want a retry sleep and two creates:\n%s", got)
	}
}
