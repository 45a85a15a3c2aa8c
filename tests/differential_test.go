package tests

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/hosttest"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// scenarioTransport answers the host's real HTTP client from a scenario.
type scenarioTransport struct {
	s    *flowruntest.Script
	intr *host.Interrupter
}

func (t scenarioTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/api")
	ex, _ := t.s.Next(r.Method, p)
	if ex.Interrupt != nil {
		t.intr.Interrupt(ex.Interrupt.Reason, ex.Interrupt.ExitCode)
	}
	return hosttest.ScriptedResponse(r, ex.Response)
}

// interruptingClock is a virtual clock whose Nth sleep delivers the
// scenario's interrupt instead of passing time, and whose woken sleeps
// pass the scenario's time and then deliver an event for the flow run.
type interruptingClock struct {
	*hosttest.VirtualClock
	s    *flowruntest.Script
	intr *host.Interrupter
	ev   *scriptEvents
}

func (c interruptingClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.s.SleepInterrupted() {
		c.intr.Interrupt(c.s.Sc.Interrupt.Reason, c.s.Sc.Interrupt.ExitCode)
		return nil
	}
	if ms, ok := c.s.Sc.SleepWake[c.s.Sleeps()]; ok && time.Duration(ms)*time.Millisecond < d {
		c.Advance(time.Duration(ms) * time.Millisecond)
		c.ev.fire()
		if err := ctx.Err(); err != nil {
			return err // the event ended the sleep
		}
		d -= time.Duration(ms) * time.Millisecond
	}
	return c.VirtualClock.Sleep(ctx, d)
}

// scriptEvents is the event source of a scenario: the clock fires an event
// on every subscribed flow run when the scenario wakes a sleep.
type scriptEvents struct {
	mu   sync.Mutex
	subs map[int]func(prefect.Event)
	n    int
}

func (e *scriptEvents) Subscribe(path, flowRunID string, fn func(prefect.Event)) (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subs == nil {
		e.subs = map[int]func(prefect.Event){}
	}
	e.n++
	k := e.n
	e.subs[k] = fn
	return func() { e.mu.Lock(); delete(e.subs, k); e.mu.Unlock() }, nil
}

func (e *scriptEvents) fire() {
	e.mu.Lock()
	fns := make([]func(prefect.Event), 0, len(e.subs))
	for _, fn := range e.subs {
		fns = append(fns, fn)
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(prefect.Event{Name: "prefect.flow-run.Running"})
	}
}

// scenarioConfig is the host's own HTTP, clock and credential code with
// only the network and the clock's passing scripted from s.
func scenarioConfig(t *testing.T, s *flowruntest.Script) host.RunConfig {
	intr := host.NewInterrupter()
	base, err := url.Parse(s.Sc.Input.APIBase)
	if err != nil {
		t.Fatal(err)
	}
	ev := &scriptEvents{}
	return host.RunConfig{
		Connection: prefect.Connection{
			Target:     s.Sc.Input.Target,
			APIBase:    base,
			Credential: hosttest.ScriptedCredential(t, s.Sc.Credential),
			Transport:  scenarioTransport{s: s, intr: intr},
		},
		Clock:       interruptingClock{VirtualClock: hosttest.NewVirtualClock(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)), s: s, intr: intr, ev: ev},
		Events:      ev,
		Interrupter: intr,
		Trace:       func(fn string, req, resp []byte) { s.Trace.Call(fn, req, resp) },
	}
}

// TestDifferential runs every golden scenario through the host's real
// effects twice, natively (package flowrun driven by host.Functions) and
// through the Wasm plugin, and requires each trace to equal the golden
// transcript the native machine wrote with scripted effects.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	// Compiled from the cache TestMain warmed: the interpreter took 4× as long.
	rt, err := host.NewRuntime(ctx, host.PluginWasm, host.WithCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	t.Run("native", func(t *testing.T) {
		flowruntest.Each(t, goldenDir, func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
			fns, err := rt.Functions(ctx, scenarioConfig(t, s))
			if err != nil {
				t.Fatal(err)
			}
			defer fns.Close()
			return flowrun.Run(traced{fns, &s.Trace}, s.Sc.Input)
		})
	})
	t.Run("wasm", func(t *testing.T) {
		flowruntest.Each(t, goldenDir, func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
			out, err := rt.Run(ctx, scenarioConfig(t, s), s.Sc.Input)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			return out
		})
	})
}

// traced records calls made natively on the host's functions, in the same
// form the Wasm boundary's trace hook gives.
type traced struct {
	e *host.Functions
	t *flowruntest.Trace
}

func (x traced) HTTP(r abi.HTTPRequest) abi.HTTPResponse {
	resp := x.e.HTTP(r)
	x.t.Call(abi.FuncHTTP, mustJSON(r), mustJSON(resp))
	return resp
}
func (x traced) Sleep(r abi.SleepRequest) abi.SleepResponse {
	resp := x.e.Sleep(r)
	x.t.Call(abi.FuncSleep, mustJSON(r), mustJSON(resp))
	return resp
}
func (x traced) Credential(r abi.CredentialRequest) abi.CredentialResponse {
	resp := x.e.Credential(r)
	x.t.Call(abi.FuncCredential, mustJSON(r), mustJSON(resp))
	return resp
}
func (x traced) Log(l abi.LogRecord) { x.e.Log(l); x.t.Call(abi.FuncLog, mustJSON(l), nil) }
func (x traced) Progress(p abi.Progress) {
	x.e.Progress(p)
	x.t.Call(abi.FuncProgress, mustJSON(p), nil)
}
