package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

// Calling the plugin: a Runtime made (NewRuntime), one export called in a
// fresh or reused instance with the host functions of a run (call, Step),
// and what a trap or a stopped instance becomes. Run, which drives a whole
// run, is in run.go; the module's lifetime (load, unload, reload) in
// host.go.

// NewRuntime compiles wasm and checks it: every required export present,
// every import one this host supplies, and the ABI version equal to
// abi.Version.
//
// With the compile cache on and warm, compiled code is loaded from disk.
// With it cold, this process runs the plugin in the interpreter, which
// compiles in a fraction of the time, while a background goroutine
// compiles for the cache; Close waits for it so the next process starts
// warm.
func NewRuntime(ctx context.Context, wasm []byte, opts ...RuntimeOption) (*Runtime, error) {
	cfg := runtimeConfig{memoryPages: 4096}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.cacheDir == "" {
		cfg.cacheDir = DefaultCacheDir()
	}
	r := &Runtime{cfg: cfg}
	// The marker only has to tell builds apart (wazero keys the cache
	// itself by SHA-256); CRC-32C in hardware is 20× cheaper to compute.
	marker := filepath.Join(cfg.cacheDir, fmt.Sprintf("ok-%08x-%d", crc32.Checksum(wasm, crc32.MakeTable(crc32.Castagnoli)), len(wasm)))
	var rc wazero.RuntimeConfig
	switch {
	case cfg.interpret:
		rc = wazero.NewRuntimeConfigInterpreter()
	case cfg.noCache:
		rc = wazero.NewRuntimeConfigCompiler()
	default:
		if _, err := os.Stat(marker); err == nil {
			cache, err := wazero.NewCompilationCacheWithDir(cfg.cacheDir)
			if err != nil {
				return nil, fmt.Errorf("host: compilation cache %s: %w", cfg.cacheDir, err)
			}
			rc = wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache)
			r.cache = cache
		} else {
			rc = wazero.NewRuntimeConfigInterpreter()
			r.bg = make(chan struct{})
			go r.fillCache(wasm, marker)
		}
	}
	r.wasm, r.marker = wasm, marker
	r.rc = rc.WithMemoryLimitPages(cfg.memoryPages)
	r.rt = wazero.NewRuntimeWithConfig(ctx, r.rc)
	if err := r.init(ctx, wasm); err != nil {
		r.Close(ctx)
		return nil, err
	}
	return r, nil
}

func (r *Runtime) init(ctx context.Context, wasm []byte) error {
	compiled, err := load(ctx, r.rt, wasm)
	if err != nil {
		return err
	}
	r.compiled = compiled
	if err := checkModule(compiled); err != nil {
		return err
	}
	out, err := r.call(ctx, nil, abi.ExportABIVersion, nil, true)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, &r.info); err != nil {
		return fmt.Errorf("host: abi_version output is not a version: %w", err)
	}
	if r.info.ABIVersion != abi.Version {
		return fmt.Errorf("abi: version mismatch: host %d, plugin %d", abi.Version, r.info.ABIVersion)
	}
	return nil
}

// call calls one export with input on a fresh instance and returns its
// output. A fresh instance per call keeps a trapped or bloated instance
// from affecting the next; the one exception is the spare kept from load
// (keep), used once by a run on the system clocks.
func (r *Runtime) call(ctx context.Context, cs *callState, export string, input []byte, keep ...bool) ([]byte, error) {
	rt, compiled, release, err := r.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	k := newKernel(64 << 20)
	k.reset(input)
	ctx = context.WithValue(ctx, kernelKey{}, k)
	if cs != nil {
		ctx = context.WithValue(ctx, callKey{}, cs)
	}
	if cs == nil || cs.virtual == nil {
		if mod := r.takeSpare(); mod != nil {
			r.mu.Lock()
			stderr := r.spareStderr
			r.mu.Unlock()
			defer mod.Close(ctx)
			return r.invoke(ctx, mod, k, export, stderr)
		}
	}
	stderr := new(bytes.Buffer)
	mod, err := rt.InstantiateModule(ctx, compiled, moduleConfig(cs, stderr))
	if err != nil {
		return nil, r.trapError("instantiating the plugin", err, stderr)
	}
	if len(keep) > 0 && keep[0] {
		out, err := r.invoke(ctx, mod, k, export, stderr)
		if err == nil {
			r.mu.Lock()
			r.spare, r.spareStderr = mod, stderr
			r.mu.Unlock()
		} else {
			mod.Close(ctx)
		}
		return out, err
	}
	defer mod.Close(ctx)
	return r.invoke(ctx, mod, k, export, stderr)
}

// moduleConfig is the configuration of a plugin instance for a run with
// cs (nil: no run): its clocks and randomness are the system's, or
// virtual and fixed when the run is deterministic.
func moduleConfig(cs *callState, stderr *bytes.Buffer) wazero.ModuleConfig {
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStderr(&limitedWriter{w: stderr, n: 16 << 10})
	if cs != nil && cs.virtual != nil {
		// The guest's own clock is private and virtual too: it starts at the
		// test epoch and moves only when the Go runtime inside sleeps, so
		// nothing real leaks into a deterministic run, and the host's
		// virtual clock moves only through the sleep host function.
		gc := vclock.New(cs.virtual.Epoch())
		gc.Advance(time.Millisecond) // Go's runtime aborts on a zero nanotime
		mc = mc.WithWalltime(func() (int64, int32) {
			t := gc.Now()
			return t.Unix(), int32(t.Nanosecond())
		}, 1).WithNanotime(func() int64 { return int64(gc.Since()) }, 1).
			WithNanosleep(func(ns int64) { gc.Advance(time.Duration(ns)) }).
			WithRandSource(zeroReader{})
	} else {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	}
	return mc
}

// invoke calls export on mod with the kernel k already in ctx.
func (r *Runtime) invoke(ctx context.Context, mod api.Module, k *kernel, export string, stderr *bytes.Buffer) ([]byte, error) {
	res, err := mod.ExportedFunction(export).Call(ctx)
	if err != nil {
		return nil, r.trapError("calling "+export, err, stderr)
	}
	if rc := uint32(res[0]); rc != 0 {
		msg := k.err
		if !k.hasErr {
			msg = "the plugin failed without a message"
		}
		return nil, &abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf("plugin %s returned %d: %s", export, rc, msg)}
	}
	return k.output, nil
}

func (r *Runtime) trapError(what string, err error, stderr *bytes.Buffer) error {
	msg := err.Error()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		if i := strings.IndexByte(s, '\n'); i > 0 {
			s = s[:i]
		}
		msg += " (" + s + ")"
	}
	return &abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf("plugin trapped while %s: %s", what, msg)}
}

// Functions returns the host functions of a run as Go methods, with the
// method set of flowrun.Host: HTTP, Sleep, Credential, Log, Progress.
// A caller that drives the machine itself (the step export, or package
// flowrun natively) executes its commands through exactly the code the
// plugin's imports run. Close releases them.
func (r *Runtime) Functions(ctx context.Context, cfg RunConfig) (*Functions, error) {
	cfg.UserAgent = r.userAgent(cfg.UserAgent)
	return NewFunctions(ctx, cfg)
}

// Step calls the plugin's pure step export: no host function is called.
func (r *Runtime) Step(ctx context.Context, in abi.StepInput) (abi.StepOutput, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return abi.StepOutput{}, err
	}
	out, err := r.call(ctx, nil, abi.ExportStep, input)
	if err != nil {
		return abi.StepOutput{}, err
	}
	var so abi.StepOutput
	err = json.Unmarshal(out, &so)
	return so, err
}

// UserAgent is the User-Agent of a run whose Connection names none: one
// naming the plugin's version.
func (r *Runtime) UserAgent() string {
	if r.info.PluginVersion != "" {
		return "ue-prefect/" + r.info.PluginVersion
	}
	return "ue-prefect"
}

// userAgent is ua, or r.UserAgent().
func (r *Runtime) userAgent(ua string) string {
	if ua != "" {
		return ua
	}
	return r.UserAgent()
}
