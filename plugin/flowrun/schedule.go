package flowrun

import (
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Scheduled start and start deadline.
//
// The machine reads no clock. Its time is the host's monotonic
// milliseconds; the wall clock enters as RunInput.NowUnixMS when a run
// starts or resumes. A Start At is resolved against it at the start (a
// duration becomes a time), checked not to be in the past, and kept in the
// checkpoint with its place on the machine's own time line, so a resumed
// run never moves the start: Start At is part of the checkpoint's
// identity (rebind). A resume moves machine time on by the wall-clock time
// the task was away, so the start deadline, like every other span, counts
// the downtime. A run attached by id is judged from its own
// expected_start_time, placed on the time line by the same wall clock.
//
// A run has started on any sign Prefect gives: a run_count above 0, a
// start_time, or a state past SCHEDULED and PENDING. A run that ran,
// failed and waits to retry (AwaitingRetry, a SCHEDULED state) between two
// polls has started, though no poll saw it RUNNING.

// MaxStartAhead bounds how far ahead a flow run may be scheduled.
const MaxStartAhead = 366 * 24 * time.Hour

// schedule is the checkpointed part of a scheduled start and a deadline.
type schedule struct {
	// Time is the resolved scheduled start (RFC 3339, UTC) sent to
	// Prefect; empty when the run starts now.
	Time string `json:"time,omitempty"`
	// Identity is what the start adds to the idempotency key: the time as
	// given when absolute, "in" plus the duration when relative, so that a
	// retry with the same inputs names the same flow run.
	Identity string `json:"identity,omitempty"`
	// AtMS is the scheduled start on the machine's time line: the Start At
	// of a launched run, the expected start of an attached one; nil when
	// the run starts now (the deadline then counts from its creation or
	// first read).
	AtMS *int64 `json:"at_ms,omitempty"`
	// Started is set once the run has shown a sign of having started
	// (noteSchedule).
	Started bool `json:"started,omitempty"`
	// Hit is set when the start deadline passed.
	Hit bool `json:"hit,omitempty"`
}

// startSpec is a parsed Start At: an absolute time or a duration from now.
type startSpec struct {
	abs time.Time
	rel time.Duration
}

// parseStartAt parses Start At: RFC 3339, or a Go duration ("90s", "10m",
// "1h30m") counted from now.
func parseStartAt(v string) (startSpec, *abi.Error) {
	const field = "start_at"
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return startSpec{abs: t}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return startSpec{}, abi.Errorf(abi.CodeInvalidInput, field,
			"%q is neither an RFC 3339 time (2026-11-28T09:00:00Z) nor a duration from now (90s, 10m, 1h30m)", clip(v))
	}
	if d <= 0 {
		return startSpec{}, abi.Errorf(abi.CodeInvalidInput, field, "%q is in the past; give a positive duration from now", clip(v))
	}
	if d > MaxStartAhead {
		return startSpec{}, abi.Errorf(abi.CodeInvalidInput, field, "%q is more than %d days ahead", clip(v), int(MaxStartAhead.Hours()/24))
	}
	return startSpec{rel: d}, nil
}

// parseStartFields validates Start At, Start Deadline (sec) and Cancel Flow
// Run at Start Deadline into c.
func parseStartFields(c *Config, f abi.Fields) *abi.Error {
	c.StartAt = strings.TrimSpace(f.StartAt)
	if err := checkText("start_at", c.StartAt); err != nil {
		return err
	}
	if c.StartAt != "" {
		if _, err := parseStartAt(c.StartAt); err != nil {
			return err
		}
	}
	deadline, err := abi.ParseInt("start_deadline", f.StartDeadline)
	if err != nil {
		return err
	}
	c.StartDeadline = deadline * second
	if c.CancelOnDeadline, err = parseBool("cancel_on_deadline", f.CancelOnDeadline, false); err != nil {
		return err
	}
	switch {
	case c.CancelOnDeadline && c.StartDeadline == 0:
		return abi.Errorf(abi.CodeInvalidInput, "cancel_on_deadline", "needs %s", abi.FieldLabel("start_deadline"))
	case c.StartDeadline > 0 && !c.Wait:
		return abi.Errorf(abi.CodeInvalidInput, "start_deadline", "needs %s: the deadline is watched while waiting", abi.FieldLabel("wait"))
	case c.StartAt != "" && c.FlowRunID != "":
		return abi.Errorf(abi.CodeInvalidInput, "start_at", "applies to a new flow run, not to %s", abi.FieldLabel("flow_run_id"))
	}
	return nil
}

// resolveStart fixes the scheduled start against the host's wall clock,
// once, at the start of a run. It ends the run and returns false when the
// start is in the past or the wall clock is unknown.
func (m *Machine) resolveStart(nowUnixMS int64) bool {
	c := m.s.Cfg
	if c.StartAt == "" && c.StartDeadline == 0 {
		return true
	}
	m.s.Sched = &schedule{}
	if c.StartAt == "" {
		return true
	}
	spec, err := parseStartAt(c.StartAt)
	if err != nil {
		m.fail(err)
		return false
	}
	if nowUnixMS <= 0 {
		m.fail(abi.Errorf(abi.CodeInvalidInput, "start_at", "the host gave no wall-clock time (RunInput.now_unix_ms) to schedule against"))
		return false
	}
	now := time.UnixMilli(nowUnixMS).UTC()
	at := spec.abs
	if spec.rel > 0 {
		at = now.Add(spec.rel)
		m.s.Sched.Identity = "in" + spec.rel.String()
	} else {
		if !at.After(now) {
			m.fail(abi.Errorf(abi.CodeInvalidInput, "start_at", "%s is in the past (now is %s)", c.StartAt, now.Format(time.RFC3339)))
			return false
		}
		if at.Sub(now) > MaxStartAhead {
			m.fail(abi.Errorf(abi.CodeInvalidInput, "start_at", "%s is more than %d days ahead", c.StartAt, int(MaxStartAhead.Hours()/24)))
			return false
		}
		m.s.Sched.Identity = at.UTC().Format(time.RFC3339Nano)
	}
	m.s.Sched.Time = at.UTC().Format(time.RFC3339Nano)
	atMS := m.s.Now + at.Sub(now).Milliseconds()
	m.s.Sched.AtMS = &atMS
	return true
}

// sameStart reports whether two Start At values name the same start: the
// same instant, or the same duration from the start of the task.
func sameStart(a, b string) bool {
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	x, errA := parseStartAt(a)
	y, errB := parseStartAt(b)
	return errA == nil && errB == nil && x.rel == y.rel && x.abs.Equal(y.abs)
}

// resumeClock moves machine time on, on a resume, by the wall-clock time
// since the checkpoint's last instant, and re-anchors the wall clock to
// the new host's. A wall clock that went back moves nothing: machine time
// never goes backwards. The start deadline is judged afresh, with the
// resuming task's settings.
func (m *Machine) resumeClock(nowUnixMS int64) {
	if m.s.Sched != nil {
		m.s.Sched.Hit = false
	}
	if nowUnixMS <= 0 {
		return
	}
	if m.s.WallOffset != 0 {
		if away := nowUnixMS - m.s.WallOffset - m.s.Now; away > 0 {
			m.s.Now += away
			m.s.Offset += away
			if away >= second {
				m.logf(abi.LevelInfo, "Resuming %s after the checkpoint was written (by the wall clock)", dur(away))
			}
		}
	}
	m.s.WallOffset = nowUnixMS - m.s.Now
}

// noteSchedule updates, from a flow run just read, what the start deadline
// judges: whether the run has started, and, for a run attached by id, its
// expected start (Prefect's expected_start_time), which may lie ahead.
func (m *Machine) noteSchedule(b gjson.Result) {
	sc := m.s.Sched
	if sc == nil || sc.Started {
		return
	}
	t := b.Get("state_type").Str
	if b.Get("run_count").Int() > 0 || b.Get("start_time").Type == gjson.String || (t != StateScheduled && t != StatePending) {
		sc.Started = true
		return
	}
	est := b.Get("expected_start_time")
	if m.s.Cfg.FlowRunID == "" || m.s.WallOffset == 0 || est.Type != gjson.String {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, est.Str)
	if err != nil {
		return
	}
	ms := at.UnixMilli() - m.s.WallOffset
	sc.AtMS, sc.Time = &ms, at.UTC().Format(time.RFC3339Nano)
}

// startIdentity is what a scheduled start adds to the idempotency key.
func (m *Machine) startIdentity() string {
	if m.s.Sched == nil || m.s.Sched.Identity == "" {
		return ""
	}
	return ":start=" + m.s.Sched.Identity
}

// scheduleCreate adds the scheduled state to a create_flow_run body, as
// Prefect's run_deployment and `prefect deployment run --start-in` do.
func (m *Machine) scheduleCreate(body map[string]any) {
	if m.s.Sched == nil || m.s.Sched.Time == "" {
		return
	}
	body["state"] = map[string]any{
		"type":          StateScheduled,
		"name":          "Scheduled",
		"state_details": map[string]any{"scheduled_time": m.s.Sched.Time},
	}
}

// logScheduled tells when a freshly created run is due.
func (m *Machine) logScheduled() {
	if m.s.Sched == nil || m.s.Sched.AtMS == nil {
		return
	}
	m.logf(abi.LevelInfo, "Scheduled to start at %s (in %s)", m.s.Sched.Time, dur(max(0, *m.s.Sched.AtMS-m.s.Now)))
}

// deadlineAt is the machine time of the start deadline, and whether one
// is being watched.
func (m *Machine) deadlineAt() (int64, bool) {
	sc := m.s.Sched
	if sc == nil || m.s.Cfg.StartDeadline == 0 || sc.Started {
		return 0, false
	}
	if sc.Hit { // the deadline has passed
		return m.s.Now, true
	}
	switch t := m.s.Run.StateType; {
	case t != StateScheduled && t != StatePending:
		sc.Started = true
		return 0, false
	}
	base := m.s.Now
	switch {
	case sc.AtMS != nil:
		base = *sc.AtMS
	case m.s.Poll.CreatedAt != nil:
		base = *m.s.Poll.CreatedAt
	}
	return base + m.s.Cfg.StartDeadline, true
}

// startDeadlineCap shortens a poll wait of ms so that it ends no later
// than the start deadline while one is watched, and reports whether the
// wait now ends at the deadline (it must then end on time: see
// abi.SleepRequest.Exact). Once the deadline has passed with the run
// still not started, it ends the task (cancelling first when asked to)
// and returns false.
func (m *Machine) startDeadlineCap(ms int64) (int64, bool, bool) {
	if at, ok := m.deadlineAt(); ok {
		if m.s.Now >= at {
			m.deadlineHit()
			return 0, false, false
		}
		if left := at - m.s.Now; left <= ms {
			return left, true, true
		}
	}
	return ms, false, true
}

// deadlineHit ends the task at the start deadline, cancelling the flow run
// first when asked to.
func (m *Machine) deadlineHit() {
	m.s.Sched.Hit = true
	m.logf(abi.LevelWarn, "Flow run %s has not started %s after its scheduled start; it is %s (%s)",
		m.runLabel(), dur(m.s.Cfg.StartDeadline), m.s.Run.StateName, m.s.Run.StateType)
	if !m.s.Cfg.CancelOnDeadline {
		m.finishDeadline()
		return
	}
	m.s.Cancel.Cancelling = true
	m.s.Cancel.At = m.s.Now // the cancel grace counts from here
	m.s.Cancel.TransitionID = m.uuid4()
	m.logf(abi.LevelInfo, "Cancelling flow run %s (grace %s)", m.runLabel(), dur(m.s.Cfg.CancelGrace))
	body := mustJSON(map[string]any{
		"state": map[string]any{"type": StateCancelling, "state_details": map[string]any{"transition_id": m.s.Cancel.TransitionID}},
		"force": false,
	})
	m.send(opCancel, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID + "/set_state", Body: body})
}

// deadlineEnds reports whether the end of a cancellation is the start
// deadline's (not a signal's).
func (m *Machine) deadlineEnds() bool {
	return m.s.Sched != nil && m.s.Sched.Hit && m.s.Cancel.Interrupt == nil
}

// finishDeadline ends the task with ExitStartDeadline.
func (m *Machine) finishDeadline() {
	msg := fmt.Sprintf("flow run %s did not start within %s of its scheduled start", m.runLabel(), dur(m.s.Cfg.StartDeadline))
	if m.s.Sched.Time != "" {
		msg += " (" + m.s.Sched.Time + ")"
	}
	switch {
	case m.s.Cancel.Outcome != "":
		msg += "; cancelling it: " + m.s.Cancel.Outcome
	default:
		msg += fmt.Sprintf("; it is left %s on Prefect", m.s.Run.StateType)
	}
	msg += "; check that a worker or serve process is running for " + m.deploymentLabel() + " and that its work pool and deployment are not paused"
	m.fail(&abi.Error{Code: abi.CodeStartDeadline, Message: msg})
}

func (m *Machine) deploymentLabel() string {
	if m.s.Resolve.Deployment == nil {
		return "the deployment"
	}
	return "deployment " + m.s.Resolve.Deployment.fullName()
}

// warnReadiness warns, once, at launch, about a deployment that Prefect
// says will not run soon, and says what to check.
func (m *Machine) warnReadiness(d gjson.Result) {
	name := d.Get("name").String()
	check := "check that the process serving it (flow.serve, or `prefect deploy` with a worker) is running"
	if pool := d.Get("work_pool_name"); pool.Type == gjson.String && pool.Str != "" {
		check = fmt.Sprintf("check that a worker polls work pool %q (prefect worker start --pool %q) and that the pool is not paused", pool.Str, pool.Str)
	}
	if d.Get("paused").Bool() {
		m.logf(abi.LevelWarn, "Deployment %q is paused: its schedules are off; a manual run is still created; resume it with prefect deployment resume if it should run on schedule", name)
	}
	if d.Get("status").String() != "NOT_READY" {
		return
	}
	if age, ok := m.sinceUpdate(d); ok && age >= 0 && age < readinessGrace {
		// A runner or worker that starts registers (updates) its
		// deployments before its first poll: seconds of NOT_READY are
		// the normal start-up, not a fault.
		m.logf(abi.LevelInfo, "Deployment %q is NOT_READY: it was registered %s ago and no worker or runner has polled it yet; the flow run waits in Scheduled until one does", name, dur(age))
		return
	}
	m.logf(abi.LevelWarn, "Deployment %q is NOT_READY: no worker or runner has polled it lately, so the flow run may wait in Scheduled/Late; %s", name, check)
}

// readinessGrace is how long after a deployment was registered or updated
// a NOT_READY status is only reported, not warned about: a runner polls
// every 10 s by default (PREFECT_RUNNER_POLL_FREQUENCY), a worker every
// 15 s (PREFECT_WORKER_QUERY_SECONDS), and Prefect marks a deployment READY
// at its first poll.
const readinessGrace = 60_000

// sinceUpdate returns how long ago, on the host's wall clock, deployment d
// was last registered or updated (its "updated" timestamp); false when the
// host gave no wall clock or the timestamp is missing or unreadable.
func (m *Machine) sinceUpdate(d gjson.Result) (int64, bool) {
	u := d.Get("updated")
	if m.s.WallOffset == 0 || u.Type != gjson.String {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, u.Str)
	if err != nil {
		return 0, false
	}
	return m.s.Now + m.s.WallOffset - t.UnixMilli(), true
}
