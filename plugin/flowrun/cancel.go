package flowrun

import (
	"fmt"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Interrupts and cancellation: the host asks the machine to stop; it
// cancels the flow run within the grace period if asked to, else it ends
// at once and leaves the run as it is.

// cancelPoll is the poll interval while confirming a cancellation.
const cancelPoll = 1 * second

// cancelState is the interrupt and the cancellation it started.
type cancelState struct {
	Interrupt    *abi.Interrupt `json:"interrupt,omitempty"`
	At           int64          `json:"at_ms,omitempty"`         // when the interrupt arrived
	Cancelling   bool           `json:"cancelling,omitempty"`    // the cancellation has begun
	TransitionID string         `json:"transition_id,omitempty"` // of the CANCELLING state we set
	Outcome      string         `json:"outcome,omitempty"`       // what became of the cancellation
}

// interruptStops reports whether an interrupt stops the machine before
// its next command, for o. Once interrupted, only the cancellation and the
// repeat of a create in flight go on: this is the one place that rule is
// written.
func (m *Machine) interruptStops(o op) bool {
	c := m.s.Cancel
	return c.Interrupt != nil && !c.Cancelling && !m.createInFlight(o)
}

// createInFlight reports whether o repeats a create that went out and
// whose flow run is not known yet: it may exist on the server.
func (m *Machine) createInFlight(o op) bool {
	return o == opCreate && m.s.Launch.Sent && m.s.Run.ID == ""
}

// noteInterrupt records the host's first interrupt.
func (m *Machine) noteInterrupt(it *abi.Interrupt) {
	if it == nil || m.s.Cancel.Interrupt != nil {
		return
	}
	m.s.Cancel.Interrupt, m.s.Cancel.At = it, m.s.Now
	m.logf(abi.LevelWarn, "Interrupted (%s)", clip(it.Reason))
}

func (m *Machine) cancelDeadline() int64 { return m.s.Cancel.At + m.s.Cfg.CancelGrace }

// onInterruptedRequest handles a request the host abandoned because it is
// stopping.
func (m *Machine) onInterruptedRequest(o op) {
	switch {
	case m.s.Cancel.Cancelling:
		m.s.Cancel.Outcome = "the cancellation could not be confirmed in time"
		m.finishInterrupted()
	case m.createInFlight(o) && m.repeatCreate(""):
		m.s.Launch.Unsure = true
	default:
		m.onInterrupt()
	}
}

// repeatCreate repeats a create in flight once the host is stopping, at
// once and within the grace period and the attempts: it is idempotent, and
// its answer names the flow run that would otherwise be lost. It reports
// whether it did; fail, the failure of the last attempt, is logged.
func (m *Machine) repeatCreate(fail string) bool {
	p := &m.s.Pending
	if m.s.Now > m.cancelDeadline() || p.Attempt >= maxAttempts {
		return false
	}
	p.Attempt++
	if fail != "" {
		m.logf(abi.LevelWarn, "%s failed (%s); stopping, so repeating it at once to learn the flow run (attempt %d of %d)", m.what(), fail, p.Attempt, maxAttempts)
	}
	m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: p.Req})
	return true
}

// onInterrupt decides what stopping means now: cancel the flow run first
// if asked to, else end at once.
func (m *Machine) onInterrupt() {
	if m.s.Run.ID != "" && m.s.Cfg.Wait && IsTerminal(m.s.Run.StateType) {
		// The end was already seen (an interrupt during the late log
		// read): report it, not the interrupt.
		m.finishByState()
		return
	}
	if m.s.Run.ID != "" && m.s.Cfg.Wait && m.s.Cfg.CancelOnInterrupt {
		m.s.Cancel.Cancelling = true
		m.s.Cancel.TransitionID = m.uuid4()
		m.logf(abi.LevelInfo, "Cancelling flow run %s (grace %s)", m.runLabel(), dur(m.s.Cfg.CancelGrace))
		body := mustJSON(map[string]any{
			"state": map[string]any{"type": StateCancelling, "state_details": map[string]any{"transition_id": m.s.Cancel.TransitionID}},
			"force": false,
		})
		m.send(opCancel, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID + "/set_state", Body: body})
		return
	}
	m.finishInterrupted()
}

func (m *Machine) onCancel(r *abi.HTTPResponse) {
	if r.Status == 404 {
		m.s.Cancel.Outcome = "the flow run no longer exists"
		m.finishInterrupted()
		return
	}
	if r.Status != 200 && r.Status != 201 {
		m.s.Cancel.Outcome = "Prefect refused to cancel it (" + describe(r) + ")"
		m.finishInterrupted()
		return
	}
	b := gjson.ParseBytes(r.Body)
	status := b.Get("status").String()
	stateType := b.Get("state.type").String()
	reason := b.Get("details.reason").String()
	switch {
	case status == "ACCEPT" || (status == "REJECT" && stateType == StateCancelled):
		if stateType == StateCancelled {
			m.s.Run.StateType, m.s.Run.StateName = StateCancelled, b.Get("state.name").String()
			m.s.Cancel.Outcome = "the flow run was cancelled"
			m.progress()
			m.finishInterrupted()
			return
		}
		m.logf(abi.LevelInfo, "Prefect accepted the cancellation; waiting for CANCELLED")
		m.sleep(opSleepCancel, cancelPoll)
	case status == "REJECT" && stateType == StateCancelling:
		// The run is already CANCELLING. After an attempt without an
		// answer this is Prefect rejecting our own transition id a second
		// time: the lost answer was an ACCEPT. Either way, the run is being
		// cancelled: wait for CANCELLED.
		m.s.Run.StateType, m.s.Run.StateName = StateCancelling, b.Get("state.name").String()
		if m.s.Pending.Attempt > 1 {
			m.logf(abi.LevelInfo, "Prefect already has the cancellation (the answer to an earlier attempt was lost); waiting for CANCELLED")
		} else {
			m.logf(abi.LevelInfo, "The flow run is already CANCELLING; waiting for CANCELLED")
		}
		m.progress()
		m.sleep(opSleepCancel, cancelPoll)
	case status == "ABORT":
		m.s.Cancel.Outcome = "it had already ended (" + clip(reason) + ")"
		m.finishInterrupted()
	case status == "WAIT":
		// Prefect's delay is in seconds. Compare in float64 before
		// converting: a huge delay_seconds must not overflow int64 into a
		// short (or endless) sleep.
		ms := b.Get("details.delay_seconds").Float() * float64(second)
		if ms > float64(m.cancelDeadline()-m.s.Now) {
			m.s.Cancel.Outcome = "Prefect asked to wait past the grace period"
			m.finishInterrupted()
			return
		}
		m.s.Pending.Retry = opCancel
		m.sleep(opSleepRetry, int64(max(ms, 0)))
	default:
		m.s.Cancel.Outcome = fmt.Sprintf("Prefect answered %s (%s)", clip(status), clip(reason))
		m.finishInterrupted()
	}
}

// sendCancelRead reads the flow run to see whether it is cancelled yet.
func (m *Machine) sendCancelRead() {
	m.send(opCancelRead, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID})
}

func (m *Machine) onCancelRead(r *abi.HTTPResponse) {
	if r.Status != 200 || !m.readRun(r) {
		if m.s.Done == nil {
			m.s.Cancel.Outcome = "its state could not be read (" + describe(r) + ")"
			m.finishInterrupted()
		}
		return
	}
	if IsTerminal(m.s.Run.StateType) {
		m.s.Cancel.Outcome = "it ended " + m.s.Run.StateType
		m.finishInterrupted()
		return
	}
	if m.s.Now+cancelPoll > m.cancelDeadline() {
		m.s.Cancel.Outcome = fmt.Sprintf("it was still %s when the %s grace period ran out", m.s.Run.StateType, dur(m.s.Cfg.CancelGrace))
		m.finishInterrupted()
		return
	}
	m.sleep(opSleepCancel, cancelPoll)
}

// cancelRetry decides whether a failed request of the cancellation may be
// tried again after delay: only within the grace period.
func (m *Machine) cancelRetry(delay int64, fail string) bool {
	if m.s.Now+delay > m.cancelDeadline() {
		m.s.Cancel.Outcome = "the cancellation could not be confirmed (" + fail + ")"
		m.finishInterrupted()
		return false
	}
	return true
}

// finishInterrupted ends the run as interrupted, saying what became of
// the flow run.
func (m *Machine) finishInterrupted() {
	if m.deadlineEnds() {
		m.finishDeadline()
		return
	}
	it := m.s.Cancel.Interrupt
	if it == nil {
		it = &abi.Interrupt{Reason: "interrupted", ExitCode: abi.ExitInterruptedSIGTERM}
	}
	var msg string
	switch {
	case m.s.Cancel.Outcome != "":
		msg = fmt.Sprintf("%s received; cancelling flow run %s: %s", it.Reason, m.runLabel(), m.s.Cancel.Outcome)
	case m.s.Run.ID != "":
		msg = fmt.Sprintf("%s received; flow run %s was left %s on Prefect; %s", it.Reason, m.runLabel(), m.s.Run.StateType, m.reattachHint())
	case m.s.Launch.Sent:
		msg = fmt.Sprintf("%s received while launching; the flow run may exist: %s", it.Reason, m.reattachHint())
	default:
		msg = fmt.Sprintf("%s received before a flow run was launched", it.Reason)
	}
	exit := it.ExitCode
	if exit == 0 {
		exit = abi.ExitInterruptedSIGTERM
	}
	m.finishWith(exit, &abi.Error{Code: abi.CodeInterrupted, Message: msg}, m.runResult())
}
