// Command ue-prefect-temporal runs the ue-prefect workflow on Temporal.
//
//	ue-prefect-temporal worker [flags]        serve the workflow and its activities
//	ue-prefect-temporal start  [flags]        start a workflow and (unless -detach) print its outcome
//	ue-prefect-temporal cancel -id ID         cancel a workflow (an interrupt, like SIGTERM)
//	ue-prefect-temporal interrupt -id ID [-reason SIGINT -exit 130]
//
// The worker holds the Prefect API URL and credential (PREFECT_API_URL,
// PREFECT_API_KEY[_FILE] or PREFECT_API_AUTH_STRING[_FILE], UE_PREFECT_TARGET);
// they never enter workflow history. start takes the task's fields and
// prints the same exit code, status description and result as ue-prefect.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
	uetemporal "github.com/ue-prefect/ue-prefect/host/temporal"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ue-prefect-temporal worker|start|cancel|interrupt [flags]  (-h for a command's flags)")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return abi.ExitDataValidation
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("address", envOr("TEMPORAL_ADDRESS", client.DefaultHostPort), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	ns := fs.String("namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (TEMPORAL_NAMESPACE)")
	queue := fs.String("task-queue", uetemporal.DefaultTaskQueue, "task queue")
	switch args[0] {
	case "worker":
		target := fs.String("target", envOr("UE_PREFECT_TARGET", abi.TargetServer), "cloud or server (UE_PREFECT_TARGET)")
		apiURL := fs.String("api-url", os.Getenv("PREFECT_API_URL"), "Prefect API URL (PREFECT_API_URL)")
		uiURL := fs.String("ui-url", os.Getenv("PREFECT_UI_URL"), "Prefect UI URL for links (PREFECT_UI_URL)")
		insecure := fs.Bool("allow-insecure-http", os.Getenv("UE_PREFECT_ALLOW_INSECURE_HTTP") == "true", "allow plain http to a host that is not loopback")
		timeout := fs.Duration("request-timeout", prefect.DefaultRequestTimeout, "bound on one HTTP exchange")
		acts := fs.Int("max-activities", 0, "concurrent HTTP activities (0: SDK default)")
		tasks := fs.Int("max-workflow-tasks", 0, "concurrent workflow tasks (0: SDK default)")
		steps := fs.Int("steps-per-run", uetemporal.DefaultStepsPerRun, "answered commands before the workflow continues as new (the same on every worker of a queue)")
		noEvents := fs.Bool("no-events", os.Getenv("UE_PREFECT_NO_EVENTS") == "true", "do not follow Prefect's event stream: waits last their poll interval (UE_PREFECT_NO_EVENTS)")
		if fs.Parse(args[1:]) != nil {
			return abi.ExitDataValidation
		}
		return runWorker(stderr, workerConfig{addr: *addr, ns: *ns, queue: *queue, target: *target, apiURL: *apiURL, uiURL: *uiURL,
			insecure: *insecure, timeout: *timeout, acts: *acts, tasks: *tasks, steps: *steps, events: !*noEvents})
	case "start":
		id := fs.String("id", "", "workflow id (default: ue-prefect-<time>); also scopes the derived idempotency key")
		action := fs.String("action", "", "launch_flow_run (default), list_deployments or list_workspaces")
		fieldsJSON := fs.String("fields", "", `the task's fields as one JSON object, e.g. {"deployment":"etl/nightly","wait":"true"}`)
		var kv multi
		fs.Var(&kv, "field", "one field as name=value (repeatable; overrides -fields)")
		detach := fs.Bool("detach", false, "print the workflow id and run id instead of waiting for the outcome")
		if fs.Parse(args[1:]) != nil {
			return abi.ExitDataValidation
		}
		in, err := input(*action, *fieldsJSON, kv)
		if err != nil {
			fmt.Fprintln(stderr, "ue-prefect-temporal:", err)
			return abi.ExitDataValidation
		}
		return runStart(stdout, stderr, *addr, *ns, *queue, *id, in, *detach)
	case "cancel", "interrupt":
		id := fs.String("id", "", "workflow id")
		reason := fs.String("reason", "SIGTERM", "interrupt reason (interrupt only)")
		code := fs.Int("exit", abi.ExitInterruptedSIGTERM, "exit code of the interrupt (interrupt only)")
		if fs.Parse(args[1:]) != nil || *id == "" {
			fmt.Fprintln(stderr, "ue-prefect-temporal: -id is required")
			return abi.ExitDataValidation
		}
		c, err := dial(*addr, *ns)
		if err != nil {
			fmt.Fprintln(stderr, "ue-prefect-temporal:", err)
			return abi.ExitFailed
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if args[0] == "cancel" {
			err = c.CancelWorkflow(ctx, *id, "")
		} else {
			err = c.SignalWorkflow(ctx, *id, "", uetemporal.SignalInterrupt, abi.Interrupt{Reason: *reason, ExitCode: *code})
		}
		if err != nil {
			fmt.Fprintln(stderr, "ue-prefect-temporal:", err)
			return abi.ExitFailed
		}
		return abi.ExitSuccess
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return abi.ExitSuccess
	}
	usage(stderr)
	return abi.ExitDataValidation
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// input builds the workflow input; field names are those of abi.Fields.
func input(action, fieldsJSON string, kv []string) (uetemporal.Input, error) {
	m := map[string]string{}
	if fieldsJSON != "" {
		if err := json.Unmarshal([]byte(fieldsJSON), &m); err != nil {
			return uetemporal.Input{}, fmt.Errorf("-fields: want a JSON object of strings: %v", err)
		}
	}
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return uetemporal.Input{}, fmt.Errorf("-field %q: want name=value", s)
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var f abi.Fields
	if err := dec.Decode(&f); err != nil {
		return uetemporal.Input{}, fmt.Errorf("fields: %v", err)
	}
	return uetemporal.Input{Action: action, Fields: f}, nil
}

func dial(addr, ns string) (client.Client, error) {
	return client.Dial(client.Options{HostPort: addr, Namespace: ns, Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
}

func credential() (prefect.Credential, error) {
	secret := func(name string) (string, error) {
		if p := os.Getenv(name + "_FILE"); p != "" {
			return prefect.ReadSecretFile(p)
		}
		return os.Getenv(name), nil
	}
	if k, err := secret("PREFECT_API_KEY"); err != nil || k != "" {
		if err != nil {
			return prefect.Credential{}, err
		}
		return prefect.BearerCredential(k, "env PREFECT_API_KEY")
	}
	if a, err := secret("PREFECT_API_AUTH_STRING"); err != nil || a != "" {
		if err != nil {
			return prefect.Credential{}, err
		}
		return prefect.BasicCredential(a, "env PREFECT_API_AUTH_STRING")
	}
	return prefect.NoCredential(), nil
}

// workerConfig is the worker command's flags.
type workerConfig struct {
	addr, ns, queue, target, apiURL, uiURL string
	insecure                               bool
	timeout                                time.Duration
	acts, tasks, steps                     int
	events                                 bool
}

func runWorker(stderr io.Writer, wc workerConfig) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "ue-prefect-temporal worker:", err)
		return abi.ExitDataValidation
	}
	if wc.target != abi.TargetServer && wc.target != abi.TargetCloud {
		return fail(fmt.Errorf("-target %q: want server or cloud", wc.target))
	}
	base, err := prefect.ValidateAPIBase(wc.apiURL, wc.insecure)
	if err != nil {
		return fail(fmt.Errorf("-api-url: %v", err))
	}
	if wc.uiURL != "" {
		if _, err := url.Parse(wc.uiURL); err != nil {
			return fail(fmt.Errorf("-ui-url: %v", err))
		}
	}
	cred, err := credential()
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	const userAgent = "ue-prefect-temporal"
	a, err := uetemporal.NewActivities(ctx, uetemporal.WorkerConfig{Connection: prefect.Connection{Target: wc.target,
		APIBase: base, UIBase: wc.uiURL, Credential: cred, RequestTimeout: wc.timeout, UserAgent: userAgent}})
	if err != nil {
		return fail(err)
	}
	c, err := dial(wc.addr, wc.ns)
	if err != nil {
		fmt.Fprintln(stderr, "ue-prefect-temporal worker:", err)
		return abi.ExitFailed
	}
	defer c.Close()
	wf := &uetemporal.Workflow{StepsPerRun: wc.steps, HTTPTimeout: wc.timeout + 30*time.Second}
	eventsNote := "events off: waits last their poll interval"
	if wc.events {
		// One hub for the worker: one event stream per workspace serves
		// every workflow waiting here; an event sends its workflow `wake`.
		hub := prefect.NewEventHub(prefect.EventHubConfig{APIBase: base, UserAgent: userAgent,
			Log: func(msg string) { fmt.Fprintln(stderr, "ue-prefect-temporal worker: warning:", msg) }}, cred)
		defer hub.Close()
		relay := uetemporal.NewRelay(hub, uetemporal.SignalWith(c.SignalWorkflow))
		defer relay.Close()
		wf.Watcher = relay
		eventsNote = "state changes heard on Prefect's event stream wake waiting workflows"
	}
	w := worker.New(c, wc.queue, worker.Options{MaxConcurrentActivityExecutionSize: wc.acts, MaxConcurrentWorkflowTaskExecutionSize: wc.tasks})
	wf.Register(w)
	a.Register(w)
	fmt.Fprintf(stderr, "ue-prefect-temporal worker: serving task queue %q on %s (%s), Prefect %s; %s\n", wc.queue, wc.addr, wc.ns, base, eventsNote)
	if err := w.Run(stopChan(ctx)); err != nil {
		fmt.Fprintln(stderr, "ue-prefect-temporal worker:", err)
		return abi.ExitFailed
	}
	return abi.ExitSuccess
}

func stopChan(ctx context.Context) <-chan any {
	ch := make(chan any)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

func runStart(stdout, stderr io.Writer, addr, ns, queue, id string, in uetemporal.Input, detach bool) int {
	c, err := dial(addr, ns)
	if err != nil {
		fmt.Fprintln(stderr, "ue-prefect-temporal:", err)
		return abi.ExitFailed
	}
	defer c.Close()
	if id == "" {
		id = "ue-prefect-" + time.Now().UTC().Format("20060102T150405.000000000")
	}
	ctx := context.Background()
	wr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, uetemporal.WorkflowName, in)
	if err != nil {
		fmt.Fprintln(stderr, "ue-prefect-temporal:", err)
		return abi.ExitFailed
	}
	if detach {
		fmt.Fprintf(stdout, "{\"workflow_id\":%q,\"run_id\":%q}\n", wr.GetID(), wr.GetRunID())
		return abi.ExitSuccess
	}
	var out abi.RunOutput
	if err := wr.Get(ctx, &out); err != nil {
		fmt.Fprintln(stderr, "ue-prefect-temporal: workflow", id, "did not complete:", err)
		return abi.ExitFailed
	}
	fmt.Fprintf(stderr, "ue-prefect-temporal: %s\n", out.StatusDescription)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
	return out.ExitCode
}
