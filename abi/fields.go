package abi

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
	// PollInterval is the polling interval in whole seconds, at least 1.
	// Default 60.
	PollInterval string `json:"poll_interval,omitempty"`
	// MaxPolls is the maximum number of state polls; empty means no limit.
	MaxPolls string `json:"max_polls,omitempty"`
	// IncludeMetadata is a boolean, or one of the 1.0 choice labels
	// ("Include Flow Run Metadata", "No Metadata"). Default true.
	IncludeMetadata string `json:"include_metadata,omitempty"`
	// IdempotencyKey identifies this launch. The same key and deployment
	// always yield the same flow run, so a retried or restarted task
	// re-attaches instead of launching twice. Empty: one key per invocation.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// CancelOnInterrupt is a boolean: when the host is interrupted while
	// waiting, cancel the flow run on Prefect before ending. Default false,
	// as in 1.0.
	CancelOnInterrupt string `json:"cancel_on_interrupt,omitempty"`
	// CancelGrace bounds, in seconds, how long cancelling on interrupt may
	// take. Default 30.
	CancelGrace string `json:"cancel_grace,omitempty"`
	// OutageBudget is how long, in seconds, polling may keep failing with
	// transient errors before the task gives up. Default 900.
	OutageBudget string `json:"outage_budget,omitempty"`
	// FlowRunID attaches to an existing flow run instead of launching one.
	FlowRunID string `json:"flow_run_id,omitempty"`
	// StreamLogs is a boolean: while waiting, relay the flow run's own log
	// lines (POST /logs/filter after each poll). Default false.
	StreamLogs string `json:"stream_logs,omitempty"`
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
	"credentials":         "Credentials",
	"target":              "Target",
	"api_url":             "API URL",
	"action":              "Action",
}

// FieldLabel returns the label of a field's JSON name, as a UAC task form
// shows it, or the name itself when it has no label.
func FieldLabel(name string) string {
	if l, ok := fieldLabels[name]; ok {
		return l
	}
	return name
}
