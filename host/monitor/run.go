package monitor

import (
	"encoding/json"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Watch is one followed run.
type Watch struct{ r *mrun }

// Key returns the run's key.
func (w *Watch) Key() string { return w.r.key }

// Done is closed when the outcome is known, or when the Monitor is closed
// before it is.
func (w *Watch) Done() <-chan struct{} { return w.r.done }

// Outcome returns the run's outcome once Done is closed: the exit code,
// status description and result the CLI would report. A run the Monitor
// was closed on before its outcome was known reports ClosedOutcome (code
// interrupted, exit 143, as the CLI stopped by SIGTERM); it is not
// finished: it stays in the store and a new Monitor on the store resumes
// it. OnOutcome is not called for it.
func (w *Watch) Outcome() abi.RunOutput {
	<-w.r.done
	return w.r.out
}

// Fields returns the latest output fields.
func (w *Watch) Fields() abi.OutputFields {
	w.r.m.mu.Lock()
	defer w.r.m.mu.Unlock()
	return w.r.fields
}

// ClosedOutcome is the outcome a Watch reports when its Monitor was closed
// before the run's outcome was known (see Watch.Outcome).
func ClosedOutcome() abi.RunOutput {
	return abi.Failure(&abi.Error{Code: abi.CodeInterrupted,
		Message: "the Monitor was closed before the run's outcome was known; the run stays in the store and a new Monitor on the store resumes it"})
}

type mrun struct {
	m      *Monitor
	key    string
	cp     []byte
	fields abi.OutputFields
	done   chan struct{}
	out    abi.RunOutput
	ended  bool // done is closed (guarded by m.mu)
	// resumed is set when the run started from a stored checkpoint.
	resumed bool

	// started is closed once the first step's checkpoint is saved (or
	// could not be: startErr); a Launch returns then.
	started  chan struct{}
	startErr error

	// Set while parked in a sleep (guarded by m.mu).
	heapIdx  int
	due      time.Duration
	sleepFor time.Duration
	// wakeable is set for a sleep that waits for news (the machine sent
	// abi.WakeOn: a poll), never for a retry backoff: only such a sleep
	// may end early, for a batch with room or an event.
	wakeable bool
	// exact is set for a sleep that ends at a deadline
	// (abi.SleepRequest.Exact): it may end early but is never held.
	exact bool
	// pending is set when an event came while the run was not in a
	// wakeable sleep; its next one then ends at once.
	pending bool
	// rode is set when the run was woken to ride in a batch; it rides
	// again only after its next poll came due.
	rode bool
	// held is set while the run's due poll is held for a later one of its
	// prefix, to share its batch (see schedule.hold).
	held bool
	// early is set when the run was woken before its sleep was due (an
	// event, a ride); span is the length of its last sleep that began
	// after a due wake: its poll interval, which a hold's tolerance is
	// measured by (see alignTolerance).
	early  bool
	span   time.Duration
	unsub  func() // the events subscription, if any
	subKey string
	prefix string      // the API prefix of its last poll
	cmd    abi.Command // the command its next event answers (for trace)
}

// end closes r.done once, with out (m.mu held).
func (r *mrun) end(out abi.RunOutput) {
	if r.ended {
		return
	}
	r.ended = true
	r.out = out
	close(r.done)
}

// finishOf returns the outcome a step ends the run with, or nil.
func finishOf(out abi.StepOutput) *abi.RunOutput {
	for _, c := range out.Commands {
		if c.Kind == abi.CommandFinish {
			return c.Finish
		}
	}
	return nil
}

// keeps reports whether the run's checkpoint must stay in the store after
// it ended with out, as the CLI keeps its checkpoint file: when the flow
// run's fate is unknown (Prefect unreachable or its answers broken past
// the budgets, an internal fault, a create whose failure may hide a
// created run), and when a stored checkpoint was refused as input (one of
// another version, for the release that wrote it).
func (r *mrun) keeps(out abi.RunOutput) bool {
	if out.Error == nil {
		return false
	}
	switch out.Error.Code {
	case abi.CodeInterrupted, abi.CodeUnavailable, abi.CodeInternal, abi.CodeBadResponse, abi.CodeRefused:
		return true
	case abi.CodeInvalidInput:
		return r.resumed
	case abi.CodeServerError:
		var res struct {
			ID  string `json:"flow_run_id"`
			Key string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(out.Result, &res)
		return res.ID == "" && res.Key != ""
	}
	return false
}
