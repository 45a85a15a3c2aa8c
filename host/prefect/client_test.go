package prefect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

var testEpoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestTarget(t *testing.T) {
	d := testDoer(t, "http://127.0.0.1:4200/api", NoCredential(), 1<<20, time.Second)
	ok := []struct{ path, want string }{
		{"/flow_runs/3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b", "http://127.0.0.1:4200/api/flow_runs/3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"},
		{"/deployments/name/my%20flow/nightly", "http://127.0.0.1:4200/api/deployments/name/my%20flow/nightly"},
		{"/deployments/name/d%C3%A9j%C3%A0/x", "http://127.0.0.1:4200/api/deployments/name/d%C3%A9j%C3%A0/x"},
		{"/me/workspaces", "http://127.0.0.1:4200/api/me/workspaces"},
		{"/a:b@c", "http://127.0.0.1:4200/api/a:b@c"},
		{"/..a/b..", "http://127.0.0.1:4200/api/..a/b.."},
	}
	for _, tc := range ok {
		t.Run(tc.path, func(t *testing.T) {
			u, err := d.target(tc.path)
			if err != nil || u.String() != tc.want {
				t.Errorf("target(%q) = %v, %v, want %s", tc.path, u, err, tc.want)
			}
		})
	}
	refused := []string{
		"", "flow_runs", "/../x", "/a/../b", "/a/..", "/./x", "/a/.", "/%2e%2e/x", "/%2E%2E/x", "/.%2e/x", "/%2e/x",
		"//evil.com/x", "/a//b", "/a?b", "/a#b", "/a\\b", "\\\\evil.com\\x", "/a%2Fb", "/a%2fb/c", "/%2F%2Fevil.com",
		"/a%5Cb/..%2F..", "/%zz", "/a%", "/a/", "/a%00b/../c",
	}
	for _, p := range refused {
		t.Run("refuse "+p, func(t *testing.T) {
			if u, err := d.target(p); err == nil {
				t.Errorf("target(%q) = %v, want an error", p, u)
			}
			r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: p})
			if r.Error == nil || r.Error.Kind != abi.TransportForbidden {
				t.Errorf("do(GET %q) = %+v, want a forbidden transport error", p, r)
			}
		})
	}
}

// recorder is a test server that records what it receives.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (rc *recorder) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, r)
	rc.body = append(rc.body, string(b))
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

func TestHTTPHeaders(t *testing.T) {
	bearer, _ := BearerCredential("pnu_abc123", "env PREFECT_API_KEY")
	basic, _ := BasicCredential("admin:hunter22", "env PREFECT_API_AUTH_STRING")
	tests := []struct {
		name     string
		cred     Credential
		req      abi.HTTPRequest
		wantAuth string
		wantBody string
	}{
		{"GET bearer", bearer, abi.HTTPRequest{Method: "GET", Path: "/flow_runs/x"}, "Bearer pnu_abc123", ""},
		{"GET basic", basic, abi.HTTPRequest{Method: "GET", Path: "/flow_runs/x"}, "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:hunter22")), ""},
		{"GET none", NoCredential(), abi.HTTPRequest{Method: "GET", Path: "/flow_runs/x"}, "", ""},
		{"POST body", bearer, abi.HTTPRequest{Method: "POST", Path: "/deployments/filter", Body: json.RawMessage(`{"limit":200}`)}, "Bearer pnu_abc123", `{"limit":200}`},
		{"POST no body", bearer, abi.HTTPRequest{Method: "POST", Path: "/deployments/filter"}, "Bearer pnu_abc123", `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.record(r)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"ok":true}`)
			}))
			defer srv.Close()
			d := testDoer(t, srv.URL+"/api", tc.cred, 1<<20, 5*time.Second)
			resp := d.Do(context.Background(), tc.req)
			if resp.Error != nil || resp.Status != 200 || string(resp.Body) != `{"ok":true}` {
				t.Fatalf("do(%+v) = %+v, want 200 with the body", tc.req, resp)
			}
			if rec.count() != 1 {
				t.Fatalf("server saw %d requests, want 1", rec.count())
			}
			r := rec.reqs[0]
			checks := []struct{ header, got, want string }{
				{"method", r.Method, tc.req.Method},
				{"path", r.URL.Path, "/api" + tc.req.Path},
				{"Authorization", r.Header.Get("Authorization"), tc.wantAuth},
				{"X-PREFECT-API-VERSION", r.Header.Get("X-PREFECT-API-VERSION"), PrefectAPIVersion},
				{"Accept", r.Header.Get("Accept"), "application/json"},
				{"User-Agent", r.Header.Get("User-Agent"), "ue-prefect/test"},
				{"body", rec.body[0], tc.wantBody},
			}
			if tc.req.Method == "POST" {
				checks = append(checks,
					struct{ header, got, want string }{"Content-Type", r.Header.Get("Content-Type"), "application/json"},
					struct{ header, got, want string }{"Content-Length", fmt.Sprint(r.ContentLength), fmt.Sprint(len(tc.wantBody))},
				)
			} else {
				checks = append(checks, struct{ header, got, want string }{"Content-Type", r.Header.Get("Content-Type"), ""})
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("request %s = %q, want %q", c.header, c.got, c.want)
				}
			}
			if len(r.TransferEncoding) > 0 {
				t.Errorf("request Transfer-Encoding = %v, want a Content-Length instead", r.TransferEncoding)
			}
		})
	}
}

func TestHTTPRedirects(t *testing.T) {
	var other recorder
	otherSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.record(r)
		_, _ = io.WriteString(w, `{"stolen":true}`)
	}))
	defer otherSrv.Close()
	var rec recorder
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		switch r.URL.Path {
		case "/api/elsewhere":
			http.Redirect(w, r, otherSrv.URL+"/api/x", http.StatusFound)
		case "/api/outside":
			http.Redirect(w, r, "/not-api/x", http.StatusFound)
		case "/api/moved":
			http.Redirect(w, r, "/api/here", http.StatusMovedPermanently)
		case "/api/post":
			http.Redirect(w, r, "/api/here", http.StatusTemporaryRedirect)
		case "/api/loop":
			http.Redirect(w, r, "/api/loop", http.StatusFound)
		case "/api/here":
			_, _ = io.WriteString(w, `{"here":true}`)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		method   string
		path     string
		wantKind abi.TransportKind // "" for a 200
		wantReqs int               // requests the API server saw
	}{
		{"to another host", "GET", "/elsewhere", abi.TransportRedirect, 1},
		{"outside the API base", "GET", "/outside", abi.TransportRedirect, 1},
		{"within the API base", "GET", "/moved", "", 2},
		{"POST never re-sent", "POST", "/post", abi.TransportRedirect, 1},
		{"a loop ends", "GET", "/loop", abi.TransportRedirect, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeOther := rec.count(), other.count()
			d := testDoer(t, srv.URL+"/api", NoCredential(), 1<<20, 5*time.Second)
			resp := d.Do(context.Background(), abi.HTTPRequest{Method: tc.method, Path: tc.path, Body: json.RawMessage(`{"a":1}`)})
			switch {
			case tc.wantKind == "" && (resp.Error != nil || resp.Status != 200):
				t.Errorf("do(%s %s) = %+v, want 200", tc.method, tc.path, resp)
			case tc.wantKind != "" && (resp.Error == nil || resp.Error.Kind != tc.wantKind):
				t.Errorf("do(%s %s) = %+v, want a %s error", tc.method, tc.path, resp, tc.wantKind)
			}
			if got := rec.count() - before; got != tc.wantReqs {
				t.Errorf("do(%s %s): the API server saw %d requests, want %d", tc.method, tc.path, got, tc.wantReqs)
			}
			if other.count() != beforeOther {
				t.Errorf("do(%s %s): the other host saw a request", tc.method, tc.path)
			}
		})
	}
}

func TestHTTPBodies(t *testing.T) {
	const maxBody = 1024
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind abi.TransportKind
		check    func(t *testing.T, r abi.HTTPResponse)
	}{
		{"JSON", 200, `{"id":"x"}`, "", func(t *testing.T, r abi.HTTPResponse) {
			if string(r.Body) != `{"id":"x"}` || r.BodyText != "" {
				t.Errorf("Body, BodyText = %s, %q, want the JSON", r.Body, r.BodyText)
			}
		}},
		{"JSON error status", 404, `{"detail":"Not found"}`, "", func(t *testing.T, r abi.HTTPResponse) {
			if r.Status != 404 || string(r.Body) != `{"detail":"Not found"}` {
				t.Errorf("response = %+v, want 404 with the JSON", r)
			}
		}},
		{"empty", 204, "", "", func(t *testing.T, r abi.HTTPResponse) {
			if r.Status != 204 || r.Body != nil || r.BodyText != "" {
				t.Errorf("response = %+v, want 204 without a body", r)
			}
		}},
		{"white space only", 200, " \n", "", func(t *testing.T, r abi.HTTPResponse) {
			if r.Body != nil || r.BodyText != "" {
				t.Errorf("response = %+v, want no body", r)
			}
		}},
		{"exactly at the cap", 200, `"` + strings.Repeat("a", maxBody-2) + `"`, "", func(t *testing.T, r abi.HTTPResponse) {
			if len(r.Body) != maxBody {
				t.Errorf("len(Body) = %d, want %d", len(r.Body), maxBody)
			}
		}},
		{"over the cap", 200, `"` + strings.Repeat("a", maxBody) + `"`, abi.TransportTooLarge, nil},
		{"over the cap, not JSON", 502, strings.Repeat("x", 10*maxBody), abi.TransportTooLarge, nil},
		{"HTML", 502, "<html>\r\n<body>502 Bad Gateway</body>\x00\x1b[31m</html>", "", func(t *testing.T, r abi.HTTPResponse) {
			if r.Body != nil || r.BodyText != "<html>?\n<body>502 Bad Gateway</body>??[31m</html>" {
				t.Errorf("BodyText = %q, want the text with control characters but new lines replaced", r.BodyText)
			}
		}},
		{"long text clipped to valid UTF-8", 500, "x" + strings.Repeat("é", 350), "", func(t *testing.T, r abi.HTTPResponse) {
			if len(r.BodyText) > 512 || !utf8.ValidString(r.BodyText) || !strings.HasPrefix(r.BodyText, "xéé") {
				t.Errorf("BodyText = %d bytes, valid %v, want ≤ 512 valid UTF-8", len(r.BodyText), utf8.ValidString(r.BodyText))
			}
		}},
		{"invalid UTF-8 text", 500, "bad \xff\xfe bytes \xef\xbf\xbd", "", func(t *testing.T, r abi.HTTPResponse) {
			if r.BodyText != "bad ? bytes ?" {
				t.Errorf("BodyText = %q, want %q", r.BodyText, "bad ? bytes ?")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			d := testDoer(t, srv.URL+"/api", NoCredential(), maxBody, 5*time.Second)
			r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"})
			if tc.wantKind != "" {
				if r.Error == nil || r.Error.Kind != tc.wantKind || r.Status != 0 || r.Body != nil {
					t.Errorf("do() = %+v, want only a %s error", r, tc.wantKind)
				}
				return
			}
			if r.Error != nil || r.Status != tc.status {
				t.Fatalf("do() = %+v, want status %d", r, tc.status)
			}
			tc.check(t, r)
		})
	}
}

func TestRetryAfter(t *testing.T) {
	d := testDoer(t, "https://prefect.example.com/api", NoCredential(), 1<<20, time.Second)
	date := func(d time.Duration) string { return testEpoch.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		header string
		want   int64
	}{
		{"", 0},
		{"120", 120_000},
		{" 5 ", 5000},
		{"1.5", 1500},
		{"0", 0},
		{"-1", 0},
		{"86400", 86_400_000},
		{"86401", 0},
		{"abc", 0},
		{"NaN", 0},
		{"Inf", 0},
		{"-Inf", 0},
		{date(90 * time.Second), 90_000},
		{date(-time.Minute), 0},
		{date(0), 0},
		{date(48 * time.Hour), 86_400_000},
		{testEpoch.Add(30 * time.Second).Format(time.RFC850), 30_000},
		{"Sun, 22 Nov 2026 12:00:10 GMT", 10_000},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			if got := d.retryAfter(tc.header); got != tc.want {
				t.Errorf("retryAfter(%q) = %d, want %d", tc.header, got, tc.want)
			}
		})
	}
	// And through a real response.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", date(45*time.Second))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	d = testDoer(t, srv.URL+"/api", NoCredential(), 1<<20, 5*time.Second)
	if r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 429 || r.RetryAfterMS != 45_000 {
		t.Errorf("do() = %+v, want 429 with retry_after_ms 45000", r)
	}
}

func TestHTTPTransportErrors(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	release := make(chan struct{})
	defer close(release)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()

	hijack := func(reply string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString(reply)
			_ = buf.Flush()
			conn.Close()
		}))
	}
	midBody := hijack("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
	defer midBody.Close()
	noReply := hijack("")
	defer noReply.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		base    string
		timeout time.Duration
		ctx     context.Context
		req     abi.HTTPRequest
		want    abi.TransportKind
	}{
		{"connection refused", "http://" + closedAddr + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "GET", Path: "/x"}, abi.TransportConnect},
		{"server hangs past the timeout", hang.URL + "/api", 100 * time.Millisecond, nil, abi.HTTPRequest{Method: "GET", Path: "/x"}, abi.TransportTimeout},
		{"request timeout shortens the host's", hang.URL + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "GET", Path: "/x", TimeoutMS: 100}, abi.TransportTimeout},
		{"closed mid-response", midBody.URL + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "GET", Path: "/x"}, abi.TransportReset},
		{"closed without a response", noReply.URL + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "POST", Path: "/x"}, abi.TransportReset},
		{"untrusted certificate", tlsSrv.URL + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "GET", Path: "/x"}, abi.TransportTLS},
		{"interrupted", hang.URL + "/api", 5 * time.Second, canceled, abi.HTTPRequest{Method: "GET", Path: "/x"}, abi.TransportInterrupted},
		{"method not allowed", hang.URL + "/api", 5 * time.Second, nil, abi.HTTPRequest{Method: "DELETE", Path: "/x"}, abi.TransportForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.base)
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			d, err := NewClient(Connection{APIBase: u, Transport: tr, MaxResponseBytes: 1 << 20, RequestTimeout: tc.timeout, UserAgent: "ue-prefect/test"}, vclock.New(testEpoch).Now)
			if err != nil {
				t.Fatal(err)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			start := time.Now()
			r := d.Do(ctx, tc.req)
			if r.Error == nil || r.Error.Kind != tc.want || r.Status != 0 {
				t.Errorf("do(%s %s) = %+v, want a %s error", tc.req.Method, tc.base, r, tc.want)
			}
			if r.Error != nil && (r.Error.Message == "" || strings.Contains(r.Error.Message, tc.base)) {
				t.Errorf("do() error message = %q, want a cause without the URL", r.Error.Message)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("do() took %v", el)
			}
		})
	}
}

func TestHTTPConcurrentDoers(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	d := testDoer(t, srv.URL+"/api", NoCredential(), 1<<20, 5*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 200 {
				t.Errorf("do() = %+v", r)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 8 {
		t.Errorf("server saw %d requests, want 8", n.Load())
	}
}

func TestRequestTimeoutNotCapped(t *testing.T) {
	if d := NewTransport().ResponseHeaderTimeout; d != 0 && d < 600*time.Second {
		t.Fatalf("NewTransport caps the wait for headers at %s, below the largest request timeout (600 s)", d)
	}
	// And the request timeout does bound a server that never answers.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	base, _ := url.Parse(srv.URL + "/api")
	d, err := NewClient(Connection{APIBase: base, RequestTimeout: 300 * time.Millisecond, UserAgent: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/health"})
	if r.Error == nil || r.Error.Kind != abi.TransportTimeout {
		t.Fatalf("response = %+v, want a timeout", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the 300 ms request timeout took %s", took)
	}
}

// NewClient needs an API base, and fills the rest of a Connection with the
// defaults.
func TestNewClientDefaults(t *testing.T) {
	if _, err := NewClient(Connection{}, nil); err == nil || !strings.Contains(err.Error(), "APIBase is required") {
		t.Errorf("NewClient without an API base: error = %v", err)
	}
	var ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua = r.UserAgent()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/api")
	d, err := NewClient(Connection{APIBase: base}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.timeout != DefaultRequestTimeout || d.maxBody != DefaultMaxResponseBytes {
		t.Errorf("timeout, cap = %s, %d; want the defaults", d.timeout, d.maxBody)
	}
	if r := d.Do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 200 || ua != "ue-prefect" {
		t.Errorf("Do = %+v with User-Agent %q; want 200 with ue-prefect", r, ua)
	}
}
