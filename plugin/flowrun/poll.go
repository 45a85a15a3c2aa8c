package flowrun

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Polling: read the flow run every poll interval until it ends, through
// outages within the outage budget; after each read, relay its new log
// lines (logs.go) if asked to.

// flowRun is the flow run as last read. Launching, polling and cancelling
// all update it.
type flowRun struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name,omitempty"`
	StateType    string `json:"state_type,omitempty"`
	StateName    string `json:"state_name,omitempty"`
	StateMessage string `json:"state_message,omitempty"`
}

// pollState is the polling's own.
type pollState struct {
	RunJSON   RawObject `json:"flow_run_json,omitempty"` // the last FlowRunResponse, for the result
	CreatedAt *int64    `json:"created_at_ms,omitempty"` // when the run was created or first read
	Polls     int64     `json:"polls,omitempty"`
	// Due is when the next counted poll is due. EventRead marks a read
	// that an event brought forward (abi.SleepResponse.Woken): it is not a
	// poll, and the wait after it ends at Due, so events never use up Max
	// Polls.
	Due       int64 `json:"due_ms,omitempty"`
	EventRead bool  `json:"event_read,omitempty"`
	// IsPoll marks the outstanding read as a poll: one after a poll
	// interval (not one an event brought forward). The first read of
	// --flow-run-id and the read on resuming are not polls, as the
	// create's answer is not.
	IsPoll     bool  `json:"is_poll,omitempty"`
	InOutage   bool  `json:"in_outage,omitempty"`
	OutageFrom int64 `json:"outage_from_ms,omitempty"`
}

// attach follows the flow run the user named instead of launching one.
func (m *Machine) attach() {
	m.s.Run.ID = m.s.Cfg.FlowRunID
	m.s.Launch.Reattached = true
	m.sendRead()
}

// sendRead reads the flow run at once; the read is not a poll.
func (m *Machine) sendRead() { m.read(false) }

func (m *Machine) read(poll bool) {
	m.s.Poll.IsPoll = poll
	m.send(opRead, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID})
}

func (m *Machine) onRead(r *abi.HTTPResponse) {
	if m.s.Poll.InOutage && r.Status >= 200 && r.Status < 300 {
		m.logf(abi.LevelInfo, "Contact with Prefect restored after %s", dur(m.s.Now-m.s.Poll.OutageFrom))
		m.s.Poll.InOutage = false
	}
	if r.Status == 404 {
		if m.s.Cfg.FlowRunID != "" && m.s.Poll.CreatedAt == nil {
			m.fail(abi.Errorf(abi.CodeNotFound, "flow_run_id", "no flow run %s%s", m.s.Run.ID, m.where()))
			return
		}
		m.fail(abi.Errorf(abi.CodeServerError, "", "flow run %s no longer exists%s", m.runLabel(), m.where()))
		return
	}
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return
	}
	if _, bad := m.parseRun(r); bad != "" {
		m.badResponse(bad)
		return
	}
	if m.s.Poll.CreatedAt == nil {
		m.markCreated()
	}
	if m.s.Poll.IsPoll {
		m.s.Poll.Polls++ // first, so a checkpoint published on a change holds it
	}
	if !m.readRun(r) {
		return
	}
	if m.s.Cfg.StreamLogs && m.s.Cfg.Wait {
		m.s.Logs.Pages = 0
		m.sendLogs()
		return
	}
	m.afterPoll()
}

// waitReadFailure says why a read of the flow run while waiting failed and
// is worth repeating within the outage budget, or "" when the answer is a
// flow run or final: a 404 (the run is gone), and, before the run is known
// to exist (the first read of --flow-run-id), a refused credential or
// another 4xx, which are bad input.
func (m *Machine) waitReadFailure(r *abi.HTTPResponse) string {
	known := m.s.Poll.CreatedAt != nil
	switch {
	case r.Error != nil:
		if r.Error.Kind == abi.TransportForbidden {
			return "" // the host refuses it; asking again changes nothing
		}
		return describe(r)
	case r.Status == 404:
		return ""
	case r.Status == 401 || r.Status == 403:
		if !known {
			return ""
		}
		return "Prefect refused the " + m.s.Resolve.Scheme + " credential" + m.credFrom() + ": " + describe(r)
	case r.Status < 200 || r.Status > 299:
		if !known && !retryableStatus(r.Status) && r.Status < 500 {
			return ""
		}
		return describe(r)
	case len(r.Body) == 0:
		return fmt.Sprintf("HTTP %d with a body that is not JSON: %s", r.Status, clip(strings.TrimSpace(r.BodyText)))
	}
	if e := CheckJSON(string(r.Body), MaxResponseDepth); e != "" {
		return fmt.Sprintf("HTTP %d with a body that is not JSON: %s", r.Status, e)
	}
	if _, bad := m.parseRun(r); bad != "" {
		return fmt.Sprintf("HTTP %d: %s", r.Status, bad)
	}
	return ""
}

// parseRun reads a FlowRunResponse body, or says what is wrong with it.
func (m *Machine) parseRun(r *abi.HTTPResponse) (gjson.Result, string) {
	b := gjson.ParseBytes(r.Body)
	id := b.Get("id")
	st := b.Get("state_type")
	if !b.IsObject() || id.Type != gjson.String || !IsUUID(id.Str) {
		return b, "the flow run has no valid id"
	}
	if m.s.Run.ID != "" && !strings.EqualFold(id.Str, m.s.Run.ID) {
		return b, fmt.Sprintf("asked for flow run %s, got %s", m.s.Run.ID, id.Str)
	}
	if st.Type != gjson.String || !IsKnownState(st.Str) {
		return b, fmt.Sprintf("the flow run has an unknown state_type %s", clip(st.Raw))
	}
	return b, ""
}

// readRun updates the known flow run from a FlowRunResponse body.
func (m *Machine) readRun(r *abi.HTTPResponse) bool {
	b, bad := m.parseRun(r)
	if bad != "" {
		m.badResponse(bad)
		return false
	}
	prev := m.s.Run.StateType + "/" + m.s.Run.StateName
	m.s.Run = flowRun{
		ID:           b.Get("id").Str,
		Name:         b.Get("name").String(),
		StateType:    b.Get("state_type").Str,
		StateName:    b.Get("state_name").String(),
		StateMessage: b.Get("state.message").String(),
	}
	if m.s.Run.StateName == "" {
		m.s.Run.StateName = b.Get("state.name").String()
	}
	m.s.Poll.RunJSON = RawObject(b.Raw)
	m.noteSchedule(b) // schedule.go
	if prev != m.s.Run.StateType+"/"+m.s.Run.StateName {
		if prev != "/" {
			m.logf(abi.LevelInfo, "Flow run %q is %s (%s) after %s", m.s.Run.Name, m.s.Run.StateName, m.s.Run.StateType, dur(m.elapsed()))
		}
		m.progress()
	}
	return true
}

// afterPoll decides what follows a poll: the end, or the next poll. The
// checkpoint is published after every poll, changed or not, unless this
// step already did: it holds the poll count and the log lines relayed.
func (m *Machine) afterPoll() {
	if !m.pendingProgress() {
		m.progress()
	}
	switch {
	case IsTerminal(m.s.Run.StateType):
		m.finishByState()
	case !m.s.Cfg.Wait:
		m.finishLaunched()
	case m.s.Cfg.MaxPolls > 0 && m.s.Poll.Polls >= m.s.Cfg.MaxPolls:
		m.logf(abi.LevelWarn, "Reached the maximum of %d polls; flow run %s is left %s", m.s.Cfg.MaxPolls, m.runLabel(), m.s.Run.StateType)
		m.finishWith(abi.ExitPollingTimeout, &abi.Error{Code: abi.CodePollingTimeout, Message: "maximum polling timeout reached."}, m.runResult())
	default:
		m.sleepPoll()
	}
}

// sleepPoll waits for the next poll, one interval after the last counted
// one; an event for the flow run may end the wait early.
func (m *Machine) sleepPoll() {
	p := &m.s.Poll
	if !p.EventRead || p.Due <= m.s.Now {
		p.Due = m.s.Now + m.s.Cfg.PollInterval
	}
	p.EventRead = false
	ms, exact, ok := m.startDeadlineCap(p.Due - m.s.Now) // schedule.go
	if !ok {
		return
	}
	m.sleepWake(opSleepPoll, ms, &abi.WakeOn{FlowRunID: m.s.Run.ID, EventsPath: m.prefix() + "/events/out"}, exact)
}

// noteWoken notes whether an event ended a poll wait before it was due.
func (m *Machine) noteWoken(w *abi.SleepResponse) {
	if m.s.Pending.Op == opSleepPoll {
		m.s.Poll.EventRead = w.Woken && m.s.Now < m.s.Poll.Due
	}
}

// wokePoll reads the flow run when its poll wait ends: a poll, unless an
// event ended the wait early. After an event the read confirms what
// happened: an event alone concludes nothing.
func (m *Machine) wokePoll() {
	if m.s.Poll.EventRead {
		m.logf(abi.LevelDebug, "An event for flow run %s ended the wait early; reading its state", m.runLabel())
	}
	m.read(!m.s.Poll.EventRead)
}

// outageRetry decides whether a failed poll may be tried again, and
// when: a failed poll does not fail the wait within the outage budget,
// and the next try comes no later than the next poll would (unless the
// server asked for longer).
func (m *Machine) outageRetry(r *abi.HTTPResponse, delay int64, fail string) (int64, bool) {
	p := &m.s.Poll
	if !p.InOutage {
		p.InOutage, p.OutageFrom = true, m.s.Now
	}
	if limit := m.s.Cfg.PollInterval; delay > limit && r.RetryAfterMS <= limit {
		delay = limit
	}
	out := m.s.Now - p.OutageFrom
	budget := m.s.Cfg.OutageBudget
	if out+delay > budget {
		m.fail(abi.Errorf(abi.CodeUnavailable, "", "could not read the flow run for %s, past the outage budget of %s (last error: %s); flow run %s was last seen %s and goes on without this task, its outcome unknown: %s",
			dur(out), dur(budget), fail, m.runLabel(), m.runStateSeen(), m.reattachHint()))
		return delay, false
	}
	m.logf(abi.LevelWarn, "Polling failed (%s); retrying in %s, %s of the outage budget left", fail, dur(delay), dur(budget-out))
	return delay, true
}

func (m *Machine) markCreated() {
	t := m.s.Now
	m.s.Poll.CreatedAt = &t
}

// elapsed is the time since the flow run was created or attached.
func (m *Machine) elapsed() int64 {
	if m.s.Poll.CreatedAt == nil {
		return 0
	}
	return m.s.Now - *m.s.Poll.CreatedAt
}
