package abi

import "fmt"

// Code classifies a failure. Codes are stable strings: hosts and schedulers
// may match on them. Each code implies an exit code ([Code.ExitCode]).
type Code string

const (
	// CodeInvalidInput: an input field is malformed (exit 20).
	CodeInvalidInput Code = "invalid_input"
	// CodeNotFound: the workspace or deployment named does not exist (exit 20).
	CodeNotFound Code = "not_found"
	// CodeAmbiguous: a name matches more than one workspace or deployment (exit 20).
	CodeAmbiguous Code = "ambiguous"
	// CodeRejected: the server rejected the request's content, e.g. a
	// parameter schema violation (409) or an invalid body (422) (exit 20).
	CodeRejected Code = "rejected"
	// CodeUnauthorized: the credential is missing or the server refused it
	// before a flow run existed (exit 20).
	CodeUnauthorized Code = "unauthorized"
	// CodeFlowRunFailed: the flow run ended FAILED, CRASHED or CANCELLED (exit 1).
	CodeFlowRunFailed Code = "flow_run_failed"
	// CodeUnavailable: the server could not be reached, or kept answering
	// with transient errors, past the retry and outage budgets (exit 1).
	// While waiting, every failed read of the flow run counts against the
	// outage budget, a refused credential (401/403) included once the run
	// exists; the run's fate is then unknown.
	CodeUnavailable Code = "unavailable"
	// CodeServerError: the server answered with a non-retryable error (exit 1).
	CodeServerError Code = "server_error"
	// CodeBadResponse: the server's answer was not what the API documents:
	// not JSON, wrong types, missing fields (exit 1).
	CodeBadResponse Code = "bad_response"
	// CodeRefused: the host refused a request: another origin, a redirect,
	// a body over the size cap, TLS failure (exit 1).
	CodeRefused Code = "refused"
	// CodePollingTimeout: Max Number of Polls reached (exit 40).
	CodePollingTimeout Code = "polling_timeout"
	// CodeStartDeadline: the flow run did not start within Start Deadline
	// (sec) of its scheduled start (exit 41).
	CodeStartDeadline Code = "start_deadline"
	// CodeInterrupted: the host was asked to stop (exit 130 or 143).
	CodeInterrupted Code = "interrupted"
	// CodeInternal: a fault in the plugin or the host, e.g. a recovered
	// panic or a trap (exit 1).
	CodeInternal Code = "internal"
)

// ExitCode returns the task exit code a failure of this code ends with.
// Interruptions return ExitInterruptedSIGTERM; the host substitutes the
// exit code of the signal it actually received.
func (c Code) ExitCode() int {
	switch c {
	case CodeInvalidInput, CodeNotFound, CodeAmbiguous, CodeRejected, CodeUnauthorized:
		return ExitDataValidation
	case CodePollingTimeout:
		return ExitPollingTimeout
	case CodeStartDeadline:
		return ExitStartDeadline
	case CodeInterrupted:
		return ExitInterruptedSIGTERM
	default:
		return ExitFailed
	}
}

// Error is a classified failure. It crosses the boundary as JSON
// ({"code":"not_found","field":"deployment","message":"…"}) and is a Go
// error on both sides.
type Error struct {
	// Code classifies the failure.
	Code Code `json:"code"`
	// Field names the input field at fault, when there is one, using the
	// JSON name in [Fields] ("deployment", "poll_interval", …).
	Field string `json:"field,omitempty"`
	// Message is one sentence for people. It never contains a secret.
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", FieldLabel(e.Field), e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// TransportKind classifies why [FuncHTTP] produced no HTTP response.
type TransportKind string

const (
	// TransportConnect: the connection could not be made (refused,
	// unreachable, DNS failure). Retryable.
	TransportConnect TransportKind = "connect"
	// TransportTimeout: no complete response within the request timeout. Retryable.
	TransportTimeout TransportKind = "timeout"
	// TransportReset: the connection was reset or closed before a complete
	// response arrived. Retryable; the server may have handled the request.
	TransportReset TransportKind = "reset"
	// TransportTLS: certificate verification or the TLS handshake failed. Not retryable.
	TransportTLS TransportKind = "tls"
	// TransportTooLarge: the response body exceeded the host's cap. Not retryable.
	TransportTooLarge TransportKind = "too_large"
	// TransportRedirect: the server redirected outside the API origin. Not retryable.
	TransportRedirect TransportKind = "redirect"
	// TransportForbidden: the host refused the request before sending it
	// (a path outside the API base, a method not allowed). Not retryable.
	TransportForbidden TransportKind = "forbidden"
	// TransportInterrupted: the host is stopping; see [Interrupt]. Not retryable.
	TransportInterrupted TransportKind = "interrupted"
)

// Retryable reports whether a request that failed this way may be sent again.
func (k TransportKind) Retryable() bool {
	switch k {
	case TransportConnect, TransportTimeout, TransportReset:
		return true
	}
	return false
}

// TransportError describes a [FuncHTTP] call that produced no response.
type TransportError struct {
	Kind    TransportKind `json:"kind"`
	Message string        `json:"message"`
}
