package host

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// callState is what the host functions of one run need. It travels in the
// context of the export call.
type callState struct {
	cfg     RunConfig
	doer    *prefect.Client
	clock   Clock
	virtual virtualClock // set when the run is deterministic
	intr    *Interrupter
	// graceCtx ends grace after the interrupt, or on Abort, or when the
	// caller's context ends.
	graceCtx  context.Context
	graceStop context.CancelFunc
	stopOnce  sync.Once
	done      chan struct{}
	// wakers are the flow runs whose events end sleeps (abi.WakeOn).
	wakers wakers
	// told is set once a response has carried the interrupt to the plugin.
	// Until then a blocking call returns at once with the interrupt; after,
	// calls are served within the grace period (the plugin may cancel).
	told atomic.Bool
}

// untold returns the interrupt if the plugin has not been told of it yet,
// and counts it as told.
func (cs *callState) untold() *abi.Interrupt {
	it := cs.intr.get()
	if it == nil || cs.told.Swap(true) {
		return nil
	}
	return it
}

type callKey struct{}

// newCallState sets up the host functions of one run. The caller has
// given cfg its User-Agent (Runtime.userAgent).
func newCallState(ctx context.Context, cfg RunConfig) (*callState, error) {
	if cfg.APIBase == nil {
		return nil, fmt.Errorf("host: RunConfig.APIBase is required")
	}
	cs := &callState{cfg: cfg, clock: cfg.Clock, intr: cfg.Interrupter, done: make(chan struct{}), wakers: wakers{src: cfg.Events}}
	if cs.clock == nil {
		cs.clock = RealClock()
	}
	if vc, ok := cs.clock.(virtualClock); ok {
		cs.virtual = vc
	}
	if cs.intr == nil {
		cs.intr = NewInterrupter()
	}
	// APIBase is checked above, the one error NewClient has.
	cs.doer, _ = prefect.NewClient(cfg.Connection, cs.clock.Now)
	grace := cfg.Grace
	if grace <= 0 {
		grace = abi.DefaultCancelGrace * time.Second
	}
	cs.graceCtx, cs.graceStop = context.WithCancel(ctx)
	go func() {
		select {
		case <-cs.intr.soft:
		case <-cs.done:
			return
		}
		t := time.NewTimer(grace + 5*time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cs.intr.hard:
		case <-cs.done:
		}
		cs.graceStop()
	}()
	return cs, nil
}

func (cs *callState) stop() {
	cs.stopOnce.Do(func() {
		close(cs.done)
		cs.graceStop()
		cs.wakers.stop()
	})
}

// blockingCtx is the context of a blocking host call: before an interrupt
// the interrupt itself ends it; after, only the end of grace does.
func (cs *callState) blockingCtx() (context.Context, context.CancelFunc) {
	if cs.intr.get() != nil {
		return context.WithCancel(cs.graceCtx)
	}
	ctx, cancel := context.WithCancel(cs.graceCtx)
	go func() {
		select {
		case <-cs.intr.soft:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (cs *callState) nowMS() int64 { return cs.clock.Since().Milliseconds() }

// NewFunctions returns the host functions without a plugin, for a program
// that drives package flowrun's machine natively. Its User-Agent names no
// plugin version. (A program that needs only the HTTP exchange, as the
// Temporal activities do, uses prefect.Client.)
func NewFunctions(ctx context.Context, cfg RunConfig) (*Functions, error) {
	cs, err := newCallState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Functions{cs: cs}, nil
}

// Functions implements the host functions of abi.HostModule in Go. It
// satisfies flowrun.Host, which the plugin implements with Wasm imports.
type Functions struct{ cs *callState }

// Close releases the functions' goroutines.
func (e *Functions) Close() { e.cs.stop() }

// HTTP implements abi.FuncHTTP.
func (e *Functions) HTTP(req abi.HTTPRequest) abi.HTTPResponse {
	cs := e.cs
	if it := cs.untold(); it != nil {
		return abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportInterrupted, Message: "interrupted before the request was sent"},
			NowMS: cs.nowMS(), Interrupt: it}
	}
	ctx, cancel := cs.blockingCtx()
	defer cancel()
	resp := cs.doer.Do(ctx, req)
	if resp.Error != nil && resp.Error.Kind != abi.TransportInterrupted && ctx.Err() != nil && cs.intr.get() != nil {
		resp.Error.Kind = abi.TransportInterrupted
	}
	resp.NowMS = cs.nowMS()
	if resp.Interrupt = cs.intr.get(); resp.Interrupt != nil {
		cs.told.Store(true)
	}
	return resp
}

// Sleep implements abi.FuncSleep.
func (e *Functions) Sleep(req abi.SleepRequest) abi.SleepResponse {
	cs := e.cs
	if it := cs.untold(); it != nil {
		return abi.SleepResponse{NowMS: cs.nowMS(), Interrupt: it}
	}
	ctx, cancel := cs.blockingCtx()
	defer cancel()
	woken := sleep(ctx, cs.clock, time.Duration(req.DurationMS)*time.Millisecond, cs.wakers.get(req.WakeOn))
	resp := abi.SleepResponse{NowMS: cs.nowMS(), Interrupt: cs.intr.get()}
	if resp.Interrupt != nil {
		cs.told.Store(true)
	} else {
		resp.Woken = woken
	}
	return resp
}

// Credential implements abi.FuncCredential.
func (e *Functions) Credential(abi.CredentialRequest) abi.CredentialResponse {
	c := e.cs.cfg.Credential
	return abi.CredentialResponse{Scheme: c.Scheme(), Source: c.Source()}
}

// Log implements abi.FuncLog.
func (e *Functions) Log(l abi.LogRecord) {
	if f := e.cs.cfg.Log; f != nil {
		f(l)
	}
}

// Progress implements abi.FuncProgress.
func (e *Functions) Progress(p abi.Progress) {
	if f := e.cs.cfg.Progress; f != nil {
		f(p)
	}
}

// hostFunc adapts one Functions method to a Wasm host function: decode the
// request from kernel memory, call, encode the response.
func hostFunc[Req, Resp any](name string, f func(e *Functions, req Req) (Resp, bool)) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		k := kernelFrom(ctx)
		cs, _ := ctx.Value(callKey{}).(*callState)
		if cs == nil {
			panic(fmt.Errorf("host: %s called outside a run", name))
		}
		raw := k.bytes(stack[0])
		var req Req
		if err := json.Unmarshal(raw, &req); err != nil {
			panic(fmt.Errorf("host: %s: undecodable request: %w", name, err))
		}
		resp, has := f(&Functions{cs: cs}, req)
		var out []byte
		if has {
			var err error
			if out, err = json.Marshal(resp); err != nil {
				panic(fmt.Errorf("host: %s: %w", name, err))
			}
			stack[0] = k.write(out)
		} else {
			stack[0] = 0
		}
		if t := cs.cfg.Trace; t != nil {
			t(name, raw, out)
		}
	}
}

// instantiateImports defines the abi.HostModule functions in r.
func instantiateImports(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.HostModule)
	def := func(name string, fn api.GoModuleFunc) {
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).
			WithParameterNames("request").
			Export(name)
	}
	def(abi.FuncHTTP, hostFunc(abi.FuncHTTP, func(e *Functions, r abi.HTTPRequest) (abi.HTTPResponse, bool) { return e.HTTP(r), true }))
	def(abi.FuncSleep, hostFunc(abi.FuncSleep, func(e *Functions, r abi.SleepRequest) (abi.SleepResponse, bool) { return e.Sleep(r), true }))
	def(abi.FuncCredential, hostFunc(abi.FuncCredential, func(e *Functions, r abi.CredentialRequest) (abi.CredentialResponse, bool) {
		return e.Credential(r), true
	}))
	def(abi.FuncLog, hostFunc(abi.FuncLog, func(e *Functions, r abi.LogRecord) (struct{}, bool) { e.Log(r); return struct{}{}, false }))
	def(abi.FuncProgress, hostFunc(abi.FuncProgress, func(e *Functions, r abi.Progress) (struct{}, bool) { e.Progress(r); return struct{}{}, false }))
	_, err := b.Instantiate(ctx)
	return err
}

func instantiateWASI(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	c, err := wasi_snapshot_preview1.Instantiate(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("host: wasi: %w", err)
	}
	return c, nil
}
