package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// TestMonitorEventsCatchUp: a Monitor following runs with an events hub
// reads each run once per healthy connection (the catch-up after the
// stream was lost), in /flow_runs/filter batches, and not at all while the
// server accepts the filter and closes again (flapping).
func TestMonitorEventsCatchUp(t *testing.T) {
	t.Parallel() // waits in real time; overlaps the package's other slow tests
	const n, flaps = 20, 6
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	var mu sync.Mutex
	var batches []int // ids per filter request
	conns := 0
	flapUntil := 0              // connections before this index close after the filter
	kick := make(chan struct{}) // closing it ends the connections that stay
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/events/out":
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"prefect"}})
			if err != nil {
				return
			}
			defer c.CloseNow()
			mu.Lock()
			k := conns
			conns++
			flap, stop := k < flapUntil, kick
			mu.Unlock()
			ctx := r.Context()
			if _, _, err := c.Read(ctx); err != nil { // auth
				return
			}
			if c.Write(ctx, websocket.MessageText, []byte(`{"type":"auth_success"}`)) != nil {
				return
			}
			if _, _, err := c.Read(ctx); err != nil { // filter
				return
			}
			if flap {
				_ = c.Close(websocket.StatusProtocolError, "database is locked")
				return
			}
			go func() {
				<-stop
				_ = c.Close(websocket.StatusGoingAway, "restarting")
			}()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		case r.Method == http.MethodPost && r.URL.Path == "/api/flow_runs/filter":
			var f filterQuery
			_ = json.NewDecoder(r.Body).Decode(&f)
			mu.Lock()
			batches = append(batches, len(f.FlowRuns.ID.Any))
			mu.Unlock()
			rows := []map[string]any{}
			for _, id := range f.FlowRuns.ID.Any {
				rows = append(rows, map[string]any{"id": id, "name": "run", "state_type": "RUNNING", "state_name": "Running",
					"state": map[string]any{"type": "RUNNING", "name": "Running"}})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rows)
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	base, err := prefect.ValidateAPIBase(srv.URL+"/api", false)
	if err != nil {
		t.Fatal(err)
	}
	hub := prefect.NewEventHub(prefect.EventHubConfig{APIBase: base, Healthy: 400 * time.Millisecond,
		// A flap every 0.4 s: slower than a batched read, so
		// that each would be read apart if it woke the runs.
		BackoffMin: 400 * time.Millisecond, BackoffMax: 400 * time.Millisecond, Resubscribe: 20 * time.Millisecond}, prefect.NoCredential())
	defer hub.Close()
	m, err := New(t.Context(), newTestRuntime(t), Config{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		BatchWindow: 300 * time.Millisecond, Events: hub})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	for i, id := range ids {
		// A minute between polls: every read in this test is a wake.
		if _, err := m.Launch(fmt.Sprint("k", i), abi.Fields{FlowRunID: id, PollInterval: "60"}); err != nil {
			t.Fatal(err)
		}
	}
	reads := func() (r, b int) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range batches {
			r += x
		}
		return r, len(batches)
	}
	settle := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r, _ := reads()
			if r >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d reads, want %d: %s", r, want, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Second) // anything more would come within this
		if r, _ := reads(); r != want {
			t.Errorf("%d reads, want %d: %s", r, want, what)
		}
	}
	// Each run's first read, then one catch-up read each once the stream
	// is healthy, however often it reconnected to add runs to the filter.
	settle(2*n, "a first read and one catch-up read per run")
	t.Logf("%s: first reads and catch-up done", time.Since(start))

	// The server restarts and flaps: connections accepted and closed for
	// about 2.4 s, then one that stays. One catch-up read per run, in batches.
	r0, b0 := reads()
	mu.Lock()
	flapUntil = conns + flaps
	close(kick)
	kick = make(chan struct{})
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		up := conns > flapUntil
		mu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection after the flapping within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	settle(r0+n, "one catch-up read per run after the flapping")
	r1, b1 := reads()
	t.Logf("%s: catch-up after the flapping done", time.Since(start))
	if b1-b0 > 2 {
		t.Errorf("%d requests for %d catch-up reads, want them batched", b1-b0, r1-r0)
	}
	mu.Lock()
	if conns < flapUntil+1 {
		t.Errorf("%d connections, want the %d flaps and one more", conns, flaps)
	}
	mu.Unlock()
	if st := hub.Status("/events/out"); st.Failures < flaps+1 {
		t.Errorf("hub status %+v, want the restart and the flaps counted", st)
	}
}
