//go:build wasip1

// Command plugin is the ue-prefect state machine compiled to WebAssembly
// (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared). Its exports and imports
// are those of package abi; its logic is package flowrun.
package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/extism/go-pdk"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {}

//go:wasmexport abi_version
func abiVersion() int32 {
	return guard(func() (any, error) {
		return abi.VersionInfo{ABIVersion: abi.Version, Plugin: "ue-prefect", PluginVersion: version}, nil
	})
}

//go:wasmexport run
func run() int32 {
	return guard(func() (any, error) {
		var in abi.RunInput
		if err := decode(pdk.Input(), &in); err != nil {
			return nil, err
		}
		return flowrun.Run(wasmHost{}, in), nil
	})
}

//go:wasmexport step
func step() int32 {
	return guard(func() (any, error) {
		var in abi.StepInput
		if err := decodeDepth(pdk.Input(), &in, maxStepDepth); err != nil {
			return nil, err
		}
		var m *flowrun.Machine
		var cmds []abi.Command
		switch {
		case len(in.Checkpoint) == 0 && in.Input != nil:
			m, cmds = flowrun.Start(*in.Input)
		case len(in.Checkpoint) > 0 && in.Event != nil:
			var err error
			if m, err = flowrun.Restore(in.Checkpoint); err != nil {
				return nil, err
			}
			cmds = m.Step(*in.Event)
		default:
			return nil, fmt.Errorf("step: want input (first step) or checkpoint and event")
		}
		return stepOutput(m.Checkpoint(), cmds)
	})
}

// stepOutput writes an abi.StepOutput. json.Marshal would re-validate and
// compact the checkpoint, which Checkpoint already wrote compact with
// json.Marshal; the bytes are the same, without that second scan (about a
// fifth of a poll's CPU, natively).
func stepOutput(checkpoint []byte, cmds []abi.Command) (rawJSON, error) {
	commands, err := json.Marshal(cmds)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(checkpoint)+len(commands)+len(`{"checkpoint":,"commands":}`))
	out = append(out, `{"checkpoint":`...)
	out = append(out, checkpoint...)
	out = append(out, `,"commands":`...)
	out = append(out, commands...)
	return append(out, '}'), nil
}

// rawJSON is an export's output that is already JSON: guard writes it as
// it is.
type rawJSON []byte

// maxStepDepth bounds the nesting of a step's input. An event carries a
// response body three levels down ({"event":{"http":{"body":…}}}), and the
// host passes on any body encoding/json accepts (nested up to 10,000), as
// the run export's sleep and HTTP imports do; the machine itself then
// checks the body against flowrun.MaxResponseDepth, and Restore the
// checkpoint, so a step answers a deep body exactly as run does.
const maxStepDepth = 10000 + 3

func decode(b []byte, v any) error { return decodeDepth(b, v, flowrun.MaxResponseDepth) }

func decodeDepth(b []byte, v any, maxDepth int) error {
	if e := flowrun.CheckJSON(string(b), maxDepth); e != "" {
		return fmt.Errorf("input is not valid JSON: %s", e)
	}
	return json.Unmarshal(b, v)
}

// guard runs an export body, turning errors and panics into the go-pdk
// failure convention: error_set and status 1, never a trap.
func guard(f func() (any, error)) (rc int32) {
	defer func() {
		if r := recover(); r != nil {
			pdk.SetErrorString(fmt.Sprintf("plugin panic: %v\n%s", r, debug.Stack()))
			rc = 1
		}
	}()
	v, err := f()
	if raw, ok := v.(rawJSON); ok && err == nil {
		pdk.Output(raw)
		return 0
	}
	if err == nil {
		var out []byte
		if out, err = json.Marshal(v); err == nil {
			pdk.Output(out)
			return 0
		}
	}
	pdk.SetError(err)
	return 1
}
