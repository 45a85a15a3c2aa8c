package abi

// Version is the ABI version implemented by this package. The plugin reports
// it from [ExportABIVersion] and the host refuses to run a plugin whose
// version differs ("abi: version mismatch: host 1, plugin 2").
//
// The version changes whenever an export, an import or a message changes in a
// way that an older peer would misread. Adding an optional JSON field that an
// older peer may ignore does not change it.
const Version = 1

// HostModule is the Wasm import module of every host function in this
// contract. It is the namespace go-pdk and the Extism SDKs use for
// user-defined host functions, so the same .wasm also runs under a standard
// Extism host that supplies these functions.
const HostModule = "extism:host/user"

// KernelModule is the Wasm import module of the Extism kernel functions
// (alloc, load_u64, input_length, output_set, error_set …) that go-pdk
// imports. The host implements them natively; they carry bytes, not
// messages, so they are not listed one by one here.
//
// See https://github.com/extism/go-pdk/blob/v1.1.3/env.go
const KernelModule = "extism:host/env"

// Exports of the plugin. Each is a go-pdk export: it takes no Wasm arguments,
// reads its input with the kernel's input_* functions, writes its output with
// output_set and returns an int32 status, 0 for success and 1 for failure.
// On failure it has also called error_set with a message; the host reports
// both together, never one without the other.
const (
	// ExportABIVersion writes a [VersionInfo] JSON object and returns 0.
	//
	// # Parameters
	//
	// None; the input is ignored.
	//
	// # Results
	//
	// Output: {"abi_version":1,"plugin":"ue-prefect","plugin_version":"v0.1.0"}
	ExportABIVersion = "abi_version"

	// ExportRun runs one action to its end, calling the host functions below
	// as it goes.
	//
	// # Parameters
	//
	// Input: a [RunInput] JSON object.
	//
	// # Results
	//
	// Output: a [RunOutput] JSON object. Status 0 even when the flow run
	// failed: the outcome is data ([RunOutput.ExitCode]). Status 1 only for a
	// plugin fault (a recovered panic or an input that is not JSON), with the
	// message given to error_set.
	ExportRun = "run"

	// ExportStep advances the pure state machine by one event without calling
	// any host function. A host that prefers to execute commands itself (or
	// to checkpoint between every step) calls it in a loop.
	//
	// # Parameters
	//
	// Input: a [StepInput] JSON object: the checkpoint returned by the
	// previous step (absent on the first) and the event.
	//
	// # Results
	//
	// Output: a [StepOutput] JSON object: the new checkpoint and the commands
	// to execute in order. The last command is the only one that expects an
	// answer (an event); log and progress commands before it do not.
	ExportStep = "step"
)

// Host functions, all in [HostModule]. Each takes one argument, the kernel
// offset of a JSON request, and returns the kernel offset of a JSON response
// (0 for functions without a response). Expected failures (a refused
// connection, a missing credential) are reported inside the response, never
// by trapping; a host function traps only when the plugin breaks the ABI
// (an unreadable offset or a request that is not JSON).
const (
	// FuncHTTP sends one HTTP request to the configured Prefect API and
	// returns its response. It makes exactly one attempt: retries are the
	// plugin's decision, so they are visible in traces.
	//
	// The host resolves [HTTPRequest.Path] against its configured API base
	// URL, adds authentication, Content-Type, Accept and
	// X-PREFECT-API-VERSION headers, refuses paths that would leave the API
	// base, refuses redirects to another origin and caps the response body
	// at its configured limit.
	//
	// On a self-hosted server with CSRF protection on, a POST refused with
	// 403 "Missing CSRF token." (or an invalid or expired token) is sent once
	// more with the headers Prefect-Csrf-Token and Prefect-Csrf-Client, after
	// the host fetched a token with GET /csrf-token?client=<id>, as Prefect's
	// own client does. The server's middleware refuses such a request before
	// handling it, so the second send is no second attempt in the sense
	// above; the token is then reused until it expires.
	//
	// # Parameters
	//
	// An [HTTPRequest]: {"method":"GET","path":"/flow_runs/0b6…"}
	//
	// # Results
	//
	// An [HTTPResponse]: {"status":200,"body":{…},"now_ms":1520}, or, when
	// no response arrived, {"error":{"kind":"connect","message":"…"},"now_ms":…}.
	FuncHTTP = "prefect_http"

	// FuncSleep blocks for the requested duration and reports the time
	// afterwards. It returns early, with [SleepResponse.Interrupt] set, when
	// the host is asked to stop (SIGTERM, context cancellation), and, with
	// [SleepResponse.Woken] set, when the request names a flow run in
	// [SleepRequest.WakeOn] and the host hears an event for it on Prefect's
	// events websocket (including one that arrived since the previous
	// sleep returned).
	//
	// # Parameters
	//
	// A [SleepRequest]: {"duration_ms":60000} or
	// {"duration_ms":60000,"wake_on":{"flow_run_id":"0b6…","events_path":"/events/out"}}
	//
	// # Results
	//
	// A [SleepResponse]: {"now_ms":61012} or {"now_ms":3250,"woken":true}
	FuncSleep = "sleep"

	// FuncCredential reports which credential the host will attach to API
	// requests. The secret itself never crosses into the plugin: the host
	// adds the Authorization header to every [FuncHTTP] request.
	//
	// # Parameters
	//
	// A [CredentialRequest]: {}
	//
	// # Results
	//
	// A [CredentialResponse]: {"scheme":"bearer","source":"env PREFECT_API_KEY"}
	FuncCredential = "get_credential"

	// FuncLog emits one line for people (stderr in the CLI).
	//
	// # Parameters
	//
	// A [LogRecord]: {"level":"info","message":"Flow run 'tidy-fox' is RUNNING (after 12s)"}
	//
	// # Results
	//
	// None (offset 0).
	FuncLog = "log"

	// FuncProgress publishes the output fields and the checkpoint whenever
	// either changes, and after every poll of the flow run. The host may persist the checkpoint and hand it back in
	// [RunInput.Checkpoint] to resume.
	//
	// # Parameters
	//
	// A [Progress]: {"fields":{"flow_run_id":"…","flow_run_state":"RUNNING"},"checkpoint":{…}}
	//
	// # Results
	//
	// None (offset 0).
	FuncProgress = "progress"
)

// Imports returns every host function of this contract, in a stable order.
// Each call returns a fresh slice.
func Imports() []string {
	return []string{FuncHTTP, FuncSleep, FuncCredential, FuncLog, FuncProgress}
}

// Exports returns every export the host requires of a plugin. Each call
// returns a fresh slice.
func Exports() []string { return []string{ExportABIVersion, ExportRun, ExportStep} }

// Actions a [RunInput] may ask for.
const (
	// ActionLaunchFlowRun resolves the workspace (Cloud) and the deployment,
	// creates a flow run and, if asked, waits for it to end. It is the
	// default when [RunInput.Action] is empty.
	ActionLaunchFlowRun = "launch_flow_run"
	// ActionListWorkspaces lists the Cloud workspaces the credential can see.
	ActionListWorkspaces = "list_workspaces"
	// ActionListDeployments lists the deployments of the (resolved) workspace
	// or server as flow-name/deployment-name.
	ActionListDeployments = "list_deployments"
)

// Targets a [RunInput] may name.
const (
	// TargetCloud is Prefect Cloud: paths are relative to the Cloud API root
	// and workspaces are resolved through /me/workspaces.
	TargetCloud = "cloud"
	// TargetServer is a self-hosted Prefect server: paths are relative to its
	// API URL (…/api).
	TargetServer = "server"
)
