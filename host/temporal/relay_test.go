package uetemporal

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// fakeHub is an event source whose events the test delivers by hand.
type fakeHub struct {
	mu       sync.Mutex
	subs     map[string]func(prefect.Event) // by flow run id
	subCalls int
	stops    int
	failures int
}

func (h *fakeHub) Subscribe(path, run string, fn func(prefect.Event)) (func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if path != "/events/out" {
		return nil, fmt.Errorf("not an events path: %q", path)
	}
	if h.subs == nil {
		h.subs = map[string]func(prefect.Event){}
	}
	h.subs[run] = fn
	h.subCalls++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, run)
		h.stops++
	}, nil
}

func (h *fakeHub) Status(string) prefect.StreamStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return prefect.StreamStatus{Failures: h.failures}
}

func (h *fakeHub) send(run, name string) {
	h.mu.Lock()
	fn := h.subs[run]
	h.mu.Unlock()
	if fn != nil {
		fn(prefect.Event{ID: fmt.Sprint(time.Now().UnixNano()), Name: name, FlowRunID: run})
	}
}

func (h *fakeHub) counts() (subs, subCalls, stops int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs), h.subCalls, h.stops
}

// signals records the wake signals a relay sends; closed workflows answer
// NotFound, as the server does.
type signals struct {
	mu     sync.Mutex
	got    []string
	closed map[string]bool
	ch     chan string
}

func (s *signals) send(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed[id] {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	s.got = append(s.got, id)
	s.ch <- id
	return nil
}

// next waits for the next signal, or "" after d.
func (s *signals) next(d time.Duration) string {
	select {
	case id := <-s.ch:
		return id
	case <-time.After(d):
		return ""
	}
}

const (
	runA = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	runB = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
)

// TestRelay: what an event, the connected notice, a closed workflow and
// an expired watch do.
func TestRelay(t *testing.T) {
	on := func(run string) abi.WakeOn { return abi.WakeOn{FlowRunID: run, EventsPath: "/events/out"} }
	type step struct {
		do   func(h *fakeHub, r *Relay, s *signals, advance func(time.Duration))
		want string // the signal expected next ("" none within 300 ms)
	}
	tests := []struct {
		name  string
		steps []step
		subs  int // live subscriptions at the end
	}{
		{"an event wakes the workflow waiting on the run", []step{
			{func(h *fakeHub, r *Relay, _ *signals, _ func(time.Duration)) { r.Watch("wf-1", on(runA), time.Minute) }, ""},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) {
				h.send(runA, "prefect.flow-run.Running")
			}, "wf-1"},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) {
				h.send(runA, "prefect.flow-run.Completed")
			}, "wf-1"},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) {
				h.send(runB, "prefect.flow-run.Completed")
			}, ""},
		}, 1},
		{"the first connected notice wakes, a reconnect for the filter does not, one after a loss does", []step{
			{func(h *fakeHub, r *Relay, _ *signals, _ func(time.Duration)) { r.Watch("wf-1", on(runA), time.Minute) }, ""},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) { h.send(runA, prefect.StreamConnected) }, "wf-1"},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) { h.send(runA, prefect.StreamConnected) }, ""},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) {
				h.mu.Lock()
				h.failures++
				h.mu.Unlock()
				h.send(runA, prefect.StreamConnected)
			}, "wf-1"},
		}, 1},
		{"a closed workflow's watch ends at its first signal", []step{
			{func(h *fakeHub, r *Relay, s *signals, _ func(time.Duration)) {
				s.closed["wf-1"] = true
				r.Watch("wf-1", on(runA), time.Minute)
				h.send(runA, "prefect.flow-run.Completed")
			}, ""},
		}, 0},
		{"a watch not renewed ends after its sleep and the grace", []step{
			{func(h *fakeHub, r *Relay, _ *signals, advance func(time.Duration)) {
				r.Watch("wf-1", on(runA), time.Minute)
				advance(time.Minute + RelayGrace + time.Second)
				h.send(runA, "prefect.flow-run.Completed")
			}, ""},
		}, 0},
		{"a renewed watch lives on, on one subscription", []step{
			{func(h *fakeHub, r *Relay, _ *signals, advance func(time.Duration)) {
				r.Watch("wf-1", on(runA), time.Minute)
				advance(time.Minute)
				r.Watch("wf-1", on(runA), time.Minute)
				advance(time.Minute + time.Second)
				h.send(runA, "prefect.flow-run.Completed")
			}, "wf-1"},
		}, 1},
		{"a workflow that moves to another run leaves the first", []step{
			{func(h *fakeHub, r *Relay, _ *signals, _ func(time.Duration)) {
				r.Watch("wf-1", on(runA), time.Minute)
				r.Watch("wf-1", on(runB), time.Minute)
				h.send(runA, "prefect.flow-run.Completed")
			}, ""},
			{func(h *fakeHub, _ *Relay, _ *signals, _ func(time.Duration)) {
				h.send(runB, "prefect.flow-run.Completed")
			}, "wf-1"},
		}, 1},
		{"a path the hub refuses leaves the wait plain", []step{
			{func(h *fakeHub, r *Relay, _ *signals, _ func(time.Duration)) {
				r.Watch("wf-1", abi.WakeOn{FlowRunID: runA, EventsPath: "/elsewhere"}, time.Minute)
				h.send(runA, "prefect.flow-run.Completed")
			}, ""},
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHub{}
			s := &signals{closed: map[string]bool{}, ch: make(chan string, 16)}
			r := NewRelay(h, s.send)
			clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			var cmu sync.Mutex
			r.now = func() time.Time { cmu.Lock(); defer cmu.Unlock(); return clock }
			advance := func(d time.Duration) { cmu.Lock(); defer cmu.Unlock(); clock = clock.Add(d) }
			for i, st := range tc.steps {
				st.do(h, r, s, advance)
				wait := 300 * time.Millisecond
				if st.want != "" {
					wait = 5 * time.Second
				}
				if got := s.next(wait); got != st.want {
					t.Fatalf("step %d: signal %q, want %q", i, got, st.want)
				}
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				live, _, _ := h.counts()
				if live == tc.subs {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d live subscriptions, want %d", live, tc.subs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			r.Close()
			if live, _, _ := h.counts(); live != 0 {
				t.Errorf("after Close, %d live subscriptions, want 0", live)
			}
		})
	}
}

// TestRelayOneSignalPerBurst: events that arrive before their signal is
// sent ride on it.
func TestRelayOneSignalPerBurst(t *testing.T) {
	h := &fakeHub{}
	release := make(chan struct{})
	var mu sync.Mutex
	sent := 0
	r := NewRelay(h, func(context.Context, string) error {
		<-release
		mu.Lock()
		sent++
		mu.Unlock()
		return nil
	})
	defer r.Close()
	for i := range RelaySenders {
		r.Watch(fmt.Sprint("busy-", i), abi.WakeOn{FlowRunID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), EventsPath: "/events/out"}, time.Minute)
		h.send(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "x") // occupy every sender
	}
	r.Watch("wf-1", abi.WakeOn{FlowRunID: runA, EventsPath: "/events/out"}, time.Minute)
	for range 5 {
		h.send(runA, "prefect.flow-run.Running")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := sent
		mu.Unlock()
		if n == RelaySenders+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d signals sent, want %d", n, RelaySenders+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if sent != RelaySenders+1 {
		t.Errorf("%d signals sent, want %d (one for the burst of 5)", sent, RelaySenders+1)
	}
}

// watchLog records a Workflow's Watcher calls.
type watchLog struct {
	mu    sync.Mutex
	calls []string
}

func (w *watchLog) Watch(id string, on abi.WakeOn, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, fmt.Sprintf("%s %s %s %v", id, on.EventsPath, on.FlowRunID, d))
}

// wakeDuring sends the wake signal while the n-th read of the flow run is
// in flight.
type wakeDuring struct {
	scripted
	n, reads int
	wake     func()
}

func (w *wakeDuring) HTTPActivity(ctx context.Context, r abi.HTTPRequest) (abi.HTTPResponse, error) {
	if strings.HasPrefix(r.Path, "/flow_runs/") {
		if w.reads++; w.reads == w.n {
			w.wake()
		}
	}
	return w.HTTP(r), nil
}

// TestWorkflowWatchAndEarlyWake: each sleep that asks to be woken is told
// to the Watcher (workflow id, the run, the interval), and a wake that
// arrives while the workflow reads its run is kept: it ends the next such
// sleep at once, as the CLI keeps an event for its next wait.
func TestWorkflowWatchAndEarlyWake(t *testing.T) {
	sc := scenarios(t)["wait_completed"]
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "wf-watch"})
	var trace flowruntest.Trace
	wl := &watchLog{}
	(&Workflow{Trace: trace.Call, Watcher: wl}).Register(env)
	eff := &wakeDuring{scripted: scripted{script: flowruntest.NewScript(sc)}, n: 1,
		wake: func() { env.SignalWorkflow(SignalWake, nil) }}
	env.RegisterActivityWithOptions(eff.HTTPActivity, activity.RegisterOptions{Name: ActivityHTTP})
	acts := &Activities{Conn: Connection{Target: sc.Input.Target, APIBase: sc.Input.APIBase, Credential: sc.Credential}}
	env.RegisterActivityWithOptions(acts.Connection, activity.RegisterOptions{Name: ActivityConnection})
	env.ExecuteWorkflow(WorkflowName, Input{Fields: sc.Input.Fields, InvocationID: sc.Input.InvocationID, Seed: sc.Input.Seed})
	var out abi.RunOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != abi.ExitSuccess {
		t.Errorf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	got := trace.String()
	// The first read is at 60 s; the sleep after it ends at once, woken.
	if !strings.Contains(got, "<== 200 body=299B now_ms=60000\n") || !strings.Contains(got, `<== {"now_ms":60000,"woken":true}`) {
		t.Errorf("the wake during the first read did not end the next sleep at once:\n%s", got)
	}
	sleeps := strings.Count(got, "==> sleep ")
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if len(wl.calls) != sleeps-1 {
		t.Errorf("Watcher told of %d sleeps, want %d (every sleep but the one the kept wake ended): %q", len(wl.calls), sleeps-1, wl.calls)
	}
	want := "wf-watch /events/out " + runA + " 1m0s"
	for _, c := range wl.calls {
		if c != want {
			t.Errorf("Watcher call %q, want %q", c, want)
		}
	}
}
