package rig

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Flows is a running tests/rig/flows.py: one `prefect.serve` process serving
// every test deployment (ok, fail, crash, sleepy, pause, typed, alpha/shared,
// beta/shared, alpha/alpha-only, demo, flaky) against a Server.
type Flows struct {
	// Home is the serving process's PREFECT_HOME (holds flows.log).
	Home string
	// StartupTime is how long it took until flows.py printed READY.
	StartupTime time.Duration

	logPath string
	proc    *proc

	mu      sync.Mutex
	stopped bool
	lastLog string
}

// ServeFlows runs flows.py against s with PREFECT_API_URL (and
// PREFECT_API_AUTH_STRING when the server uses auth),
// PREFECT_RUNNER_POLL_FREQUENCY=1 and PREFECT_RUNNER_PROCESS_LIMIT=20, in its
// own process group, and waits (120 s ceiling) for it to print READY, i.e.
// for every deployment to be readable through the API.
func ServeFlows(ctx context.Context, s *Server) (*Flows, error) {
	python := s.python // the server's Prefect serves the flows too
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "ue-prefect-flows-")
	if err != nil {
		return nil, err
	}
	f := &Flows{Home: home, logPath: filepath.Join(home, "flows.log")}
	owned.Lock()
	owned.flows = append(owned.flows, f)
	owned.Unlock()
	out, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	defer out.Close()
	env := map[string]string{
		"PREFECT_HOME":                                home,
		"PREFECT_API_URL":                             s.URL,
		"PREFECT_RUNNER_POLL_FREQUENCY":               "1",
		"PREFECT_RUNNER_PROCESS_LIMIT":                "20",
		"PREFECT_SERVER_ANALYTICS_ENABLED":            "false",
		"PREFECT_CLIENT_ENABLE_METRICS":               "false",
		"PREFECT_LOGGING_LEVEL":                       "INFO",
		"PREFECT_CLI_COLORS":                          "false",
		"PREFECT_SERVER_ALLOW_EPHEMERAL_MODE":         "false",
		"PREFECT_RESULTS_PERSIST_BY_DEFAULT":          "false",
		"PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
	}
	if s.AuthString != "" {
		env["PREFECT_API_AUTH_STRING"] = s.AuthString
	}
	// stdout goes through a pipe so that READY can be seen; everything is
	// also copied to flows.log.
	pr, pw, err := os.Pipe()
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	t0 := time.Now()
	p, err := startProc("flows.py", python, root, home, []string{python, filepath.Join(root, "tests", "rig", "flows.py")}, env, pw)
	pw.Close()
	if err != nil {
		pr.Close()
		os.RemoveAll(home)
		return nil, err
	}
	f.proc = p
	ready := make(chan struct{})
	logOut, err := os.OpenFile(f.logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.Stop()
		return nil, err
	}
	go func() {
		defer pr.Close()
		defer logOut.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			io.WriteString(logOut, line+"\n")
			if strings.TrimSpace(line) == "READY" {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(logOut, pr)
	}()
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	select {
	case <-ready:
		f.StartupTime = time.Since(t0)
		return f, nil
	case <-p.done:
		err = fmt.Errorf("flows.py exited before READY: %v", p.err)
	case <-ctx.Done():
		err = fmt.Errorf("flows.py not READY: %w", ctx.Err())
	}
	f.Stop()
	return nil, fmt.Errorf("%w\n--- flows.log (tail) ---\n%s", err, lastN(f.Log(), 4000))
}

// Stop terminates the serving process group (SIGTERM, SIGKILL after 10 s),
// kills any flow-run processes it started, and removes Home (kept when
// UE_PREFECT_KEEP_RIG=1). Idempotent.
func (f *Flows) Stop() error {
	if f.proc != nil {
		_ = f.proc.stop()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	f.stopped = true
	if b, err := os.ReadFile(f.logPath); err == nil {
		f.lastLog = string(b)
	}
	if !keepRig() {
		return os.RemoveAll(f.Home)
	}
	return nil
}

// Log returns flows.py's output (runner and flow-run logs), for failure
// messages.
func (f *Flows) Log() string {
	if b, err := os.ReadFile(f.logPath); err == nil {
		return string(b)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastLog
}
