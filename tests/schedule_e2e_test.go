package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// runTime reads a timestamp field of a flow run as the server reports it.
func runTime(t *testing.T, run map[string]any, key string) time.Time {
	t.Helper()
	s, _ := run[key].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("flow run %s = %q: %v", key, s, err)
	}
	return ts
}

// checkScheduledStart launches ok/ok 5 s ahead and waits: the run is created
// SCHEDULED at that time and starts no earlier (as Prefect counts it).
func checkScheduledStart(t *testing.T, env *rig.Env) {
	t.Helper()
	launched := time.Now()
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "ok/ok", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1",
		"UE_PREFECT_START_AT", "5s"))
	wantExit(t, r, 0, "Task executed successfully.")
	if !strings.Contains(r.stderr, "Scheduled to start at ") {
		t.Errorf("stderr does not say when the run is due:\n%s", r.stderr)
	}
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id"))
	if err != nil {
		t.Fatal(err)
	}
	due := runTime(t, run, "expected_start_time")
	started := runTime(t, run, "start_time")
	if due.Before(launched.Add(5*time.Second)) || due.After(launched.Add(5*time.Second+r.elapsed)) {
		t.Errorf("expected_start_time %s, want 5 s after the launch at %s", due, launched)
	}
	// Prefect's server rounds the wait before RUNNING to the nearest second
	// (core_policy.WaitForScheduledTime: "the API schema specifies an
	// integer"), so a run may start up to 0.5 s before its scheduled time.
	const rounding = 500 * time.Millisecond
	if started.Before(due.Add(-rounding)) {
		t.Errorf("the run started at %s, before its scheduled start %s (less Prefect's rounding to the second)", started, due)
	}
	if started.Before(launched.Add(5*time.Second - rounding)) {
		t.Errorf("the run started at %s, less than 5 s after the launch at %s", started, launched)
	}
	if !strings.Contains(r.str("idempotency_key"), ":start=in5s") {
		t.Errorf("idempotency key %q does not carry the start", r.str("idempotency_key"))
	}
}

// TestE2E_ScheduledStart: a run scheduled 5 s ahead starts no earlier.
func TestE2E_ScheduledStart(t *testing.T) {
	t.Parallel()
	checkScheduledStart(t, e2e(t))
}

// TestE2E_StartDeadline: a deployment nobody serves hits the start deadline
// with exit 41; the run is left SCHEDULED, or CANCELLED when asked.
func TestE2E_StartDeadline(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	tests := []struct {
		name   string
		cancel string
		state  string
	}{
		{"left", "false", "SCHEDULED"},
		{"cancelled", "true", "CANCELLED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "idle/idle", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1",
				"UE_PREFECT_START_DEADLINE", "3", "UE_PREFECT_CANCEL_ON_DEADLINE", tc.cancel))
			wantExit(t, r, 41, "Start Deadline: flow run")
			if r.doc.Error == nil || r.doc.Error.Code != "start_deadline" {
				t.Errorf("error = %+v, want code start_deadline", r.doc.Error)
			}
			// idle/idle is registered but nobody serves it: Prefect says NOT_READY.
			if n := strings.Count(r.stderr, "is NOT_READY"); n != 1 {
				t.Errorf("readiness warning appears %d times, want once:\n%s", n, r.stderr)
			}
			if r.elapsed > 90*time.Second {
				t.Errorf("took %s for a 3 s deadline", r.elapsed)
			}
			run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id"))
			if err != nil {
				t.Fatal(err)
			}
			if got := rig.StateType(run); got != tc.state {
				t.Errorf("flow run is %s on Prefect, want %s", got, tc.state)
			}
			if tc.state == "SCHEDULED" {
				_ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id")) // tidy up
			}
		})
	}
}

// TestE2E_StartDeadlineRetryingRun: flaky/flaky really retries: its first
// attempt fails at once and the run waits 40 s in AwaitingRetry, a
// SCHEDULED state, across several polls. A start deadline of 25 s, shorter
// than the whole run, must not take that run for one that never started,
// nor cancel it: the task ends with the flow's real outcome, COMPLETED.
// Events are off, so only polls, 8 s apart, see the run: they miss the
// moment it is RUNNING, as a run that fails at once is missed in practice.
func TestE2E_StartDeadlineRetryingRun(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "flaky/flaky", "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "8",
		"UE_PREFECT_NO_EVENTS", "true", "UE_PREFECT_START_DEADLINE", "25", "UE_PREFECT_CANCEL_ON_DEADLINE", "true"))
	wantExit(t, r, 0, "Task executed successfully.")
	if lastState(r) != "COMPLETED" {
		t.Errorf("final state %q, want COMPLETED", lastState(r))
	}
	if !strings.Contains(r.stderr, "is AwaitingRetry (SCHEDULED)") {
		t.Errorf("no poll saw the run in AwaitingRetry:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "has not started") || strings.Contains(r.stderr, "Cancelling") {
		t.Errorf("the start deadline judged the retrying run:\n%s", r.stderr)
	}
	run, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id"))
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := run["run_count"].(float64); rc != 2 || rig.StateType(run) != "COMPLETED" {
		t.Errorf("flow run on Prefect: %s, run_count %v; want COMPLETED after 2 runs", rig.StateType(run), run["run_count"])
	}
	if r.elapsed < 25*time.Second {
		t.Errorf("took %s: the run ended before the deadline, so it was not judged", r.elapsed)
	}
}

// TestE2E_StartDeadlineAttachFuture: attached by id to a run created
// SCHEDULED two hours ahead, a short start deadline counts from the run's
// expected start, so the run is not late: Max Number of Polls ends the
// wait (exit 40, not 41) and the run is left SCHEDULED, not cancelled.
func TestE2E_StartDeadlineAttachFuture(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	ctx := ctxT(t, 30*time.Second)
	did, err := env.Server.DeploymentID(ctx, "idle", "idle")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	status, run, err := env.Server.CreateFlowRun(ctx, did, map[string]any{"state": map[string]any{
		"type": "SCHEDULED", "name": "Scheduled", "state_details": map[string]any{"scheduled_time": at}}})
	if err != nil || status != 201 {
		t.Fatalf("create = %d, %v", status, err)
	}
	id, _ := run["id"].(string)
	t.Cleanup(func() { _ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), id) })
	r := runUE(t, server(env, "UE_PREFECT_FLOW_RUN_ID", id, "UE_PREFECT_WAIT", "true", "UE_PREFECT_POLL_INTERVAL", "1",
		"UE_PREFECT_MAX_POLLS", "4", "UE_PREFECT_START_DEADLINE", "2", "UE_PREFECT_CANCEL_ON_DEADLINE", "true"))
	wantExit(t, r, 40, "Polling Timeout")
	after, err := env.Server.ReadFlowRun(ctxT(t, 30*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	if got := rig.StateType(after); got != "SCHEDULED" {
		t.Errorf("flow run is %s on Prefect, want SCHEDULED (not cancelled)", got)
	}
}

// TestE2E_Prefect2: the same plugin against a Prefect 2.20 server and
// runner: a scheduled start, and parameter values checked against the
// schema as each deployment says (2.x does not enforce by default).
// Not parallel with the other tests: a second server on 2 cores starves
// SQLite; it runs alone and stops its rig when done.
func TestE2E_Prefect2(t *testing.T) {
	if testing.Short() && !rig.Required() {
		t.Skip("-short: the Prefect 2 rig costs a second server")
	}
	env := rig.SharedPrefect2(t)
	t.Cleanup(func() {
		env.Flows.Stop()
		env.Server.Stop()
	})
	t.Run("scheduled start", func(t *testing.T) {
		t.Parallel()
		checkScheduledStart(t, env)
	})
	t.Run("job variables rejected at the create", func(t *testing.T) {
		t.Parallel()
		checkCreateRejectedJobVariables(t, env)
	})
	t.Run("schema not enforced: warn and launch", func(t *testing.T) {
		t.Parallel()
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "typed/typed-lax", "UE_PREFECT_PARAMETERS", `{"parameters":{"count":"abc"}}`))
		wantExit(t, r, 0, "Task executed successfully.")
		if !strings.Contains(r.stderr, `parameter "count"`) || !strings.Contains(r.stderr, "integer") {
			t.Errorf("no warning naming count and its type:\n%s", r.stderr)
		}
		_ = env.Server.CancelFlowRun(ctxT(t, 30*time.Second), r.str("flow_run_id")) // tidy up
	})
	t.Run("schema enforced: exit 20, nothing created", func(t *testing.T) {
		t.Parallel()
		did, err := env.Server.DeploymentID(ctxT(t, 30*time.Second), "typed", "typed")
		if err != nil {
			t.Fatal(err)
		}
		r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", "typed/typed", "UE_PREFECT_PARAMETERS", `{"parameters":{"count":"abc"}}`))
		wantExit(t, r, 20, `Data Validation Error: Parameters (JSON): deployment "typed" enforces its parameter schema: parameter "count"`)
		if runs, _ := env.Server.FlowRunsByDeployment(ctxT(t, 30*time.Second), did); len(runs) != 0 {
			t.Errorf("%d runs of typed/typed exist; want none", len(runs))
		}
	})
}
