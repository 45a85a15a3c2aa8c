package prefect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults of EventHubConfig.
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

// EventHubConfig configures an EventHub.
type EventHubConfig struct {
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
	// the catch-up (StreamConnected) delivered. Zero means the default.
	Healthy time.Duration
	// MaxFilterRuns is the most flow run ids named in a filter; with more
	// watched runs the filter asks for every flow run's events
	// (id_prefix prefect.flow-run.) and the EventHub keeps those it watches.
	MaxFilterRuns int
}

// StreamConnected is the Name of the Event a subscriber receives when its run is
// owed a catch-up read: the first healthy connection that covers the run
// after it was subscribed, and the first after the stream was lost.
// Prefect persists events in batches (every 5 s by default), and backfill
// reads only persisted events, so an event from just before the
// connection may be neither backfilled nor streamed: a subscriber should
// read its run once on StreamConnected, as on any event. A server that accepts
// and closes again before the connection is healthy sends none.
const StreamConnected = "ue-prefect.events.connected"

// Event is one Prefect event about a watched flow run, or StreamConnected.
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

// StreamStatus is a snapshot of one workspace's stream.
type StreamStatus struct {
	Connected  bool   // the filter is sent and events flow
	Connects   int    // successful handshakes so far
	Healthy    int    // connections that stayed open for EventHubConfig.Healthy
	Failures   int    // failed or lost connections so far
	Events     int    // events delivered to subscribers (after de-duplication)
	LastError  string // why the last connection failed or ended
	WatchedRun int    // flow runs watched on this stream
}

// EventHub follows Prefect's event stream, the /api/events/out
// websocket, for the flow runs a process is waiting on: one connection per
// workspace serves every watched run, and each run's subscriber hears of
// every new event on it.
//
// An event is a hint that something happened to a run, never its outcome:
// whoever is woken reads the run to learn its state. Polling stays the
// floor. When the socket is refused (a proxy that answers 404 to the
// upgrade), closes, or goes silent (no pong to a keep-alive ping within
// PingTimeout), the EventHub says so once through EventHubConfig.Log, keeps
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
// catch-up read: its subscribers receive one [StreamConnected] event once a
// connection covering it has proved healthy.
//
// A connection is healthy once it has stayed open for EventHubConfig.Healthy
// (default 10 s) after the filter was sent and then answers a ping; a connection that replaced a
// healthy one only to change the filter is healthy at once, and one that
// replaced a younger one inherits its age. Prefect accepts the filter
// before it checks it, and runs its backfill query after that: a bad
// filter, or a backfill that fails ("database is locked" on SQLite),
// closes a socket that was accepted. Only a healthy connection resets the
// reconnection backoff and pays the catch-up reads, so a server that
// accepts and then closes is retried with growing backoff (up to
// EventHubConfig.BackoffMax) and wakes nobody; polling carries the waits meanwhile.
// Reconnecting to change the filter (a run was added) owes a catch-up only
// to the runs added.
//
// The secret goes only into the auth message. It is never logged and
// never part of an error: EventHubConfig.Token supplies it per connection.
//
// It holds one event stream per workspace events path, opened on the
// first subscription and closed by Close.
type EventHub struct {
	cfg    EventHubConfig
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

// newEventHub returns an EventHub with cfg.Token as it is (NewEventHub
// sets it from a Credential). It connects nothing until Subscribe.
func newEventHub(cfg EventHubConfig) *EventHub {
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
	h := &EventHub{cfg: cfg, streams: map[string]*stream{}}
	h.client = &http.Client{
		Transport: rt,
		// An upgrade that redirects is refused: the socket stays on the API origin.
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// NewEventHub returns an EventHub for cfg.APIBase whose auth message
// carries cred's secret: the API key, or the auth string of a self-hosted
// server, as Prefect's own client sends them. The secret stays in this
// process; cfg.Token is set here. A nil cfg.Transport gets the proxy from the
// environment and TLS 1.2+ on HTTP/1.1.
func NewEventHub(cfg EventHubConfig, cred Credential) *EventHub {
	cfg.Token = cred.value
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			// A non-nil empty map keeps the upgrade on HTTP/1.1.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
	}
	return newEventHub(cfg)
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
func (h *EventHub) Subscribe(path, flowRun string, fn func(Event)) (func(), error) {
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

// StreamStatus reports on the stream of path (zero if none).
func (h *EventHub) Status(path string) StreamStatus {
	h.mu.Lock()
	s := h.streams[strings.ToLower(path)]
	h.mu.Unlock()
	if s == nil {
		return StreamStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.WatchedRun = len(s.subs)
	return st
}

// Close ends every stream and waits for their goroutines.
func (h *EventHub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// down announces, once per EventHub, that waits fall back to polling.
func (h *EventHub) down(why string) {
	h.mu.Lock()
	say := !h.said
	h.said = true
	h.mu.Unlock()
	if say && h.cfg.Log != nil {
		h.cfg.Log(fmt.Sprintf("Prefect's event stream is unavailable (%s); waiting by polling at the configured interval, reconnecting in the background", why))
	}
}

// up announces, once, that the stream is back after a fallback.
func (h *EventHub) up() {
	h.mu.Lock()
	say := h.said && !h.back
	h.back = h.back || h.said
	h.mu.Unlock()
	if say && h.cfg.Log != nil {
		h.cfg.Log("Prefect's event stream is connected again; state changes wake the wait")
	}
}
