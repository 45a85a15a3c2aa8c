package abi

import "encoding/json"

// VersionInfo is the output of [ExportABIVersion].
type VersionInfo struct {
	ABIVersion    int    `json:"abi_version"`
	Plugin        string `json:"plugin"`
	PluginVersion string `json:"plugin_version"`
}

// RunInput is the input of [ExportRun], and of the first [ExportStep].
type RunInput struct {
	// Action is one of the Action* constants; empty means ActionLaunchFlowRun.
	Action string `json:"action,omitempty"`
	// Target is TargetCloud or TargetServer. The host decides it, because it
	// also decides the API base URL and the credential scheme.
	Target string `json:"target"`
	// APIBase is the URL the host resolves request paths against: the Cloud
	// API root (https://api.prefect.cloud/api) or a server's API URL
	// (http://127.0.0.1:4200/api). The plugin uses it only to build links.
	APIBase string `json:"api_base"`
	// UIBase optionally overrides the UI root used for flow run links.
	UIBase string `json:"ui_base,omitempty"`
	// Fields are the user's inputs, unparsed.
	Fields Fields `json:"fields"`
	// InvocationID is a random identifier the host draws per invocation. It
	// stands in for Fields.IdempotencyKey when that is empty.
	InvocationID string `json:"invocation_id"`
	// Seed seeds the plugin's deterministic randomness (retry jitter, state
	// transition ids). The host draws it from crypto/rand; tests fix it.
	Seed uint64 `json:"seed"`
	// NowMS is the host's monotonic clock, in milliseconds, at the start.
	NowMS int64 `json:"now_ms"`
	// NowUnixMS is the host's wall clock, in Unix milliseconds, at the
	// start. It is the machine's only wall-clock reading: a scheduled start
	// ([Fields.StartAt]) is checked against it (not in the past) and a
	// relative one ("10m") resolved from it, once; the result is kept in the
	// checkpoint. It also places an attached run's expected start on the
	// machine's time line (the start deadline counts from it). Zero means
	// unknown: then a StartAt is refused (exit 20). On a resume it never
	// moves the scheduled start, but machine time moves on by the wall-clock
	// time since the checkpoint, so deadlines count the downtime; every
	// host sets it, on a resume too.
	NowUnixMS int64 `json:"now_unix_ms,omitempty"`
	// Checkpoint, when present, resumes a run from a [Progress.Checkpoint]
	// of an earlier invocation instead of starting afresh.
	//
	// A checkpoint answers only for the task it was written for: the
	// action, Target, APIBase and the Fields that define the flow run
	// (workspace, account, deployment or flow run id, idempotency key,
	// flow run name, parameters with context, job variables and tags) must
	// be the same, compared by value; an idempotency key the checkpoint
	// supplied (the invocation id) may be given back. Otherwise the run
	// ends with exit 20, code invalid_input, field "checkpoint", naming
	// CheckpointSource, and reports nothing of the checkpoint's flow run.
	// The settings of the wait (wait, poll interval, max polls, outage
	// budget, cancel on interrupt and its grace, log streaming, metadata)
	// and UIBase are taken from this input; polls made before the resume
	// count against max polls. Fields left all empty resume with the
	// checkpoint's own inputs and settings.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	// CheckpointSource names where the checkpoint came from (a file path),
	// for messages.
	CheckpointSource string `json:"checkpoint_source,omitempty"`
}

// RunOutput is the output of [ExportRun] and the payload of the finish
// command. Result is a JSON object; the host places it, unchanged, as
// "result" in the extension output.
type RunOutput struct {
	ExitCode          int             `json:"exit_code"`
	StatusDescription string          `json:"status_description"`
	Error             *Error          `json:"error,omitempty"`
	Result            json.RawMessage `json:"result"`
}

// OutputFields are the task's output fields (1.0: Flow Run ID, Flow Run
// Name, Flow Run State), plus the run's UI link.
type OutputFields struct {
	FlowRunID    string `json:"flow_run_id,omitempty"`
	FlowRunName  string `json:"flow_run_name,omitempty"`
	FlowRunState string `json:"flow_run_state,omitempty"`
	FlowRunURL   string `json:"flow_run_url,omitempty"`
}

// Progress is the argument of [FuncProgress].
type Progress struct {
	Fields     OutputFields    `json:"fields"`
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// HTTPRequest is the argument of [FuncHTTP].
type HTTPRequest struct {
	// Method is GET or POST.
	Method string `json:"method"`
	// Path is relative to the host's API base and starts with "/". Each
	// segment taken from user input is already escaped with url.PathEscape.
	Path string `json:"path"`
	// Body is the JSON body of a POST.
	Body json.RawMessage `json:"body,omitempty"`
	// TimeoutMS optionally shortens the host's request timeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// HTTPResponse is the result of [FuncHTTP]. Exactly one of Status and
// Error is set.
type HTTPResponse struct {
	// Status is the HTTP status code; 0 when Error is set.
	Status int `json:"status,omitempty"`
	// RetryAfterMS is the Retry-After header converted to milliseconds
	// (from seconds or an HTTP date), or 0 when absent or unparsable.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	// Body is the response body when it is valid JSON.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyText holds the start of a body that is not JSON (at most 512 bytes).
	BodyText string `json:"body_text,omitempty"`
	// Error explains why there is no response.
	Error *TransportError `json:"error,omitempty"`
	// NowMS is the host's monotonic clock after the exchange. A response
	// carries no wall-clock time: the wall clock enters only with
	// [RunInput.NowUnixMS], at a start or a resume.
	NowMS int64 `json:"now_ms"`
	// Interrupt is set when the host was asked to stop.
	Interrupt *Interrupt `json:"interrupt,omitempty"`
}

// SleepRequest is the argument of [FuncSleep].
type SleepRequest struct {
	DurationMS int64 `json:"duration_ms"`
	// WakeOn, when set, lets the host end the sleep early as soon as Prefect
	// reports an event for this flow run (a state change, most often). It is
	// optional both ways, so it needed no [Version] change: a host that does
	// not know it sleeps the whole duration, as before, and a plugin that
	// does not send it is never woken.
	WakeOn *WakeOn `json:"wake_on,omitempty"`
	// Exact is set on a sleep that ends at a deadline rather than at a
	// regular poll: a poll wait the plugin cut short to end at the Start
	// Deadline. A host may end it early (WakeOn) but must not lengthen
	// it: the Monitor holds a due poll sleep for a later poll so that
	// their reads share a batch, and never holds an Exact one, so the
	// deadline is kept to the second. Optional both ways, like WakeOn, so
	// it needed no [Version] change: a host that does not know it sleeps
	// as before (the CLI and Temporal never lengthen a sleep; an older
	// Monitor may hold it by up to MaxAlignHold), and a plugin that does
	// not send it leaves every poll sleep free to be aligned.
	Exact bool `json:"exact,omitempty"`
}

// WakeOn names the flow run whose events may end a sleep, and where they
// are heard.
type WakeOn struct {
	// FlowRunID is the flow run's id; the host follows the Prefect
	// resource prefect.flow-run.<FlowRunID>.
	FlowRunID string `json:"flow_run_id"`
	// EventsPath is the events websocket of the run's workspace, relative
	// to the API base like [HTTPRequest.Path]: "/events/out" on a server,
	// "/accounts/{account_id}/workspaces/{workspace_id}/events/out" on
	// Prefect Cloud. The host opens wss:// (or ws://) on it.
	EventsPath string `json:"events_path"`
}

// SleepResponse is the result of [FuncSleep].
type SleepResponse struct {
	NowMS     int64      `json:"now_ms"`
	Interrupt *Interrupt `json:"interrupt,omitempty"`
	// Woken is set when an event for [SleepRequest.WakeOn]'s flow run
	// ended the sleep before its duration. An event is a hint, never an
	// outcome: the plugin confirms the run's state with a read. A host
	// that has no event stream, or lost it, never sets it (the sleep then
	// lasts its duration: polling is the floor).
	Woken bool `json:"woken,omitempty"`
}

// Interrupt tells the plugin that the host was asked to stop. Once it has
// been reported, every later response repeats it; the host keeps serving
// requests until the grace deadline, so the plugin may still cancel the
// flow run.
type Interrupt struct {
	// Reason is for people: "SIGTERM", "context canceled".
	Reason string `json:"reason"`
	// ExitCode is the exit code the task should end with (130, 143).
	ExitCode int `json:"exit_code"`
}

// CredentialRequest is the argument of [FuncCredential].
type CredentialRequest struct{}

// Credential schemes.
const (
	SchemeBearer = "bearer" // Authorization: Bearer <API key> (Prefect Cloud)
	SchemeBasic  = "basic"  // Authorization: Basic base64(user:password) (self-hosted)
	SchemeNone   = "none"   // no Authorization header
)

// CredentialResponse is the result of [FuncCredential]. It never holds the
// secret.
type CredentialResponse struct {
	// Scheme is SchemeBearer, SchemeBasic or SchemeNone.
	Scheme string `json:"scheme"`
	// Source says where the secret came from, for messages:
	// "env PREFECT_API_KEY", "file /run/secrets/prefect".
	Source string `json:"source,omitempty"`
	// Error reports a credential that was configured but could not be read.
	Error string `json:"error,omitempty"`
}

// Log levels of [LogRecord].
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// LogRecord is the argument of [FuncLog].
type LogRecord struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	// Source is empty for ue-prefect's own lines and SourceFlowRun for a
	// line of the flow run's own log (with --stream-logs).
	Source string `json:"source,omitempty"`
	// Time is the Prefect timestamp of a flow run's log line.
	Time string `json:"time,omitempty"`
}

// SourceFlowRun marks a LogRecord that relays a line of the flow run's log.
const SourceFlowRun = "flow_run"

// StepInput is the input of [ExportStep].
type StepInput struct {
	// Checkpoint is the previous StepOutput.Checkpoint; absent on the first step.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	// Input starts a run; it is read only on the first step.
	Input *RunInput `json:"input,omitempty"`
	// Event answers the last command of the previous step; absent on the first.
	Event *Event `json:"event,omitempty"`
}

// StepOutput is the output of [ExportStep].
type StepOutput struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
	Commands   []Command       `json:"commands"`
}

// Command kinds.
const (
	CommandHTTP       = "http"       // execute HTTP with [FuncHTTP]; answer with an EventHTTP
	CommandSleep      = "sleep"      // execute Sleep with [FuncSleep]; answer with an EventWoke
	CommandCredential = "credential" // ask [FuncCredential]; answer with an EventCredential
	CommandLog        = "log"        // emit Log; no answer
	CommandProgress   = "progress"   // publish Progress; no answer
	CommandFinish     = "finish"     // the run is over; Finish is the outcome
)

// Command is one instruction of the state machine to its driver.
type Command struct {
	Kind     string        `json:"kind"`
	HTTP     *HTTPRequest  `json:"http,omitempty"`
	Sleep    *SleepRequest `json:"sleep,omitempty"`
	Log      *LogRecord    `json:"log,omitempty"`
	Progress *Progress     `json:"progress,omitempty"`
	Finish   *RunOutput    `json:"finish,omitempty"`
}

// Event kinds.
const (
	EventHTTP       = "http"       // HTTP holds the response
	EventWoke       = "woke"       // Woke holds the sleep result
	EventCredential = "credential" // Credential holds the answer
)

// Event is one input to the state machine.
type Event struct {
	Kind       string              `json:"kind"`
	HTTP       *HTTPResponse       `json:"http,omitempty"`
	Woke       *SleepResponse      `json:"woke,omitempty"`
	Credential *CredentialResponse `json:"credential,omitempty"`
}
