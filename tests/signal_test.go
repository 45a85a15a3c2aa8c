package tests

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalWhileLoading: SIGTERM while a cold-cache process is still
// loading the plugin, against a server that accepts connections and never
// answers. The process must end promptly (not after the request timeout,
// nor after the background compile) with exit 143 and its document.
func TestSignalWhileLoading(t *testing.T) {
	t.Parallel()
	l := silentListener(t)
	for _, delay := range []time.Duration{50 * time.Millisecond, 600 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			vars := map[string]string{"PREFECT_API_URL": "http://" + l.Addr().String() + "/api", "UE_PREFECT_DEPLOYMENT": "ok/ok",
				"UE_PREFECT_WAIT": "true", "UE_PREFECT_CACHE_DIR": filepath.Join(t.TempDir(), "cold")}
			p := startUE(t, vars)
			time.Sleep(delay)
			sent := time.Now()
			p.signal(syscall.SIGTERM)
			r := p.wait(20 * time.Second)
			if took := time.Since(sent); took > 5*time.Second {
				t.Errorf("exit took %s after SIGTERM", took)
			}
			wantExit(t, r, 143, "Interrupted: SIGTERM received")
			if !strings.Contains(r.doc.StatusDescription, "before a flow run was launched") {
				t.Errorf("status_description = %q", r.doc.StatusDescription)
			}
		})
	}
}

// TestStdinCloseStops: with --stop-on-stdin-close (what the UAC extension
// sets, because Windows has no SIGTERM for a child), the end of stdin stops
// the process as SIGTERM does: promptly, exit 143, with its document.
// Without the option, the end of stdin changes nothing.
func TestStdinCloseStops(t *testing.T) {
	t.Parallel()
	l := silentListener(t)
	for _, opt := range []string{"true", ""} {
		t.Run("stop-on-stdin-close="+opt, func(t *testing.T) {
			vars := map[string]string{"PREFECT_API_URL": "http://" + l.Addr().String() + "/api", "UE_PREFECT_DEPLOYMENT": "ok/ok",
				"UE_PREFECT_WAIT": "true", "UE_PREFECT_STOP_ON_STDIN_CLOSE": opt}
			cmd := exec.Command(binPath)
			cmd.Env = baseEnv(vars)
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			p := startProc(t, cmd)
			time.Sleep(300 * time.Millisecond)
			closed := time.Now()
			in.Close()
			if opt == "" {
				select {
				case <-p.done:
					t.Fatalf("ended when stdin closed without the option:\n%s", p.stderr.String())
				case <-time.After(2 * time.Second):
				}
				p.signal(syscall.SIGTERM)
				wantExit(t, p.wait(20*time.Second), 143, "Interrupted: SIGTERM received")
				return
			}
			r := p.wait(20 * time.Second)
			if took := time.Since(closed); took > 5*time.Second {
				t.Errorf("exit took %s after stdin closed", took)
			}
			wantExit(t, r, 143, "Interrupted: SIGTERM received")
			if !strings.Contains(r.stderr, "Standard input closed") {
				t.Errorf("stderr does not say why it stopped:\n%s", r.stderr)
			}
		})
	}
}

// silentListener accepts connections on a loopback port and never answers,
// holding each open until the test ends.
func silentListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	return l
}
