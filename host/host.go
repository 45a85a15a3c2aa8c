package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

// Runtime holds a compiled plugin. It is safe for concurrent use: each Run
// gets its own module instance, because a Wasm instance is not.
type Runtime struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	info     abi.VersionInfo
	cfg      runtimeConfig
	bg       chan struct{} // closed when a background cache compile ends

	// spare is the instance that answered abi_version at load. The first
	// run on the system clocks takes it instead of instantiating again,
	// which saves an instantiation and the Go runtime's _initialize from
	// the start-up path.
	mu          sync.Mutex
	spare       api.Module
	spareStderr *bytes.Buffer

	// What a park needs to unload the compiled plugin and load it again
	// (park.go); rt and compiled are guarded by mu once loaded.
	wasm   []byte
	rc     wazero.RuntimeConfig
	cache  wazero.CompilationCache // rc's, if any: it holds the compiled code
	marker string
	users  int // calls and steppers using rt now
}

type runtimeConfig struct {
	cacheDir    string
	noCache     bool
	memoryPages uint32
	interpret   bool
	stderr      io.Writer
}

// RuntimeOption configures NewRuntime.
type RuntimeOption func(*runtimeConfig)

// WithCacheDir keeps compiled code in dir. The default is
// os.UserCacheDir()/ue-prefect.
func WithCacheDir(dir string) RuntimeOption { return func(c *runtimeConfig) { c.cacheDir = dir } }

// WithoutCache compiles afresh in every process.
func WithoutCache() RuntimeOption { return func(c *runtimeConfig) { c.noCache = true } }

// WithMemoryLimitPages caps the plugin's linear memory (64 KiB pages). The
// default is 4096 pages, 256 MiB.
func WithMemoryLimitPages(n uint32) RuntimeOption {
	return func(c *runtimeConfig) { c.memoryPages = n }
}

// WithInterpreter runs the plugin in wazero's interpreter: no compile time,
// slower steps. Deterministic tests use it to start fast.
func WithInterpreter() RuntimeOption { return func(c *runtimeConfig) { c.interpret = true } }

// WithPluginStderr receives what the Go runtime inside the plugin writes
// to stderr (panic traces).
func WithPluginStderr(w io.Writer) RuntimeOption { return func(c *runtimeConfig) { c.stderr = w } }

// DefaultCacheDir is where compiled code is kept unless configured.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "ue-prefect")
}

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

// fillCache compiles wasm into the on-disk cache and leaves a marker that
// the cache is complete.
func (r *Runtime) fillCache(wasm []byte, marker string) {
	defer close(r.bg)
	ctx := context.Background()
	if err := os.MkdirAll(r.cfg.cacheDir, 0o700); err != nil {
		return
	}
	cache, err := wazero.NewCompilationCacheWithDir(r.cfg.cacheDir)
	if err != nil {
		return
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache))
	defer rt.Close(ctx)
	// One compile worker: the second core belongs to the run in progress.
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		return
	}
	_ = os.WriteFile(marker, nil, 0o600)
}

// WaitCache waits until a background cache compile has finished, or ctx
// ends. It is a no-op when none runs.
func (r *Runtime) WaitCache(ctx context.Context) {
	if r.bg == nil {
		return
	}
	select {
	case <-r.bg:
	case <-ctx.Done():
	}
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

// load defines the host modules in rt and compiles wasm.
func load(ctx context.Context, rt wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	if _, err := instantiateWASI(ctx, rt); err != nil {
		return nil, err
	}
	if err := instantiateKernel(ctx, rt); err != nil {
		return nil, fmt.Errorf("host: kernel: %w", err)
	}
	if err := instantiateImports(ctx, rt); err != nil {
		return nil, fmt.Errorf("host: imports: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("host: error compiling plugin: %w", err)
	}
	return compiled, nil
}

// checkModule fails fast if the plugin lacks an export or needs an import
// the host does not supply.
func checkModule(m wazero.CompiledModule) error {
	exports := m.ExportedFunctions()
	for _, name := range append([]string{"_initialize"}, abi.Exports()...) {
		if _, ok := exports[name]; !ok {
			return fmt.Errorf("host: plugin does not export %q", name)
		}
	}
	kern := kernelNames()
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case abi.HostModule:
			if !slices.Contains(abi.Imports(), name) {
				return fmt.Errorf("host: plugin imports unknown host function %s.%s", mod, name)
			}
		case abi.KernelModule:
			if !slices.Contains(kern, name) {
				return fmt.Errorf("host: plugin imports unknown kernel function %s", name)
			}
		case "wasi_snapshot_preview1":
		default:
			return fmt.Errorf("host: plugin imports from unknown module %q", mod)
		}
	}
	return nil
}

// Info returns what the plugin reported of itself.
func (r *Runtime) Info() abi.VersionInfo { return r.info }

// Close waits for a background cache compile (at most 30 s) and releases
// the runtime.
func (r *Runtime) Close(ctx context.Context) error {
	if r.bg != nil {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r.WaitCache(wctx)
		cancel()
	}
	if m := r.takeSpare(); m != nil {
		m.Close(ctx)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rt == nil { // unloaded by a park
		return nil
	}
	err := r.rt.Close(ctx)
	if r.cache != nil {
		r.cache.Close(ctx)
	}
	return err
}

func (r *Runtime) takeSpare() api.Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.spare
	r.spare = nil
	return m
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

// Run executes one action to its end and returns its outcome. The error is
// non-nil only for a host or plugin fault (a trap, an ABI violation); the
// outcome then is exit 1 with the fault as its message, so callers can
// always report out.
func (r *Runtime) Run(ctx context.Context, cfg RunConfig, in abi.RunInput) (abi.RunOutput, error) {
	if cfg.Grace <= 0 {
		// An invalid value is the plugin's to report, before any request.
		g, _ := abi.ParseInt("cancel_grace", in.Fields.CancelGrace)
		cfg.Grace = time.Duration(g) * time.Second
	}
	cfg.UserAgent = r.userAgent(cfg.UserAgent)
	cs, err := newCallState(ctx, cfg)
	if err != nil {
		return abi.FailureOf(err), err
	}
	defer cs.stop()
	if in.Target == "" {
		in.Target = cfg.Target
	}
	if in.APIBase == "" && cfg.APIBase != nil {
		in.APIBase = cfg.APIBase.String()
	}
	if in.UIBase == "" {
		in.UIBase = cfg.UIBase
	}
	if in.InvocationID == "" {
		in.InvocationID = randomID()
	}
	if in.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		in.Seed = binary.LittleEndian.Uint64(b[:])
	}
	in.NowMS = cs.clock.Since().Milliseconds()
	if in.NowUnixMS == 0 {
		in.NowUnixMS = cs.clock.Now().UnixMilli()
	}
	if cfg.ParkAfter > 0 {
		return r.runParking(ctx, cs, in)
	}
	input, err := json.Marshal(in)
	if err != nil {
		return abi.FailureOf(err), err
	}
	out, err := r.call(ctx, cs, abi.ExportRun, input)
	if err != nil {
		return abi.FailureOf(err), err
	}
	var ro abi.RunOutput
	if err := json.Unmarshal(out, &ro); err != nil {
		err = &abi.Error{Code: abi.CodeInternal, Message: "plugin output is not a RunOutput: " + err.Error()}
		return abi.FailureOf(err), err
	}
	return ro, nil
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

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
