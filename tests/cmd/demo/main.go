// Command demo is `make demo`: it starts a local Prefect server (SQLite, a
// temporary PREFECT_HOME), serves the demo flow with flow.serve, waits until
// the deployment is READY (its runner has polled), then launches it with
// bin/ue-prefect and waits for it, showing what a UAC user sees: progress
// and the flow's own log lines on stderr, the output fields, the JSON
// document (short: metadata off) and the exit code. It ends with a summary
// that fits on one screen, and says where the full document went.
// Everything it started is torn down at the end.
//
// The Makefile passes the Unix time at which `make demo` started in
// UE_PREFECT_DEMO_T0, so the summary can time the install and build too.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

func main() { os.Exit(run()) }

// phase is one timed step of the demo, for the closing summary.
type phase struct {
	name string
	d    time.Duration
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer rig.Shutdown()
	t0 := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "\n\033[1m== "+format+"\033[0m\n", args...) }
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "demo:", err); return 1 }

	var phases []phase
	if s, err := strconv.ParseFloat(os.Getenv("UE_PREFECT_DEMO_T0"), 64); err == nil {
		start := time.Unix(0, int64(s*1e9))
		phases = append(phases, phase{"install and build", t0.Sub(start)})
		t0 = start
	}
	root, err := rig.RepoRoot()
	bin := filepath.Join(root, "bin", "ue-prefect")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		return fail(fmt.Errorf("bin/ue-prefect is missing; run `make demo` (it builds first)"))
	}

	say("Starting a local Prefect server (prefect server start, SQLite, temporary PREFECT_HOME)")
	srv, err := rig.StartServer(ctx, rig.ServerOptions{})
	if err != nil {
		return fail(err)
	}
	phases = append(phases, phase{"Prefect server start", srv.StartupTime})
	fmt.Fprintf(os.Stderr, "Prefect server ready at %s after %s\n", srv.URL, srv.StartupTime.Round(100*time.Millisecond))

	say("Serving the demo flow with flow.serve, and waiting for its runner's first poll")
	ts := time.Now()
	flows, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		return fail(err)
	}
	defer flows.Stop()
	if _, err := srv.WaitDeploymentReady(ctx, "demo", "demo", 90*time.Second); err != nil {
		return fail(err)
	}
	phases = append(phases, phase{"flow.serve until READY", time.Since(ts)})
	fmt.Fprintf(os.Stderr, "Deployment demo/demo is READY after %s\n", time.Since(ts).Round(100*time.Millisecond))

	out := filepath.Join(root, "bin", "demo")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fail(err)
	}
	fieldsFile := filepath.Join(out, "output-fields.json")
	_ = os.Remove(fieldsFile)
	args := []string{"--deployment", "demo/demo", "--wait", "--poll-interval", "2", "--stream-logs",
		"--flow-run-name", "demo-" + time.Now().Format("150405"),
		"--parameters", `{"parameters": {"name": "UAC"}, "tags": ["demo"]}`,
		"--include-metadata", "No Metadata", "--output-fields", fieldsFile}
	say("ue-prefect %s\n   with PREFECT_API_URL=%s", quote(args), srv.URL)
	env := append(os.Environ(), "PREFECT_API_URL="+srv.URL)
	tl := time.Now()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	phases = append(phases, phase{"launch to end (ue-prefect)", time.Since(tl)})
	if err != nil && code < 0 {
		return fail(err)
	}

	// The full document: what UAC keeps as the EXTENSION output by default
	// (Include Flow Run Metadata). Following the ended run once writes it.
	var fields map[string]string
	if b, err := os.ReadFile(fieldsFile); err == nil {
		_ = json.Unmarshal(b, &fields)
	}
	full := filepath.Join(out, "extension-output.json")
	fullNote := ""
	if id := fields["flow_run_id"]; id != "" {
		c := exec.CommandContext(ctx, bin, "--flow-run-id", id, "--extension-output", full)
		c.Env = env
		var stderr bytes.Buffer
		c.Stdout, c.Stderr = io.Discard, &stderr
		if err := c.Run(); err != nil && c.ProcessState.ExitCode() < 0 {
			fullNote = "(could not write the full document: " + err.Error() + ")"
		} else {
			rel, _ := filepath.Rel(root, full)
			fullNote = fmt.Sprintf("The full document, with the flow run's server record (the default, Include Flow Run Metadata),\n"+
				"is in %s: `ue-prefect --flow-run-id %s` prints it on stdout; UAC keeps it as the EXTENSION output.", rel, id)
		}
	}

	say("Outcome")
	verdict := map[bool]string{true: "success", false: "failure"}[code == 0]
	fmt.Fprintf(os.Stderr, "exit code %d (%s)\n", code, verdict)
	fmt.Fprintln(os.Stderr, "output fields (UAC shows them on the task instance):")
	for _, k := range []struct{ key, label string }{
		{"flow_run_id", "Flow Run ID"}, {"flow_run_name", "Flow Run Name"},
		{"flow_run_state", "Flow Run State"}, {"flow_run_url", "Flow Run URL"},
	} {
		fmt.Fprintf(os.Stderr, "  %-15s %s\n", k.label, fields[k.key])
	}
	if fullNote != "" {
		fmt.Fprintln(os.Stderr, fullNote)
	}
	var parts []string
	for _, p := range phases {
		parts = append(parts, fmt.Sprintf("%s %.1f s", p.name, p.d.Seconds()))
	}
	fmt.Fprintf(os.Stderr, "phases: %s; the demo %.1f s\n", strings.Join(parts, ", "), time.Since(t0).Seconds())
	return code
}

// quote renders args as a shell would need them.
func quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"{}[]:,") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
