package tests

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// fallbackLine is what the CLI says, once, when waits fall back to polling.
const fallbackLine = "Prefect's event stream is unavailable"

// eventLog collects what a hub delivers.
type eventLog struct {
	mu  sync.Mutex
	evs []prefect.Event
	ch  chan struct{}
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan struct{}, 1000)} }

func (l *eventLog) add(e prefect.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
	l.ch <- struct{}{}
}

// waitState waits for an event that names stateType.
func (l *eventLog) waitState(t *testing.T, stateType string, timeout time.Duration) prefect.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for _, e := range l.evs {
			if e.StateType == stateType {
				l.mu.Unlock()
				return e
			}
		}
		l.mu.Unlock()
		select {
		case <-l.ch:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no %s event within %s; got %v", stateType, timeout, l.evs)
		}
	}
}

func (l *eventLog) ids() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, e := range l.evs {
		if e.Name != prefect.StreamConnected {
			n[e.ID]++
		}
	}
	return n
}

// waitConnected waits for the nth Connected event.
func (l *eventLog) waitConnected(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		got := 0
		for _, e := range l.evs {
			if e.Name == prefect.StreamConnected {
				got++
			}
		}
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("connected %d times within %s, want %d", got, timeout, n)
		}
	}
}

// waitPersisted waits until Prefect has stored the run's event of this
// name (its event persister writes in batches, up to 5 s late): only then
// can a backfill return it.
func waitPersisted(t *testing.T, env *rig.Env, id, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		status, body, err := env.Server.Do(ctxT(t, 30*time.Second), "POST", "/events/filter", map[string]any{
			"filter": map[string]any{"resource": map[string]any{"id": []string{"prefect.flow-run." + id}}, "event": map[string]any{"name": []string{name}}},
		})
		if err == nil && status == 200 && strings.Contains(string(body), `"`+name+`"`) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("event %s of %s not persisted within 30s", name, id)
}

// setState forces a flow run into a state through the API, as an operator would.
func setState(t *testing.T, env *rig.Env, id, stateType string) {
	t.Helper()
	status, body, err := env.Server.Do(ctxT(t, 30*time.Second), "POST", "/flow_runs/"+id+"/set_state",
		map[string]any{"state": map[string]any{"type": stateType}, "force": true})
	if err != nil || status != 201 && status != 200 {
		t.Fatalf("set_state %s: %d %s %v", stateType, status, body, err)
	}
}

// idleRun creates a flow run of the idle deployment (nothing executes it:
// its state moves only when a test sets it).
func idleRun(t *testing.T, env *rig.Env) string {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	dep, err := env.Server.DeploymentID(ctx, "idle", "idle")
	if err != nil {
		t.Fatal(err)
	}
	_, run, err := env.Server.CreateFlowRun(ctx, dep, nil)
	if err != nil {
		t.Fatal(err)
	}
	return run["id"].(string)
}

func hubFor(t *testing.T, apiURL string, cfg prefect.EventHubConfig) (*prefect.EventHub, *syncBuffer) {
	t.Helper()
	base, err := prefect.ValidateAPIBase(apiURL, false)
	if err != nil {
		t.Fatal(err)
	}
	var said syncBuffer
	cfg.APIBase = base
	if cfg.Healthy == 0 {
		cfg.Healthy = time.Second // the catch-up (Connected) a second after each connection, not ten
	}
	cfg.Log = func(msg string) { said.Write([]byte(msg + "\n")) }
	h := prefect.NewEventHub(cfg, prefect.NoCredential())
	t.Cleanup(h.Close)
	return h, &said
}

// TestE2E_EventHub: Prefect's handshake against the real server: a
// subscriber hears that the stream connected, then its run's state changes
// (and not another run's); a backfill replays what happened before it
// connected; a cut socket reconnects and backfills what it missed without
// delivering an event twice.
func TestE2E_EventHub(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	proxy := rig.NewFaultProxy(env.Server.URL)
	defer proxy.Close()
	refuse := rig.Rule{Path: regexp.MustCompile(`/events/out$`), Fault: rig.Status(404, nil, `{"detail":"Not Found"}`)}
	watched, other := idleRun(t, env), idleRun(t, env)
	// Before anyone listens: only backfill can tell of it.
	setState(t, env, watched, "PENDING")
	waitPersisted(t, env, watched, "prefect.flow-run.Pending")

	h, said := hubFor(t, proxy.URL(), prefect.EventHubConfig{BackoffMin: 200 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	log := newEventLog()
	stop, err := h.Subscribe("/events/out", watched, log.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	log.waitConnected(t, 1, 30*time.Second)
	log.waitState(t, "PENDING", 30*time.Second) // the backfill
	if st := h.Status("/events/out"); !st.Connected || st.Connects != 1 {
		t.Fatalf("status = %+v, want connected once", st)
	}
	setState(t, env, other, "RUNNING")
	setState(t, env, watched, "RUNNING")
	log.waitState(t, "RUNNING", 30*time.Second) // live

	// Cut the socket and refuse reconnections while the run ends; once
	// the end is stored, let the hub back in: the backfill brings it.
	proxy.Add(refuse)
	proxy.CutWebsockets()
	setState(t, env, watched, "COMPLETED")
	waitPersisted(t, env, watched, "prefect.flow-run.Completed")
	waitStatus(t, h, func(s prefect.StreamStatus) bool { return s.Failures >= 2 }, "refused reconnections")
	proxy.ClearRules()
	log.waitConnected(t, 2, 30*time.Second)
	e := log.waitState(t, "COMPLETED", 30*time.Second)
	if e.FlowRunID != watched || e.Name != "prefect.flow-run.Completed" {
		t.Errorf("event = %+v, want prefect.flow-run.Completed on %s", e, watched)
	}
	for id, n := range log.ids() {
		if n > 1 {
			t.Errorf("event %s delivered %d times (the backfill after the reconnect repeated it)", id, n)
		}
	}
	log.mu.Lock()
	for _, e := range log.evs {
		if e.FlowRunID != watched {
			t.Errorf("delivered an event of another run: %+v", e)
		}
	}
	log.mu.Unlock()
	if n := strings.Count(said.String(), "unavailable"); n != 1 || !strings.Contains(said.String(), "connected again") {
		t.Errorf("the hub did not say once that it fell back, and that it came back:\n%s", said.String())
	}
}

// TestE2E_EventHubSilent: a socket that goes silent (a proxy holding the
// bytes) is found by the keep-alive and replaced; a refused upgrade (404)
// is retried with backoff and said once.
func TestE2E_EventHubSilent(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	proxy := rig.NewFaultProxy(env.Server.URL)
	defer proxy.Close()
	run := idleRun(t, env)
	h, said := hubFor(t, proxy.URL(), prefect.EventHubConfig{PingInterval: 500 * time.Millisecond, PingTimeout: 500 * time.Millisecond,
		BackoffMin: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond})
	log := newEventLog()
	if _, err := h.Subscribe("/events/out", run, log.add); err != nil {
		t.Fatal(err)
	}
	log.waitConnected(t, 1, 30*time.Second)
	proxy.FreezeWebsockets()
	waitStatus(t, h, func(s prefect.StreamStatus) bool { return strings.Contains(s.LastError, "keep-alive") }, "a keep-alive failure")
	proxy.Add(rig.Rule{Path: regexp.MustCompile(`/events/out$`), Fault: rig.Status(404, nil, `{"detail":"Not Found"}`)})
	proxy.ThawWebsockets()
	proxy.CutWebsockets()
	waitStatus(t, h, func(s prefect.StreamStatus) bool { return strings.Contains(s.LastError, "HTTP 404") && s.Failures >= 3 }, "404s retried")
	if n := strings.Count(said.String(), "unavailable"); n != 1 {
		t.Errorf("fallback said %d times, want once:\n%s", n, said.String())
	}
	proxy.ClearRules()
	log.waitConnected(t, 2, 30*time.Second)
	setState(t, env, run, "RUNNING")
	log.waitState(t, "RUNNING", 30*time.Second)
}

func waitStatus(t *testing.T, h *prefect.EventHub, ok func(prefect.StreamStatus) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ok(h.Status("/events/out")) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s within 30s: %+v", what, h.Status("/events/out"))
}

// terminalAt is when the run entered its terminal state, by the server.
func terminalAt(t *testing.T, env *rig.Env, id string) time.Time {
	t.Helper()
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := run["state"].(map[string]any)
	ts, _ := st["timestamp"].(string)
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("state timestamp %q: %v", ts, err)
	}
	return at
}

// TestE2E_WaitWokenByEvent: with the default 60 s poll interval, a --wait
// run ends soon after its terminal state, not at the next poll, and the
// exit code is the state's; with --no-events it waits for the poll.
func TestE2E_WaitWokenByEvent(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	tests := []struct {
		name, deployment, params string
		code                     int
		final                    string
	}{
		{"completed", "ok/ok", `{"parameters":{"seconds":1}}`, 0, "COMPLETED"},
		{"failed", "fail/fail", "", 1, "FAILED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", tc.deployment, "UE_PREFECT_WAIT", "true", "UE_PREFECT_PARAMETERS", tc.params))
			if r.code != tc.code || lastState(r) != tc.final {
				t.Fatalf("exit %d state %q, want %d %s\n%s", r.code, lastState(r), tc.code, tc.final, r)
			}
			end := terminalAt(t, env, r.str("flow_run_id"))
			exited := r.doc.Result["elapsed_seconds"]
			// The first 60 s poll never came: an event ended the wait.
			if r.elapsed >= 50*time.Second {
				t.Fatalf("took %s with a 60 s interval: the event did not end the wait (terminal at %s)\n%s", r.elapsed, end.Format(time.RFC3339Nano), r)
			}
			if strings.Contains(r.stderr, fallbackLine) {
				t.Errorf("fell back to polling against a healthy server:\n%s", r.stderr)
			}
			t.Logf("terminal %s, elapsed_seconds %v, process %s", end.Format("15:04:05.000"), exited, r.elapsed)
		})
	}
}

// TestE2E_WaitEventsRefused: a proxy that answers 404 to the websocket
// upgrade, or cuts the socket mid-wait: the wait falls back to polling,
// says so once, and ends within one interval of the run's end with the
// right exit code.
func TestE2E_WaitEventsRefused(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	tests := []struct {
		name string
		cut  bool
	}{
		{"refused with 404", false},
		{"cut mid-wait", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := rig.NewFaultProxy(env.Server.URL)
			defer proxy.Close()
			refuse := rig.Rule{Path: regexp.MustCompile(`/events/out$`), Fault: rig.Status(404, nil, `{"detail":"Not Found"}`)}
			if !tc.cut {
				proxy.Add(refuse)
			}
			const interval = 3
			p := startUE(t, map[string]string{"PREFECT_API_URL": proxy.URL(), "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_WAIT": "true",
				"UE_PREFECT_POLL_INTERVAL": "3", "UE_PREFECT_PARAMETERS": `{"parameters":{"seconds":6}}`})
			if tc.cut {
				deadline := time.Now().Add(60 * time.Second)
				for open, _ := proxy.Websockets(); open == 0; open, _ = proxy.Websockets() {
					if time.Now().After(deadline) {
						t.Fatalf("no websocket through the proxy within 60s\n%s", p.stderr.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
				proxy.Add(refuse) // and every reconnection is refused
				proxy.CutWebsockets()
			}
			r := p.wait(3 * time.Minute)
			wantExit(t, r, 0, "Task executed successfully.")
			if lastState(r) != "COMPLETED" {
				t.Fatalf("last state %q, want COMPLETED\n%s", lastState(r), r)
			}
			if n := strings.Count(r.stderr, fallbackLine); n != 1 {
				t.Errorf("fallback said %d times, want once:\n%s", n, r.stderr)
			}
			end := terminalAt(t, env, r.str("flow_run_id"))
			// Exit within one interval of the end (plus a read and the
			// process's own exit), never a hang.
			if late := p.start.Add(r.elapsed).Sub(end); late > (interval+5)*time.Second {
				t.Errorf("exited %s after the terminal state, want within ~%d s\n%s", late, interval, r)
			}
		})
	}
}
