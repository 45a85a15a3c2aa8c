package flowrun

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
)

// CheckpointVersion is the version of the checkpoint document. Restore
// refuses other versions rather than misreading them. Version 2 groups the
// state by operation; version 1 was flat.
const CheckpointVersion = 2

// state is everything the machine knows: it is the checkpoint. What is
// shared sits at the top; each operation's own part is declared in that
// operation's file.
type state struct {
	V            int    `json:"v"`
	Action       string `json:"action"`
	Target       string `json:"target"`
	APIBase      string `json:"api_base"`
	UIBase       string `json:"ui_base,omitempty"`
	Cfg          Config `json:"config"`
	InvocationID string `json:"invocation_id"`
	RNG          uint64 `json:"rng"`

	// Offset maps host time to machine time (machine = host + Offset), so
	// time keeps running forward across a resume in a new process.
	Offset int64 `json:"offset_ms"`
	Now    int64 `json:"now_ms"`
	// WallOffset maps machine time to the host's wall clock (Unix ms =
	// machine + WallOffset); 0 when the host gave no wall clock. It places
	// a flow run's expected start on the machine's time line, and on a
	// resume tells how long the task was away (schedule.go).
	WallOffset int64 `json:"wall_offset_ms,omitempty"`

	Pending pending `json:"pending,omitzero"` // the outstanding command (http.go)

	Resolve resolveState `json:"resolve,omitzero"`   // resolve.go
	List    listState    `json:"list,omitzero"`      // list.go
	Launch  launchState  `json:"launch,omitzero"`    // launch.go
	Run     flowRun      `json:"flow_run"`           // the flow run as last read (poll.go)
	Poll    pollState    `json:"poll,omitzero"`      // poll.go
	Logs    logState     `json:"logs,omitzero"`      // logs.go
	Cancel  cancelState  `json:"cancel,omitzero"`    // cancel.go
	Sched   *schedule    `json:"schedule,omitempty"` // scheduled start and start deadline (schedule.go)

	Done *abi.RunOutput `json:"done,omitempty"`
}

// Checkpoint returns the machine's whole state as JSON.
func (m *Machine) Checkpoint() []byte {
	b, err := json.Marshal(&m.s)
	if err != nil { // cannot happen: state holds only marshalable types
		panic(err)
	}
	return b
}

// Restore rebuilds a machine from [Machine.Checkpoint], exactly as it was.
func Restore(checkpoint []byte) (*Machine, error) {
	m := &Machine{}
	if err := m.restore(checkpoint); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Machine) restore(checkpoint []byte) error {
	if e := CheckJSON(string(checkpoint), MaxResponseDepth); e != "" {
		return fmt.Errorf("checkpoint is not valid JSON: %s", e)
	}
	// One decode when all is well. Otherwise the version speaks first: a
	// checkpoint of another version may not decode as this one's state.
	var s state
	if err := json.Unmarshal(checkpoint, &s); err != nil || s.V != CheckpointVersion {
		var v struct {
			V int `json:"v"`
		}
		if err := json.Unmarshal(checkpoint, &v); err != nil {
			return fmt.Errorf("checkpoint does not decode: %v", err)
		}
		switch {
		case v.V >= 1 && v.V < CheckpointVersion:
			return fmt.Errorf("checkpoint version %d, want %d: it was written by an earlier ue-prefect; resume it with that release, or run without it to start afresh (the same idempotency key re-attaches to a flow run it launched)", v.V, CheckpointVersion)
		case v.V != CheckpointVersion:
			return fmt.Errorf("checkpoint version %d, want %d", v.V, CheckpointVersion)
		}
		return fmt.Errorf("checkpoint does not decode: %v", err)
	}
	// The invariants Step relies on: an outstanding request or retry has
	// its request; a known workspace or deployment has its ids.
	p := s.Pending
	h, known := handlers[p.Op]
	if p.Op != "" && !known {
		return fmt.Errorf("checkpoint names unknown operation %q", p.Op)
	}
	if (h.http != nil || p.Op == opSleepRetry) && p.Req == nil {
		return fmt.Errorf("checkpoint names outstanding operation %q without its request", p.Op)
	}
	if p.Op == opSleepRetry && handlers[p.Retry].http == nil {
		return fmt.Errorf("checkpoint retries unknown operation %q", p.Retry)
	}
	if d, w := s.Resolve.Deployment, s.Resolve.Workspace; d != nil && !IsUUID(d.ID) || w != nil && (!IsUUID(w.AccountID) || !IsUUID(w.WorkspaceID)) {
		return fmt.Errorf("checkpoint holds an invalid deployment or workspace id")
	}
	if s.Run.ID != "" && !IsUUID(s.Run.ID) {
		return fmt.Errorf("checkpoint holds an invalid flow run id")
	}
	m.s = s
	return nil
}

func sourcePrefix(in abi.RunInput) string {
	if in.CheckpointSource == "" {
		return ""
	}
	return clipTo(in.CheckpointSource, MaxFieldBytes) + ": "
}

// rebind checks that a checkpoint answers for the task in: the inputs that
// define the flow run (action, target, API base, workspace, deployment or
// flow run id, idempotency key, flow run name, parameters, context, job
// variables, tags, Start At) must be those it was written for, or the task
// would report another run's outcome. The settings of the wait (wait, poll
// interval, max polls, outage budget, cancel on interrupt and its grace,
// log streaming, metadata, start deadline and cancel on it) and the UI
// base are the new task's. Fields left all empty resume the checkpoint
// with its own inputs and settings.
func (m *Machine) rebind(in abi.RunInput) *abi.Error {
	action := in.Action
	if action == "" {
		action = abi.ActionLaunchFlowRun
	}
	old := m.s.Cfg
	var diffs []string
	differ := func(field, was, is string) {
		if was != is {
			diffs = append(diffs, fmt.Sprintf("%s %q, not %q", abi.FieldLabel(field), clip(was), clip(is)))
		}
	}
	differ("action", m.s.Action, action)
	if in.Target != "" {
		differ("target", m.s.Target, in.Target)
	}
	if in.APIBase != "" && strings.TrimRight(in.APIBase, "/") != strings.TrimRight(m.s.APIBase, "/") {
		differ("api_url", m.s.APIBase, in.APIBase)
	}
	var cfg Config
	if in.Fields != (abi.Fields{}) {
		var err *abi.Error
		if cfg, err = ParseFields(action, in.Fields); err != nil {
			return err
		}
		differ("workspace", old.Workspace, cfg.Workspace)
		differ("account", old.Account, cfg.Account)
		differ("deployment", old.Deployment, cfg.Deployment)
		differ("flow_run_id", strings.ToLower(old.FlowRunID), strings.ToLower(cfg.FlowRunID))
		// A key the checkpoint supplied (the invocation id) may be given
		// back as the Idempotency Key, as messages tell users to.
		if cfg.IdempotencyKey != old.IdempotencyKey && cfg.IdempotencyKey != m.userKey() {
			differ("idempotency_key", old.IdempotencyKey, cfg.IdempotencyKey)
		}
		differ("flow_run_name", old.FlowRunName, cfg.FlowRunName)
		if !sameStart(old.StartAt, cfg.StartAt) {
			differ("start_at", old.StartAt, cfg.StartAt)
		}
		if !sameJSON(old.Parameters, cfg.Parameters) || !sameJSON(old.Context, cfg.Context) ||
			!sameJSON(old.JobVariables, cfg.JobVariables) || !sameTags(old.Tags, cfg.Tags) {
			diffs = append(diffs, abi.FieldLabel("parameters")+" differ")
		}
	}
	if len(diffs) > 0 {
		what := "no flow run yet"
		if m.s.Run.ID != "" {
			what = "flow run " + m.s.Run.ID
		}
		src := in.CheckpointSource
		if src == "" {
			src = "the checkpoint"
		}
		return abi.Errorf(abi.CodeInvalidInput, "checkpoint",
			"%s was written for another task (%s) and follows %s; remove it to start afresh, or give the inputs it was written for",
			clipTo(src, MaxFieldBytes), strings.Join(diffs, "; "), what)
	}
	if in.Fields != (abi.Fields{}) {
		c := &m.s.Cfg
		c.Wait, c.PollInterval, c.MaxPolls = cfg.Wait, cfg.PollInterval, cfg.MaxPolls
		c.OutageBudget, c.CancelOnInterrupt, c.CancelGrace = cfg.OutageBudget, cfg.CancelOnInterrupt, cfg.CancelGrace
		c.StreamLogs, c.IncludeMetadata = cfg.StreamLogs, cfg.IncludeMetadata
		c.StartDeadline, c.CancelOnDeadline = cfg.StartDeadline, cfg.CancelOnDeadline
		if c.StartDeadline > 0 && m.s.Sched == nil {
			m.s.Sched = &schedule{}
		}
		if in.UIBase != "" {
			m.s.UIBase = in.UIBase
		}
	}
	return nil
}

// sameJSON reports whether two JSON objects hold the same values, however
// they are spaced or ordered.
func sameJSON(a, b RawObject) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameTags reports whether two tag lists hold the same tags.
func sameTags(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// resume continues a checkpointed run in a new invocation: from the flow
// run if it is known, else by repeating the (idempotent) create, else from
// the beginning. Nothing outstanding survives the old process: no command,
// no interrupt, no outage. Machine time moves on by the wall-clock time
// the task was away, so deadlines count it.
func (m *Machine) resume(in abi.RunInput) {
	m.s.Offset = m.s.Now - in.NowMS
	m.resumeClock(in.NowUnixMS) // schedule.go
	m.s.Pending = pending{}
	m.s.Cancel = cancelState{}
	m.s.Poll.InOutage, m.s.Poll.EventRead = false, false
	if in.Seed != 0 {
		m.s.RNG ^= in.Seed
	}
	switch {
	case m.s.Done != nil:
		m.emit(abi.Command{Kind: abi.CommandFinish, Finish: m.s.Done})
	case m.s.Run.ID != "":
		m.logf(abi.LevelInfo, "Resuming: re-attaching to flow run %s", m.runLabel())
		if !m.s.Cfg.Wait {
			m.finishLaunched()
			return
		}
		m.sendRead()
	case m.s.Resolve.Deployment != nil && m.s.Launch.Key != "":
		m.logf(abi.LevelInfo, "Resuming: repeating the launch of %s with Idempotency Key %q", m.s.Resolve.Deployment.fullName(), m.userKey())
		m.sendCreate()
	default:
		m.askCredential()
	}
}
