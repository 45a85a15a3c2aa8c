package host_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
)

// BenchmarkStepPoll is the CPU of one poll of a waiting run through the
// step export, as the Monitor makes it: the wake (the machine asks for a
// read) and the answer (the machine asks for the next sleep), two steps on
// one reused instance. The plugin runs compiled, from a fresh cache.
//
//	go test -run '^$' -bench StepPoll ./host/
func BenchmarkStepPoll(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	wasm := host.PluginWasm
	cold, err := host.NewRuntime(ctx, wasm, host.WithCacheDir(dir))
	if err != nil {
		b.Fatal(err)
	}
	cold.WaitCache(ctx)
	cold.Close(ctx)
	rt, err := host.NewRuntime(ctx, wasm, host.WithCacheDir(dir))
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	s, err := rt.NewStepper(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)

	const id = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	run, _ := json.Marshal(map[string]any{"id": id, "name": "bench-run", "deployment_id": "0b6c2f4e-1d1a-4a39-9a57-58c9b3f0b5aa",
		"flow_id": "9d0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "state_type": "RUNNING", "state_name": "Running",
		"state": map[string]any{"type": "RUNNING", "name": "Running"}, "run_count": 1, "start_time": "2026-12-02T10:00:00Z",
		"parameters": map[string]any{"n": 1}, "tags": []string{}})
	var cp json.RawMessage
	now := int64(1000)
	step := func(in abi.StepInput) abi.Command {
		in.Checkpoint = cp
		out, err := s.Step(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		cp = out.Checkpoint
		var last abi.Command
		for _, c := range out.Commands {
			if c.Kind != abi.CommandLog && c.Kind != abi.CommandProgress {
				last = c
			}
		}
		return last
	}
	// untilSleep answers the machine's commands until it sleeps.
	untilSleep := func(c abi.Command) {
		for {
			switch c.Kind {
			case abi.CommandSleep:
				now += c.Sleep.DurationMS
				return
			case abi.CommandCredential:
				c = step(abi.StepInput{Event: &abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: abi.SchemeNone}}})
			case abi.CommandHTTP:
				now += 20
				c = step(abi.StepInput{Event: &abi.Event{Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 200, Body: run, NowMS: now}}})
			default:
				b.Fatalf("the machine gave %q, want it to wait", c.Kind)
			}
		}
	}
	untilSleep(step(abi.StepInput{Input: &abi.RunInput{Target: abi.TargetServer, APIBase: "http://127.0.0.1:4200/api",
		Fields:       abi.Fields{FlowRunID: id, Wait: "true", PollInterval: "60", IncludeMetadata: "false"},
		InvocationID: "0123456789abcdef0123456789abcdef", Seed: 1, NowMS: now, NowUnixMS: 1764669600000}}))
	b.ResetTimer()
	for range b.N {
		untilSleep(step(abi.StepInput{Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now}}}))
	}
	b.ReportMetric(float64(len(cp)), "checkpoint-bytes")
}
