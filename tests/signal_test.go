package tests

import (
	"net"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
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
