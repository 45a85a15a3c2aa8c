package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
)

// pool is the stepping pool: a few plugin instances (host.Stepper) take
// the runs' steps from one queue, each run from one event until it waits
// for something again. Its queue is guarded by Monitor.mu.
type pool struct {
	m    *Monitor
	cond *sync.Cond // signals jobs
	jobs []job
}

type job struct {
	r      *mrun
	in     abi.StepInput
	cohort *cohort
	first  bool // the first step of a Launch, which waits for its Save
}

// push queues a step for a worker. (A first step, which a Launch waits
// for, goes ahead of the others: see launch.)
func (pl *pool) push(j job) {
	m := pl.m
	m.mu.Lock()
	m.jobs = append(m.jobs, j)
	m.cond.Signal()
	m.mu.Unlock()
}

func (pl *pool) wakeJob(r *mrun, woken bool) {
	m := pl.m
	if woken {
		m.mu.Lock()
		r.early = true
		m.mu.Unlock()
	}
	m.push(job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: m.nowMS(), Woken: woken}}}})
}

func (pl *pool) worker(s *host.Stepper) {
	m := pl.m
	defer m.wg.Done()
	defer func() {
		if s != nil { // nil when a replacement instance could not be made
			s.Close(context.Background())
		}
	}()
	for {
		m.mu.Lock()
		for len(m.jobs) == 0 && !m.closed {
			m.cond.Wait()
		}
		if m.closed {
			m.mu.Unlock()
			return
		}
		j := m.jobs[0]
		m.jobs[0] = job{}
		m.jobs = m.jobs[1:]
		m.mu.Unlock()
		if m.trace != nil && j.in.Event != nil {
			m.traceEvent(j.r, j.in.Event)
		}
		var err error
		if s, err = m.advance(s, j); err != nil {
			return
		}
	}
}

// advance steps one run from one event until it waits for something, and
// parks it or hands its command on. It returns the stepper to use next
// (a fresh one after a plugin fault).
func (pl *pool) advance(s *host.Stepper, j job) (*host.Stepper, error) {
	m := pl.m
	r, in := j.r, j.in
	// at is the machine's now: the time its last input carried. A sleep is
	// timed from it, not from when the step ended, so that the runs of one
	// batch, stepped one after another, stay due together.
	at := m.clock.Since()
	parked := false
	defer func() {
		if j.cohort != nil && !parked {
			m.cohortDone(j.cohort, nil)
		}
	}()
	for {
		if m.stopped() {
			return s, nil
		}
		if t, ok := inputAt(in); ok {
			at = t
		}
		out, err := s.Step(m.ctx, in)
		if err != nil {
			if m.stopped() {
				return s, nil
			}
			s.Close(m.ctx)
			var nerr error
			if s, nerr = m.rt.NewStepper(m.ctx); nerr != nil {
				return nil, nerr
			}
			m.finish(r, abi.FailureOf(err))
			if j.first {
				close(r.started)
			}
			return s, nil
		}
		var serr error
		if fin := finishOf(out); fin == nil || !r.keeps(*fin) {
			r.cp = out.Checkpoint
			serr = m.store.Save(r.key, r.cp)
		} // else the store keeps the checkpoint before the end, which resumes
		if j.first {
			j.first = false
			if serr != nil {
				// Nothing is sent for a run that is not in the store.
				m.mu.Lock()
				r.startErr = serr
				delete(m.runs, r.key)
				r.end(abi.FailureOf(fmt.Errorf("saving the run's checkpoint: %w", serr)))
				m.mu.Unlock()
				close(r.started)
				return s, nil
			}
			close(r.started)
		}
		if serr != nil {
			m.log(r, abi.LogRecord{Level: abi.LevelWarn, Message: "Could not save the checkpoint: " + serr.Error()})
		}
		var last *abi.Command
		for i := range out.Commands {
			c := &out.Commands[i]
			switch c.Kind {
			case abi.CommandLog:
				m.traceCall(abi.FuncLog, c.Log, nil)
				m.log(r, *c.Log)
			case abi.CommandProgress:
				m.traceCall(abi.FuncProgress, c.Progress, nil)
				m.progress(r, c.Progress.Fields)
			default:
				last = c
			}
		}
		if last == nil {
			m.finish(r, abi.FailureOf(errors.New("the state machine stopped without a command")))
			return s, nil
		}
		switch last.Kind {
		case abi.CommandCredential:
			cred := abi.CredentialResponse{Scheme: m.cfg.Credential.Scheme(), Source: m.cfg.Credential.Source()}
			m.traceCall(abi.FuncCredential, abi.CredentialRequest{}, cred)
			in = abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventCredential, Credential: &cred}}
			continue
		case abi.CommandFinish:
			m.finish(r, *last.Finish)
		case abi.CommandSleep:
			r.cmd = *last
			if m.beforeSleep != nil {
				m.beforeSleep(r.key, *last.Sleep)
			}
			parked = true
			m.subscribe(r, last.Sleep.WakeOn)
			m.park(r, at, time.Duration(last.Sleep.DurationMS)*time.Millisecond, last.Sleep.WakeOn != nil, last.Sleep.Exact, j.cohort)
		case abi.CommandHTTP:
			r.cmd = *last
			m.request(r, *last.HTTP)
		default:
			m.finish(r, abi.FailureOf(fmt.Errorf("the state machine gave an unknown command %q", last.Kind)))
		}
		return s, nil
	}
}

// traceCall passes one host-function call to m.trace, if set.
func (pl *pool) traceCall(fn string, req, resp any) {
	m := pl.m
	if m.trace == nil {
		return
	}
	rb, _ := json.Marshal(req)
	var ab []byte
	if resp != nil {
		ab, _ = json.Marshal(resp)
	}
	m.trace(fn, rb, ab)
}

// traceEvent traces the call that ev answers: r's last command.
func (pl *pool) traceEvent(r *mrun, ev *abi.Event) {
	m := pl.m
	switch {
	case ev.HTTP != nil && r.cmd.HTTP != nil:
		m.traceCall(abi.FuncHTTP, r.cmd.HTTP, ev.HTTP)
	case ev.Woke != nil && r.cmd.Sleep != nil:
		m.traceCall(abi.FuncSleep, r.cmd.Sleep, ev.Woke)
	}
}

// inputAt is the host time an input gives the machine as its now, if it
// gives one.
func inputAt(in abi.StepInput) (time.Duration, bool) {
	var ms int64
	switch {
	case in.Input != nil:
		ms = in.Input.NowMS
	case in.Event != nil && in.Event.HTTP != nil:
		ms = in.Event.HTTP.NowMS
	case in.Event != nil && in.Event.Woke != nil:
		ms = in.Event.Woke.NowMS
	default:
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
