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
	"strings"
	"syscall"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// usageHead and usageTail frame the options in --help.
const usageHead = `Usage:
  ue-prefect [launch] [flags]      launch a flow run of a deployment; with --wait, follow it to its end
  ue-prefect list-workspaces       list the Prefect Cloud workspaces the API key can see
  ue-prefect list-deployments      list deployments as flow-name/deployment-name
  ue-prefect warm-cache            compile the plugin into the on-disk cache and exit
  ue-prefect version               print versions

Every flag also reads an environment variable (shown in brackets); a flag
wins over its variable. Secrets are read only from the environment or files.
`

const usageTail = `
Exit codes: 0 success, 1 execution failed, 20 data validation error,
40 polling timeout, 41 start deadline (the flow run did not start in time),
130/143 interrupted by SIGINT/SIGTERM.
stdout carries one JSON document; stderr is for people, plus lines
"ue-prefect::output {…}" whenever the output fields change.
`

// usage is the --help text: the options table, grouped, each option's
// text wrapped beside its flag.
func usage() string {
	const col, width = 35, 96
	var b strings.Builder
	b.WriteString(usageHead)
	group := ""
	for _, o := range options {
		if o.group != group {
			group = o.group
			fmt.Fprintf(&b, "\n%s:\n", group)
		}
		left := "  --" + o.flag
		if o.arg != "" {
			left += " " + o.arg
		}
		var words []string
		if o.env != "" {
			words = append(words, "["+o.env+"]")
		}
		words = append(words, strings.Fields(o.help)...)
		switch {
		case o.def != "" && o.help != "":
			words[len(words)-1] += ","
			fallthrough
		case o.def != "":
			if strings.Contains(o.def, " ") {
				words = append(words, "default:")
				words = append(words, strings.Fields(o.def)...)
			} else {
				words = append(words, "default "+o.def) // kept on one line
			}
		}
		line := fmt.Sprintf("%-*s", col-1, left)
		n := len(line)
		for i, w := range words {
			if i > 0 && n+1+len(w) > width {
				b.WriteString(line + "\n")
				line, n = strings.Repeat(" ", col-1), col-1
			}
			line += " " + w
			n += 1 + len(w)
		}
		b.WriteString(line + "\n")
	}
	b.WriteString(usageTail)
	return b.String()
}

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
			fmt.Fprint(stdout, usage())
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
