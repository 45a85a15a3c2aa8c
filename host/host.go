package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
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
	// (run.go, and the module's lifetime below); rt and compiled are guarded by mu once loaded.
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

// acquire returns the runtime and the compiled plugin, loading them again
// if a park unloaded them, and counts a user until release is called.
func (r *Runtime) acquire(ctx context.Context) (wazero.Runtime, wazero.CompiledModule, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rt == nil {
		if err := r.reload(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	r.users++
	var once sync.Once
	release := func() {
		once.Do(func() {
			r.mu.Lock()
			r.users--
			r.mu.Unlock()
		})
	}
	return r.rt, r.compiled, release, nil
}

// reload loads the plugin after an unload: from the compilation cache when
// it is complete (also when this process started cold and its background
// compile has filled it since), else in the interpreter, which compiles
// fast. Never through the cache a park closed. Called with r.mu held.
func (r *Runtime) reload(ctx context.Context) error {
	rc := r.rc // interpreter, or compiler without a cache
	var cache wazero.CompilationCache
	if !r.cfg.interpret && !r.cfg.noCache {
		rc = wazero.NewRuntimeConfigInterpreter()
		if _, err := os.Stat(r.marker); err == nil {
			if c, err := wazero.NewCompilationCacheWithDir(r.cfg.cacheDir); err == nil {
				cache = c
				rc = wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache)
			}
		}
		rc = rc.WithMemoryLimitPages(r.cfg.memoryPages)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	compiled, err := load(ctx, rt, r.wasm)
	if err != nil {
		rt.Close(ctx)
		if cache != nil {
			cache.Close(ctx)
		}
		return fmt.Errorf("host: loading the plugin again after a park: %w", err)
	}
	r.rt, r.compiled, r.cache = rt, compiled, cache
	return nil
}

// unloadable reports whether a park may unload the compiled plugin: not
// while anything uses it, and not when loading it again means compiling
// afresh (no cache: seconds of CPU at every wake).
func (r *Runtime) unloadable() bool {
	return r.rt != nil && r.users == 0 && !r.cfg.noCache
}

// park releases what a sleeping run does not need: the compiled plugin
// (when unloadable), then the Go heap's free memory. It reports whether
// it unloaded the plugin.
func (r *Runtime) park(ctx context.Context) bool {
	if m := r.takeSpare(); m != nil {
		m.Close(ctx)
	}
	r.mu.Lock()
	var (
		rt       wazero.Runtime
		compiled wazero.CompiledModule
		cache    wazero.CompilationCache
	)
	if r.unloadable() {
		rt, compiled, cache = r.rt, r.compiled, r.cache
		r.rt, r.compiled, r.cache = nil, nil, nil
	}
	r.mu.Unlock()
	if rt != nil {
		// The compiled code belongs to the cache's engine, which outlives
		// the runtime: close both, or the code stays mapped.
		_ = compiled.Close(ctx)
		_ = rt.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		dropResident(r.wasm)
	}
	freeMemory()
	return rt != nil
}

// freeMemory returns the Go heap's free memory to the operating system.
// wazero unmaps compiled code in finalizers, which run after a collection
// has found the module unreachable; the second pass returns what they
// freed.
func freeMemory() {
	runtime.GC()
	runtime.Gosched()
	debug.FreeOSMemory()
}
