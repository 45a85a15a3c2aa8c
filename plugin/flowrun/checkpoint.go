package flowrun

import (
	"encoding/json"
	"fmt"

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

	Pending pending `json:"pending,omitzero"` // the outstanding command (http.go)

	Resolve resolveState `json:"resolve,omitzero"` // resolve.go
	List    listState    `json:"list,omitzero"`    // list.go
	Launch  launchState  `json:"launch,omitzero"`  // launch.go
	Run     flowRun      `json:"flow_run"`         // the flow run as last read (poll.go)
	Poll    pollState    `json:"poll,omitzero"`    // poll.go
	Logs    logState     `json:"logs,omitzero"`    // logs.go
	Cancel  cancelState  `json:"cancel,omitzero"`  // cancel.go

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
	var s state
	if err := json.Unmarshal(checkpoint, &s); err != nil {
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

// resume continues a checkpointed run in a new invocation: from the flow
// run if it is known, else by repeating the (idempotent) create, else from
// the beginning. Nothing outstanding survives the old process: no command,
// no interrupt, no outage.
func (m *Machine) resume(in abi.RunInput) {
	m.s.Offset = m.s.Now - in.NowMS
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
		m.logf(abi.LevelInfo, "Resuming: repeating the launch of %s with idempotency key %s", m.s.Resolve.Deployment.fullName(), m.s.Launch.Key)
		m.sendCreate()
	default:
		m.askCredential()
	}
}
