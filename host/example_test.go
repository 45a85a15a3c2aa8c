package host_test

import (
	"context"
	"fmt"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// Load the embedded plugin and drive its pure state machine one step at a
// time with the step export: no host function is called, the caller
// executes each command and answers it with an event.
func ExampleRuntime_Step() {
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.PluginWasm, host.WithInterpreter())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Close(ctx)
	fmt.Println("abi version:", rt.Info().ABIVersion)

	// The first step starts a run: the machine asks which credential the
	// host will attach.
	out, err := rt.Step(ctx, abi.StepInput{Input: &abi.RunInput{
		Target:       abi.TargetServer,
		APIBase:      "http://127.0.0.1:4200/api",
		Fields:       abi.Fields{Deployment: "etl/nightly", Wait: "true"},
		InvocationID: "inv-1",
		Seed:         42,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range out.Commands {
		fmt.Println("command:", c.Kind)
	}

	// Answer it; the next step resolves the deployment.
	out, err = rt.Step(ctx, abi.StepInput{
		Checkpoint: out.Checkpoint,
		Event:      &abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: abi.SchemeNone}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	last := out.Commands[len(out.Commands)-1]
	fmt.Println("command:", last.Kind, last.HTTP.Method, last.HTTP.Path)

	// A step with nothing to do is a plugin fault, reported as an error.
	_, err = rt.Step(ctx, abi.StepInput{})
	fmt.Println("error:", err)
	// Output:
	// abi version: 1
	// command: credential
	// command: http GET /deployments/name/etl/nightly
	// error: plugin step returned 1: step: want input (first step) or checkpoint and event
}

// Follow many flow runs from one process: each waiting run is a parked
// checkpoint in the store, not a live plugin instance, and the runs' polls
// go out together, up to 200 per request. Keep the store (here a
// directory) across restarts and every unfinished run resumes, with no
// second launch; each outcome is what the CLI would report.
func ExampleMonitor() {
	ctx := context.Background()
	rt, _ := host.NewRuntime(ctx, host.PluginWasm)
	defer rt.Close(ctx)
	base, _ := prefect.ValidateAPIBase("http://127.0.0.1:4200/api", false)
	store, _ := host.NewFileStore("/var/lib/scheduler/prefect-runs")
	mon, _ := host.NewMonitor(ctx, rt, host.MonitorConfig{
		Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		Store:      store,
		OnOutcome:  func(key string, out abi.RunOutput) { fmt.Println(key, out.ExitCode, out.StatusDescription) }})
	defer mon.Close()
	mon.Launch("nightly-2026-11-28", abi.Fields{Deployment: "etl/nightly"}) // the key is the idempotency key
	mon.Follow("adhoc-17", "0b6c2f4e-1d1a-4a39-9a57-58c9b3f0b5aa")          // a run launched elsewhere
}
