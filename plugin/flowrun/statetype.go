package flowrun

// Prefect state types (prefect/server/schemas/states.py StateType). They are
// uppercase strings on the wire.
const (
	StateScheduled  = "SCHEDULED"
	StatePending    = "PENDING"
	StateRunning    = "RUNNING"
	StateCompleted  = "COMPLETED"
	StateFailed     = "FAILED"
	StateCancelled  = "CANCELLED"
	StateCrashed    = "CRASHED"
	StatePaused     = "PAUSED"
	StateCancelling = "CANCELLING"
)

// IsTerminal reports whether a flow run in state type t has ended:
// Prefect's TERMINAL_STATES, COMPLETED, FAILED, CANCELLED and CRASHED.
// PAUSED and CANCELLING are not terminal.
func IsTerminal(t string) bool {
	switch t {
	case StateCompleted, StateFailed, StateCancelled, StateCrashed:
		return true
	}
	return false
}

// IsKnownState reports whether t is one of Prefect's nine state types.
func IsKnownState(t string) bool {
	switch t {
	case StateScheduled, StatePending, StateRunning, StatePaused, StateCancelling:
		return true
	}
	return IsTerminal(t)
}
