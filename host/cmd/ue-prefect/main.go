// Command ue-prefect starts a Prefect flow run from a deployment, optionally
// waits for it to end, and reports the outcome as an exit code, live output
// fields and one JSON document, for Stonebranch UAC and any scheduler.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

const usage = `Usage:
  ue-prefect [launch] [flags]      launch a flow run of a deployment; with --wait, follow it to its end
  ue-prefect list-workspaces       list the Prefect Cloud workspaces the API key can see
  ue-prefect list-deployments      list deployments as flow-name/deployment-name
  ue-prefect warm-cache            compile the plugin into the on-disk cache and exit
  ue-prefect version               print versions

Every flag also reads an environment variable (shown in brackets); a flag
wins over its variable. Secrets are read only from the environment or files.

Target and credentials:
  --target cloud|server            [UE_PREFECT_TARGET] default: server when an API URL is
                                   given, else cloud
  --api-url URL                    [PREFECT_API_URL] self-hosted API URL (https://host/api; plain
                                   http only to loopback or with --allow-insecure-http),
                                   or a Cloud workspace API URL
  --cloud-api-url URL              [PREFECT_CLOUD_API_URL] default https://api.prefect.cloud/api
  --ui-url URL                     [PREFECT_UI_URL] UI root for links (default: derived)
  --api-key-file FILE              [PREFECT_API_KEY_FILE] API key; or the key in [PREFECT_API_KEY]
  --auth-string-file FILE          [PREFECT_API_AUTH_STRING_FILE] user:password for a self-hosted
                                   server; or the string in [PREFECT_API_AUTH_STRING]
  --allow-insecure-http            [UE_PREFECT_ALLOW_INSECURE_HTTP] allow http:// to a non-loopback host

What to run:
  --workspace ID|NAME|ACCT/WS      [UE_PREFECT_WORKSPACE] Cloud workspace
  --account ID|HANDLE              [UE_PREFECT_ACCOUNT] narrows --workspace to one account
  --deployment ID|FLOW/DEP|DEP     [UE_PREFECT_DEPLOYMENT]
  --flow-run-name NAME             [UE_PREFECT_FLOW_RUN_NAME] default: a server-chosen slug
  --parameters JSON|@FILE          [UE_PREFECT_PARAMETERS] {"parameters":{},"context":{},
                                   "job_variables":{},"tags":[]}
  --idempotency-key KEY            [UE_PREFECT_IDEMPOTENCY_KEY] same key => same flow run
  --flow-run-id ID                 [UE_PREFECT_FLOW_RUN_ID] follow an existing flow run instead

Waiting:
  --wait                           [UE_PREFECT_WAIT] wait until the flow run ends
  --poll-interval SECONDS          [UE_PREFECT_POLL_INTERVAL] default 60
  --max-polls N                    [UE_PREFECT_MAX_POLLS] default: no limit; reached => exit 40
  --outage-budget SECONDS          [UE_PREFECT_OUTAGE_BUDGET] how long polling may fail, default 900
  --cancel-on-interrupt            [UE_PREFECT_CANCEL_ON_INTERRUPT] on SIGTERM/SIGINT cancel the
                                   flow run before exiting
  --cancel-grace SECONDS           [UE_PREFECT_CANCEL_GRACE] bound on that, default 30
  --request-timeout SECONDS        [UE_PREFECT_REQUEST_TIMEOUT] one HTTP exchange, default 30
  --stream-logs                    [UE_PREFECT_STREAM_LOGS] relay the flow run's own log lines
                                   to stderr while waiting

Output:
  --include-metadata BOOL|LABEL    [UE_PREFECT_INCLUDE_METADATA] flow run metadata in the
                                   extension output, default true
  --extension-output FILE          [UE_PREFECT_EXTENSION_OUTPUT] also write the JSON document here
  --output-fields FILE             [UE_PREFECT_OUTPUT_FIELDS] keep the output fields here as JSON
  --checkpoint FILE                [UE_PREFECT_CHECKPOINT] persist state; resume from it if present
  --json                           list-*: print the JSON document instead of one value per line

Runtime:
  --stop-on-stdin-close            [UE_PREFECT_STOP_ON_STDIN_CLOSE] stop as on SIGTERM when
                                   stdin reaches its end (a graceful stop that works on
                                   Windows too; the UAC extension uses it)
  --cache-dir DIR                  [UE_PREFECT_CACHE_DIR] compiled-module cache
  --no-cache                       [UE_PREFECT_NO_CACHE] do not use the cache

Exit codes: 0 success, 1 execution failed, 20 data validation error,
40 polling timeout, 130/143 interrupted by SIGINT/SIGTERM.
stdout carries one JSON document; stderr is for people, plus lines
"ue-prefect::output {…}" whenever the output fields change.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, notifySignals))
}

// notifySignals relays SIGINT and SIGTERM until stop is called.
func notifySignals(ch chan<- os.Signal) (stop func()) {
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return func() { signal.Stop(ch) }
}

// run is main without the process: separated for tests.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, signals func(chan<- os.Signal) func()) int {
	start := time.Now()
	inv, err := parseInvocation(args, environ)
	if err != nil {
		if err == errHelp {
			fmt.Fprint(stdout, usage)
			return 0
		}
		return reportEarly(stdout, stderr, inv, err)
	}
	switch inv.command {
	case "version":
		fmt.Fprintf(stdout, "ue-prefect %s (plugin ABI %d, %s)\n", version, abi.Version, runtime.Version())
		return 0
	}
	return execute(ctx, inv, stdout, stderr, signals, start)
}

// writeJSON prints v indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
