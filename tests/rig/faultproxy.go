package rig

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

type faultKind int

const (
	kindNone faultKind = iota
	kindDropAfterUpstream
	kindDrop
	kindReset
	kindDelay
	kindDelayBefore
	kindStatus
	kindRedirect
	kindBody
	kindLargeBody
	kindStatusAfterUpstream
)

// Fault is what a FaultProxy does to a request matched by a Rule. Use the
// DropAfterUpstream, Drop and Reset values or the Delay, DelayBefore,
// Status, Redirect, Body and LargeBody constructors.
type Fault struct {
	kind     faultKind
	delay    time.Duration
	status   int
	header   http.Header
	body     []byte
	size     int64
	location string
}

var (
	// DropAfterUpstream forwards the request, lets the upstream handle it
	// completely (its side effects happen), then closes the client
	// connection without writing any response: the client sees EOF. This
	// is the "lost response" case for idempotency tests.
	DropAfterUpstream = Fault{kind: kindDropAfterUpstream}
	// Drop closes the client connection (normal FIN) without forwarding.
	Drop = Fault{kind: kindDrop}
	// Reset closes the client connection with a TCP RST (SO_LINGER 0)
	// without forwarding.
	Reset = Fault{kind: kindReset}
)

// Delay forwards the request at once but holds the upstream's response for
// d before writing it (the side effect happens; the answer is late).
func Delay(d time.Duration) Fault { return Fault{kind: kindDelay, delay: d} }

// StatusAfterUpstream forwards the request, lets the upstream handle it
// completely (its side effects happen), then answers code with body
// instead of the upstream's success: a server that committed the work and
// then failed, e.g. a 500 after the create_flow_run transaction. An
// upstream answer other than 2xx (the work was not done, e.g. a 503 from
// a busy database) is passed on, and the fault waits for the next
// matching request.
func StatusAfterUpstream(code int, body string) Fault {
	h := http.Header{}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return Fault{kind: kindStatusAfterUpstream, status: code, header: h, body: []byte(body)}
}

// DelayBefore waits d before forwarding; if the client gives up meanwhile,
// nothing reaches the upstream.
func DelayBefore(d time.Duration) Fault { return Fault{kind: kindDelayBefore, delay: d} }

// Status answers code with headers and body without forwarding, e.g.
// Status(429, map[string]string{"Retry-After": "1"}, `{"detail":"slow down"}`).
func Status(code int, headers map[string]string, body string) Fault {
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	if h.Get("Content-Type") == "" && body != "" {
		h.Set("Content-Type", "application/json")
	}
	return Fault{kind: kindStatus, status: code, header: h, body: []byte(body)}
}

// Redirect answers 302 Found with Location: location without forwarding.
func Redirect(location string) Fault {
	return Fault{kind: kindRedirect, status: http.StatusFound, location: location}
}

// Body answers status with an arbitrary (possibly invalid JSON) body
// without forwarding.
func Body(status int, body []byte) Fault {
	return Fault{kind: kindBody, status: status, body: append([]byte(nil), body...)}
}

// LargeBody answers status with a JSON-looking body of size bytes
// (`["xxxx...`, never terminated), streamed without buffering it.
func LargeBody(status int, size int64) Fault {
	return Fault{kind: kindLargeBody, status: status, size: size}
}

// RetryAfterDate returns a Retry-After value in HTTP-date form, d from now.
func RetryAfterDate(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }

// String names the fault, as recorded in Exchange.Fault.
func (f Fault) String() string {
	switch f.kind {
	case kindDropAfterUpstream:
		return "drop-after-upstream"
	case kindDrop:
		return "drop"
	case kindReset:
		return "reset"
	case kindDelay:
		return fmt.Sprintf("delay(%v)", f.delay)
	case kindDelayBefore:
		return fmt.Sprintf("delay-before(%v)", f.delay)
	case kindStatus:
		return fmt.Sprintf("status(%d)", f.status)
	case kindRedirect:
		return fmt.Sprintf("redirect(%s)", f.location)
	case kindBody:
		return fmt.Sprintf("body(%d, %d bytes)", f.status, len(f.body))
	case kindLargeBody:
		return fmt.Sprintf("large-body(%d, %d bytes)", f.status, f.size)
	case kindStatusAfterUpstream:
		return fmt.Sprintf("status-after-upstream(%d)", f.status)
	}
	return ""
}

// Rule programs a fault: it applies to the next Times requests whose method
// equals Method ("" = any, case-insensitive) and whose URL path matches
// Path (nil = any), then expires. Times <= 0 means every matching request
// until ClearRules. Rules are tried in the order they were added.
type Rule struct {
	Method string
	Path   *regexp.Regexp
	Times  int
	Fault  Fault
}

type ruleState struct {
	Rule
	left int
}

// Exchange records one request through a FaultProxy.
type Exchange struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	// RequestBody is the request body (first 64 KiB).
	RequestBody []byte
	// Fault is the applied fault's name, "" if forwarded untouched.
	Fault string
	// Forwarded reports whether the request reached the upstream;
	// UpstreamStatus is the upstream's status then.
	Forwarded      bool
	UpstreamStatus int
	// Status is what the client was sent (0: connection dropped or reset).
	Status int
	// ResponseBody is what the upstream or the fault answered (first 64 KiB).
	ResponseBody []byte
	Err          string
	Duration     time.Duration
}

const maxLogBody = 64 << 10

// FaultProxy is a reverse proxy on 127.0.0.1 in front of a real server that
// injects programmed faults and records every exchange. URL() has the same
// path shape as the upstream URL, so it can replace it anywhere.
type FaultProxy struct {
	upstream  *url.URL
	transport *http.Transport
	srv       *http.Server

	mu       sync.Mutex
	rules    []*ruleState
	log      []Exchange
	addr     string
	ln       net.Listener
	conns    map[net.Conn]bool
	closed   bool
	downTill time.Time
	gen      int
	tunnels  map[*tunnel]bool
	tunneled int

	// Rate limit: at most rateN requests in any rateWindow; admitted holds
	// the admission times within the last window.
	rateN      int
	rateWindow time.Duration
	admitted   []time.Time
}

// tunnel is one websocket relayed byte for byte.
type tunnel struct {
	client, upstream net.Conn
	mu               sync.Mutex
	frozen           bool
	thaw             chan struct{}
}

// RateLimit makes the proxy admit at most n requests in any sliding window
// of length window (Prefect Cloud's limits are per minute) and answer the
// others 429 with Retry-After: the whole seconds until one is admitted
// again, as a rate-limited API does. n <= 0 turns it off. Refused requests
// are recorded with Fault "rate-limit".
func (p *FaultProxy) RateLimit(n int, window time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rateN, p.rateWindow, p.admitted = n, window, nil
}

// admit applies the rate limit; it returns 0 to admit, or the seconds to
// wait.
func (p *FaultProxy) admit(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rateN <= 0 {
		return 0
	}
	i := 0
	for i < len(p.admitted) && now.Sub(p.admitted[i]) >= p.rateWindow {
		i++
	}
	p.admitted = p.admitted[i:]
	if len(p.admitted) < p.rateN {
		p.admitted = append(p.admitted, now)
		return 0
	}
	wait := p.admitted[0].Add(p.rateWindow).Sub(now)
	return int((wait + time.Second - 1) / time.Second)
}

// NewFaultProxy starts a proxy in front of upstreamURL (e.g.
// http://127.0.0.1:4200/api). It panics if it cannot listen.
func NewFaultProxy(upstreamURL string) *FaultProxy {
	up, err := url.Parse(upstreamURL)
	if err != nil {
		panic(fmt.Sprintf("rig: NewFaultProxy: bad upstream URL %q: %v", upstreamURL, err))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("rig: NewFaultProxy: listen: %v", err))
	}
	p := &FaultProxy{
		upstream:  up,
		transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
		addr:      ln.Addr().String(),
		ln:        ln,
		conns:     map[net.Conn]bool{},
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch st {
			case http.StateNew:
				p.conns[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		},
	}
	go p.srv.Serve(ln)
	return p
}

// URL returns the proxy's base with the upstream's path, e.g.
// http://127.0.0.1:PORT/api.
func (p *FaultProxy) URL() string {
	return "http://" + p.addr + strings.TrimSuffix(p.upstream.Path, "/")
}

// Addr returns the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.addr }

// Add programs a rule.
func (p *FaultProxy) Add(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &ruleState{Rule: r, left: r.Times})
}

// ClearRules removes every rule.
func (p *FaultProxy) ClearRules() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// PendingRules returns how many rules have not expired yet.
func (p *FaultProxy) PendingRules() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rules)
}

// Log returns a copy of every exchange so far.
func (p *FaultProxy) Log() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.log...)
}

// ClearLog forgets the recorded exchanges.
func (p *FaultProxy) ClearLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

// Down simulates an outage: it closes the listener and every open client
// connection at once (new connections are refused), and re-opens the
// listener on the same port after d. It returns immediately; the upstream
// is not touched.
func (p *FaultProxy) Down(d time.Duration) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.gen++
	gen := p.gen
	p.downTill = time.Now().Add(d)
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	go func() {
		time.Sleep(d)
		for i := 0; i < 100; i++ {
			p.mu.Lock()
			if p.closed || p.gen != gen {
				p.mu.Unlock()
				return
			}
			ln, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.ln = ln
				p.mu.Unlock()
				go p.srv.Serve(ln)
				return
			}
			p.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// IsDown reports whether the proxy is currently refusing connections.
func (p *FaultProxy) IsDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ln == nil && !p.closed
}

// Close stops the proxy and closes every connection.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln = nil
	p.mu.Unlock()
	p.srv.Close()
	p.transport.CloseIdleConnections()
	p.ThawWebsockets()
	p.CutWebsockets()
}

// matchUpgrade is match for a websocket upgrade: only rules that name a
// path apply, so rules meant for API requests are not used up by sockets.
func (p *FaultProxy) matchUpgrade(method, path string) (Fault, bool) {
	f, _, ok := p.matchRule(method, path, true)
	return f, ok
}

func (p *FaultProxy) match(method, path string) (Fault, *ruleState) {
	f, r, _ := p.matchRule(method, path, false)
	return f, r
}

func (p *FaultProxy) matchRule(method, path string, needPath bool) (Fault, *ruleState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r.Method != "" && !strings.EqualFold(r.Method, method) {
			continue
		}
		if r.Path != nil && !r.Path.MatchString(path) || needPath && r.Path == nil {
			continue
		}
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		return r.Fault, r, true
	}
	return Fault{}, nil, false
}

// rearm gives back a use of r that a request matched but did not use.
func (p *FaultProxy) rearm(r *ruleState) {
	if r == nil || r.Times <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.left == 0 {
		p.rules = append([]*ruleState{r}, p.rules...)
	}
	r.left++
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func clip(b []byte) []byte {
	if len(b) > maxLogBody {
		b = b[:maxLogBody]
	}
	return append([]byte(nil), b...)
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if f, ok := p.matchUpgrade(r.Method, r.URL.Path); ok {
			p.serveFault(w, r, f)
			return
		}
		p.tunnelWebsocket(w, r)
		return
	}
	start := time.Now()
	reqBody, err := io.ReadAll(r.Body)
	ex := Exchange{Time: start, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, RequestBody: clip(reqBody)}
	defer func() {
		ex.Duration = time.Since(start)
		p.mu.Lock()
		p.log = append(p.log, ex)
		p.mu.Unlock()
	}()
	if err != nil {
		ex.Err = "read request body: " + err.Error()
		return
	}
	if wait := p.admit(start); wait > 0 {
		ex.Fault = "rate-limit"
		w.Header().Set("Retry-After", fmt.Sprint(wait))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"detail": "rate limited"})
		ex.Status = http.StatusTooManyRequests
		return
	}
	f, rs := p.match(r.Method, r.URL.Path)
	ex.Fault = f.String()

	switch f.kind {
	case kindReset, kindDrop:
		hijackClose(w, f.kind == kindReset, &ex)
		return
	case kindStatus:
		for k, vs := range f.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(f.status)
		w.Write(f.body)
		ex.Status, ex.ResponseBody = f.status, clip(f.body)
		return
	case kindRedirect:
		w.Header().Set("Location", f.location)
		w.WriteHeader(f.status)
		ex.Status = f.status
		return
	case kindBody:
		w.WriteHeader(f.status)
		w.Write(f.body)
		ex.Status, ex.ResponseBody = f.status, clip(f.body)
		return
	case kindLargeBody:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		ex.Status = f.status
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		chunk[0] = '['
		chunk[1] = '"'
		for left := f.size; left > 0; {
			n := int64(len(chunk))
			if left < n {
				n = left
			}
			if _, err := w.Write(chunk[:n]); err != nil {
				ex.Err = err.Error()
				return
			}
			chunk[0], chunk[1] = 'x', 'x'
			left -= n
		}
		return
	case kindDelayBefore:
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			ex.Err = "client gave up during delay-before; not forwarded"
			return
		}
	}

	ctx := r.Context()
	if f.kind == kindDropAfterUpstream || f.kind == kindDelay || f.kind == kindStatusAfterUpstream {
		ctx = context.WithoutCancel(ctx) // the upstream must finish the request
	}
	status, header, body, err := p.forward(ctx, r, reqBody)
	if err != nil {
		ex.Err = "upstream: " + err.Error()
		if errors.Is(r.Context().Err(), context.Canceled) {
			return
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{"detail": "fault proxy: upstream error: " + err.Error()})
		ex.Status = http.StatusBadGateway
		return
	}
	ex.Forwarded, ex.UpstreamStatus, ex.ResponseBody = true, status, clip(decoded(header, body))

	switch f.kind {
	case kindDropAfterUpstream:
		hijackClose(w, false, &ex)
		return
	case kindStatusAfterUpstream:
		if status < 200 || status > 299 {
			// The upstream did not do the work: pass its answer on and
			// keep the fault for the next matching request.
			ex.Fault = ""
			p.rearm(rs)
			break
		}
		for k, vs := range f.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(f.status)
		w.Write(f.body)
		ex.Status = f.status
		return
	case kindDelay:
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			ex.Err = "client gave up during delay"
			return
		}
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	ex.Status = status
}

func (p *FaultProxy) forward(ctx context.Context, r *http.Request, body []byte) (int, http.Header, []byte, error) {
	out := &url.URL{Scheme: p.upstream.Scheme, Host: p.upstream.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(ctx, r.Method, out.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		req.Body = nil
		req.ContentLength = 0
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	h := resp.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	h.Del("Content-Length")
	return resp.StatusCode, h, data, nil
}

// decoded returns body gunzipped when Content-Encoding is gzip (for the log).
func decoded(h http.Header, body []byte) []byte {
	if !strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return body
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxLogBody))
	if err != nil {
		return body
	}
	return out
}

func hijackClose(w http.ResponseWriter, rst bool, ex *Exchange) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		ex.Err = "response writer cannot hijack"
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		ex.Err = "hijack: " + err.Error()
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// serveFault answers a websocket upgrade with a programmed fault (Status,
// Drop, Reset; other kinds answer 502) and records it.
func (p *FaultProxy) serveFault(w http.ResponseWriter, r *http.Request, f Fault) {
	ex := Exchange{Time: time.Now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Fault: f.String()}
	switch f.kind {
	case kindReset, kindDrop:
		hijackClose(w, f.kind == kindReset, &ex)
	case kindStatus, kindBody:
		for k, vs := range f.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(f.status)
		w.Write(f.body)
		ex.Status = f.status
	default:
		w.WriteHeader(http.StatusBadGateway)
		ex.Status = http.StatusBadGateway
	}
	p.mu.Lock()
	p.log = append(p.log, ex)
	p.mu.Unlock()
}

// tunnelWebsocket relays a websocket upgrade to the upstream byte for byte
// (the handshake included), until either side closes, CutWebsockets, or
// Close. FreezeWebsockets holds the bytes, as a proxy that has silently
// lost the connection would.
func (p *FaultProxy) tunnelWebsocket(w http.ResponseWriter, r *http.Request) {
	ex := Exchange{Time: time.Now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Fault: "websocket"}
	defer func() {
		p.mu.Lock()
		p.log = append(p.log, ex)
		p.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", p.upstream.Host, 10*time.Second)
	if err != nil {
		ex.Err = "upstream: " + err.Error()
		w.WriteHeader(http.StatusBadGateway)
		ex.Status = http.StatusBadGateway
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		ex.Err = "response writer cannot hijack"
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		ex.Err = "hijack: " + err.Error()
		return
	}
	if err := r.Write(up); err != nil { // the upgrade request, headers intact
		client.Close()
		up.Close()
		ex.Err = "upstream write: " + err.Error()
		return
	}
	ex.Forwarded, ex.Status = true, http.StatusSwitchingProtocols
	t := &tunnel{client: client, upstream: up, thaw: make(chan struct{})}
	p.mu.Lock()
	if p.tunnels == nil {
		p.tunnels = map[*tunnel]bool{}
	}
	p.tunnels[t] = true
	p.tunneled++
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	relay := func(dst net.Conn, src io.Reader) {
		defer func() { done <- struct{}{} }()
		b := make([]byte, 32<<10)
		for {
			n, err := src.Read(b)
			if n > 0 {
				t.wait()
				if _, werr := dst.Write(b[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go relay(up, buf)
	go relay(client, up)
	<-done
	client.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.tunnels, t)
	p.mu.Unlock()
}

// wait blocks while the tunnel is frozen.
func (t *tunnel) wait() {
	t.mu.Lock()
	frozen, thaw := t.frozen, t.thaw
	t.mu.Unlock()
	if frozen {
		<-thaw
	}
}

// Websockets returns how many websockets are open now, and how many were
// opened in all.
func (p *FaultProxy) Websockets() (open, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tunnels), p.tunneled
}

// CutWebsockets closes every relayed websocket at once (TCP close on both
// sides), as a proxy restart or an idle timeout would.
func (p *FaultProxy) CutWebsockets() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.tunnels {
		t.client.Close()
		t.upstream.Close()
	}
}

// FreezeWebsockets stops relaying bytes on every open websocket without
// closing it: both ends see silence, not a close. ThawWebsockets undoes it.
func (p *FaultProxy) FreezeWebsockets() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.tunnels {
		t.mu.Lock()
		if !t.frozen {
			t.frozen, t.thaw = true, make(chan struct{})
		}
		t.mu.Unlock()
	}
}

// ThawWebsockets resumes relaying on frozen websockets.
func (p *FaultProxy) ThawWebsockets() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.tunnels {
		t.mu.Lock()
		if t.frozen {
			t.frozen = false
			close(t.thaw)
		}
		t.mu.Unlock()
	}
}
