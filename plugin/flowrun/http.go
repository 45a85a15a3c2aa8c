package flowrun

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// What every HTTP exchange shares, whatever its operation: sending, the
// checks an answer passes before its handler sees it, retries, and the
// text of failures.

// Retry policy for requests. A poll while waiting is governed by the
// outage budget instead (poll.go), and a request of the cancellation by
// the grace period (cancel.go).
const (
	maxAttempts   = 6           // attempts of one request
	retryBudget   = 5 * minute  // from a request's first attempt to its last
	backoffBase   = 1 * second  // the first backoff; it doubles per attempt
	backoffCap    = 30 * second // caps one backoff
	retryAfterCap = 5 * minute  // caps the server's Retry-After
)

// pending is the outstanding command: what it is for and, for a request
// or a retry sleep, the request and its attempts.
type pending struct {
	Op      op               `json:"op,omitempty"`
	Req     *abi.HTTPRequest `json:"req,omitempty"`
	Attempt int              `json:"attempt,omitempty"`
	Since   int64            `json:"since_ms,omitempty"` // when the first attempt went out
	Retry   op               `json:"retry,omitempty"`    // the op a retry sleep sends again
}

// send issues req as the first attempt of o, unless an interrupt stops
// the machine first. It reports whether the request went out.
func (m *Machine) send(o op, req abi.HTTPRequest) bool {
	if m.interruptStops(o) {
		m.onInterrupt()
		return false
	}
	m.s.Pending = pending{Op: o, Req: &req, Attempt: 1, Since: m.s.Now}
	m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: &req})
	return true
}

// onHTTP takes the answer to the outstanding request: a failure is
// retried or ends the run here; anything else goes to the op's handler.
func (m *Machine) onHTTP(h handler, r *abi.HTTPResponse) {
	if r.Error != nil && r.Error.Kind == abi.TransportInterrupted {
		m.onInterruptedRequest(m.s.Pending.Op)
		return
	}
	if h.failed != nil && (r.Error != nil || r.Status != 200 || len(r.Body) == 0 || CheckJSON(string(r.Body), MaxResponseDepth) != "") {
		h.failed(m, r)
		return
	}
	if m.s.Pending.Op == opRead && m.s.Cfg.Wait {
		// Waiting: a failed read of the flow run does not end the wait.
		if why := m.waitReadFailure(r); why != "" {
			m.retryAs(r, why)
			return
		}
	}
	if (r.Error != nil && r.Error.Kind.Retryable()) || (r.Error == nil && retryableStatus(r.Status)) {
		m.retry(r)
		return
	}
	if r.Error != nil {
		m.fail(abi.Errorf(abi.CodeRefused, "", "%s: %s", m.what(), describe(r)))
		return
	}
	if h.repeatable && r.Status == 500 {
		// A server error on a request that is safe to repeat: the next
		// attempt may well succeed (a transaction that lost a race, a
		// worker restarting behind a proxy).
		m.retry(r)
		return
	}
	if h.repeatable {
		m.answer = r
		defer func() { m.answer = nil }()
	}
	if r.Status >= 200 && r.Status < 300 {
		if len(r.Body) == 0 {
			m.badResponse("the body is not JSON")
			return
		}
		if e := CheckJSON(string(r.Body), MaxResponseDepth); e != "" {
			m.badResponse("the body is not JSON: " + e)
			return
		}
	}
	h.http(m, r)
}

// retryableStatus lists the HTTP statuses worth repeating a request for.
func retryableStatus(code int) bool {
	switch code {
	case 408, 429, 502, 503, 504:
		return true
	}
	return false
}

// retry schedules another attempt of the outstanding request, or gives up.
func (m *Machine) retry(r *abi.HTTPResponse) { m.retryAs(r, describe(r)) }

// retryAs is retry with the failure described as fail.
func (m *Machine) retryAs(r *abi.HTTPResponse, fail string) {
	p := &m.s.Pending
	// A create that got no answer, a gateway's 502/504 (the server behind
	// it may have handled the request), a 500 (the server may have
	// committed the run before it failed) or a 2xx it could not read may
	// have created the run.
	if p.Op == opCreate && (r.Error != nil || r.Status == 500 || r.Status == 502 || r.Status == 504 || (r.Status >= 200 && r.Status < 300)) {
		m.s.Launch.Unsure = true
	}
	if m.interruptStops(p.Op) {
		m.onInterrupt()
		return
	}
	if m.s.Cancel.Interrupt != nil && m.createInFlight(p.Op) {
		// Stopping: a retry sleep would be cut short; repeat the create
		// at once instead, or stop.
		if !m.repeatCreate(fail) {
			m.onInterrupt()
		}
		return
	}
	backoff := min(backoffBase<<min(p.Attempt-1, 10), backoffCap)
	delay := m.jitter(backoff, 0.2)
	if ra := r.RetryAfterMS; ra > 0 {
		ra = min(ra, retryAfterCap)
		if ra = ra + int64(float64(ra)*0.2*float64(m.rand()>>11)/(1<<53)); ra > delay {
			delay = ra
		}
	}
	var ok bool
	switch {
	case p.Op == opRead && m.s.Cfg.Wait:
		delay, ok = m.outageRetry(r, delay, fail) // poll.go
	case m.s.Cancel.Cancelling:
		ok = m.cancelRetry(delay, fail) // cancel.go
	default:
		ok = m.budgetRetry(r, delay, fail)
	}
	if ok {
		p.Retry = p.Op
		m.sleep(opSleepRetry, delay)
	}
}

// budgetRetry decides whether the outstanding request may be tried again
// after delay: within maxAttempts and retryBudget. A create that runs out
// ends naming the idempotency key that finds or launches its run.
func (m *Machine) budgetRetry(r *abi.HTTPResponse, delay int64, fail string) bool {
	p := m.s.Pending
	if p.Attempt >= maxAttempts || m.s.Now+delay-p.Since > retryBudget {
		msg := fmt.Sprintf("%s failed %d times over %s; last error: %s", m.what(), p.Attempt, dur(m.s.Now-p.Since), fail)
		if p.Op == opCreate {
			msg += fmt.Sprintf("; run again with Idempotency Key %q: it re-attaches to the flow run if an attempt created one, and launches it otherwise", m.userKey())
		}
		m.fail(&abi.Error{Code: abi.CodeUnavailable, Message: msg})
		return false
	}
	m.logf(abi.LevelWarn, "%s failed (%s); %sretrying in %s (attempt %d of %d)", m.what(), fail, m.safeToRepeat(r), dur(delay), p.Attempt+1, maxAttempts)
	return true
}

// safeToRepeat says, for the log, why an answer that is final for other
// requests is retried for this one: a 500 or a 2xx that could not be read,
// on a request that is safe to repeat (handler.repeatable).
func (m *Machine) safeToRepeat(r *abi.HTTPResponse) string {
	if r.Error != nil || (r.Status != 500 && (r.Status < 200 || r.Status > 299)) {
		return ""
	}
	if m.s.Pending.Op == opCreate {
		return fmt.Sprintf("the create is safe to repeat (Idempotency Key %q yields at most one flow run): ", m.userKey())
	}
	return "a read is safe to repeat: "
}

// resend sends the request of a retry sleep again, unless an interrupt
// stops the machine first.
func (m *Machine) resend() {
	p := &m.s.Pending
	if m.interruptStops(p.Retry) {
		m.onInterrupt()
		return
	}
	p.Op, p.Retry = p.Retry, ""
	p.Attempt++
	m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: p.Req})
}

// what names the outstanding request for messages: "GET /flow_runs/…".
func (m *Machine) what() string { return m.s.Pending.Req.Method + " " + m.s.Pending.Req.Path }

// describe renders a failed exchange for messages: "503 Service
// Unavailable: database is locked" or "connect: connection refused".
func describe(r *abi.HTTPResponse) string {
	if r.Error != nil {
		return string(r.Error.Kind) + ": " + clip(r.Error.Message)
	}
	s := fmt.Sprintf("HTTP %d", r.Status)
	if d := serverDetail(r); d != "" {
		s += ": " + d
	}
	return s
}

// serverDetail extracts Prefect's error text: detail (a string or a
// structure), exception_message and exception_detail.
func serverDetail(r *abi.HTTPResponse) string {
	if len(r.Body) == 0 {
		return clip(strings.TrimSpace(r.BodyText))
	}
	b := gjson.ParseBytes(r.Body)
	var parts []string
	if d := b.Get("detail"); d.Exists() {
		if d.Type == gjson.String {
			parts = append(parts, d.Str)
		} else {
			parts = append(parts, d.Raw)
		}
	}
	if e := b.Get("exception_message"); e.Type == gjson.String {
		parts = append(parts, e.Str)
	}
	if ed := b.Get("exception_detail"); ed.IsArray() {
		ed.ForEach(func(_, v gjson.Result) bool {
			loc := []string{}
			v.Get("loc").ForEach(func(_, l gjson.Result) bool { loc = append(loc, l.String()); return true })
			parts = append(parts, strings.Join(loc, ".")+": "+v.Get("msg").String())
			return len(parts) < 5
		})
	}
	const max = 400
	s := strings.Join(parts, "; ")
	if len(s) > max {
		s = clip(s[:max])
	}
	return s
}

// credFrom says where the credential came from, for messages.
func (m *Machine) credFrom() string {
	if m.s.Resolve.CredSource == "" {
		return ""
	}
	return " from " + m.s.Resolve.CredSource
}

// statusError turns an unexpected status into the failure it means.
func (m *Machine) statusError(r *abi.HTTPResponse, field string) *abi.Error {
	switch r.Status {
	case 401, 403:
		return abi.Errorf(abi.CodeUnauthorized, "credentials", "Prefect refused the %s credential%s (%s)", m.s.Resolve.Scheme, m.credFrom(), describe(r))
	case 400, 404, 409, 422:
		if field != "" {
			return abi.Errorf(abi.CodeRejected, field, "Prefect rejected the request (%s)", describe(r))
		}
	}
	return abi.Errorf(abi.CodeServerError, "", "%s: %s", m.what(), describe(r))
}

// badResponse ends the run on an answer whose body is not what the
// endpoint returns; a request that is safe to repeat is tried again
// instead, within the retry budget.
func (m *Machine) badResponse(why string) {
	if r := m.answer; r != nil {
		m.answer = nil
		desc := fmt.Sprintf("HTTP %d, %s", r.Status, why)
		if len(r.Body) == 0 && strings.TrimSpace(r.BodyText) != "" {
			desc += ": " + clip(strings.TrimSpace(r.BodyText))
		}
		m.retryAs(r, desc)
		return
	}
	m.fail(abi.Errorf(abi.CodeBadResponse, "", "unexpected response to %s: %s", m.what(), why))
}

// array returns the body of a 200 answer that must be a JSON array of
// what; any other answer ends the run.
func (m *Machine) array(r *abi.HTTPResponse, what string) (gjson.Result, bool) {
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return gjson.Result{}, false
	}
	arr := gjson.ParseBytes(r.Body)
	if !arr.IsArray() {
		m.badResponse("expected an array of " + what)
		return gjson.Result{}, false
	}
	return arr, true
}

// utf8Body returns r with a body that is not UTF-8, and so not JSON
// (RFC 8259 §8.1), moved to BodyText with the bad bytes replaced. Nothing
// that is not UTF-8 enters the state, so a checkpoint restores exactly.
func utf8Body(r *abi.HTTPResponse) *abi.HTTPResponse {
	if utf8.Valid(r.Body) {
		return r
	}
	c := *r
	c.Body, c.BodyText = nil, strings.ToValidUTF8(string(r.Body), "\uFFFD")
	return &c
}

// mustJSON marshals values built from strings, maps and RawObjects.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// pathEscape escapes a path segment like net/url.PathEscape.
func pathEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~!$'()*+,;=:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
