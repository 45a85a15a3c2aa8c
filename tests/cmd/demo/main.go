// Command demo is `make demo`: it starts a local Prefect server (SQLite, a
// temporary PREFECT_HOME), serves the demo flow with flow.serve, then
// launches it with bin/ue-prefect and waits for it, showing what a user
// sees: progress on stderr, the output-field lines, and the JSON document
// on stdout. Everything it started is torn down at the end.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer rig.Shutdown()
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "\n\033[1m== "+format+"\033[0m\n", args...) }

	root, err := rig.RepoRoot()
	bin := filepath.Join(root, "bin", "ue-prefect")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: bin/ue-prefect is missing; run `make demo` (it builds first)")
		return 1
	}
	say("Starting a local Prefect server (prefect server start, SQLite, temporary PREFECT_HOME)")
	srv, err := rig.StartServer(ctx, rig.ServerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "Prefect server ready at %s after %s\n", srv.URL, srv.StartupTime.Round(100*time.Millisecond))
	say("Serving the demo flow with flow.serve")
	flows, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer flows.Stop()

	args := []string{"--deployment", "demo/demo", "--wait", "--poll-interval", "2", "--stream-logs",
		"--flow-run-name", "demo-" + time.Now().Format("150405"),
		"--parameters", `{"parameters": {"name": "UAC"}, "tags": ["demo"]}`}
	say("ue-prefect %s   (PREFECT_API_URL=%s)", fmt.Sprint(args), srv.URL)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PREFECT_API_URL="+srv.URL)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	say("ue-prefect exited with %d%s", code, map[bool]string{true: " (success)", false: ""}[code == 0])
	if err != nil && code < 0 {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return code
}
