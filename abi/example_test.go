package abi_test

import (
	"encoding/json"
	"fmt"

	"github.com/ue-prefect/ue-prefect/abi"
)

// A RunInput as the ue-prefect CLI sends it to the plugin's run export:
// the user's fields unparsed, the target and API base the host decided.
func ExampleRunInput() {
	in := abi.RunInput{
		Target:  abi.TargetServer,
		APIBase: "http://127.0.0.1:4200/api",
		Fields: abi.Fields{
			Deployment:   "etl/nightly",
			Parameters:   `{"parameters":{"day":"2026-11-22"},"tags":["uac"]}`,
			Wait:         "true",
			PollInterval: "30",
		},
		InvocationID: "5f0c…",
		Seed:         42,
	}
	b, _ := json.MarshalIndent(in, "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "target": "server",
	//   "api_base": "http://127.0.0.1:4200/api",
	//   "fields": {
	//     "deployment": "etl/nightly",
	//     "parameters": "{\"parameters\":{\"day\":\"2026-11-22\"},\"tags\":[\"uac\"]}",
	//     "wait": "true",
	//     "poll_interval": "30"
	//   },
	//   "invocation_id": "5f0c…",
	//   "seed": 42,
	//   "now_ms": 0
	// }
}

// An HTTP exchange across prefect_http: the request the plugin sends and
// the response the host returns. Paths are relative to the API base; the
// host adds authentication.
func ExampleHTTPRequest() {
	req := abi.HTTPRequest{
		Method: "POST",
		Path:   "/deployments/1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b/create_flow_run",
		Body:   json.RawMessage(`{"idempotency_key":"ue-prefect:1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b:uac-42"}`),
	}
	b, _ := json.Marshal(req)
	fmt.Println(string(b))

	var resp abi.HTTPResponse
	_ = json.Unmarshal([]byte(`{"status":201,"body":{"id":"3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b","state_type":"SCHEDULED"},"now_ms":412}`), &resp)
	fmt.Println(resp.Status, string(resp.Body), resp.NowMS)

	_ = json.Unmarshal([]byte(`{"error":{"kind":"reset","message":"EOF"},"now_ms":30012}`), &resp)
	fmt.Println(resp.Error.Kind, resp.Error.Kind.Retryable())
	// Output:
	// {"method":"POST","path":"/deployments/1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b/create_flow_run","body":{"idempotency_key":"ue-prefect:1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b:uac-42"}}
	// 201 {"id":"3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b","state_type":"SCHEDULED"} 412
	// reset true
}

// A failure crosses as an Error inside RunOutput; its code fixes the exit
// code and the status description follows the ue-prefect 1.0 wording.
func ExampleError() {
	err := abi.Errorf(abi.CodeNotFound, "deployment", "no deployment %q; available: etl/hourly", "etl/nightlyy")
	exit := err.Code.ExitCode()
	fmt.Println(exit)
	fmt.Println(abi.StatusDescription(exit, err.Error()))
	fmt.Println(abi.StatusDescription(abi.ExitPollingTimeout, ""))
	// Output:
	// 20
	// Data Validation Error: Deployment ID or Name: no deployment "etl/nightlyy"; available: etl/hourly
	// Polling Timeout: maximum polling timeout reached.
}

// The commands of one step of the state machine: log and progress need no
// answer; the last command (here a sleep) is answered by the next event.
func ExampleStepOutput() {
	var out abi.StepOutput
	_ = json.Unmarshal([]byte(`{"checkpoint":{"v":1},"commands":[
		{"kind":"log","log":{"level":"info","message":"Flow run \"tidy-fox\" is Running (RUNNING) after 1m0s"}},
		{"kind":"progress","progress":{"fields":{"flow_run_id":"3b5d…","flow_run_state":"RUNNING"}}},
		{"kind":"sleep","sleep":{"duration_ms":60000}}]}`), &out)
	for _, c := range out.Commands {
		fmt.Println(c.Kind)
	}
	last := out.Commands[len(out.Commands)-1]
	ev := abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: 120000}}
	fmt.Println(last.Sleep.DurationMS, "→ answer with", ev.Kind)
	// Output:
	// log
	// progress
	// sleep
	// 60000 → answer with woke
}
