package host

import (
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// RunConfig configures one run.
type RunConfig struct {
	// Connection is how the run reaches Prefect: the target, the API and
	// UI bases, the credential (attached to every request; the plugin
	// never sees it), the transport, the request timeout, the response cap
	// and the User-Agent, which defaults to one naming the plugin's
	// version.
	prefect.Connection
	// Clock supplies time and sleeping; nil means RealClock(). A
	// hosttest.VirtualClock (any Clock with an Epoch() time.Time method)
	// also drives the plugin's WASI clocks and makes its randomness fixed,
	// for deterministic tests.
	Clock Clock
	// Interrupter, if set, lets another goroutine stop the run (SIGTERM).
	Interrupter *Interrupter
	// Grace bounds how long requests are still served after an interrupt,
	// so the plugin can cancel the flow run; 0 means the run's Cancel Grace
	// field (abi.ParseInt), or abi.DefaultCancelGrace seconds.
	Grace time.Duration
	// Log receives the plugin's lines for people.
	Log func(abi.LogRecord)
	// Progress receives output fields and checkpoints.
	Progress func(abi.Progress)
	// Events, if set, lets an event for the flow run end a poll wait early
	// (abi.WakeOn); the plugin then reads the run. Without it, or while its
	// stream is down, waits last their interval. See prefect.NewEventHub.
	Events EventSource
	// Trace, if set, sees every host function call with its JSON request
	// and response, for boundary-trace tests.
	Trace func(fn string, req, resp []byte)
	// ParkAfter, if positive, drives the machine step by step (the step
	// export) and parks every sleep at least this long: the plugin's
	// instance is closed, the compiled plugin unloaded when nothing else
	// uses the Runtime, and the memory returned to the operating system;
	// on waking the run resumes from its checkpoint. The transcript is the
	// same as without. See run.go.
	ParkAfter time.Duration
	// OnPark, if set, is called at each park with whether the compiled
	// plugin was unloaded, for tests and diagnostics.
	OnPark func(unloaded bool)
}
