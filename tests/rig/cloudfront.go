package rig

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Workspace is one entry of Prefect Cloud's GET /api/me/workspaces.
type Workspace struct {
	AccountID            string `json:"account_id"`
	AccountName          string `json:"account_name"`
	AccountHandle        string `json:"account_handle"`
	WorkspaceID          string `json:"workspace_id"`
	WorkspaceName        string `json:"workspace_name"`
	WorkspaceHandle      string `json:"workspace_handle"`
	WorkspaceDescription string `json:"workspace_description"`
}

// Handle returns "account_handle/workspace_handle", as `prefect cloud
// workspace set --workspace` expects.
func (w Workspace) Handle() string { return w.AccountHandle + "/" + w.WorkspaceHandle }

// Request is one request seen by a CloudFront.
type Request struct {
	Method string
	// Path is the URL path as received, e.g. /api/me/workspaces.
	Path     string
	RawQuery string
	// HadAuth reports whether any Authorization header was sent;
	// Authorized whether it was exactly "Bearer <key>" (for a websocket:
	// whether its auth message carried the key).
	HadAuth    bool
	Authorized bool
	// Status is the status the front answered (or the upstream's).
	Status int
	Time   time.Time
}

// CloudFront is a Prefect-Cloud-shaped front for a real OSS server: an
// httptest server on 127.0.0.1 whose APIURL() plays PREFECT_CLOUD_API_URL.
//
//   - Every request needs "Authorization: Bearer <key>", else 401
//     {"detail":"Invalid authentication credentials"}.
//   - GET /api/me/workspaces returns the workspaces as a JSON array.
//   - /api/accounts/{a}/workspaces/{w}/<rest> for a known pair is
//     reverse-proxied to the upstream's /api/<rest> (method, query, body,
//     status and headers preserved); an unknown pair gets 404
//     {"detail":"Workspace not found"}; any other path gets 404.
type CloudFront struct {
	// Server is the underlying httptest server.
	Server *httptest.Server

	key        string
	workspaces []Workspace
	upstream   *Server
	proxy      *httputil.ReverseProxy

	mu   sync.Mutex
	reqs []Request
}

// NewCloudFront starts a CloudFront accepting bearer key, listing
// workspaces, and forwarding every workspace's API to upstream (which may be
// a Server with only URL set, e.g. pointing at an httptest server).
func NewCloudFront(upstream *Server, key string, workspaces []Workspace) *CloudFront {
	c := &CloudFront{key: key, workspaces: append([]Workspace(nil), workspaces...), upstream: upstream}
	up, err := url.Parse(upstream.URL)
	if err != nil {
		panic(fmt.Sprintf("rig: NewCloudFront: bad upstream URL %q: %v", upstream.URL, err))
	}
	c.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rest := pr.In.Context().Value(restKey{}).(string)
			pr.Out.URL.Scheme = up.Scheme
			pr.Out.URL.Host = up.Host
			pr.Out.URL.Path = strings.TrimSuffix(up.Path, "/") + rest
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.Host = up.Host
			pr.Out.Header.Del("Authorization")
			if upstream.AuthString != "" {
				pr.Out.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(upstream.AuthString)))
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSON(w, http.StatusBadGateway, map[string]string{"detail": "upstream error: " + err.Error()})
		},
	}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	return c
}

type restKey struct{}

// APIURL returns the front's API base (plays PREFECT_CLOUD_API_URL), e.g.
// http://127.0.0.1:PORT/api.
func (c *CloudFront) APIURL() string { return c.Server.URL + "/api" }

// WorkspaceURL returns a workspace's API URL,
// APIURL()/accounts/{account_id}/workspaces/{workspace_id}.
func (c *CloudFront) WorkspaceURL(w Workspace) string {
	return c.APIURL() + "/accounts/" + w.AccountID + "/workspaces/" + w.WorkspaceID
}

// Requests returns a copy of every request seen so far.
func (c *CloudFront) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.reqs...)
}

// Close shuts the front down.
func (c *CloudFront) Close() { c.Server.Close() }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *CloudFront) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	rec := Request{
		Method:     r.Method,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		HadAuth:    auth != "",
		Authorized: auth == "Bearer "+c.key,
		Time:       time.Now(),
	}
	sw := &statusRecorder{ResponseWriter: w}
	defer func() {
		if sw.status != 0 {
			rec.Status = sw.status
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, rec)
		c.mu.Unlock()
	}()
	path := r.URL.Path
	// Websockets authenticate with their first message, as on Cloud
	// (Prefect's client sends no Authorization header on the upgrade).
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		c.serveEvents(w, r, &rec)
		return
	}
	if !rec.Authorized {
		writeJSON(sw, http.StatusUnauthorized, map[string]string{"detail": "Invalid authentication credentials"})
		return
	}
	if path == "/api/me/workspaces" || path == "/api/me/workspaces/" {
		if r.Method != http.MethodGet {
			writeJSON(sw, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
			return
		}
		ws := c.workspaces
		if ws == nil {
			ws = []Workspace{}
		}
		writeJSON(sw, http.StatusOK, ws)
		return
	}
	// /api/accounts/{a}/workspaces/{w}/<rest>
	parts := strings.SplitN(strings.TrimPrefix(path, "/api/accounts/"), "/", 4)
	if strings.HasPrefix(path, "/api/accounts/") && len(parts) >= 3 && parts[1] == "workspaces" {
		a, wid := parts[0], parts[2]
		known := false
		for _, ws := range c.workspaces {
			if ws.AccountID == a && ws.WorkspaceID == wid {
				known = true
				break
			}
		}
		if !known {
			writeJSON(sw, http.StatusNotFound, map[string]string{"detail": "Workspace not found"})
			return
		}
		rest := "/"
		if len(parts) == 4 {
			rest += parts[3]
		}
		ctx := r.Context()
		r = r.WithContext(context.WithValue(ctx, restKey{}, rest))
		c.proxy.ServeHTTP(sw, r)
		return
	}
	writeJSON(sw, http.StatusNotFound, map[string]string{"detail": "Not Found"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// NewUUID returns a random RFC 4122 version-4 UUID (36 characters, as the
// Prefect client's Cloud URL regex expects for account and workspace ids).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// serveEvents plays Cloud's workspace events websocket
// (/api/accounts/{a}/workspaces/{w}/events/out): subprotocol prefect, a
// first message {"type":"auth","token":<the key>} (else close 1008), then
// it relays to the upstream server's /api/events/out, authenticating there
// with the upstream's auth string.
func (c *CloudFront) serveEvents(w http.ResponseWriter, r *http.Request, rec *Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/api/accounts/"), "/", 4)
	known := len(parts) == 4 && parts[1] == "workspaces" && parts[3] == "events/out"
	if known {
		known = false
		for _, ws := range c.workspaces {
			if ws.AccountID == parts[0] && ws.WorkspaceID == parts[2] {
				known = true
			}
		}
	}
	if !known {
		rec.Status = http.StatusNotFound
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
		return
	}
	rec.Status = http.StatusSwitchingProtocols
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"prefect"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4 << 20)
	ctx := r.Context()
	var auth struct {
		Type  string `json:"type"`
		Token string `json:"token"`
	}
	_, msg, err := conn.Read(ctx)
	if err != nil || json.Unmarshal(msg, &auth) != nil || auth.Type != "auth" {
		conn.Close(websocket.StatusPolicyViolation, "Expected 'auth' message")
		return
	}
	ok := auth.Token == c.key
	c.mu.Lock()
	rec.Authorized = ok
	c.mu.Unlock()
	if !ok {
		conn.Close(websocket.StatusPolicyViolation, "Invalid token")
		return
	}
	up, err := url.Parse(c.upstream.URL)
	if err != nil {
		return
	}
	up.Scheme = "ws"
	up.Path = strings.TrimSuffix(up.Path, "/") + "/events/out"
	upc, _, err := websocket.Dial(ctx, up.String(), &websocket.DialOptions{Subprotocols: []string{"prefect"}})
	if err != nil {
		conn.Close(websocket.StatusInternalError, "upstream unavailable")
		return
	}
	defer upc.CloseNow()
	upc.SetReadLimit(4 << 20)
	var token any
	if c.upstream.AuthString != "" {
		token = c.upstream.AuthString
	}
	b, _ := json.Marshal(map[string]any{"type": "auth", "token": token})
	if upc.Write(ctx, websocket.MessageText, b) != nil {
		return
	}
	// The upstream's auth_success (or its refusal) goes to the client, then
	// everything else both ways.
	relay := func(dst, src *websocket.Conn, done chan<- struct{}) {
		defer func() { done <- struct{}{} }()
		for {
			typ, m, err := src.Read(ctx)
			if err != nil {
				return
			}
			if dst.Write(ctx, typ, m) != nil {
				return
			}
		}
	}
	done := make(chan struct{}, 2)
	go relay(conn, upc, done)
	go relay(upc, conn, done)
	<-done
}
