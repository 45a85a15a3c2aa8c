package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ue-prefect/ue-prefect/abi"
)

// PrefectAPIVersion is sent as X-PREFECT-API-VERSION; Prefect 3 servers
// accept 0.8.0 and above.
const PrefectAPIVersion = "0.8.4"

// Defaults for HTTP.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxResponseBytes = 8 << 20
)

// ValidateAPIBase checks an API base URL: absolute http(s), no credentials
// or query in it, and plain http only for a loopback host unless
// allowInsecure. It returns the URL without a trailing slash.
func ValidateAPIBase(raw string, allowInsecure bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL such as https://prefect.example.com/api", RedactURL(raw))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not contain credentials; use PREFECT_API_AUTH_STRING or PREFECT_API_KEY", RedactURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not have a query or fragment", raw)
	}
	if u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%q uses plain http to a host that is not loopback; use https, or allow insecure http explicitly", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// RedactURL masks the user information (user:password@) of a URL for a
// message or an echo of the input, also when the URL does not parse.
func RedactURL(raw string) string {
	if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
		u.User = url.User("****")
		return u.String()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			return raw[:i+3] + "****" + raw[at:]
		}
		return "****" + raw[at:]
	}
	return raw
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewTransport returns the production transport: the proxy from the
// environment, TLS 1.2+ with verification on, bounded connection set-up.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: every exchange is bounded by the request
		// timeout (RunConfig.RequestTimeout, up to 600 s) through its context,
		// and a fixed header timeout here would silently cap it.
		IdleConnTimeout:     4 * time.Second, // under uvicorn's 5 s keep-alive, so a reused connection is never one the server is closing
		MaxIdleConnsPerHost: 4,
		ForceAttemptHTTP2:   true,
	}
}

// httpDoer performs the plugin's requests against one API base.
type httpDoer struct {
	base      *url.URL
	client    *http.Client
	cred      Credential
	clock     Clock
	maxBody   int64
	timeout   time.Duration
	userAgent string
	csrf      csrfState
}

var errCrossOrigin = errors.New("redirect outside the API origin")

// newDoer is newHTTPDoer with the defaults of RunConfig and MonitorConfig
// applied: the production transport, DefaultRequestTimeout,
// DefaultMaxResponseBytes and a User-Agent naming the plugin's version.
func (r *Runtime) newDoer(base *url.URL, rt http.RoundTripper, cred Credential, clock Clock, timeout time.Duration, maxBody int64, ua string) *httpDoer {
	if rt == nil {
		rt = NewTransport()
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxResponseBytes
	}
	if ua == "" {
		ua = "ue-prefect"
		if r.info.PluginVersion != "" {
			ua += "/" + r.info.PluginVersion
		}
	}
	return newHTTPDoer(base, rt, cred, clock, maxBody, timeout, ua)
}

func newHTTPDoer(base *url.URL, rt http.RoundTripper, cred Credential, clock Clock, maxBody int64, timeout time.Duration, ua string) *httpDoer {
	d := &httpDoer{base: base, cred: cred, clock: clock, maxBody: maxBody, timeout: timeout, userAgent: ua}
	d.client = &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// Never follow a redirect off the API base, never re-send a POST,
			// and never more than a few.
			if !d.inBase(req.URL) || via[0].Method != http.MethodGet || len(via) > 3 {
				return errCrossOrigin
			}
			return nil
		},
	}
	return d
}

// inBase reports whether u is on the API base's origin and under its path.
func (d *httpDoer) inBase(u *url.URL) bool {
	if u.Scheme != d.base.Scheme || !strings.EqualFold(u.Host, d.base.Host) {
		return false
	}
	p := u.EscapedPath()
	return p == d.base.EscapedPath() || strings.HasPrefix(p, d.base.EscapedPath()+"/")
}

// target builds the URL of a plugin-supplied path, refusing anything that
// would leave the API base.
func (d *httpDoer) target(p string) (*url.URL, error) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") || strings.Contains(p, "//") {
		return nil, fmt.Errorf("path %q is not a plain absolute path", p)
	}
	unesc, err := url.PathUnescape(p)
	if err != nil {
		return nil, fmt.Errorf("path %q is badly escaped", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if s, _ := url.PathUnescape(seg); s == "." || s == ".." || strings.Contains(s, "/") {
			return nil, fmt.Errorf("path %q has a dot or slash segment", p)
		}
	}
	if path.Clean(unesc) != unesc && unesc != "/" {
		return nil, fmt.Errorf("path %q is not clean", p)
	}
	u := *d.base
	u.RawPath = d.base.EscapedPath() + p
	u.Path, _ = url.PathUnescape(u.RawPath)
	if !d.inBase(&u) {
		return nil, fmt.Errorf("path %q leaves the API base", p)
	}
	return &u, nil
}

// do performs one exchange. ctx ends it early (an interrupt or shutdown).
func (d *httpDoer) do(ctx context.Context, r abi.HTTPRequest) abi.HTTPResponse {
	fail := func(kind abi.TransportKind, format string, args ...any) abi.HTTPResponse {
		return abi.HTTPResponse{Error: &abi.TransportError{Kind: kind, Message: fmt.Sprintf(format, args...)}}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return fail(abi.TransportForbidden, "method %q is not allowed", r.Method)
	}
	u, err := d.target(r.Path)
	if err != nil {
		return fail(abi.TransportForbidden, "%v", err)
	}
	timeout := d.timeout
	if t := time.Duration(r.TimeoutMS) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body []byte
	if r.Method == http.MethodPost {
		if body = []byte(r.Body); len(body) == 0 {
			body = []byte("{}")
		}
	}
	resp, data, terr := d.send(ctx, r.Method, u, body, d.csrf.headers(r.Method, d.clock.Now()))
	if terr == nil && resp.StatusCode == http.StatusForbidden && isCSRFRefusal(data) {
		// A CSRF-protected self-hosted server refused the change before
		// handling it (its middleware runs first), so sending it again with a
		// fresh token is safe. This is what Prefect's own client does.
		if h, ok := d.csrf.refresh(ctx, d); ok {
			resp, data, terr = d.send(ctx, r.Method, u, body, h)
		}
	}
	if terr != nil {
		return abi.HTTPResponse{Error: terr}
	}
	if int64(len(data)) > d.maxBody {
		return fail(abi.TransportTooLarge, "the response to %s %s exceeds %d bytes", r.Method, r.Path, d.maxBody)
	}
	out := abi.HTTPResponse{Status: resp.StatusCode, RetryAfterMS: d.retryAfter(resp.Header.Get("Retry-After"))}
	if len(bytes.TrimSpace(data)) > 0 {
		if json.Valid(data) {
			out.Body = data
		} else {
			out.BodyText = textPrefix(data, 512)
		}
	}
	return out
}

// send performs one HTTP exchange and reads at most maxBody+1 bytes of
// the answer. A nil body sends no Content-Type.
func (d *httpDoer) send(ctx context.Context, method string, u *url.URL, body []byte, extra http.Header) (*http.Response, []byte, *abi.TransportError) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body) // sets Content-Length; Prefect Cloud answers 411 without it
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, nil, &abi.TransportError{Kind: abi.TransportForbidden, Message: fmt.Sprintf("cannot build the request: %v", err)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set("X-PREFECT-API-VERSION", PrefectAPIVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h := d.cred.header(); h != "" {
		req.Header.Set("Authorization", h)
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, nil, classify(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, d.maxBody+1))
	if err != nil {
		return nil, nil, classify(ctx, err)
	}
	return resp, data, nil
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func (d *httpDoer) retryAfter(v string) int64 {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s > 0 && s <= 86400) { // also NaN, which int64() would turn negative
			return 0
		}
		return int64(s * 1000)
	}
	if t, err := http.ParseTime(v); err == nil {
		if ms := t.Sub(d.clock.Now()).Milliseconds(); ms > 0 {
			return min(ms, 86400*1000)
		}
	}
	return 0
}

func textPrefix(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	s := strings.ToValidUTF8(string(b), "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// classify says why no response arrived.
func classify(ctx context.Context, err error) *abi.TransportError {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error() // the URL is known to the plugin; keep the cause
	}
	kind := abi.TransportReset
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, errCrossOrigin):
		kind = abi.TransportRedirect
	case errors.Is(err, context.Canceled) || (ctx.Err() == context.Canceled):
		kind = abi.TransportInterrupted
	case errors.As(err, &certErr), errors.As(err, &recErr), strings.Contains(msg, "tls:"), strings.Contains(msg, "x509:"):
		kind = abi.TransportTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		kind = abi.TransportTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), isDNS(err):
		kind = abi.TransportConnect
	}
	return &abi.TransportError{Kind: kind, Message: msg}
}

func isDNS(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}
