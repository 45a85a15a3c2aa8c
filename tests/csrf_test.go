package tests

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// TestE2E_CSRF: a self-hosted server with CSRF protection on
// (PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED) refuses every POST without a
// token. ue-prefect fetches one and sends it, as Prefect's own client does,
// for the create, the log reads and the cancel.
func TestE2E_CSRF(t *testing.T) {
	t.Parallel()
	e2e(t)
	ctx := ctxT(t, 6*time.Minute)
	srv, err := rig.StartServer(ctx, rig.ServerOptions{CSRF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	flows, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Stop()

	// The server really is protected: a POST without a token is refused.
	bare := &rig.Server{URL: srv.URL}
	status, body, err := bare.Do(ctx, "POST", "/flow_runs/filter", map[string]any{"limit": 1})
	if err != nil || status != 403 || !strings.Contains(string(body), "Missing CSRF token") {
		t.Fatalf("a POST without a CSRF token got %d %s (%v), want 403 Missing CSRF token", status, body, err)
	}

	t.Run("launch, wait and stream logs", func(t *testing.T) {
		r := runUE(t, map[string]string{"PREFECT_API_URL": srv.URL, "UE_PREFECT_DEPLOYMENT": "demo/demo", "UE_PREFECT_WAIT": "true",
			"UE_PREFECT_POLL_INTERVAL": "1", "UE_PREFECT_STREAM_LOGS": "true", "UE_PREFECT_PARAMETERS": `{"parameters":{"name":"csrf"}}`})
		wantExit(t, r, 0, "Task executed successfully.")
		if !strings.Contains(r.stderr, "│ INFO  │ done: Hello, csrf!") {
			t.Errorf("the flow's log lines were not relayed:\n%s", r.stderr)
		}
		if strings.Contains(r.stderr, "CSRF") {
			t.Errorf("a CSRF refusal surfaced:\n%s", r.stderr)
		}
	})

	t.Run("cancel on interrupt", func(t *testing.T) {
		p := startUE(t, map[string]string{"PREFECT_API_URL": srv.URL, "UE_PREFECT_DEPLOYMENT": "sleepy/sleepy", "UE_PREFECT_WAIT": "true",
			"UE_PREFECT_POLL_INTERVAL": "30", "UE_PREFECT_CANCEL_ON_INTERRUPT": "true"})
		if !p.waitFor(`ue-prefect::output`, 60*time.Second) {
			t.Fatalf("no flow run:\n%s", p.stderr.String())
		}
		id := firstRunID(t, p.stderr.String())
		if _, err := srv.WaitForState(ctxT(t, 90*time.Second), id, "RUNNING", 90*time.Second); err != nil {
			t.Fatal(err)
		}
		p.signal(syscall.SIGTERM)
		r := p.wait(time.Minute)
		wantExit(t, r, 143, "Interrupted: SIGTERM received")
		if !strings.Contains(r.doc.StatusDescription, "cancelling flow run") {
			t.Errorf("status %q", r.doc.StatusDescription)
		}
		run, _ := srv.ReadFlowRun(ctxT(t, 30*time.Second), id)
		if st := rig.StateType(run); st != "CANCELLED" && st != "CANCELLING" {
			t.Errorf("state after cancel-on-interrupt = %s, want CANCELLED", st)
		}
	})
}
