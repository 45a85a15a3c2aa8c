package host

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
	"os"
	"os/exec"
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

func TestValidateAPIBase(t *testing.T) {
	tests := []struct {
		name          string
		raw           string
		allowInsecure bool
		want          string // the URL, or "" for an error
		errHas        string
		secret        string // must not appear in the error
	}{
		{"https", "https://api.prefect.cloud/api", false, "https://api.prefect.cloud/api", "", ""},
		{"https trailing slash", "https://prefect.example.com/api/", false, "https://prefect.example.com/api", "", ""},
		{"https white space", "  https://prefect.example.com/api \n", false, "https://prefect.example.com/api", "", ""},
		{"http loopback v4", "http://127.0.0.1:4200/api", false, "http://127.0.0.1:4200/api", "", ""},
		{"http loopback other v4", "http://127.0.0.2:4200/api", false, "http://127.0.0.2:4200/api", "", ""},
		{"http localhost", "http://localhost:4200/api", false, "http://localhost:4200/api", "", ""},
		{"http loopback v6", "http://[::1]:4200/api", false, "http://[::1]:4200/api", "", ""},
		{"http remote refused", "http://prefect.example.com/api", false, "", "plain http", ""},
		{"http private address refused", "http://10.0.0.5:4200/api", false, "", "plain http", ""},
		{"http remote allowed when insecure", "http://prefect.example.com/api", true, "http://prefect.example.com/api", "", ""},
		{"userinfo refused", "https://admin:s3cretPW@prefect.example.com/api", false, "", "must not contain credentials", "s3cretPW"},
		{"userinfo with @ in the password", "https://admin:p@ssw0rd@prefect.example.com/api", false, "", "must not contain credentials", "p@ssw0rd"},
		{"user only refused", "https://token123@prefect.example.com/api", true, "", "must not contain credentials", "token123"},
		{"unparsable userinfo", "https://admin:pa%zzword@prefect.example.com/api", false, "", "not an absolute http(s) URL", "pa%zzword"},
		{"query refused", "https://prefect.example.com/api?x=1", false, "", "must not have a query or fragment", ""},
		{"fragment refused", "https://prefect.example.com/api#top", false, "", "must not have a query or fragment", ""},
		{"relative refused", "/api", false, "", "not an absolute http(s) URL", ""},
		{"no scheme refused", "prefect.example.com/api", false, "", "not an absolute http(s) URL", ""},
		{"other scheme refused", "ftp://prefect.example.com/api", false, "", "not an absolute http(s) URL", ""},
		{"empty refused", "", false, "", "not an absolute http(s) URL", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ValidateAPIBase(tc.raw, tc.allowInsecure)
			if tc.want != "" {
				if err != nil || u.String() != tc.want {
					t.Fatalf("ValidateAPIBase(%q, %v) = %v, %v, want %s", tc.raw, tc.allowInsecure, u, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateAPIBase(%q, %v) = %v, want an error", tc.raw, tc.allowInsecure, u)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ValidateAPIBase(%q) error = %q, want it to contain %q", tc.raw, err, tc.errHas)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("ValidateAPIBase(%q) error = %q shows the secret", tc.raw, err)
			}
		})
	}
}

func testDoer(t *testing.T, base string, cred Credential, maxBody int64, timeout time.Duration) *httpDoer {
	t.Helper()
	u, err := ValidateAPIBase(base, false)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return newHTTPDoer(u, tr, cred, vclock.New(testEpoch), maxBody, timeout, "ue-prefect/test")
}

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
			r := d.do(context.Background(), abi.HTTPRequest{Method: "GET", Path: p})
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
			resp := d.do(context.Background(), tc.req)
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
			resp := d.do(context.Background(), abi.HTTPRequest{Method: tc.method, Path: tc.path, Body: json.RawMessage(`{"a":1}`)})
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
			r := d.do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"})
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
	if r := d.do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 429 || r.RetryAfterMS != 45_000 {
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
			d := newHTTPDoer(u, tr, NoCredential(), vclock.New(testEpoch), 1<<20, tc.timeout, "ue-prefect/test")
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			start := time.Now()
			r := d.do(ctx, tc.req)
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

func TestCredentialNeverPrinted(t *testing.T) {
	const key, pw = "pnu_SECRETkey0123456789", "hunter22pw"
	bearer, err := BearerCredential(key, "env PREFECT_API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	basic, err := BasicCredential("admin:"+pw, "file /run/secrets/prefect")
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		Cred  Credential
		Ptr   *Credential
		Creds []Credential
	}
	// fmt does not call String on an unexported field; the secret's
	// indirection must keep it out anyway.
	type private struct {
		cred Credential
		ptr  *Credential
	}
	for _, c := range []Credential{bearer, basic} {
		secrets := c.Secrets()
		if len(secrets) < 2 {
			t.Fatalf("Secrets() = %d forms, want the secret and its encoding", len(secrets))
		}
		outputs := map[string]string{}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%T"} {
			outputs[verb] = fmt.Sprintf(verb, c)
			outputs[verb+" pointer"] = fmt.Sprintf(verb, &c)
			outputs[verb+" in a struct"] = fmt.Sprintf(verb, holder{Cred: c, Ptr: &c, Creds: []Credential{c}})
			outputs[verb+" in a map"] = fmt.Sprintf(verb, map[string]Credential{"c": c})
			outputs[verb+" in an unexported field"] = fmt.Sprintf(verb, private{cred: c, ptr: &c})
			outputs[verb+" in an unexported field, by pointer"] = fmt.Sprintf(verb, &private{cred: c, ptr: &c})
		}
		outputs["Sprint"] = fmt.Sprint(c)
		outputs["Errorf %w"] = fmt.Errorf("request failed with %v: %w", c, io.EOF).Error()
		//lint:ignore SA9005 marshalling a Credential on purpose: the secret must stay out of JSON too
		outputs["json"] = func() string { b, _ := json.Marshal(c); return string(b) }()
		outputs["recovered panic"] = func() (s string) {
			defer func() { s = fmt.Sprint(recover()) }()
			panic(c)
		}()
		for what, out := range outputs {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of a %s credential = %q, which contains the secret", what, c.Scheme(), out)
				}
			}
		}
	}
	// The runtime prints an unrecovered panic value itself: check it in a
	// child process.
	if os.Getenv("UE_PREFECT_PANIC_CHILD") == "1" {
		panic(bearer)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCredentialNeverPrinted$")
	cmd.Env = append(os.Environ(), "UE_PREFECT_PANIC_CHILD=1")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "panic: ") || !strings.Contains(string(out), "bearer credential from env PREFECT_API_KEY") {
		t.Fatalf("child process output does not show the panic:\n%s", out)
	}
	if strings.Contains(string(out), key) {
		t.Errorf("an unrecovered panic(Credential) printed the secret:\n%s", out)
	}
}

func TestCredentialErrorsHideSecret(t *testing.T) {
	tests := []struct {
		name   string
		make   func() (Credential, error)
		secret string
	}{
		{"bearer with a space", func() (Credential, error) { return BearerCredential("pnu_abc def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with a newline", func() (Credential, error) { return BearerCredential("pnu_abc\ndef", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with a control character", func() (Credential, error) { return BearerCredential("pnu_abc\x01def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with DEL", func() (Credential, error) { return BearerCredential("pnu_abc\x7fdef", "file /run/key") }, "pnu_abc"},
		{"bearer with NUL", func() (Credential, error) { return BearerCredential("pnu_abc\x00def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"basic without a colon", func() (Credential, error) { return BasicCredential("adminhunter22", "env PREFECT_API_AUTH_STRING") }, "hunter22"},
		{"basic on two lines", func() (Credential, error) { return BasicCredential("admin:hun\nter22", "env PREFECT_API_AUTH_STRING") }, "hun"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.make()
			if err == nil || strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error = %v, want an error without %q", err, tc.secret)
			}
		})
	}
}

// TestHTTPConcurrentDoers checks one doer serves concurrent requests (the
// host may run several plugins at once) under the race detector.
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
			if r := d.do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 200 {
				t.Errorf("do() = %+v", r)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 8 {
		t.Errorf("server saw %d requests, want 8", n.Load())
	}
}

// An interrupt that arrives between host calls ends the next blocking call
// at once, so a long poll sleep or a hanging server cannot delay the exit;
// once the plugin has been told, calls are served within the grace period
// so it can still cancel the flow run.
func TestInterruptBetweenCalls(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/api")
	vc := vclock.New(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	intr := NewInterrupter()
	eff, err := (&Runtime{}).Functions(context.Background(), RunConfig{Target: abi.TargetServer, APIBase: base, Clock: vc, Interrupter: intr})
	if err != nil {
		t.Fatal(err)
	}
	defer eff.Close()
	intr.Interrupt("SIGTERM", abi.ExitInterruptedSIGTERM)

	s := eff.Sleep(abi.SleepRequest{DurationMS: 60000})
	if s.Interrupt == nil || vc.Since() != 0 {
		t.Fatalf("first sleep after the interrupt = %+v after %s; want an immediate interrupt", s, vc.Since())
	}
	if s := eff.Sleep(abi.SleepRequest{DurationMS: 1000}); s.Interrupt == nil || vc.Since() != time.Second {
		t.Errorf("a sleep once told = %+v after %s; want a full 1s sleep within grace", s, vc.Since())
	}
	if r := eff.HTTP(abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 200 || hits.Load() != 1 {
		t.Errorf("a request once told = %+v (%d hits); want it served", r, hits.Load())
	}

	// A fresh run interrupted before its first request: nothing is sent.
	intr2 := NewInterrupter()
	eff2, _ := (&Runtime{}).Functions(context.Background(), RunConfig{Target: abi.TargetServer, APIBase: base, Clock: vc, Interrupter: intr2})
	defer eff2.Close()
	intr2.Interrupt("SIGINT", abi.ExitInterruptedSIGINT)
	if r := eff2.HTTP(abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Error == nil || r.Error.Kind != abi.TransportInterrupted || r.Interrupt == nil || hits.Load() != 1 {
		t.Errorf("first request after the interrupt = %+v (%d hits); want interrupted, unsent", r, hits.Load())
	}
}

func TestIsCSRFRefusal(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"detail":"Missing CSRF token."}`, true},
		{`{"detail":"Missing client identifier."}`, true},
		{`{"detail":"Invalid CSRF token or client identifier."}`, true},
		{`{"detail":"Forbidden"}`, false},
		{`{"detail":"Unauthorized: the API key is invalid"}`, false},
		{`<html>Missing CSRF token.</html>`, false},
		{``, false},
	}
	for _, tc := range tests {
		if got := isCSRFRefusal([]byte(tc.body)); got != tc.want {
			t.Errorf("isCSRFRefusal(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

// TestRequestTimeoutNotCapped: the request timeout (up to 600 s) alone
// bounds an exchange; the production transport adds no shorter cap on the
// wait for response headers (it had a fixed 60 s one, so a longer
// --request-timeout did nothing).
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
	d := newHTTPDoer(base, NewTransport(), NoCredential(), RealClock(), 1<<20, 300*time.Millisecond, "test")
	start := time.Now()
	r := d.do(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/health"})
	if r.Error == nil || r.Error.Kind != abi.TransportTimeout {
		t.Fatalf("response = %+v, want a timeout", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the 300 ms request timeout took %s", took)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"no userinfo", "https://prefect.example.com/api", "https://prefect.example.com/api"},
		{"user and password", "https://user:hunter2@prefect.example.com/api", "https://%2A%2A%2A%2A@prefect.example.com/api"},
		{"blanks around", "  https://user:hunter2@prefect.example.com/api ", "https://%2A%2A%2A%2A@prefect.example.com/api"},
		{"unparsable, keeps the scheme", "https://user:hun%zzter2@prefect.example.com/api", "https://****@prefect.example.com/api"},
		{"unparsable, '@' in the password", "https://user:a@b%zz@prefect.example.com/api", "https://****@prefect.example.com/api"},
		{"no scheme", "user:pw%zz@host/api", "****@host/api"},
		{"not a URL", "prefect/api", "prefect/api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactURL(tc.raw); got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}
