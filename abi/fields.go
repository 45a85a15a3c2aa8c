package abi

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Fields are the task's input fields as the user typed them: every value is
// a string, exactly as a UAC template, an environment variable or a flag
// delivers it. The plugin parses and validates them all before it sends any
// request, so a Go program embedding the host and the CLI get the same
// checks and the same messages. Empty means "not given".
type Fields struct {
	// Workspace is the Cloud workspace: its id, its name, or
	// account-handle/workspace-handle. Ignored for a self-hosted server.
	Workspace string `json:"workspace,omitempty"`
	// Account optionally narrows Workspace to one account (id or handle).
	Account string `json:"account,omitempty"`
	// Deployment is a deployment id, flow-name/deployment-name, or a bare
	// deployment name that is unique on the server.
	Deployment string `json:"deployment,omitempty"`
	// FlowRunName names the new flow run; empty lets the server pick a slug.
	FlowRunName string `json:"flow_run_name,omitempty"`
	// Parameters is a JSON object with the optional keys parameters,
	// context, job_variables (objects) and tags (array of strings).
	Parameters string `json:"parameters,omitempty"`
	// Wait is a boolean ("true", "false", "yes", "no", "1", "0"): wait for
	// the flow run to end.
	Wait string `json:"wait,omitempty"`
	// PollInterval is the polling interval in whole seconds, 1 to
	// [MaxPollInterval]; default [DefaultPollInterval].
	PollInterval string `json:"poll_interval,omitempty"`
	// MaxPolls is the maximum number of state polls; empty means no limit.
	// A poll is a read of the flow run after a poll interval, in launch and
	// attach mode alike: the create's answer, the first read of FlowRunID
	// and the read on resuming from a checkpoint are not polls. Polls made
	// before a resume count.
	MaxPolls string `json:"max_polls,omitempty"`
	// IncludeMetadata is a boolean, or one of the 1.0 choice labels
	// ("Include Flow Run Metadata", "No Metadata"). Default true.
	IncludeMetadata string `json:"include_metadata,omitempty"`
	// IdempotencyKey identifies this launch. The same key and deployment
	// always yield the same flow run, so a retried or restarted task
	// re-attaches instead of launching twice. Empty: one key per invocation
	// (RunInput.InvocationID), which messages name when a run may be left
	// behind. The key is sent as ue-prefect:<deployment id>:<key>; a key
	// given in that form for the same deployment is sent as it is.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// CancelOnInterrupt is a boolean: when the host is interrupted while
	// waiting, cancel the flow run on Prefect before ending. Default false,
	// as in 1.0.
	CancelOnInterrupt string `json:"cancel_on_interrupt,omitempty"`
	// CancelGrace bounds, in seconds (1 to [MaxCancelGrace]), how long
	// cancelling on interrupt may take; default [DefaultCancelGrace].
	CancelGrace string `json:"cancel_grace,omitempty"`
	// OutageBudget is how long, in seconds (0 to [MaxOutageBudget]), reading
	// the flow run while waiting may keep failing (any failure but a 404)
	// before the task gives up; default [DefaultOutageBudget].
	OutageBudget string `json:"outage_budget,omitempty"`
	// FlowRunID attaches to an existing flow run instead of launching one.
	FlowRunID string `json:"flow_run_id,omitempty"`
	// StreamLogs is a boolean: while waiting, relay the flow run's own log
	// lines (POST /logs/filter after each poll). Default false.
	StreamLogs string `json:"stream_logs,omitempty"`
	// StartAt schedules the flow run instead of starting it now: an
	// RFC 3339 time ("2026-11-28T09:00:00Z", "2026-11-28T10:00:00+01:00")
	// or a duration from now ("90s", "10m", "1h30m"), like the Prefect
	// CLI's --start-at and --start-in. The run is created SCHEDULED at that
	// time. A time in the past is refused. It is part of the launch's
	// identity: with the same idempotency key and the same StartAt, a retry
	// re-attaches to the run made first, never scheduling a second one.
	StartAt string `json:"start_at,omitempty"`
	// StartDeadline is a number of seconds: when waiting, if the flow run
	// has not reached RUNNING (or ended) that long after its scheduled
	// start, the task ends with ExitStartDeadline. Empty: no deadline.
	StartDeadline string `json:"start_deadline,omitempty"`
	// CancelOnDeadline is a boolean: when the start deadline passes, also
	// cancel the flow run, so that it does not start later unobserved.
	// Default false.
	CancelOnDeadline string `json:"cancel_on_deadline,omitempty"`
}

// Defaults and upper bounds of the integer fields, in seconds. They are the
// one place these numbers are written: the plugin validates with
// [ParseInt], the host bounds its grace period with it, and the CLI's help
// shows them.
const (
	DefaultPollInterval = 60
	MaxPollInterval     = 86400
	DefaultCancelGrace  = 30
	MaxCancelGrace      = 3600
	DefaultOutageBudget = 900
	MaxOutageBudget     = 7 * 86400
	MaxStartDeadline    = 7 * 86400
)

// intFields are the integer fields: the value when empty, the range, and a
// hint appended to an out-of-range message.
var intFields = map[string]struct {
	def, min, max int64
	hint          string
}{
	"poll_interval": {DefaultPollInterval, 1, MaxPollInterval, ""},
	"max_polls":     {0, 1, 1<<31 - 1, "; leave it empty to poll until the flow run ends"},
	"cancel_grace":  {DefaultCancelGrace, 1, MaxCancelGrace, ""},
	"outage_budget": {DefaultOutageBudget, 0, MaxOutageBudget, ""},
	// start_deadline: empty is 0, no deadline.
	"start_deadline": {0, 1, MaxStartDeadline, "; leave it empty for no deadline"},
}

// ParseInt parses the integer field name (its JSON name in [Fields]:
// poll_interval, max_polls, cancel_grace, outage_budget or start_deadline)
// strictly: empty gives its default (0, no limit, for max_polls and
// start_deadline), anything else must be a
// whole number within its range. The error names the field.
func ParseInt(name, v string) (int64, *Error) {
	f, ok := intFields[name]
	if !ok {
		return 0, Errorf(CodeInternal, name, "not an integer field")
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return f.def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return f.def, Errorf(CodeInvalidInput, name, "%q is not a whole number", Clip(v))
	}
	if n < f.min || n > f.max {
		return f.def, Errorf(CodeInvalidInput, name, "%d is out of range (%d to %d)%s", n, f.min, f.max, f.hint)
	}
	return n, nil
}

// Clip shortens a value the user gave to at most 80 bytes (and an
// ellipsis) for a message, cutting on a character boundary.
func Clip(v string) string { return ClipTo(v, 80) }

// ClipTo shortens v to at most max bytes (and an ellipsis), cutting on a
// character boundary.
func ClipTo(v string, max int) string {
	if len(v) <= max {
		return v
	}
	i := max
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i] + "…"
}

// fieldLabels maps Fields' JSON names to the labels a UAC user sees.
var fieldLabels = map[string]string{
	"workspace":           "Workspace ID or Name",
	"account":             "Account",
	"deployment":          "Deployment ID or Name",
	"flow_run_name":       "Flow Run Name",
	"parameters":          "Parameters (JSON)",
	"wait":                "Wait for Success or Failure",
	"poll_interval":       "Polling Interval (sec)",
	"max_polls":           "Max Number of Polls",
	"include_metadata":    "Extension Output Options",
	"idempotency_key":     "Idempotency Key",
	"cancel_on_interrupt": "Cancel Flow Run on Interrupt",
	"cancel_grace":        "Cancel Grace Period (sec)",
	"outage_budget":       "Outage Budget (sec)",
	"flow_run_id":         "Flow Run ID",
	"stream_logs":         "Stream Flow Run Logs",
	"start_at":            "Start At",
	"start_deadline":      "Start Deadline (sec)",
	"cancel_on_deadline":  "Cancel Flow Run at Start Deadline",
	"credentials":         "Credentials",
	"target":              "Target",
	"api_url":             "API URL",
	"action":              "Action",
	"checkpoint":          "Checkpoint",
}

// FieldLabel returns the label of a field's JSON name, as a UAC task form
// shows it, or the name itself when it has no label.
func FieldLabel(name string) string {
	if l, ok := fieldLabels[name]; ok {
		return l
	}
	return name
}
