// Package events follows Prefect's event stream, the /api/events/out
// websocket, for the flow runs a process is waiting on: one connection per
// workspace serves every watched run, and each run's subscriber hears of
// every new event on it.
//
// An event is a hint that something happened to a run, never its outcome:
// whoever is woken reads the run to learn its state. Polling stays the
// floor. When the socket is refused (a proxy that answers 404 to the
// upgrade), closes, or goes silent (no pong to a keep-alive ping within
// PingTimeout), the Hub says so once through Config.Log, keeps
// reconnecting with backoff, and subscribers simply hear nothing until it
// is back; after a reconnect, backfill replays what was missed.
//
// The handshake is Prefect's own (src/prefect/events/clients.py,
// PrefectEventSubscriber._reconnect; server side
// src/prefect/server/api/events.py stream_workspace_events_out and
// src/prefect/server/utilities/subscriptions.py accept_prefect_socket):
//
//  1. Upgrade to a websocket with subprotocol "prefect".
//  2. Send {"type":"auth","token":T}: T is the Prefect Cloud API key, or a
//     self-hosted server's auth string (user:password, as is), or null.
//     Wait for {"type":"auth_success"}; a refusal closes the socket with
//     1008 and a reason.
//  3. Send {"type":"filter","filter":{"occurred":{"since":S,"until":U},
//     "resource":{"id":["prefect.flow-run.<id>",…]}},"backfill":true}. S is
//     one minute before the first connection, later one minute before the
//     newest event seen (as Prefect's client does); U is a year ahead.
//  4. Read {"type":"event","event":{…}} messages. Backfilled events come
//     first, oldest first; events are de-duplicated by id across
//     reconnects.
//
// Prefect's backfill covers only events already persisted (in batches, up
// to 5 s late), so a run that was not covered by a live connection for a
// while (it was just subscribed, or the stream was lost) is owed one
// catch-up read: its subscribers receive one [Connected] event once a
// connection covering it has proved healthy.
//
// A connection is healthy once it has stayed open for Config.Healthy
// (default 10 s) after the filter was sent and then answers a ping; a connection that replaced a
// healthy one only to change the filter is healthy at once, and one that
// replaced a younger one inherits its age. Prefect accepts the filter
// before it checks it, and runs its backfill query after that: a bad
// filter, or a backfill that fails ("database is locked" on SQLite),
// closes a socket that was accepted. Only a healthy connection resets the
// reconnection backoff and pays the catch-up reads, so a server that
// accepts and then closes is retried with growing backoff (up to
// Config.BackoffMax) and wakes nobody; polling carries the waits meanwhile.
// Reconnecting to change the filter (a run was added) owes a catch-up only
// to the runs added.
//
// The secret goes only into the auth message. It is never logged and
// never part of an error: Config.Token supplies it per connection.
package events

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Defaults of Config.
const (
	DefaultPingInterval  = 20 * time.Second
	DefaultPingTimeout   = 10 * time.Second
	DefaultHandshake     = 15 * time.Second
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 2 * time.Minute
	DefaultResubscribe   = 100 * time.Millisecond
	DefaultHealthy       = 10 * time.Second
	DefaultMaxFilterRuns = 200
	// BackfillWindow is how far before the first connection, and before
	// the newest event seen, backfill reaches (Prefect's client: 1 minute).
	BackfillWindow = time.Minute
	// readLimit bounds one message; an event with a large payload is a few
	// KiB.
	readLimit = 4 << 20
)

// Config configures a Hub.
type Config struct {
	// APIBase is the API base URL (http(s)://…/api); event paths are
	// relative to it and the socket uses ws(s):// on the same origin.
	APIBase *url.URL
	// Token returns the secret for the auth message ("" sends null). It is
	// called once per connection and its result is never logged.
	Token func() string
	// Transport carries the upgrade requests; nil means a default
	// transport. It must speak HTTP/1.1 (websockets do not run on HTTP/2).
	Transport http.RoundTripper
	// UserAgent is sent with the upgrade request.
	UserAgent string
	// Log receives lines for people: that the stream is unavailable and
	// waits fall back to polling (once), and that it is back (once).
	Log func(msg string)
	// PingInterval and PingTimeout tune the keep-alive: a ping every
	// interval, and a connection without a pong within the timeout counts
	// as gone. Zero means the defaults.
	PingInterval, PingTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between connection
	// attempts (doubling, ±20 % jitter). Zero means the defaults.
	BackoffMin, BackoffMax time.Duration
	// Resubscribe is how long a change to the watched runs is collected
	// before the filter is sent again (by reconnecting). Zero means the
	// default.
	Resubscribe time.Duration
	// Healthy is how long a connection must stay open after the filter
	// is sent to count as healthy (it must then also answer a ping
	// within PingTimeout): only then is the backoff reset and
	// the catch-up (Connected) delivered. Zero means the default.
	Healthy time.Duration
	// MaxFilterRuns is the most flow run ids named in a filter; with more
	// watched runs the filter asks for every flow run's events
	// (id_prefix prefect.flow-run.) and the Hub keeps those it watches.
	MaxFilterRuns int
}

// Connected is the Name of the Event a subscriber receives when its run is
// owed a catch-up read: the first healthy connection that covers the run
// after it was subscribed, and the first after the stream was lost.
// Prefect persists events in batches (every 5 s by default), and backfill
// reads only persisted events, so an event from just before the
// connection may be neither backfilled nor streamed: a subscriber should
// read its run once on Connected, as on any event. A server that accepts
// and closes again before the connection is healthy sends none.
const Connected = "ue-prefect.events.connected"

// Event is one Prefect event about a watched flow run, or Connected.
type Event struct {
	ID        string    // the event's id
	Name      string    // e.g. prefect.flow-run.Completed
	Occurred  time.Time // when Prefect says it happened
	FlowRunID string    // the run (lower case)
	// StateType and StateName come from the resource's
	// prefect.state-type and prefect.state-name labels when present
	// (state-change events carry them). A hint only.
	StateType, StateName string
}

// Status is a snapshot of one workspace's stream.
type Status struct {
	Connected  bool   // the filter is sent and events flow
	Connects   int    // successful handshakes so far
	Healthy    int    // connections that stayed open for Config.Healthy
	Failures   int    // failed or lost connections so far
	Events     int    // events delivered to subscribers (after de-duplication)
	LastError  string // why the last connection failed or ended
	WatchedRun int    // flow runs watched on this stream
}

// Hub holds one event stream per workspace events path, opened on the
// first subscription and closed by Close.
type Hub struct {
	cfg    Config
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool
	said    bool // the fallback has been announced
	back    bool // the recovery after it has been announced
	wg      sync.WaitGroup
}

// New returns a Hub. It connects nothing until Subscribe.
func New(cfg Config) *Hub {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Resubscribe <= 0 {
		cfg.Resubscribe = DefaultResubscribe
	}
	if cfg.Healthy <= 0 {
		cfg.Healthy = DefaultHealthy
	}
	if cfg.MaxFilterRuns <= 0 {
		cfg.MaxFilterRuns = DefaultMaxFilterRuns
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
			// A non-nil empty map keeps the transport on HTTP/1.1.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
	}
	h := &Hub{cfg: cfg, streams: map[string]*stream{}}
	h.client = &http.Client{
		Transport: rt,
		// An upgrade that redirects is refused: the socket stays on the API origin.
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

var errRedirect = errors.New("the websocket upgrade was redirected")

// eventsPath is what a workspace events path may be.
var eventsPath = regexp.MustCompile(`^(/accounts/[0-9a-fA-F-]{36}/workspaces/[0-9a-fA-F-]{36})?/events/out$`)

// flowRunID is what a watched id may be.
var flowRunID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Subscribe watches a flow run's events on the events websocket at path
// (relative to the API base: "/events/out", or a Cloud workspace's
// "/accounts/{a}/workspaces/{w}/events/out"). fn is called for each new
// event on the run, from the stream's goroutine: it must return quickly.
// The returned function ends the subscription; it is safe to call more
// than once.
func (h *Hub) Subscribe(path, flowRun string, fn func(Event)) (func(), error) {
	if !eventsPath.MatchString(path) {
		return nil, fmt.Errorf("events: %q is not an events path", path)
	}
	if !flowRunID.MatchString(flowRun) {
		return nil, fmt.Errorf("events: %q is not a flow run id", flowRun)
	}
	if fn == nil {
		return nil, errors.New("events: no callback")
	}
	id := strings.ToLower(flowRun)
	key := strings.ToLower(path)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("events: the hub is closed")
	}
	s := h.streams[key]
	if s == nil {
		u := *h.cfg.APIBase
		switch u.Scheme {
		case "https":
			u.Scheme = "wss"
		default:
			u.Scheme = "ws"
		}
		u.Path = strings.TrimRight(u.Path, "/") + path
		u.RawPath = ""
		s = &stream{hub: h, url: u.String(), subs: map[string][]*sub{}, changed: make(chan struct{}, 1), seen: map[string]time.Time{}, owed: map[string]bool{}}
		h.streams[key] = s
		h.wg.Add(1)
		go s.run()
	}
	sb := &sub{fn: fn}
	s.mu.Lock()
	s.subs[id] = append(s.subs[id], sb)
	fresh := len(s.subs[id]) == 1
	if fresh {
		s.owed[id] = true
	}
	s.mu.Unlock()
	if fresh {
		s.poke()
	}
	var once sync.Once
	return func() { once.Do(func() { s.unsubscribe(id, sb) }) }, nil
}

// Status reports on the stream of path (zero if none).
func (h *Hub) Status(path string) Status {
	h.mu.Lock()
	s := h.streams[strings.ToLower(path)]
	h.mu.Unlock()
	if s == nil {
		return Status{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.WatchedRun = len(s.subs)
	return st
}

// Close ends every stream and waits for their goroutines.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// down announces, once per Hub, that waits fall back to polling.
func (h *Hub) down(why string) {
	h.mu.Lock()
	say := !h.said
	h.said = true
	h.mu.Unlock()
	if say && h.cfg.Log != nil {
		h.cfg.Log(fmt.Sprintf("Prefect's event stream is unavailable (%s); waiting by polling at the configured interval, reconnecting in the background", why))
	}
}

// up announces, once, that the stream is back after a fallback.
func (h *Hub) up() {
	h.mu.Lock()
	say := h.said && !h.back
	h.back = h.back || h.said
	h.mu.Unlock()
	if say && h.cfg.Log != nil {
		h.cfg.Log("Prefect's event stream is connected again; state changes wake the wait")
	}
}

type sub struct{ fn func(Event) }

// stream is one websocket, reconnected as needed.
type stream struct {
	hub     *Hub
	url     string
	changed chan struct{} // the watched set grew

	mu     sync.Mutex
	subs   map[string][]*sub
	status Status
	// Prefect's backfill bookkeeping: since moves forward with the events
	// seen; seen holds the ids of events at or after since.
	since  time.Time
	seen   map[string]time.Time
	pruned time.Time
	// covered is what the live connection's filter covers: nil for every
	// flow run (id_prefix), else the ids named.
	covered map[string]bool
	all     bool
	// owed holds the watched runs owed a catch-up read (Connected).
	owed map[string]bool
	// upSince is when the filter was first sent on the live chain of
	// connections that replaced each other only to change the filter
	// (zero after a failure). Only the run goroutine uses it.
	upSince time.Time
	// cb serializes the subscribers' callbacks: events come from the
	// reader, Connected from the keep-alive goroutine.
	cb sync.Mutex
}

func (s *stream) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *stream) unsubscribe(id string, sb *sub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.subs[id]
	for i, x := range list {
		if x == sb {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.subs, id)
		delete(s.owed, id)
	} else {
		s.subs[id] = list
	}
}

// needsResubscribe reports whether a watched run is missing from the live
// filter.
func (s *stream) needsResubscribe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all {
		return false
	}
	for id := range s.subs {
		if !s.covered[id] {
			return true
		}
	}
	return false
}

func (s *stream) watching() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs) > 0
}

// run connects, reads, and reconnects with backoff until the hub closes.
func (s *stream) run() {
	defer s.hub.wg.Done()
	ctx := s.hub.ctx
	cfg := s.hub.cfg
	backoff := cfg.BackoffMin
	for ctx.Err() == nil {
		if !s.watching() {
			select {
			case <-s.changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		healthy, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		resub := errors.Is(err, errResubscribe)
		s.mu.Lock()
		s.status.Connected = false
		if !resub {
			// Lost: whatever happened until the next connection may
			// be missing from its backfill.
			for id := range s.subs {
				s.owed[id] = true
			}
			s.upSince = time.Time{}
		}
		s.mu.Unlock()
		if healthy {
			backoff = cfg.BackoffMin
		}
		if resub {
			continue
		}
		s.mu.Lock()
		s.status.Failures++
		s.status.LastError = err.Error()
		s.mu.Unlock()
		s.hub.down(err.Error())
		d := jitter(backoff)
		backoff = nextBackoff(backoff, cfg.BackoffMax)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// nextBackoff is the wait after one more failure: twice d, at most max.
func nextBackoff(d, max time.Duration) time.Duration {
	return min(d*2, max)
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

var errResubscribe = errors.New("the watched runs changed")

// session is one connection: handshake, then events until it fails, goes
// silent, or the filter must change. healthy reports whether it stayed
// open for Config.Healthy.
func (s *stream) session(ctx context.Context) (healthy bool, err error) {
	cfg := s.hub.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hctx, hcancel := context.WithTimeout(ctx, DefaultHandshake)
	defer hcancel()
	hdr := http.Header{}
	if cfg.UserAgent != "" {
		hdr.Set("User-Agent", cfg.UserAgent)
	}
	c, resp, derr := websocket.Dial(hctx, s.url, &websocket.DialOptions{
		HTTPClient:   s.hub.client,
		HTTPHeader:   hdr,
		Subprotocols: []string{"prefect"},
	})
	if derr != nil {
		return false, dialError(resp, derr)
	}
	defer c.CloseNow()
	c.SetReadLimit(readLimit)

	// 2. auth
	var token any
	if cfg.Token != nil {
		if t := cfg.Token(); t != "" {
			token = t
		}
	}
	if err := writeJSON(hctx, c, map[string]any{"type": "auth", "token": token}); err != nil {
		return false, closeError("sending the auth message", err)
	}
	var reply struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if err := readJSON(hctx, c, &reply); err != nil {
		return false, closeError("authenticating", err)
	}
	if reply.Type != "auth_success" {
		return false, fmt.Errorf("authentication refused (%s)", clip(firstNonEmpty(reply.Reason, reply.Type)))
	}

	// 3. filter
	filter, err := s.filter(time.Now())
	if err != nil {
		return false, err
	}
	if err := c.Write(hctx, websocket.MessageText, filter); err != nil {
		return false, closeError("sending the filter", err)
	}
	hcancel()
	s.mu.Lock()
	s.status.Connected = true
	s.status.Connects++
	s.status.LastError = ""
	s.mu.Unlock()

	if s.upSince.IsZero() {
		s.upSince = time.Now()
	}
	upSince := s.upSince

	// Keep-alive, health and resubscription beside the reader.
	errc := make(chan error, 2)
	var isHealthy atomic.Bool
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.PingInterval)
		defer t.Stop()
		ht := time.NewTimer(max(0, cfg.Healthy-time.Since(upSince)))
		defer ht.Stop()
		var resub <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-ht.C:
				// A proxy may hold a dead socket open: healthy also
				// means that it answers a ping now.
				pctx, pcancel := context.WithTimeout(ctx, cfg.PingTimeout)
				err := c.Ping(pctx)
				pcancel()
				if err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("no answer to a keep-alive ping within %s", cfg.PingTimeout)
						cancel()
					}
					return
				}
				isHealthy.Store(true)
				s.mu.Lock()
				s.status.Healthy++
				s.mu.Unlock()
				s.hub.up()
				s.catchUp()
			case <-s.changed:
				if s.needsResubscribe() && resub == nil {
					resub = time.After(cfg.Resubscribe)
				}
			case <-resub:
				resub = nil
				if s.needsResubscribe() {
					errc <- errResubscribe
					cancel()
					return
				}
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, cfg.PingTimeout)
				err := c.Ping(pctx)
				pcancel()
				if err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("no answer to a keep-alive ping within %s", cfg.PingTimeout)
					cancel()
					return
				}
			}
		}
	}()
	// A change that arrived during the handshake may not be in the filter.
	if s.needsResubscribe() {
		s.poke()
	}

	// 4. events
	for {
		var msg struct {
			Type  string          `json:"type"`
			Event json.RawMessage `json:"event"`
		}
		err := readJSON(ctx, c, &msg)
		if err != nil {
			select {
			case e := <-errc:
				if errors.Is(e, errResubscribe) {
					_ = c.Close(websocket.StatusNormalClosure, "")
				}
				cancel()
				<-done
				return isHealthy.Load(), e
			default:
			}
			cancel()
			<-done
			return isHealthy.Load(), closeError("reading events", err)
		}
		if msg.Type == "event" {
			s.deliver(msg.Event)
		}
	}
}

// filter builds the filter message and records what it covers.
func (s *stream) filter(now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		s.since = now.Add(-BackfillWindow)
	}
	ids := make([]string, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	resource := map[string]any{}
	s.covered, s.all = nil, len(ids) > s.hub.cfg.MaxFilterRuns
	if s.all {
		resource["id_prefix"] = []string{"prefect.flow-run."}
	} else {
		s.covered = map[string]bool{}
		rids := make([]string, len(ids))
		for i, id := range ids {
			rids[i] = "prefect.flow-run." + id
			s.covered[id] = true
		}
		resource["id"] = rids
	}
	return json.Marshal(map[string]any{
		"type": "filter",
		"filter": map[string]any{
			"occurred": map[string]string{
				"since": s.since.UTC().Format(time.RFC3339Nano),
				"until": now.Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339Nano),
			},
			"resource": resource,
		},
		"backfill": true,
	})
}

// catchUp sends Connected to the subscribers of every run owed a catch-up
// read that the live filter covers, once.
func (s *stream) catchUp() {
	type call struct {
		fn func(Event)
		id string
	}
	var calls []call
	s.mu.Lock()
	ids := make([]string, 0, len(s.owed))
	for id := range s.owed {
		if s.all || s.covered[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		delete(s.owed, id)
		for _, sb := range s.subs[id] {
			calls = append(calls, call{sb.fn, id})
		}
	}
	s.mu.Unlock()
	now := time.Now()
	s.cb.Lock()
	defer s.cb.Unlock()
	for _, c := range calls {
		c.fn(Event{Name: Connected, Occurred: now, FlowRunID: c.id})
	}
}

// deliver hands a new event to its run's subscribers.
func (s *stream) deliver(raw json.RawMessage) {
	var e struct {
		ID       string            `json:"id"`
		Event    string            `json:"event"`
		Occurred time.Time         `json:"occurred"`
		Resource map[string]string `json:"resource"`
	}
	if json.Unmarshal(raw, &e) != nil || e.ID == "" {
		return
	}
	rid := e.Resource["prefect.resource.id"]
	id, ok := strings.CutPrefix(rid, "prefect.flow-run.")
	if !ok {
		return
	}
	id = strings.ToLower(id)
	s.mu.Lock()
	if _, dup := s.seen[e.ID]; dup {
		s.mu.Unlock()
		return
	}
	// Prefect's client: the next backfill starts a minute before the
	// newest event seen; ids older than that cannot come back.
	if next := e.Occurred.Add(-BackfillWindow); next.After(s.since) {
		s.since = next
		if s.since.Sub(s.pruned) > BackfillWindow {
			s.pruned = s.since
			for k, t := range s.seen {
				if t.Before(s.since) {
					delete(s.seen, k)
				}
			}
		}
	}
	s.seen[e.ID] = e.Occurred
	list := append([]*sub(nil), s.subs[id]...)
	if len(list) > 0 {
		s.status.Events++
	}
	s.mu.Unlock()
	ev := Event{ID: e.ID, Name: e.Event, Occurred: e.Occurred, FlowRunID: id,
		StateType: e.Resource["prefect.state-type"], StateName: e.Resource["prefect.state-name"]}
	s.cb.Lock()
	defer s.cb.Unlock()
	for _, sb := range list {
		sb.fn(ev)
	}
}

func writeJSON(ctx context.Context, c *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}

func readJSON(ctx context.Context, c *websocket.Conn, v any) error {
	typ, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return fmt.Errorf("a binary message")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("a message that is not JSON: %v", err)
	}
	return nil
}

// dialError says why the upgrade failed, without the URL's secrets (it
// has none) and without the response body.
func dialError(resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("the websocket upgrade was answered HTTP %d", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no websocket handshake within %s", DefaultHandshake)
	}
	return fmt.Errorf("websocket: %s", clip(unwrapURL(err)))
}

func closeError(what string, err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("closed while %s: %d %s", what, int(ce.Code), clip(ce.Reason))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out %s", what)
	}
	return fmt.Errorf("lost while %s: %s", what, clip(err.Error()))
}

func unwrapURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
