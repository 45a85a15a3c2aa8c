package rig

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ServerOptions configures StartServer. The zero value is a plain server on
// a free port with a fresh temporary PREFECT_HOME.
type ServerOptions struct {
	// Env holds extra environment variables for the server process, e.g.
	// PREFECT_SERVER_API_AUTH_STRING (which also sets AuthString below).
	Env map[string]string
	// AuthString ("user:pass") turns on the server's basic auth
	// (PREFECT_SERVER_API_AUTH_STRING); the Server's helpers and ServeFlows
	// then send it.
	AuthString string
	// CSRF turns on the server's CSRF protection
	// (PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED); the Server's helpers then
	// fetch a token and send it with every POST, as Prefect's client does.
	CSRF bool
	// Python is the interpreter of the venv whose Prefect runs the server
	// (and ServeFlows); empty means Python(), the Prefect 3.9 venv.
	Python string
	// Database is DatabaseSQLite (a file in Home) or DatabasePostgres (a
	// throw-away cluster the Server owns, StartPostgres); empty means
	// DefaultDatabase(), i.e. $UE_PREFECT_RIG_DATABASE or SQLite.
	Database string
}

// Server is a real `prefect server start` on 127.0.0.1 with a temporary
// PREFECT_HOME (server.log, and the SQLite database unless it runs on
// PostgreSQL).
type Server struct {
	// URL is the API base, e.g. http://127.0.0.1:PORT/api.
	URL string
	// Home is the server's PREFECT_HOME; it holds prefect.db and server.log.
	Home string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// AuthString is the basic-auth "user:pass", or "" when auth is off.
	AuthString string
	// StartupTime is how long the last start took until /api/health was 200.
	StartupTime time.Duration
	// Database is DatabaseSQLite or DatabasePostgres.
	Database string
	// Postgres is the server's database cluster when Database is
	// DatabasePostgres (nil for SQLite); Stop stops and removes it.
	Postgres *Postgres

	opts    ServerOptions
	python  string
	logPath string
	client  *http.Client

	mu      sync.Mutex
	csrf    string // the token the helpers send when opts.CSRF
	proc    *proc
	stopped bool
	lastLog string // log contents captured before Home is removed
}

// StartServer starts `prefect server start --host 127.0.0.1 --port <free
// port>` with a temporary PREFECT_HOME, analytics and UI off and services
// on, logging to Home/server.log, and waits (polling every 250 ms, 90 s
// ceiling) for GET /api/health to return 200. The database is SQLite in
// Home, or with opts.Database DatabasePostgres a fresh PostgreSQL cluster
// (PREFECT_API_DATABASE_CONNECTION_URL).
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Database == "" {
		opts.Database = DefaultDatabase()
	}
	if opts.Database != DatabaseSQLite && opts.Database != DatabasePostgres {
		return nil, fmt.Errorf("rig: database %q: %w", opts.Database, errNoDatabase)
	}
	python := opts.Python
	if python == "" {
		var err error
		if python, err = Python(); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "ue-prefect-server-")
	if err != nil {
		return nil, err
	}
	auth := opts.AuthString
	if v, ok := opts.Env["PREFECT_SERVER_API_AUTH_STRING"]; ok && auth == "" {
		auth = v
	}
	s := &Server{
		URL:        fmt.Sprintf("http://127.0.0.1:%d/api", port),
		Home:       home,
		Port:       port,
		AuthString: auth,
		Database:   opts.Database,
		opts:       opts,
		python:     python,
		logPath:    filepath.Join(home, "server.log"),
		client:     newAPIClient(),
	}
	owned.Lock()
	owned.servers = append(owned.servers, s)
	owned.Unlock()
	if opts.Database == DatabasePostgres {
		if s.Postgres, err = StartPostgres(ctx); err != nil {
			s.Stop()
			return nil, fmt.Errorf("rig: PostgreSQL for the Prefect server: %w", err)
		}
	}
	if err := s.start(ctx); err != nil {
		log := s.Log()
		s.Stop()
		return nil, fmt.Errorf("%w\n--- server.log (tail) ---\n%s", err, lastN(log, 4000))
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	env := map[string]string{
		"PREFECT_HOME":                     s.Home,
		"PREFECT_SERVER_ANALYTICS_ENABLED": "false",
		"PREFECT_SERVER_UI_ENABLED":        "false",
		"PREFECT_SERVER_API_HOST":          "127.0.0.1",
		"PREFECT_SERVER_API_PORT":          strconv.Itoa(s.Port),
		// Log the tracebacks behind 503 "Service Unavailable" answers.
		"PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
	}
	if s.opts.CSRF {
		env["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] = "true"
	}
	if s.Postgres != nil {
		env["PREFECT_API_DATABASE_CONNECTION_URL"] = s.Postgres.URL
	}
	for k, v := range s.opts.Env {
		env[k] = v
	}
	if s.AuthString != "" {
		env["PREFECT_SERVER_API_AUTH_STRING"] = s.AuthString
	}
	out, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Fprintf(out, "=== rig: starting prefect server on 127.0.0.1:%d at %s ===\n", s.Port, time.Now().Format(time.RFC3339Nano))
	prefectBin := filepath.Join(filepath.Dir(s.python), "prefect")
	argv := []string{prefectBin, "server", "start", "--host", "127.0.0.1", "--port", strconv.Itoa(s.Port)}
	t0 := time.Now()
	p, err := startProc("prefect server", s.python, s.Home, s.Home, argv, env, out)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.stopped = false
	s.mu.Unlock()
	if err := s.waitHealthy(ctx, p, 90*time.Second); err != nil {
		return err
	}
	s.StartupTime = time.Since(t0)
	return nil
}

func (s *Server) waitHealthy(ctx context.Context, p *proc, ceiling time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, ceiling)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("prefect server exited before becoming healthy: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("prefect server not healthy at %s/health: %w", s.URL, ctx.Err())
		case <-tick.C:
		}
	}
}

// stopProc stops the server process but keeps Home.
func (s *Server) stopProc() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		_ = p.stop()
	}
}

// Stop sends SIGTERM to the server's process group, SIGKILL after 10 s,
// waits, stops its PostgreSQL cluster if any, and removes Home and the
// cluster's folder (kept when UE_PREFECT_KEEP_RIG=1). Idempotent.
func (s *Server) Stop() error {
	s.stopProc()
	if s.Postgres != nil {
		_ = s.Postgres.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if b, err := os.ReadFile(s.logPath); err == nil {
		s.lastLog = string(b)
	}
	if !keepRig() {
		return os.RemoveAll(s.Home)
	}
	return nil
}

// Restart stops the server, waits downFor, and starts it again on the SAME
// port and PREFECT_HOME (same database; a PostgreSQL cluster keeps
// running), waiting until it is healthy.
func (s *Server) Restart(ctx context.Context, downFor time.Duration) error {
	s.stopProc()
	select {
	case <-time.After(downFor):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.start(ctx)
}

// Log returns the server log contents, for failure messages.
func (s *Server) Log() string {
	if b, err := os.ReadFile(s.logPath); err == nil {
		return string(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLog
}

// HTTPError is a non-2xx answer from the API.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, lastN(e.Body, 2000))
}

// Do sends one request to the API (path relative to URL, e.g.
// "/flow_runs/filter"). body may be nil, []byte/json.RawMessage (sent as is)
// or any value (JSON-encoded). It returns the status and body of any
// response; err is only for transport failures.
func (s *Server) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.AuthString != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(s.AuthString)))
	}
	c := s.client
	if c == nil {
		c = defaultAPIClient
	}
	if s.opts.CSRF && method != http.MethodGet {
		tok, err := s.csrfToken(ctx, c)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Prefect-Csrf-Token", tok)
		req.Header.Set("Prefect-Csrf-Client", s.csrfClient())
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func (s *Server) csrfClient() string { return fmt.Sprintf("ue-prefect-rig-%d", s.Port) }

// csrfToken returns the helpers' CSRF token, fetching it once
// (GET /csrf-token?client=…; tokens live an hour by default).
func (s *Server) csrfToken(ctx context.Context, c *http.Client) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.csrf != "" {
		return s.csrf, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/csrf-token?client="+s.csrfClient(), nil)
	if err != nil {
		return "", err
	}
	if s.AuthString != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(s.AuthString)))
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		return "", fmt.Errorf("GET /csrf-token: HTTP %d, no token (%v)", resp.StatusCode, err)
	}
	s.csrf = tok.Token
	return s.csrf, nil
}

// DoJSON is Do that retries a busy server's answers, fails on non-2xx
// (HTTPError) and decodes into out; see doJSON. A test's own set-up
// requests use it, so that a server busy with parallel tests does not
// fail them.
func (s *Server) DoJSON(ctx context.Context, method, path string, body, out any) (int, error) {
	return s.doJSON(ctx, method, path, body, out)
}

// doJSON is Do that fails on non-2xx (HTTPError) and decodes into out.
// Like Prefect's own client it retries 429, 502 and 503 (SQLite "database is
// locked" surfaces as 503 under parallel load) up to 11 attempts (~17 s,
// backoff 0.25 s doubling to 2 s); the rig's
// creates always carry idempotency keys, so this is safe.
func (s *Server) doJSON(ctx context.Context, method, path string, body, out any) (int, error) {
	var (
		status int
		data   []byte
		err    error
	)
	backoff := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		status, data, err = s.Do(ctx, method, path, body)
		if err != nil || attempt == 10 || (status != 429 && status != 502 && status != 503) {
			break
		}
		select {
		case <-ctx.Done():
			return status, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	if err != nil {
		return status, fmt.Errorf("%s %s: %w", method, s.URL+path, err)
	}
	if status < 200 || status > 299 {
		return status, &HTTPError{Method: method, URL: s.URL + path, Status: status, Body: string(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return status, fmt.Errorf("%s %s: decode %q: %w", method, s.URL+path, lastN(string(data), 500), err)
		}
	}
	return status, nil
}

// DeploymentID returns the id of deployment flow/deployment
// (GET /deployments/name/{flow}/{deployment}).
func (s *Server) DeploymentID(ctx context.Context, flow, deployment string) (string, error) {
	var d struct {
		ID string `json:"id"`
	}
	_, err := s.doJSON(ctx, http.MethodGet, "/deployments/name/"+url.PathEscape(flow)+"/"+url.PathEscape(deployment), nil, &d)
	if err == nil && d.ID == "" {
		err = fmt.Errorf("deployment %s/%s: no id in response", flow, deployment)
	}
	return d.ID, err
}

// CreateFlowRun posts body to /deployments/{id}/create_flow_run and returns
// the HTTP status (201 new, 200 idempotent replay) and the run.
func (s *Server) CreateFlowRun(ctx context.Context, deploymentID string, body any) (int, map[string]any, error) {
	if body == nil {
		body = map[string]any{}
	}
	var run map[string]any
	status, err := s.doJSON(ctx, http.MethodPost, "/deployments/"+url.PathEscape(deploymentID)+"/create_flow_run", body, &run)
	return status, run, err
}

// ReadFlowRun returns GET /flow_runs/{id} as a JSON object.
func (s *Server) ReadFlowRun(ctx context.Context, id string) (map[string]any, error) {
	var run map[string]any
	_, err := s.doJSON(ctx, http.MethodGet, "/flow_runs/"+url.PathEscape(id), nil, &run)
	return run, err
}

// StateType returns run["state_type"] ("" if absent).
func StateType(run map[string]any) string {
	s, _ := run["state_type"].(string)
	return s
}

// StateName returns run["state_name"] ("" if absent).
func StateName(run map[string]any) string {
	s, _ := run["state_name"].(string)
	return s
}

var terminalStates = map[string]bool{"COMPLETED": true, "FAILED": true, "CANCELLED": true, "CRASHED": true}

// WaitForState polls the run every 250 ms until its state_type equals
// stateType (e.g. "RUNNING", "COMPLETED") and returns it. It fails early if
// the run reaches a different terminal state, and after timeout. Transient
// read errors (e.g. during a server restart) are retried.
func (s *Server) WaitForState(ctx context.Context, id string, stateType string, timeout time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last map[string]any
	var lastErr error
	for {
		run, err := s.ReadFlowRun(ctx, id)
		if err == nil {
			last = run
			st := StateType(run)
			if st == stateType {
				return run, nil
			}
			if terminalStates[st] {
				return run, fmt.Errorf("flow run %s reached %s/%s (message %q), want %s", id, st, StateName(run), stateMessage(run), stateType)
			}
		} else {
			var he *HTTPError
			if errors.As(err, &he) && he.Status == http.StatusNotFound {
				return nil, err
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("flow run %s: still %s/%s after %v, want %s (last error: %v)", id, StateType(last), StateName(last), timeout, stateType, lastErr)
		case <-tick.C:
		}
	}
}

func stateMessage(run map[string]any) string {
	st, _ := run["state"].(map[string]any)
	m, _ := st["message"].(string)
	return m
}

// ResumeFlowRun resumes a PAUSED run (POST /flow_runs/{id}/resume).
func (s *Server) ResumeFlowRun(ctx context.Context, id string) error {
	var res struct {
		Status  string         `json:"status"`
		Details map[string]any `json:"details"`
	}
	if _, err := s.doJSON(ctx, http.MethodPost, "/flow_runs/"+url.PathEscape(id)+"/resume", map[string]any{}, &res); err != nil {
		return err
	}
	if res.Status != "ACCEPT" {
		return fmt.Errorf("resume flow run %s: status %s, details %v", id, res.Status, res.Details)
	}
	return nil
}

// CancelFlowRun proposes CANCELLING (POST /flow_runs/{id}/set_state, as
// `prefect flow-run cancel` does). ACCEPT, and REJECT with the run written
// straight to CANCELLED (a run without infrastructure), count as success.
func (s *Server) CancelFlowRun(ctx context.Context, id string) error {
	body := map[string]any{"state": map[string]any{"type": "CANCELLING", "name": "Cancelling"}, "force": false}
	var res struct {
		Status  string         `json:"status"`
		State   map[string]any `json:"state"`
		Details map[string]any `json:"details"`
	}
	if _, err := s.doJSON(ctx, http.MethodPost, "/flow_runs/"+url.PathEscape(id)+"/set_state", body, &res); err != nil {
		return err
	}
	if res.Status == "ACCEPT" || (res.Status == "REJECT" && res.State["type"] == "CANCELLED") {
		return nil
	}
	return fmt.Errorf("cancel flow run %s: status %s, state %v, details %v", id, res.Status, res.State["type"], res.Details)
}

// FlowRunsByIdempotencyKey returns the runs with this idempotency key
// (POST /flow_runs/filter).
func (s *Server) FlowRunsByIdempotencyKey(ctx context.Context, key string) ([]map[string]any, error) {
	return s.filterFlowRuns(ctx, map[string]any{"idempotency_key": map[string]any{"any_": []string{key}}})
}

// FlowRunsByDeployment returns up to 200 runs of a deployment, newest first.
func (s *Server) FlowRunsByDeployment(ctx context.Context, deploymentID string) ([]map[string]any, error) {
	return s.filterFlowRuns(ctx, map[string]any{"deployment_id": map[string]any{"any_": []string{deploymentID}}})
}

func (s *Server) filterFlowRuns(ctx context.Context, filter map[string]any) ([]map[string]any, error) {
	var runs []map[string]any
	_, err := s.doJSON(ctx, http.MethodPost, "/flow_runs/filter", map[string]any{"flow_runs": filter, "limit": 200}, &runs)
	return runs, err
}

// newAPIClient returns the helpers' HTTP client. Keep-alive is off: uvicorn
// closes idle connections after 5 s, and a POST racing that close fails with
// "connection reset by peer" (Go does not retry non-idempotent requests).
func newAPIClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

var defaultAPIClient = newAPIClient()

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
