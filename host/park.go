package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/ue-prefect/ue-prefect/abi"
)

// A run with RunConfig.ParkAfter holds nothing while it sleeps. The state
// machine's whole state is its checkpoint, so instead of the run export
// (one instance for the whole run, asleep inside a host call) the host
// drives the step export, as the Monitor does, and executes each command
// itself through the same Functions the plugin's imports call. A sleep of
// ParkAfter or more is a park: the instance is closed, the compiled plugin
// is unloaded when no other call or stepper uses the Runtime, and the
// memory goes back to the operating system. On waking, the plugin is
// loaded again (from the compilation cache) and the run resumes from the
// checkpoint with the sleep's answer. The transcript is the same as the
// run export's: tests/park_test.go runs every golden scenario both ways.

// runParking is Run over the step export, parking long sleeps.
func (r *Runtime) runParking(ctx context.Context, cs *callState, in abi.RunInput) (abi.RunOutput, error) {
	fail := func(err error) (abi.RunOutput, error) { return abi.FailureOf(err), err }
	s, err := r.newRunStepper(ctx, cs)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if s != nil {
			s.Close(ctx)
		}
	}()
	fns := &Functions{cs: cs}
	trace := func(fn string, req, resp any) {
		t := cs.cfg.Trace
		if t == nil {
			return
		}
		rq, _ := json.Marshal(req)
		var rs []byte
		if resp != nil {
			rs, _ = json.Marshal(resp)
		}
		t(fn, rq, rs)
	}
	step := abi.StepInput{Input: &in}
	for {
		if s == nil {
			if s, err = r.newRunStepper(ctx, cs); err != nil {
				return fail(err)
			}
		}
		out, err := s.Step(ctx, step)
		if err != nil {
			return fail(err)
		}
		// As flowrun.Run: every command in order; the last answerable one's
		// answer is the next event.
		var ev abi.Event
		for _, c := range out.Commands {
			switch c.Kind {
			case abi.CommandLog:
				fns.Log(*c.Log)
				trace(abi.FuncLog, c.Log, nil)
			case abi.CommandProgress:
				fns.Progress(*c.Progress)
				trace(abi.FuncProgress, c.Progress, nil)
			case abi.CommandFinish:
				return *c.Finish, nil
			case abi.CommandHTTP:
				resp := fns.HTTP(*c.HTTP)
				trace(abi.FuncHTTP, c.HTTP, resp)
				ev = abi.Event{Kind: abi.EventHTTP, HTTP: &resp}
			case abi.CommandSleep:
				if time.Duration(c.Sleep.DurationMS)*time.Millisecond >= cs.cfg.ParkAfter {
					s.Close(ctx)
					s = nil
					unloaded := r.park(ctx)
					if f := cs.cfg.OnPark; f != nil {
						f(unloaded)
					}
				}
				resp := fns.Sleep(*c.Sleep)
				trace(abi.FuncSleep, c.Sleep, resp)
				ev = abi.Event{Kind: abi.EventWoke, Woke: &resp}
			case abi.CommandCredential:
				req := abi.CredentialRequest{}
				resp := fns.Credential(req)
				trace(abi.FuncCredential, req, resp)
				ev = abi.Event{Kind: abi.EventCredential, Credential: &resp}
			default:
				return fail(&abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf("the state machine gave an unknown command %q", c.Kind)})
			}
		}
		if ev.Kind == "" {
			return fail(&abi.Error{Code: abi.CodeInternal, Message: "the state machine stopped without a command"})
		}
		step = abi.StepInput{Checkpoint: out.Checkpoint, Event: &ev}
	}
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
