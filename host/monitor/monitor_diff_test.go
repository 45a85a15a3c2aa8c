package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/hosttest"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// monitorScenarioTransport answers the Monitor's real HTTP client from a
// scenario. A batch (POST /flow_runs/filter) of the scenario's one run is
// the scenario's next read of it (GET /flow_runs/RUN): a flow run answer
// is returned as a one-row list, anything else as it is, which the
// Monitor hands to the machine as the answer to its own read.
type monitorScenarioTransport struct{ s *flowruntest.Script }

func (t monitorScenarioTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/api")
	method, batch := r.Method, false
	if r.Method == http.MethodPost && strings.HasSuffix(p, "/flow_runs/filter") {
		var q filterQuery
		if err := json.Unmarshal(body, &q); err != nil || len(q.FlowRuns.ID.Any) != 1 {
			return nil, errors.New("a batch of other than one run in a scenario")
		}
		method, batch = http.MethodGet, true
		p = strings.TrimSuffix(p, "/filter") + "/" + q.FlowRuns.ID.Any[0]
	}
	ex, _ := t.s.Next(method, p)
	a := ex.Response
	if batch && a.Error == nil && a.Status == http.StatusOK {
		var row struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(a.Body, &row) == nil && row.ID != "" {
			a.Body = json.RawMessage("[" + string(a.Body) + "]")
		}
	}
	return hosttest.ScriptedResponse(r, a)
}

// scenarioClock is a virtual clock on which the scenario's event ends the
// sleep it names (wake-on-sleep) by waking the run on the Monitor.
type scenarioClock struct {
	*vclock.Clock
	mu     sync.Mutex
	wakeAt time.Duration // 0: none
	m      *Monitor
}

func (c *scenarioClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	at, m := c.wakeAt, c.m
	if at > 0 && c.Since()+d > at {
		c.wakeAt = 0
	}
	c.mu.Unlock()
	if at > 0 && c.Since()+d > at {
		c.Advance(at - c.Since())
		m.Wake(flowruntest.RunID)
		return nil
	}
	return c.Clock.Sleep(ctx, d)
}

// TestMonitorDifferential runs every golden scenario of the state machine
// through the Monitor as its host (its batched reads, its sleep heap, its
// store and its HTTP code, on a virtual clock) and requires the trace and
// the outcome the CLI's host gives: the golden transcript. The scenarios
// that interrupt the run are the CLI's alone: a Monitor is never
// interrupted (Close keeps the run in the store; TestMonitorCloseEndsWatches).
func TestMonitorDifferential(t *testing.T) {
	rt := newTestRuntime(t)
	flowruntest.Each(t, "../../plugin/flowrun/testdata", func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
		sc := s.Sc
		interrupts := sc.Interrupt != nil
		for _, ex := range sc.Exchanges {
			interrupts = interrupts || ex.Interrupt != nil
		}
		if interrupts {
			// Each requires the golden trace: give it, so that only the
			// Monitor's own scenarios count; this one is the CLI's.
			t.Skip("an interrupt is the CLI's: a Monitor is closed, not interrupted, and keeps the run")
		}
		base, err := url.Parse(sc.Input.APIBase)
		if err != nil {
			t.Fatal(err)
		}
		clock := &scenarioClock{Clock: vclock.New(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))}
		store := NewMemoryStore()
		m, err := New(context.Background(), rt, Config{
			Connection: prefect.Connection{Target: sc.Input.Target, APIBase: base, UIBase: sc.Input.UIBase,
				Credential: hosttest.ScriptedCredential(t, sc.Credential), Transport: monitorScenarioTransport{s}},
			Clock: clock, Store: store, Instances: 1, BatchWindow: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		clock.mu.Lock()
		clock.m = m
		clock.mu.Unlock()
		m.mu.Lock()
		m.trace = s.Trace.Call
		m.beforeSleep = func(_ string, req abi.SleepRequest) {
			s.SleepInterrupted() // counts the sleep
			if ms, ok := s.SleepWoken(req); ok {
				clock.mu.Lock()
				clock.wakeAt = clock.Since() + time.Duration(ms)*time.Millisecond
				clock.mu.Unlock()
			}
		}
		m.mu.Unlock()
		w, err := m.launch("scenario", sc.Input)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.Done():
		case <-time.After(3 * time.Minute):
			t.Fatal("no outcome")
		}
		out := w.Outcome()
		if saved, _ := store.Load(); len(saved) > 0 && !w.r.keeps(out) {
			t.Errorf("the store keeps the run after exit %d", out.ExitCode)
		}
		return out
	})
}
