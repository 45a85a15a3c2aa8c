package host_test

import (
	"context"
	"fmt"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
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
