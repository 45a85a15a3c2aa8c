package flowrun

import (
	"encoding/json"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

// BenchmarkPoll is one poll of a waiting run as the step export makes it,
// natively: for the wake and for the answer, the checkpoint restored, the
// event stepped and the checkpoint written again.
//
//	go test -run '^$' -bench Poll ./plugin/flowrun/
func BenchmarkPoll(b *testing.B) {
	const id = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	run, _ := json.Marshal(map[string]any{"id": id, "name": "bench-run", "deployment_id": "0b6c2f4e-1d1a-4a39-9a57-58c9b3f0b5aa",
		"flow_id": "9d0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "state_type": "RUNNING", "state_name": "Running",
		"state": map[string]any{"type": "RUNNING", "name": "Running"}, "run_count": 1, "start_time": "2026-12-02T10:00:00Z",
		"parameters": map[string]any{"n": 1}, "tags": []string{}})
	now := int64(1000)
	m, cmds := Start(abi.RunInput{Target: abi.TargetServer, APIBase: "http://127.0.0.1:4200/api",
		Fields:       abi.Fields{FlowRunID: id, Wait: "true", PollInterval: "60", IncludeMetadata: "false"},
		InvocationID: "0123456789abcdef0123456789abcdef", Seed: 1, NowMS: now, NowUnixMS: 1764669600000})
	cp := m.Checkpoint()
	step := func(ev abi.Event) abi.Command {
		m, err := Restore(cp)
		if err != nil {
			b.Fatal(err)
		}
		cmds := m.Step(ev)
		cp = m.Checkpoint()
		return last(cmds)
	}
	untilSleep := func(c abi.Command) {
		for {
			switch c.Kind {
			case abi.CommandSleep:
				now += c.Sleep.DurationMS
				return
			case abi.CommandCredential:
				c = step(abi.Event{Kind: abi.EventCredential, Credential: &abi.CredentialResponse{Scheme: abi.SchemeNone}})
			case abi.CommandHTTP:
				now += 20
				c = step(abi.Event{Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 200, Body: run, NowMS: now}})
			default:
				b.Fatalf("the machine gave %q, want it to wait", c.Kind)
			}
		}
	}
	untilSleep(last(cmds))
	b.ResetTimer()
	for range b.N {
		untilSleep(step(abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now}}))
	}
	b.ReportMetric(float64(len(cp)), "checkpoint-bytes")
}

func last(cmds []abi.Command) abi.Command {
	var c abi.Command
	for _, x := range cmds {
		if x.Kind != abi.CommandLog && x.Kind != abi.CommandProgress {
			c = x
		}
	}
	return c
}
