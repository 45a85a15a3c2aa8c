package tests

import (
	"context"
	"encoding/json"
	"testing"

	extism "github.com/extism/go-sdk"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

type scriptKey struct{}

// extismFunc adapts one scripted effect to a standard Extism host function
// in abi.HostModule: read the request from kernel memory, answer from the
// script the call's context carries, write the response back (offset 0
// for none).
func extismFunc(t *testing.T, name string, answer func(s *flowruntest.Script, req []byte) []byte) extism.HostFunction {
	f := extism.NewHostFunctionWithStack(name, func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
		req, err := p.ReadBytes(stack[0])
		if err != nil {
			panic(err)
		}
		resp := answer(ctx.Value(scriptKey{}).(*flowruntest.Script), req)
		if resp == nil {
			stack[0] = 0
			return
		}
		off, err := p.WriteBytes(resp)
		if err != nil {
			panic(err)
		}
		stack[0] = off
	}, []extism.ValueType{extism.ValueTypePTR}, []extism.ValueType{extism.ValueTypePTR})
	f.SetNamespace(abi.HostModule)
	return f
}

func answer[Req, Resp any](t *testing.T, f func(*flowruntest.Script, Req) Resp) func(*flowruntest.Script, []byte) []byte {
	return func(s *flowruntest.Script, b []byte) []byte {
		var req Req
		if err := json.Unmarshal(b, &req); err != nil {
			t.Errorf("undecodable request %s: %v", b, err)
		}
		return mustJSON(f(s, req))
	}
}

// TestExtismHost runs the embedded plugin, unchanged, in the standard
// Extism host (extism/go-sdk and its own kernel) over every golden
// scenario: the traces must equal the goldens the native machine and our
// own host produce. The plugin is an ordinary Extism plugin; our host's
// Go-native kernel is an optimisation, not a dialect.
func TestExtismHost(t *testing.T) {
	ctx := context.Background()
	fns := []extism.HostFunction{
		extismFunc(t, abi.FuncHTTP, answer(t, (*flowruntest.Script).HTTP)),
		extismFunc(t, abi.FuncSleep, answer(t, (*flowruntest.Script).Sleep)),
		extismFunc(t, abi.FuncCredential, answer(t, (*flowruntest.Script).Credential)),
		extismFunc(t, abi.FuncLog, func(s *flowruntest.Script, b []byte) []byte {
			var l abi.LogRecord
			_ = json.Unmarshal(b, &l)
			s.Log(l)
			return nil
		}),
		extismFunc(t, abi.FuncProgress, func(s *flowruntest.Script, b []byte) []byte {
			var p abi.Progress
			_ = json.Unmarshal(b, &p)
			s.Progress(p)
			return nil
		}),
	}
	compiled, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: host.PluginWasm}}},
		extism.PluginConfig{EnableWasi: true}, fns)
	if err != nil {
		t.Fatal(err)
	}
	defer compiled.Close(ctx)
	flowruntest.Each(t, goldenDir, func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
		plugin, err := compiled.Instance(ctx, extism.PluginInstanceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer plugin.Close(ctx)
		ctx := context.WithValue(ctx, scriptKey{}, s)
		rc, out, err := plugin.CallWithContext(ctx, abi.ExportABIVersion, nil)
		var v abi.VersionInfo
		if err != nil || rc != 0 || json.Unmarshal(out, &v) != nil || v.ABIVersion != abi.Version {
			t.Fatalf("abi_version under go-sdk = %d %s %v", rc, out, err)
		}
		rc, out, err = plugin.CallWithContext(ctx, abi.ExportRun, mustJSON(s.Sc.Input))
		if err != nil || rc != 0 {
			t.Fatalf("run under go-sdk = %d, %v", rc, err)
		}
		var ro abi.RunOutput
		if err := json.Unmarshal(out, &ro); err != nil {
			t.Fatal(err)
		}
		return ro
	})
}
