package prefect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The session tests run the EventHub against a scripted websocket server that
// speaks Prefect's side of /api/events/out (src/prefect/server/api/events.py
// stream_workspace_events_out and utilities/subscriptions.py
// accept_prefect_socket): accept with subprotocol "prefect", read the auth
// message, answer auth_success or close 1008, read the filter, send the
// backfill, then stream. Durations are scaled down; nothing waits on a
// wall clock longer than a few seconds.

// behaviour is what the scripted server does with one connection.
type behaviour int

const (
	stay        behaviour = iota // answer pings and stream until kicked or the client leaves
	refuseAuth                   // close 1008 "Invalid token" after the auth message
	closeFilter                  // accept the filter, then close (a bad filter, a failed backfill)
	silent                       // accept the filter, then never read again (no pong)
)

// conn is what the scripted server saw on one connection.
type conn struct {
	at          time.Time
	subprotocol string
	userAgent   string
	auth        string // the raw auth message
	filter      string // the raw filter message
}

type scripted struct {
	t    *testing.T
	srv  *httptest.Server
	plan func(n int) behaviour
	// send is sent on every connection after the filter (the backfill).
	send []string

	mu    sync.Mutex
	conns []conn
	kick  chan struct{} // closing it ends the connections that stay
}

func newScripted(t *testing.T, plan func(n int) behaviour, send ...string) *scripted {
	t.Helper()
	s := &scripted{t: t, plan: plan, send: send, kick: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// kickAll closes every connection that stays, as a server restart would.
func (s *scripted) kickAll() {
	s.mu.Lock()
	close(s.kick)
	s.kick = make(chan struct{})
	s.mu.Unlock()
}

func (s *scripted) seen() []conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]conn(nil), s.conns...)
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/events/out" {
		http.NotFound(w, r)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"prefect"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	s.mu.Lock()
	n := len(s.conns)
	s.conns = append(s.conns, conn{at: time.Now(), subprotocol: c.Subprotocol(), userAgent: r.Header.Get("User-Agent")})
	kick := s.kick
	s.mu.Unlock()
	record := func(f func(*conn)) {
		s.mu.Lock()
		f(&s.conns[n])
		s.mu.Unlock()
	}
	b := s.plan(n)
	_, auth, err := c.Read(ctx)
	if err != nil {
		return
	}
	record(func(cn *conn) { cn.auth = string(auth) })
	if b == refuseAuth {
		_ = c.Close(websocket.StatusPolicyViolation, "Invalid token")
		return
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"auth_success"}`)); err != nil {
		return
	}
	_, filter, err := c.Read(ctx)
	if err != nil {
		return
	}
	record(func(cn *conn) { cn.filter = string(filter) })
	switch b {
	case closeFilter:
		_ = c.Close(websocket.StatusProtocolError, "Invalid filter: database is locked")
		return
	case silent:
		<-ctx.Done()
		return
	}
	for _, m := range s.send {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			return
		}
	}
	// Reading answers the client's pings.
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go func() {
		select {
		case <-kick:
			_ = c.Close(websocket.StatusGoingAway, "server shutting down")
		case <-rctx.Done():
		}
	}()
	for {
		if _, _, err := c.Read(rctx); err != nil {
			return
		}
	}
}

// eventRecorder collects what the subscribers heard.
type eventRecorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *eventRecorder) add(e Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

// subscribe subscribes r to the events of flow run id on h's
// /events/out; the test fails if it cannot.
func (r *eventRecorder) subscribe(t *testing.T, h *EventHub, id string) {
	t.Helper()
	if _, err := h.Subscribe("/events/out", id, r.add); err != nil {
		t.Fatal(err)
	}
}

// count returns how many events named name each run heard.
func (r *eventRecorder) count(name string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, e := range r.evs {
		if e.Name == name {
			n[e.FlowRunID]++
		}
	}
	return n
}

func (r *eventRecorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		out = append(out, e.FlowRunID[:4]+" "+e.Name)
	}
	return out
}

// fast is a EventHubConfig scaled for tests.
func fast(t *testing.T, s *scripted) EventHubConfig {
	base, err := url.Parse(s.srv.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	return EventHubConfig{APIBase: base, UserAgent: "ue-prefect/test",
		PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond,
		Healthy: 200 * time.Millisecond, Resubscribe: 20 * time.Millisecond}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s within 5s", what)
}

const (
	runA = "aaaaaaaa-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	runB = "bbbbbbbb-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
)

func eventMsg(id, run, name, state string, at time.Time) string {
	return fmt.Sprintf(`{"type":"event","event":{"id":%q,"event":%q,"occurred":%q,"resource":{"prefect.resource.id":"prefect.flow-run.%s","prefect.state-type":%q},"related":[],"payload":{}}}`,
		id, name, at.UTC().Format(time.RFC3339Nano), run, state)
}

// TestSessionHandshake: the handshake is Prefect's: subprotocol
// "prefect", an auth message with the token as is (null without one), a
// filter naming the watched run with backfill; backfilled events reach the
// subscriber, and once the connection is healthy it hears StreamConnected once.
func TestSessionHandshake(t *testing.T) {
	for _, tc := range []struct {
		name, token, wantToken string
	}{
		{"auth string", "user:p\"ss\\word", `"user:p\"ss\\word"`},
		{"no token", "", `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t, func(int) behaviour { return stay },
				eventMsg("e1", runA, "prefect.flow-run.Pending", "PENDING", time.Now().Add(-10*time.Second)))
			cfg := fast(t, s)
			cfg.Token = func() string { return tc.token }
			var said strings.Builder
			var smu sync.Mutex
			cfg.Log = func(m string) { smu.Lock(); said.WriteString(m + "\n"); smu.Unlock() }
			h := newEventHub(cfg)
			defer h.Close()
			var rec eventRecorder
			rec.subscribe(t, h, strings.ToUpper(runA))
			waitFor(t, "StreamConnected", func() bool { return rec.count(StreamConnected)[runA] == 1 })
			got := rec.names()
			if want := []string{"aaaa prefect.flow-run.Pending", "aaaa " + StreamConnected}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("heard %q, want %q", got, want)
			}
			cs := s.seen()
			if len(cs) != 1 {
				t.Fatalf("%d connections, want 1", len(cs))
			}
			c := cs[0]
			if c.subprotocol != "prefect" || c.userAgent != "ue-prefect/test" {
				t.Errorf("subprotocol %q, user agent %q", c.subprotocol, c.userAgent)
			}
			if want := `{"token":` + tc.wantToken + `,"type":"auth"}`; c.auth != want {
				t.Errorf("auth message %s, want %s", c.auth, want)
			}
			var f struct {
				Type   string `json:"type"`
				Filter struct {
					Occurred struct{ Since, Until time.Time }
					Resource struct {
						ID []string `json:"id"`
					}
				}
				Backfill bool
			}
			if err := json.Unmarshal([]byte(c.filter), &f); err != nil {
				t.Fatalf("filter %s: %v", c.filter, err)
			}
			if f.Type != "filter" || !f.Backfill || len(f.Filter.Resource.ID) != 1 || f.Filter.Resource.ID[0] != "prefect.flow-run."+runA ||
				time.Since(f.Filter.Occurred.Since) < BackfillWindow || time.Until(f.Filter.Occurred.Until) < 300*24*time.Hour {
				t.Errorf("filter %s", c.filter)
			}
			st := h.Status("/events/out")
			if !st.Connected || st.Connects != 1 || st.Healthy != 1 || st.Failures != 0 || st.Events != 1 || st.WatchedRun != 1 {
				t.Errorf("status %+v", st)
			}
			smu.Lock()
			defer smu.Unlock()
			if said.Len() != 0 {
				t.Errorf("said %q on a healthy stream", said.String())
			}
		})
	}
}

// TestSessionAuthRefused: a refusal (1008) is a failure retried with
// backoff, said once, never naming the token, and wakes nobody.
func TestSessionAuthRefused(t *testing.T) {
	s := newScripted(t, func(int) behaviour { return refuseAuth })
	cfg := fast(t, s)
	cfg.Token = func() string { return "s3cret-token" }
	var said strings.Builder
	var smu sync.Mutex
	cfg.Log = func(m string) { smu.Lock(); said.WriteString(m + "\n"); smu.Unlock() }
	h := newEventHub(cfg)
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "three refusals", func() bool { return h.Status("/events/out").Failures >= 3 })
	h.Close()
	st := h.Status("/events/out")
	if st.Connects != 0 || st.Healthy != 0 || !strings.Contains(st.LastError, "1008 Invalid token") {
		t.Errorf("status %+v", st)
	}
	if n := len(rec.names()); n != 0 {
		t.Errorf("heard %q from a refused stream", rec.names())
	}
	smu.Lock()
	defer smu.Unlock()
	if strings.Count(said.String(), "unavailable") != 1 || strings.Contains(said.String()+st.LastError, "s3cret") {
		t.Errorf("said %q", said.String())
	}
}

// TestSessionSilent: a server that stops answering (no pong) is dropped
// after PingTimeout and reconnected; it never became healthy, so nobody
// is woken.
func TestSessionSilent(t *testing.T) {
	s := newScripted(t, func(int) behaviour { return silent })
	cfg := fast(t, s)
	cfg.Healthy = 2 * time.Second
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "two keep-alive failures", func() bool {
		st := h.Status("/events/out")
		return st.Failures >= 2 && strings.Contains(st.LastError, "keep-alive")
	})
	if st := h.Status("/events/out"); st.Connects < 2 || st.Healthy != 0 {
		t.Errorf("status %+v", st)
	}
	if n := len(rec.names()); n != 0 {
		t.Errorf("heard %q from a silent stream", rec.names())
	}
}

// TestSessionSilentBeforePing: a socket held open without answers (a
// proxy) is not healthy for having stayed open: health needs a pong.
func TestSessionSilentBeforePing(t *testing.T) {
	s := newScripted(t, func(int) behaviour { return silent })
	cfg := fast(t, s)
	cfg.PingInterval, cfg.Healthy = time.Minute, 50*time.Millisecond
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "two failures", func() bool { return h.Status("/events/out").Failures >= 2 })
	if st := h.Status("/events/out"); st.Healthy != 0 || !strings.Contains(st.LastError, "keep-alive") {
		t.Errorf("status %+v", st)
	}
	if n := len(rec.names()); n != 0 {
		t.Errorf("heard %q from a silent stream", rec.names())
	}
}

// TestSessionFlapping: a server that accepts the filter and then closes
// (a bad filter, "database is locked" in the backfill) is retried with a
// backoff that doubles up to BackoffMax, not every BackoffMin, and wakes
// nobody; once a connection stays up, each run is woken once.
func TestSessionFlapping(t *testing.T) {
	const flaps = 6
	s := newScripted(t, func(n int) behaviour {
		if n < flaps {
			return closeFilter
		}
		return stay
	})
	cfg := fast(t, s)
	cfg.BackoffMin, cfg.BackoffMax = 40*time.Millisecond, 160*time.Millisecond
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	for _, id := range []string{runA, runB} {
		rec.subscribe(t, h, id)
	}
	waitFor(t, "the connection after the flapping", func() bool { return len(s.seen()) >= flaps+1 })
	cs := s.seen()
	// The wait before attempt i+1 is BackoffMin·2^i capped at BackoffMax,
	// ±20 % jitter. A loaded machine only makes gaps longer, so the lower
	// bound is strict and the upper one generous.
	for i := 1; i < len(cs); i++ {
		want := min(cfg.BackoffMin<<(i-1), cfg.BackoffMax)
		gap := cs[i].at.Sub(cs[i-1].at)
		if gap < want*8/10 {
			t.Errorf("attempt %d came %s after the previous, want at least %s (backoff %s)", i, gap, want*8/10, want)
		}
		if gap > want*12/10+400*time.Millisecond {
			t.Errorf("attempt %d came %s after the previous, want about %s (capped at %s)", i, gap, want, cfg.BackoffMax)
		}
	}
	waitFor(t, "StreamConnected after the flapping", func() bool { return len(rec.count(StreamConnected)) == 2 })
	time.Sleep(cfg.Healthy)
	if got := rec.count(StreamConnected); got[runA] != 1 || got[runB] != 1 {
		t.Errorf("StreamConnected per run = %v, want one each (a catch-up per healthy connection, none per flap)", got)
	}
	if st := h.Status("/events/out"); st.Connects != flaps+1 || st.Healthy != 1 || st.Failures != flaps {
		t.Errorf("status %+v", st)
	}
}

// TestSessionBackoffReset: only a healthy connection resets the backoff:
// after one, a failure waits BackoffMin again, then twice that.
func TestSessionBackoffReset(t *testing.T) {
	const healthy = 5
	s := newScripted(t, func(n int) behaviour {
		if n == healthy {
			return stay
		}
		return closeFilter
	})
	cfg := fast(t, s)
	cfg.BackoffMin, cfg.BackoffMax = 40*time.Millisecond, 2*time.Second
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "the connection that stays", func() bool { return len(s.seen()) > healthy })
	waitFor(t, "its catch-up", func() bool { return rec.count(StreamConnected)[runA] > 0 })
	kicked := time.Now()
	s.kickAll()
	waitFor(t, "two attempts after it", func() bool { return len(s.seen()) >= healthy+3 })
	cs := s.seen()
	// Before it the backoff had grown to 40 ms·2^5 = 1.28 s; reset, the
	// next attempt comes after about 40 ms, and the one after about 80 ms.
	if gap := cs[healthy+1].at.Sub(kicked); gap > 600*time.Millisecond {
		t.Errorf("reconnected %s after the healthy connection was lost, want the backoff reset to %s", gap, cfg.BackoffMin)
	}
	if gap := cs[healthy+2].at.Sub(cs[healthy+1].at); gap < 2*cfg.BackoffMin*8/10 {
		t.Errorf("the next attempt came %s later, want at least %s (the backoff grows again)", gap, 2*cfg.BackoffMin*8/10)
	}
}

// TestSessionCatchUp: each run is owed one catch-up read when it was not
// covered by a live connection: at the first healthy connection, and after
// the stream was lost, not when the filter changes for another run. Events
// repeated by the backfill after a reconnect are delivered once.
func TestSessionCatchUp(t *testing.T) {
	at := time.Now().Add(-5 * time.Second)
	s := newScripted(t, func(int) behaviour { return stay },
		eventMsg("e1", runA, "prefect.flow-run.Running", "RUNNING", at))
	cfg := fast(t, s)
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "A's catch-up", func() bool { return rec.count(StreamConnected)[runA] == 1 })

	// A second run: the hub reconnects with a filter naming both; only B
	// is owed a read.
	stopB, err := h.Subscribe("/events/out", runB, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B's catch-up", func() bool { return rec.count(StreamConnected)[runB] == 1 })
	if cs := s.seen(); len(cs) != 2 || !strings.Contains(cs[1].filter, runA) || !strings.Contains(cs[1].filter, runB) {
		t.Fatalf("connections %+v, want a second one naming both runs", cs)
	}
	if got := rec.count(StreamConnected); got[runA] != 1 {
		t.Errorf("StreamConnected per run = %v after adding B, want A still once", got)
	}

	// The server goes away: after the reconnect, both are owed a read; a
	// run unsubscribed meanwhile is not.
	stopB()
	s.kickAll()
	waitFor(t, "A's second catch-up", func() bool { return rec.count(StreamConnected)[runA] == 2 })
	time.Sleep(cfg.Healthy)
	if got := rec.count(StreamConnected); got[runA] != 2 || got[runB] != 1 {
		t.Errorf("StreamConnected per run = %v, want A twice and B (unsubscribed) once", got)
	}
	if got := rec.count("prefect.flow-run.Running"); got[runA] != 1 {
		t.Errorf("the backfilled event reached A %d times over %d connections, want once", got[runA], len(s.seen()))
	}
	if st := h.Status("/events/out"); st.Healthy != 3 || st.Failures != 1 {
		t.Errorf("status %+v", st)
	}
}

// TestSessionResubscribeHealthy: a connection that replaces a healthy one
// only to add a run to the filter is healthy at once: the added run's
// catch-up does not wait EventHubConfig.Healthy again (runs added more often than
// that would otherwise never get one).
func TestSessionResubscribeHealthy(t *testing.T) {
	s := newScripted(t, func(int) behaviour { return stay })
	cfg := fast(t, s)
	cfg.Healthy = 2 * time.Second
	h := newEventHub(cfg)
	defer h.Close()
	var rec eventRecorder
	rec.subscribe(t, h, runA)
	waitFor(t, "A's catch-up", func() bool { return rec.count(StreamConnected)[runA] == 1 })
	added := time.Now()
	rec.subscribe(t, h, runB)
	waitFor(t, "B's catch-up", func() bool { return rec.count(StreamConnected)[runB] == 1 })
	if d := time.Since(added); d >= cfg.Healthy*3/4 {
		t.Errorf("B's catch-up came %s after it was added, want at once (the stream was healthy)", d)
	}
	if got := rec.count(StreamConnected); got[runA] != 1 || len(s.seen()) != 2 {
		t.Errorf("StreamConnected per run = %v over %d connections, want A once over 2", got, len(s.seen()))
	}
}

// TestBackoffGrowth: the wait doubles and stops at the cap.
func TestBackoffGrowth(t *testing.T) {
	got := []time.Duration{}
	b := time.Second
	for range 9 {
		got = append(got, b)
		b = nextBackoff(b, 2*time.Minute)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 120, 120}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoffs %v, want %v s", got, want)
		}
	}
}
