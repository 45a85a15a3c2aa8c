package prefect

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

// Client makes one-attempt HTTP exchanges with one Prefect API: the
// requests of the plugin's prefect_http import, of the Monitor's batches
// and of the Temporal activities. Each Do is exactly one attempt (a retry
// is the caller's decision), stays on the API base, carries the
// credential, and caps the answer; a failure to get an answer comes back
// classified (abi.TransportKind). A Client is safe for concurrent use.
type Client struct {
	base      *url.URL
	client    *http.Client
	cred      Credential
	now       func() time.Time
	maxBody   int64
	timeout   time.Duration
	userAgent string
	csrf      csrfState
}

var errCrossOrigin = errors.New("redirect outside the API origin")

// NewClient returns a Client for c.APIBase, which is required. The zero
// values of c's other fields take their defaults: NewTransport(),
// DefaultRequestTimeout, DefaultMaxResponseBytes and the User-Agent
// "ue-prefect". now is the wall clock, read for Retry-After dates and the
// expiry of a CSRF token; nil means time.Now.
func NewClient(c Connection, now func() time.Time) (*Client, error) {
	if c.APIBase == nil {
		return nil, errors.New("prefect: Connection.APIBase is required")
	}
	rt := c.Transport
	if rt == nil {
		rt = NewTransport()
	}
	timeout := c.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	maxBody := c.MaxResponseBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxResponseBytes
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "ue-prefect"
	}
	if now == nil {
		now = time.Now
	}
	d := &Client{base: c.APIBase, cred: c.Credential, now: now, maxBody: maxBody, timeout: timeout, userAgent: ua}
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
	return d, nil
}

// inBase reports whether u is on the API base's origin and under its path.
func (d *Client) inBase(u *url.URL) bool {
	if u.Scheme != d.base.Scheme || !strings.EqualFold(u.Host, d.base.Host) {
		return false
	}
	p := u.EscapedPath()
	return p == d.base.EscapedPath() || strings.HasPrefix(p, d.base.EscapedPath()+"/")
}

// target builds the URL of a plugin-supplied path, refusing anything that
// would leave the API base.
func (d *Client) target(p string) (*url.URL, error) {
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

// Do performs one exchange. ctx ends it early (an interrupt or shutdown).
func (d *Client) Do(ctx context.Context, r abi.HTTPRequest) abi.HTTPResponse {
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
	resp, data, terr := d.send(ctx, r.Method, u, body, d.csrf.headers(r.Method, d.now()))
	if terr == nil && resp.StatusCode == http.StatusForbidden && isCSRFRefusal(data) {
		// A CSRF-protected self-hosted server refused the change before
		// handling it (its middleware runs first), so sending it again with a
		// fresh token is safe. This is what Prefect's own client does.
		if h, ok := d.csrf.refresh(ctx, d.base, d.send); ok {
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
func (d *Client) send(ctx context.Context, method string, u *url.URL, body []byte, extra http.Header) (*http.Response, []byte, *abi.TransportError) {
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
func (d *Client) retryAfter(v string) int64 {
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
		if ms := t.Sub(d.now()).Milliseconds(); ms > 0 {
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
