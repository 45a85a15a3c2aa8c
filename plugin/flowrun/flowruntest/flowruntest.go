// Package flowruntest runs state-machine scenarios deterministically: a
// scripted Prefect (HTTP exchanges in order), a virtual clock advanced only
// by sleeps, and a trace of every host-function call in one canonical text
// form. [Each] runs every scenario on a host and compares its trace with
// the golden the native machine wrote: package flowrun's own test, the
// differential and stock-Extism tests in tests/ and any other Go host use
// it, and tests/pyextism reads the same files from Python. A trace that
// differs from the golden is a bug in that host or in the boundary.
//
// # Scenario format
//
// One directive per line; blank lines and lines starting with # are
// comments.
//
//	input {RunInput JSON}                 the run's input (required, first)
//	credential {CredentialResponse JSON}  the answer to get_credential
//	interrupt-on-sleep N REASON CODE      the Nth sleep returns at once, interrupted
//	wake-on-sleep N MS                    an event for the flow run ends the Nth sleep
//	                                      after MS ms (woken); the sleep must ask for
//	                                      it (wake_on) and last longer than MS
//	METHOD PATH -> STATUS [BODY]          the next request must match; answer it
//	METHOD PATH -> STATUS retry-after=MS [BODY]
//	METHOD PATH -> error KIND MESSAGE     answer with a transport error
//	METHOD PATH -> … interrupt REASON CODE
//	                                      also deliver an interrupt with this answer
//
// BODY is JSON, or one of the macros @deployment, @flow, @run(TYPE,Name)
// and @run(TYPE,Name,message), which expand to realistic Prefect objects
// using the fixed ids DeploymentID, FlowID and RunID. In paths the words
// DEP, FLOW and RUN stand for those ids.
package flowruntest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Fixed ids used by the macros.
const (
	DeploymentID = "1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b"
	FlowID       = "2a4b6c8d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
	RunID        = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	AccountID    = "4c6e8a02-3d5f-4e70-9b1c-2d3e4f5a6b7c"
	WorkspaceID  = "5d7f9b13-4e60-4f81-8c2d-3e4f5a6b7c8d"
)

// Exchange is one scripted HTTP exchange.
type Exchange struct {
	Method, Path string
	Response     abi.HTTPResponse // NowMS is filled in when served
	Interrupt    *abi.Interrupt   // delivered with this answer
	Line         int
}

// Scenario is a parsed scenario file.
type Scenario struct {
	Input      abi.RunInput
	Credential abi.CredentialResponse
	Exchanges  []Exchange
	// SleepInterrupt, if > 0, is the sleep (1-based) that is interrupted.
	SleepInterrupt int
	Interrupt      *abi.Interrupt
	// SleepWake maps a sleep (1-based) that an event ends early to the
	// milliseconds it lasts.
	SleepWake map[int]int64
}

// Parse reads a scenario.
func Parse(text string) (*Scenario, error) {
	sc := &Scenario{Credential: abi.CredentialResponse{Scheme: abi.SchemeNone}}
	hasInput := false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch word {
		case "input":
			if err := json.Unmarshal([]byte(Expand(rest)), &sc.Input); err != nil {
				return nil, fmt.Errorf("line %d: input: %v", n, err)
			}
			hasInput = true
		case "credential":
			if err := json.Unmarshal([]byte(rest), &sc.Credential); err != nil {
				return nil, fmt.Errorf("line %d: credential: %v", n, err)
			}
		case "interrupt-on-sleep":
			f := strings.Fields(rest)
			if len(f) != 3 {
				return nil, fmt.Errorf("line %d: interrupt-on-sleep N REASON CODE", n)
			}
			sc.SleepInterrupt, _ = strconv.Atoi(f[0])
			code, _ := strconv.Atoi(f[2])
			sc.Interrupt = &abi.Interrupt{Reason: f[1], ExitCode: code}
		case "wake-on-sleep":
			f := strings.Fields(rest)
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: wake-on-sleep N MS", n)
			}
			k, err1 := strconv.Atoi(f[0])
			ms, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil || k < 1 || ms < 0 {
				return nil, fmt.Errorf("line %d: wake-on-sleep N MS", n)
			}
			if sc.SleepWake == nil {
				sc.SleepWake = map[int]int64{}
			}
			sc.SleepWake[k] = ms
		case "GET", "POST":
			ex, err := parseExchange(word, rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			ex.Line = n
			sc.Exchanges = append(sc.Exchanges, ex)
		default:
			return nil, fmt.Errorf("line %d: unknown directive %q", n, word)
		}
	}
	if !hasInput {
		return nil, fmt.Errorf("no input line")
	}
	return sc, nil
}

// Expand replaces the id words DEP, FLOW and RUN in a path.
func Expand(p string) string {
	return strings.NewReplacer("DEP", DeploymentID, "FLOW", FlowID, "RUN", RunID, "ACCT", AccountID, "WS", WorkspaceID).Replace(p)
}

func parseExchange(method, rest string) (Exchange, error) {
	path, ans, ok := strings.Cut(rest, " -> ")
	if !ok {
		return Exchange{}, fmt.Errorf("want METHOD PATH -> ANSWER")
	}
	ex := Exchange{Method: method, Path: Expand(strings.TrimSpace(path))}
	ans = strings.TrimSpace(ans)
	if i := strings.Index(ans, " interrupt "); i >= 0 {
		f := strings.Fields(ans[i+len(" interrupt "):])
		if len(f) != 2 {
			return ex, fmt.Errorf("interrupt REASON CODE")
		}
		code, _ := strconv.Atoi(f[1])
		ex.Interrupt = &abi.Interrupt{Reason: f[0], ExitCode: code}
		ans = strings.TrimSpace(ans[:i])
	}
	word, tail, _ := strings.Cut(ans, " ")
	if word == "error" {
		kind, msg, _ := strings.Cut(strings.TrimSpace(tail), " ")
		ex.Response.Error = &abi.TransportError{Kind: abi.TransportKind(kind), Message: msg}
		return ex, nil
	}
	status, err := strconv.Atoi(word)
	if err != nil {
		return ex, fmt.Errorf("bad status %q", word)
	}
	ex.Response.Status = status
	tail = strings.TrimSpace(tail)
	if strings.HasPrefix(tail, "retry-after=") {
		ra, t, _ := strings.Cut(tail, " ")
		ex.Response.RetryAfterMS, _ = strconv.ParseInt(strings.TrimPrefix(ra, "retry-after="), 10, 64)
		tail = strings.TrimSpace(t)
	}
	if tail == "" {
		return ex, nil
	}
	body, err := macro(tail)
	if err != nil {
		return ex, err
	}
	if json.Valid([]byte(body)) {
		var buf bytes.Buffer
		_ = json.Compact(&buf, []byte(body))
		ex.Response.Body = buf.Bytes()
	} else {
		ex.Response.BodyText = body
	}
	return ex, nil
}

// Deployment is the @deployment macro's object.
func Deployment() string {
	return `{"id":"` + DeploymentID + `","name":"nightly","flow_id":"` + FlowID + `","status":"READY","paused":false,` +
		`"enforce_parameter_schema":true,"parameter_openapi_schema":{"title":"Parameters","type":"object",` +
		`"properties":{"day":{"type":"string"},"limit":{"type":"integer"}}},"tags":["etl"]}`
}

// Run is the @run macro's object.
func Run(stateType, name, message string) string {
	m, _ := json.Marshal(message)
	return `{"id":"` + RunID + `","name":"tidy-fox","flow_id":"` + FlowID + `","deployment_id":"` + DeploymentID + `",` +
		`"state_type":"` + stateType + `","state_name":"` + name + `","state":{"type":"` + stateType + `","name":"` + name +
		`","message":` + string(m) + `},"parameters":{},"tags":["etl"]}`
}

func macro(s string) (string, error) {
	switch {
	case s == "@deployment":
		return Deployment(), nil
	case s == "@flow":
		return `{"id":"` + FlowID + `","name":"etl"}`, nil
	case strings.HasPrefix(s, "@run(") && strings.HasSuffix(s, ")"):
		args := strings.SplitN(s[5:len(s)-1], ",", 3)
		if len(args) < 2 {
			return "", fmt.Errorf("@run(TYPE,Name[,message])")
		}
		msg := ""
		if len(args) == 3 {
			msg = args[2]
		}
		return Run(args[0], args[1], msg), nil
	case strings.HasPrefix(s, "@"):
		return "", fmt.Errorf("unknown macro %s", s)
	}
	// Macros inside a larger body (an array of deployments, say).
	s = strings.ReplaceAll(s, "@deployment", Deployment())
	return Expand(s), nil
}
