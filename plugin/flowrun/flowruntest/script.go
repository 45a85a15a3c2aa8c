package flowruntest

import (
	"encoding/json"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Script serves a scenario: HTTP answers in order, a virtual clock in
// milliseconds that only sleeps move, and an interrupt where the scenario
// puts one. It records every call in Trace. It implements the methods of
// flowrun.Host.
type Script struct {
	Sc     *Scenario
	Trace  Trace
	NowMS  int64
	before int64 // NowMS when the last sleep began
	next   int
	sleeps int
	intr   *abi.Interrupt
}

// NewScript returns a script at virtual time 0.
func NewScript(sc *Scenario) *Script { return &Script{Sc: sc} }

// Next returns the exchange that answers a request, or an error answer and
// false when the request is not the one the scenario expects.
func (s *Script) Next(method, path string) (Exchange, bool) {
	if s.next >= len(s.Sc.Exchanges) {
		s.Trace.Failf("unexpected request %s %s: the scenario has no more exchanges", method, path)
		return Exchange{Response: abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportForbidden, Message: "scenario exhausted"}}}, false
	}
	ex := s.Sc.Exchanges[s.next]
	s.next++
	if ex.Method != method || ex.Path != path {
		s.Trace.Failf("request %s %s, want %s %s (line %d)", method, path, ex.Method, ex.Path, ex.Line)
		return Exchange{Response: abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportForbidden, Message: "unexpected request"}}}, false
	}
	return ex, true
}

// Unused reports how many scripted exchanges were never requested.
func (s *Script) Unused() int { return len(s.Sc.Exchanges) - s.next }

// SleepInterrupted reports whether the next sleep is the interrupted one,
// and counts it.
func (s *Script) SleepInterrupted() bool {
	s.sleeps++
	return s.Sc.SleepInterrupt == s.sleeps
}

// SleepWoken reports, for the sleep just counted by SleepInterrupted,
// whether an event ends it early and after how many milliseconds. A sleep
// the scenario wakes must ask for it and last longer; else the trace
// records the disagreement and the sleep is not woken.
func (s *Script) SleepWoken(r abi.SleepRequest) (int64, bool) {
	ms, ok := s.Sc.SleepWake[s.sleeps]
	if !ok {
		return 0, false
	}
	if r.WakeOn == nil || r.WakeOn.FlowRunID == "" || r.WakeOn.EventsPath == "" {
		s.Trace.Failf("sleep %d is woken by an event in the scenario, but it does not ask for wake_on", s.sleeps)
		return 0, false
	}
	if ms >= r.DurationMS {
		s.Trace.Failf("sleep %d is woken after %d ms in the scenario, but it lasts only %d ms", s.sleeps, ms, r.DurationMS)
		return 0, false
	}
	return ms, true
}

// Sleeps returns how many sleeps have begun.
func (s *Script) Sleeps() int { return s.sleeps }

// NowMSBefore returns the virtual time at which the last sleep began.
func (s *Script) NowMSBefore() int64 { return s.before }

// HTTP answers from the scenario.
func (s *Script) HTTP(r abi.HTTPRequest) abi.HTTPResponse {
	ex, _ := s.Next(r.Method, r.Path)
	if ex.Interrupt != nil && s.intr == nil {
		s.intr = ex.Interrupt
	}
	resp := ex.Response
	resp.NowMS = s.NowMS
	resp.Interrupt = s.intr
	s.record(abi.FuncHTTP, r, resp)
	return resp
}

// Sleep advances the virtual clock, unless this sleep is interrupted.
func (s *Script) Sleep(r abi.SleepRequest) abi.SleepResponse {
	woken := false
	s.before = s.NowMS
	if s.SleepInterrupted() {
		s.intr = s.Sc.Interrupt
	} else if ms, ok := s.SleepWoken(r); ok {
		s.NowMS += ms
		woken = true
	} else {
		s.NowMS += r.DurationMS
	}
	resp := abi.SleepResponse{NowMS: s.NowMS, Interrupt: s.intr, Woken: woken}
	s.record(abi.FuncSleep, r, resp)
	return resp
}

// Credential answers from the scenario.
func (s *Script) Credential(r abi.CredentialRequest) abi.CredentialResponse {
	s.record(abi.FuncCredential, r, s.Sc.Credential)
	return s.Sc.Credential
}

// Log records a log line.
func (s *Script) Log(l abi.LogRecord) { s.record(abi.FuncLog, l, nil) }

// Progress records a progress report.
func (s *Script) Progress(p abi.Progress) { s.record(abi.FuncProgress, p, nil) }

func (s *Script) record(fn string, req, resp any) {
	rb, _ := json.Marshal(req)
	var ab []byte
	if resp != nil {
		ab, _ = json.Marshal(resp)
	}
	s.Trace.Call(fn, rb, ab)
}
