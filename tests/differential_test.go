package tests

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
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
	a := ex.Response
	if e := a.Error; e != nil {
		switch e.Kind {
		case abi.TransportConnect:
			return nil, syscall.ECONNREFUSED
		case abi.TransportTimeout:
			return nil, context.DeadlineExceeded
		case abi.TransportInterrupted:
			return nil, context.Canceled
		case abi.TransportReset:
			if e.Message == "EOF" {
				return nil, io.EOF
			}
			return nil, syscall.ECONNRESET
		}
		return nil, errors.New(e.Message)
	}
	h := http.Header{}
	if a.RetryAfterMS > 0 {
		h.Set("Retry-After", strconv.FormatInt(a.RetryAfterMS/1000, 10))
	}
	body := string(a.Body)
	if body == "" {
		body = a.BodyText
	}
	return &http.Response{StatusCode: a.Status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// interruptingClock is a virtual clock whose Nth sleep delivers the
// scenario's interrupt instead of passing time.
type interruptingClock struct {
	*host.VirtualClock
	s    *flowruntest.Script
	intr *host.Interrupter
}

func (c interruptingClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.s.SleepInterrupted() {
		c.intr.Interrupt(c.s.Sc.Interrupt.Reason, c.s.Sc.Interrupt.ExitCode)
		return nil
	}
	return c.VirtualClock.Sleep(ctx, d)
}

func credentialFor(t *testing.T, c abi.CredentialResponse) host.Credential {
	switch c.Scheme {
	case abi.SchemeBearer:
		cred, err := host.BearerCredential("pnu_differential_test_key", c.Source)
		if err != nil {
			t.Fatal(err)
		}
		return cred
	case abi.SchemeBasic:
		cred, err := host.BasicCredential("user:differential-test-pw", c.Source)
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	return host.NoCredential()
}

// TestDifferential runs every golden scenario three ways — natively with
// the scripted effects, natively with the host's real effects, and through
// the Wasm plugin on the host — and requires the same trace from each,
// equal to the golden transcript.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.PluginWasm, host.WithInterpreter())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	eachScenario(t, func(t *testing.T, text, want string) {
		parse := func() *flowruntest.Scenario { return parseScenario(t, text) }
		// 1. Natively, the scripted effects.
		s1 := flowruntest.NewScript(parse())
		s1.Trace.Finish(flowrun.Run(s1, s1.Sc.Input))

		// 2 and 3 share a set-up: the host's own HTTP, clock and
		// credential code, with only the transport scripted.
		setup := func() (*flowruntest.Script, host.RunConfig) {
			s := flowruntest.NewScript(parse())
			intr := host.NewInterrupter()
			base, err := url.Parse(s.Sc.Input.APIBase)
			if err != nil {
				t.Fatal(err)
			}
			return s, host.RunConfig{
				Target:      s.Sc.Input.Target,
				APIBase:     base,
				Credential:  credentialFor(t, s.Sc.Credential),
				Transport:   scenarioTransport{s: s, intr: intr},
				Clock:       interruptingClock{VirtualClock: host.NewVirtualClock(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)), s: s, intr: intr},
				Interrupter: intr,
				Trace:       func(fn string, req, resp []byte) { s.Trace.Call(fn, req, resp) },
			}
		}
		// 2. Natively, through the host's effects.
		s2, cfg2 := setup()
		eff, err := host.NewEffects(ctx, cfg2)
		if err != nil {
			t.Fatal(err)
		}
		s2.Trace.Finish(flowrun.Run(traced{eff, &s2.Trace}, s2.Sc.Input))
		eff.Close()

		// 3. Through the Wasm plugin.
		s3, cfg3 := setup()
		out, err := rt.Run(ctx, cfg3, s3.Sc.Input)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		s3.Trace.Finish(out)

		for _, c := range []struct {
			name string
			got  string
		}{{"native scripted", s1.Trace.String()}, {"native host effects", s2.Trace.String()}, {"wasm", s3.Trace.String()}} {
			if c.got != want {
				t.Errorf("%s trace differs from the golden transcript:\n--- got\n%s--- want\n%s", c.name, c.got, want)
			}
		}
	})
}

// traced records calls made natively on the host's effects, in the same
// form the Wasm boundary's trace hook gives.
type traced struct {
	e *host.Effects
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
