package host

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/randid"
)

// Running one action to its end: Run, over the run export, or over the
// step export when RunConfig.ParkAfter parks its long sleeps.
//
// A run with RunConfig.ParkAfter holds nothing while it sleeps. The state
// machine's whole state is its checkpoint, so instead of the run export
// (one instance for the whole run, asleep inside a host call) the host
// drives the step export, as the Monitor does, and executes each command
// itself through the same Functions the plugin's imports call. A sleep of
// ParkAfter or more is a park: the instance is closed, the compiled plugin
// is unloaded when no other call or stepper uses the Runtime, and the
// memory goes back to the operating system. On waking, the plugin is
// loaded again (from the compilation cache) and the run resumes from the
// checkpoint with the sleep's answer. The transcript is the same as the
// run export's: tests/park_test.go runs every golden scenario both ways.

// Run executes one action to its end and returns its outcome. The error is
// non-nil only for a host or plugin fault (a trap, an ABI violation); the
// outcome then is exit 1 with the fault as its message, so callers can
// always report out.
func (r *Runtime) Run(ctx context.Context, cfg RunConfig, in abi.RunInput) (abi.RunOutput, error) {
	if cfg.Grace <= 0 {
		// An invalid value is the plugin's to report, before any request.
		g, _ := abi.ParseInt("cancel_grace", in.Fields.CancelGrace)
		cfg.Grace = time.Duration(g) * time.Second
	}
	cfg.UserAgent = r.userAgent(cfg.UserAgent)
	cs, err := newCallState(ctx, cfg)
	if err != nil {
		return abi.FailureOf(err), err
	}
	defer cs.stop()
	if in.Target == "" {
		in.Target = cfg.Target
	}
	if in.APIBase == "" && cfg.APIBase != nil {
		in.APIBase = cfg.APIBase.String()
	}
	if in.UIBase == "" {
		in.UIBase = cfg.UIBase
	}
	if in.InvocationID == "" {
		in.InvocationID = randid.New()
	}
	if in.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		in.Seed = binary.LittleEndian.Uint64(b[:])
	}
	in.NowMS = cs.clock.Since().Milliseconds()
	if in.NowUnixMS == 0 {
		in.NowUnixMS = cs.clock.Now().UnixMilli()
	}
	if cfg.ParkAfter > 0 {
		return r.runParking(ctx, cs, in)
	}
	input, err := json.Marshal(in)
	if err != nil {
		return abi.FailureOf(err), err
	}
	out, err := r.call(ctx, cs, abi.ExportRun, input)
	if err != nil {
		return abi.FailureOf(err), err
	}
	var ro abi.RunOutput
	if err := json.Unmarshal(out, &ro); err != nil {
		err = &abi.Error{Code: abi.CodeInternal, Message: "plugin output is not a RunOutput: " + err.Error()}
		return abi.FailureOf(err), err
	}
	return ro, nil
}

// runParking is Run over the step export, parking long sleeps.
func (r *Runtime) runParking(ctx context.Context, cs *callState, in abi.RunInput) (abi.RunOutput, error) {
	fail := func(err error) (abi.RunOutput, error) { return abi.FailureOf(err), err }
	s, err := r.newRunStepper(ctx, cs)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if s != nil {
			s.Close(ctx)
		}
	}()
	fns := &Functions{cs: cs}
	trace := func(fn string, req, resp any) {
		t := cs.cfg.Trace
		if t == nil {
			return
		}
		rq, _ := json.Marshal(req)
		var rs []byte
		if resp != nil {
			rs, _ = json.Marshal(resp)
		}
		t(fn, rq, rs)
	}
	step := abi.StepInput{Input: &in}
	for {
		if s == nil {
			if s, err = r.newRunStepper(ctx, cs); err != nil {
				return fail(err)
			}
		}
		out, err := s.Step(ctx, step)
		if err != nil {
			return fail(err)
		}
		// As flowrun.Run: every command in order; the last answerable one's
		// answer is the next event.
		var ev abi.Event
		for _, c := range out.Commands {
			switch c.Kind {
			case abi.CommandLog:
				fns.Log(*c.Log)
				trace(abi.FuncLog, c.Log, nil)
			case abi.CommandProgress:
				fns.Progress(*c.Progress)
				trace(abi.FuncProgress, c.Progress, nil)
			case abi.CommandFinish:
				return *c.Finish, nil
			case abi.CommandHTTP:
				resp := fns.HTTP(*c.HTTP)
				trace(abi.FuncHTTP, c.HTTP, resp)
				ev = abi.Event{Kind: abi.EventHTTP, HTTP: &resp}
			case abi.CommandSleep:
				if time.Duration(c.Sleep.DurationMS)*time.Millisecond >= cs.cfg.ParkAfter {
					s.Close(ctx)
					s = nil
					unloaded := r.park(ctx)
					if f := cs.cfg.OnPark; f != nil {
						f(unloaded)
					}
				}
				resp := fns.Sleep(*c.Sleep)
				trace(abi.FuncSleep, c.Sleep, resp)
				ev = abi.Event{Kind: abi.EventWoke, Woke: &resp}
			case abi.CommandCredential:
				req := abi.CredentialRequest{}
				resp := fns.Credential(req)
				trace(abi.FuncCredential, req, resp)
				ev = abi.Event{Kind: abi.EventCredential, Credential: &resp}
			default:
				return fail(&abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf("the state machine gave an unknown command %q", c.Kind)})
			}
		}
		if ev.Kind == "" {
			return fail(&abi.Error{Code: abi.CodeInternal, Message: "the state machine stopped without a command"})
		}
		step = abi.StepInput{Checkpoint: out.Checkpoint, Event: &ev}
	}
}
