package flowruntest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Trace collects the canonical lines of a run.
type Trace struct {
	lines []string
}

// String returns the trace, one call per line.
func (t *Trace) String() string { return strings.Join(t.lines, "\n") + "\n" }

func compact(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(buf.String())
}

// Call records one host-function call from its JSON request and response,
// as the Wasm boundary sees them. Request and response are decoded and
// re-encoded canonically, so native and Wasm runs give identical text.
func (t *Trace) Call(fn string, req, resp []byte) {
	switch fn {
	case abi.FuncHTTP:
		var r abi.HTTPRequest
		_ = json.Unmarshal(req, &r)
		t.lines = append(t.lines, "==> "+fn+" "+compact(r))
		var a abi.HTTPResponse
		_ = json.Unmarshal(resp, &a)
		t.lines = append(t.lines, "<== "+summarize(a))
	case abi.FuncSleep:
		var r abi.SleepRequest
		_ = json.Unmarshal(req, &r)
		var a abi.SleepResponse
		_ = json.Unmarshal(resp, &a)
		t.lines = append(t.lines, "==> "+fn+" "+compact(r), "<== "+compact(a))
	case abi.FuncCredential:
		var a abi.CredentialResponse
		_ = json.Unmarshal(resp, &a)
		t.lines = append(t.lines, "==> "+fn, "<== "+compact(a))
	case abi.FuncLog:
		var r abi.LogRecord
		_ = json.Unmarshal(req, &r)
		if r.Source != "" {
			t.lines = append(t.lines, fmt.Sprintf("--- %s %s %s: %s", r.Source, r.Time, r.Level, r.Message))
		} else {
			t.lines = append(t.lines, fmt.Sprintf("--- %s: %s", r.Level, r.Message))
		}
	case abi.FuncProgress:
		var p abi.Progress
		_ = json.Unmarshal(req, &p)
		t.lines = append(t.lines, "--- progress "+compact(p.Fields))
	default:
		t.lines = append(t.lines, "==> "+fn+" ??")
	}
}

// summarize shows a response without its body, which the scenario holds.
func summarize(a abi.HTTPResponse) string {
	var b strings.Builder
	if a.Error != nil {
		fmt.Fprintf(&b, "error %s %q", a.Error.Kind, a.Error.Message)
	} else {
		fmt.Fprintf(&b, "%d", a.Status)
		if len(a.Body) > 0 {
			fmt.Fprintf(&b, " body=%dB", len(a.Body))
		}
		if a.BodyText != "" {
			fmt.Fprintf(&b, " text=%q", a.BodyText)
		}
		if a.RetryAfterMS > 0 {
			fmt.Fprintf(&b, " retry_after_ms=%d", a.RetryAfterMS)
		}
	}
	fmt.Fprintf(&b, " now_ms=%d", a.NowMS)
	if a.Interrupt != nil {
		fmt.Fprintf(&b, " interrupt=%s/%d", a.Interrupt.Reason, a.Interrupt.ExitCode)
	}
	return b.String()
}

// Finish records the outcome.
func (t *Trace) Finish(out abi.RunOutput) {
	t.lines = append(t.lines, fmt.Sprintf("=== exit %d: %s", out.ExitCode, out.StatusDescription))
	var r any
	if json.Unmarshal(out.Result, &r) == nil {
		// The flow run metadata is the scenario's; keep the trace short.
		if m, ok := r.(map[string]any); ok {
			if _, has := m["flow_run"]; has {
				m["flow_run"] = "…"
			}
		}
		t.lines = append(t.lines, "=== result "+compact(r))
	}
	if out.Error != nil {
		t.lines = append(t.lines, "=== error "+compact(out.Error))
	}
}

// Failf records a harness failure (an unexpected request) in the trace.
func (t *Trace) Failf(format string, args ...any) {
	t.lines = append(t.lines, "!!! "+fmt.Sprintf(format, args...))
}
