package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// A tiny WebAssembly assembler, enough to build the malformed plugins the
// load-time checks must refuse. wazero has no text-format compiler, so the
// modules are written as bytes; see
// https://webassembly.github.io/spec/core/binary/modules.html.

const (
	wI32 = 0x7f
	wI64 = 0x7e
)

type wImport struct {
	module, name    string
	params, results []byte
}

type wFunc struct {
	export          string // "" for none
	params, results []byte
	locals          []byte // one entry per local
	code            []byte // without the final end
}

func uleb(n uint64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(n int64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if (n == 0 && c&0x40 == 0) || (n == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wName(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func wVec(items [][]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func wSection(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

func buildWasm(imports []wImport, funcs []wFunc) []byte {
	var types, imps, fidx, exps, codes [][]byte
	addType := func(params, results []byte) uint64 {
		types = append(types, append(append([]byte{0x60}, append(uleb(uint64(len(params))), params...)...), append(uleb(uint64(len(results))), results...)...))
		return uint64(len(types) - 1)
	}
	for _, im := range imports {
		t := addType(im.params, im.results)
		imps = append(imps, append(append(wName(im.module), wName(im.name)...), append([]byte{0x00}, uleb(t)...)...))
	}
	for i, f := range funcs {
		fidx = append(fidx, uleb(addType(f.params, f.results)))
		if f.export != "" {
			exps = append(exps, append(wName(f.export), append([]byte{0x00}, uleb(uint64(len(imports)+i))...)...))
		}
		var locals [][]byte
		for _, l := range f.locals {
			locals = append(locals, []byte{0x01, l})
		}
		body := append(wVec(locals), f.code...)
		body = append(body, 0x0b)
		codes = append(codes, append(uleb(uint64(len(body))), body...))
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, wSection(1, wVec(types))...)
	if len(imps) > 0 {
		out = append(out, wSection(2, wVec(imps))...)
	}
	out = append(out, wSection(3, wVec(fidx))...)
	if len(exps) > 0 {
		out = append(out, wSection(7, wVec(exps))...)
	}
	return append(out, wSection(10, wVec(codes))...)
}

// Kernel imports the fake plugins use, at function indices 0, 1, 2, 3.
var fakeKernel = []wImport{
	{abi.KernelModule, "alloc", []byte{wI64}, []byte{wI64}},
	{abi.KernelModule, "store_u8", []byte{wI64, wI32}, nil},
	{abi.KernelModule, "output_set", []byte{wI64, wI64}, nil},
	{abi.KernelModule, "error_set", []byte{wI64}, nil},
}

// writeBytes is code that copies s into a new kernel block, left in local 0.
func writeBytes(s string) []byte {
	code := append(append([]byte{0x42}, sleb(int64(len(s)))...), 0x10, 0x00, 0x21, 0x00) // local0 = alloc(len)
	for i := 0; i < len(s); i++ {
		code = append(code, 0x20, 0x00, 0x42) // local0 + i
		code = append(code, sleb(int64(i))...)
		code = append(code, 0x7c, 0x41) // i64.add; i32.const byte
		code = append(code, sleb(int64(s[i]))...)
		code = append(code, 0x10, 0x01) // call store_u8
	}
	return code
}

// outputCode returns code that sets the output to s and returns 0.
func outputCode(s string) []byte {
	code := writeBytes(s)
	code = append(code, 0x20, 0x00, 0x42)
	code = append(code, sleb(int64(len(s)))...)
	code = append(code, 0x10, 0x02, 0x41, 0x00) // output_set(local0, len); i32.const 0
	return code
}

// errorCode returns code that sets the error to s and returns 1.
func errorCode(s string) []byte {
	return append(writeBytes(s), 0x20, 0x00, 0x10, 0x03, 0x41, 0x01) // error_set(local0); i32.const 1
}

// fakePlugin returns a module with the plugin's exports, whose abi_version
// runs versionCode, plus extra imports.
func fakePlugin(versionCode []byte, extra []wImport, skip string) []byte {
	ret0 := []byte{0x41, 0x00}
	funcs := []wFunc{
		{export: "_initialize"},
		{export: abi.ExportABIVersion, results: []byte{wI32}, locals: []byte{wI64}, code: versionCode},
		{export: abi.ExportRun, results: []byte{wI32}, code: ret0},
		{export: abi.ExportStep, results: []byte{wI32}, code: ret0},
	}
	for i := range funcs {
		if funcs[i].export == skip {
			funcs[i].export = ""
		}
	}
	return buildWasm(append(append([]wImport{}, fakeKernel...), extra...), funcs)
}

func TestNewRuntimeRefuses(t *testing.T) {
	good := outputCode(`{"abi_version":1,"plugin":"fake","plugin_version":"v0"}`)
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("#!/bin/sh\necho hello\n"), "host: error compiling plugin"},
		{"empty module", []byte("\x00asm\x01\x00\x00\x00"), `host: plugin does not export "_initialize"`},
		{"no exports", buildWasm(nil, []wFunc{{results: []byte{wI32}, code: []byte{0x41, 0x00}}}), "does not export"},
		{"no abi_version", fakePlugin(good, nil, abi.ExportABIVersion), `host: plugin does not export "abi_version"`},
		{"no run", fakePlugin(good, nil, abi.ExportRun), `host: plugin does not export "run"`},
		{"no step", fakePlugin(good, nil, abi.ExportStep), `host: plugin does not export "step"`},
		{"unknown host function", fakePlugin(good, []wImport{{abi.HostModule, "launch_missiles", []byte{wI64}, []byte{wI64}}}, ""),
			"host: plugin imports unknown host function extism:host/user.launch_missiles"},
		{"unknown kernel function", fakePlugin(good, []wImport{{abi.KernelModule, "http_request", []byte{wI64, wI64}, []byte{wI64}}}, ""),
			"host: plugin imports unknown kernel function http_request"},
		{"unknown module", fakePlugin(good, []wImport{{"env", "abort", nil, nil}}, ""), `host: plugin imports from unknown module "env"`},
		{"wrong ABI version", fakePlugin(outputCode(`{"abi_version":2,"plugin":"fake","plugin_version":"v9"}`), nil, ""),
			"abi: version mismatch: host 1, plugin 2"},
		{"version output not JSON", fakePlugin(outputCode(`v1`), nil, ""), "host: abi_version output is not a version"},
		{"abi_version fails", fakePlugin(errorCode("no version for you"), nil, ""), "plugin abi_version returned 1: no version for you"},
		{"abi_version fails silently", fakePlugin([]byte{0x41, 0x07}, nil, ""), "plugin abi_version returned 7: the plugin failed without a message"},
		{"abi_version traps", fakePlugin([]byte{0x00}, nil, ""), "plugin trapped while calling abi_version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rt, err := NewRuntime(ctx, tc.wasm, WithInterpreter())
			if err == nil {
				rt.Close(ctx)
				t.Fatalf("NewRuntime(%s) = nil error, want %q", tc.name, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewRuntime(%s) error = %q, want it to contain %q", tc.name, err, tc.want)
			}
		})
	}
	// The assembler itself is sound: the good fake loads.
	ctx := context.Background()
	rt, err := NewRuntime(ctx, fakePlugin(good, nil, ""), WithInterpreter())
	if err != nil {
		t.Fatalf("NewRuntime(fake plugin) = %v", err)
	}
	defer rt.Close(ctx)
	if got := rt.Info(); got.ABIVersion != 1 || got.Plugin != "fake" {
		t.Errorf("Info() = %+v, want the fake's version", got)
	}
}

// TestPluginFaultsAreInternalErrors checks that a trap or a plugin failure
// becomes an *abi.Error with code internal, never a panic in the host.
func TestPluginFaultsAreInternalErrors(t *testing.T) {
	ctx := context.Background()
	rt := newTestRuntime(t)
	base, _ := url.Parse("http://prefect.test/api")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"step with neither input nor event", func() error {
			_, err := rt.Step(ctx, abi.StepInput{})
			return err
		}, "plugin step returned 1: step: want input (first step) or checkpoint and event"},
		{"step with a checkpoint of another version", func() error {
			_, err := rt.Step(ctx, abi.StepInput{Checkpoint: []byte(`{"v":99}`), Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{}}})
			return err
		}, "checkpoint version 99, want 2"},
		{"step with an inconsistent checkpoint", func() error {
			// An HTTP operation outstanding without its request: Restore
			// refuses it, and the plugin reports the error.
			_, err := rt.Step(ctx, abi.StepInput{
				Checkpoint: []byte(`{"v":2,"target":"server","pending":{"op":"read_flow_run"}}`),
				Event:      &abi.Event{Kind: abi.EventHTTP, HTTP: &abi.HTTPResponse{Status: 503}},
			})
			return err
		}, "plugin step returned 1: checkpoint names outstanding operation \"read_flow_run\" without its request"},
		{"run whose host functions trap", func() error {
			// A clock that panics traps the plugin inside a host function.
			_, err := rt.Run(ctx, RunConfig{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Transport: fnRT(func(*http.Request) (*http.Response, error) {
				return jsonResp(503, `{}`), nil // a retry sleeps
			})}, Clock: panicClock{}}, abi.RunInput{Fields: abi.Fields{Deployment: "etl/nightly"}, InvocationID: "inv", Seed: 1})
			return err
		}, "plugin trapped while calling run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("the host panicked: %v", r)
					}
				}()
				err = tc.call()
			}()
			var ae *abi.Error
			if !errors.As(err, &ae) || ae.Code != abi.CodeInternal || !strings.Contains(ae.Message, tc.want) {
				t.Errorf("error = %#v, want an *abi.Error with code internal containing %q", err, tc.want)
			}
		})
	}
}

// panicClock fails the way a broken host dependency would.
type panicClock struct{}

func (panicClock) Since() time.Duration                       { return time.Second }
func (panicClock) Now() time.Time                             { return testEpoch }
func (panicClock) Sleep(context.Context, time.Duration) error { panic("clock broke") }

var (
	sharedRuntime     *Runtime
	sharedRuntimeErr  error
	sharedRuntimeOnce sync.Once
)

// newTestRuntime returns the real plugin in the interpreter, compiled once
// per test binary.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	sharedRuntimeOnce.Do(func() {
		sharedRuntime, sharedRuntimeErr = NewRuntime(context.Background(), PluginWasm, WithInterpreter())
	})
	if sharedRuntimeErr != nil {
		t.Fatal(sharedRuntimeErr)
	}
	return sharedRuntime
}

// TestRuntimeConcurrentRuns runs one Runtime from 8 goroutines at once,
// each its own run with its own fake server and clock, every other one
// parking its sleeps (RunConfig.ParkAfter), which unloads the plugin when
// no other run holds it; go test -race checks the host shares nothing
// unsafely.
func TestRuntimeConcurrentRuns(t *testing.T) {
	rt := newTestRuntime(t)
	base, _ := url.Parse("http://prefect.test/api")
	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runID := fmt.Sprintf("33333333-3333-4333-8333-%012d", i)
			polls := 0
			tr := fnRT(func(r *http.Request) (*http.Response, error) {
				switch {
				case strings.Contains(r.URL.Path, "/deployments/name/"):
					return jsonResp(200, `{"id":"11111111-1111-4111-8111-111111111111","name":"ok","flow_id":"22222222-2222-4222-8222-222222222222"}`), nil
				case strings.HasSuffix(r.URL.Path, "/create_flow_run"):
					return jsonResp(201, `{"id":"`+runID+`","name":"run-`+fmt.Sprint(i)+`","state_type":"SCHEDULED","state_name":"Scheduled"}`), nil
				case strings.Contains(r.URL.Path, "/flow_runs/"):
					polls++
					st := "RUNNING"
					if polls > i%3 {
						st = "COMPLETED"
					}
					return jsonResp(200, `{"id":"`+runID+`","name":"run-`+fmt.Sprint(i)+`","state_type":"`+st+`","state_name":"x"}`), nil
				}
				return jsonResp(404, `{"detail":"Not found"}`), nil
			})
			var logs []string
			var park time.Duration
			if i%2 == 1 {
				park = time.Second
			}
			out, err := rt.Run(context.Background(), RunConfig{
				Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Transport: tr}, Clock: vclock.New(testEpoch),
				Log:       func(l abi.LogRecord) { logs = append(logs, l.Message) },
				ParkAfter: park,
			}, abi.RunInput{Fields: abi.Fields{Deployment: "ok/ok", Wait: "true", PollInterval: "5"}, InvocationID: fmt.Sprint("inv-", i), Seed: uint64(i + 1)})
			if err != nil || out.ExitCode != 0 || !strings.Contains(string(out.Result), runID) {
				t.Errorf("run %d = %+v, %v, want exit 0 for %s", i, out, err, runID)
			}
			if len(logs) == 0 {
				t.Errorf("run %d logged nothing", i)
			}
		}()
	}
	wg.Wait()
}
