package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// OutputPrefix starts the stderr lines that carry the output fields as one
// JSON object each: ue-prefect::output {"flow_run_id":"…",…}.
const OutputPrefix = "ue-prefect::output "

// parkAfter is the shortest sleep that is parked (host.RunConfig.ParkAfter).
// Loading the plugin again costs tens of milliseconds of CPU: not worth it
// for the short sleeps of retries.
const parkAfter = 5 * time.Second

// extensionOutput is the UAC extension output document.
type extensionOutput struct {
	ExitCode          int             `json:"exit_code"`
	StatusDescription string          `json:"status_description"`
	Status            string          `json:"status"`
	Changed           bool            `json:"changed"`
	Invocation        invocationDoc   `json:"invocation"`
	Result            json.RawMessage `json:"result"`
	Error             *abi.Error      `json:"error,omitempty"`
}

type invocationDoc struct {
	Extension string         `json:"extension"`
	Version   string         `json:"version"`
	Fields    map[string]any `json:"fields"`
}

// redactor replaces secrets in everything written through it.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := p
	for _, s := range r.secrets {
		if s != "" && bytes.Contains(q, []byte(s)) {
			q = bytes.ReplaceAll(q, []byte(s), []byte("****"))
		}
	}
	if _, err := r.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *redactor) redact(s string) string {
	for _, sec := range r.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "****")
		}
	}
	return s
}

// fieldsDoc echoes the inputs for invocation.fields, with secrets masked.
func fieldsDoc(inv *invocation) map[string]any {
	f := map[string]any{"action": "Launch Flow Run"}
	switch inv.command {
	case "list-workspaces":
		f["action"] = "List Workspaces"
	case "list-deployments":
		f["action"] = "List Deployments"
	}
	for i := range options {
		o := &options[i]
		if !inv.in.given[o.name] || o.noEcho {
			continue
		}
		v := *o.value(&inv.in)
		if o.url {
			v = prefect.RedactURL(v)
		}
		f[o.name] = v
	}
	cred := map[string]any{"scheme": inv.cred.Scheme()}
	if inv.cred.Scheme() != abi.SchemeNone {
		cred["source"] = inv.cred.Source()
		cred["secret"] = "****"
	}
	f["credentials"] = cred
	if inv.target != "" {
		f["target"] = inv.target
	}
	return f
}

// reportEarly reports an input error found before the plugin ran.
func reportEarly(stdout, stderr io.Writer, inv *invocation, err error) int {
	var fe *fieldError
	ae := &abi.Error{Code: abi.CodeInvalidInput, Message: err.Error()}
	if errors.As(err, &fe) {
		ae = &abi.Error{Code: abi.CodeInvalidInput, Field: fe.field, Message: fe.msg}
	}
	out := abi.Failure(ae)
	red := &redactor{w: newPeopleWriter(stderr)}
	if inv != nil {
		red.secrets = append(inv.cred.Secrets(), urlSecrets(inv)...)
	}
	fmt.Fprintf(red, "ue-prefect: %s\n", out.StatusDescription)
	doc := document(inv, out)
	_ = writeJSON(&redactor{w: stdout, secrets: red.secrets}, doc)
	if inv != nil && inv.in.ExtensionOutput != "" {
		if err := writeJSONFile(inv.in.ExtensionOutput, doc, red); err != nil {
			fmt.Fprintf(red, "ue-prefect: warning: cannot write the extension output to %s: %v\n", inv.in.ExtensionOutput, err)
		}
	}
	return out.ExitCode
}

func document(inv *invocation, out abi.RunOutput) extensionOutput {
	doc := extensionOutput{
		ExitCode:          out.ExitCode,
		StatusDescription: out.StatusDescription,
		Status:            "SUCCESS",
		Invocation:        invocationDoc{Extension: "ue-prefect", Version: version, Fields: map[string]any{}},
		Result:            out.Result,
		Error:             out.Error,
	}
	if out.ExitCode != abi.ExitSuccess {
		doc.Status = "FAILURE"
	}
	if inv != nil {
		doc.Invocation.Fields = fieldsDoc(inv)
	}
	if len(doc.Result) == 0 {
		doc.Result = json.RawMessage("{}")
	}
	var r abi.Result
	if json.Unmarshal(doc.Result, &r) == nil && r.FlowRunID != "" && !r.Reattached && inv != nil && inv.in.FlowRunID == "" {
		doc.Changed = true
	}
	return doc
}

// writeJSONFile writes v indented to path, atomically, with secrets
// redacted.
func writeJSONFile(path string, v any, red *redactor) error {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(red.redact(buf.String())))
}

// writeFileAtomic replaces path with data: a reader sees the old file or
// the new one, never a part. The file is private to the user (0600).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ue-prefect-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// stdin is what --stop-on-stdin-close watches.
var stdin io.Reader = os.Stdin

func execute(ctx context.Context, inv *invocation, stdout, stderr io.Writer, signals func(chan<- os.Signal) func(), start time.Time) int {
	secrets := inv.cred.Secrets()
	if inv.basicAlso != nil {
		secrets = append(secrets, inv.basicAlso.Secrets()...)
	}
	secrets = append(secrets, urlSecrets(inv)...)
	// stderr carries text for people (errw) and the output-field lines
	// (fieldw), one Write at a time.
	se := &lockedWriter{w: stderr}
	errw := &redactor{w: newPeopleWriter(se), secrets: secrets}
	fieldw := &redactor{w: se, secrets: secrets}
	outw := &redactor{w: stdout, secrets: secrets}
	logf := func(format string, args ...any) {
		fmt.Fprintf(errw, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	// Signals are handled from the start: one that arrives while the module
	// loads is reported by the run like any other, with its document.
	closeCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	intr := host.NewInterrupter()
	sigs := make(chan os.Signal, 2)
	stopSignals := signals(sigs)
	defer stopSignals()
	go func() {
		n := 0
		for s := range sigs {
			n++
			if n > 1 {
				logf("Second signal: stopping now")
				intr.Abort()
				continue
			}
			code, name := abi.ExitInterruptedSIGTERM, "SIGTERM"
			if s == os.Interrupt {
				code, name = abi.ExitInterruptedSIGINT, "SIGINT"
			} else if sig, ok := s.(syscall.Signal); ok {
				code, name = 128+int(sig), sigName(sig)
			}
			intr.Interrupt(name, code)
			stopWaiting() // do not hold the exit for a background cache compile
		}
	}()
	// Windows has no SIGTERM to send to a child (Process.terminate is a hard
	// kill there), so a parent may instead close our stdin: the same graceful
	// stop, on every platform. Opt-in, since a scheduler may start us with
	// stdin already at its end.
	if inv.stopOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			logf("Standard input closed: stopping as on SIGTERM")
			select {
			case sigs <- syscall.SIGTERM:
			default:
			}
		}()
	}

	var ropts []host.RuntimeOption
	if d := inv.in.CacheDir; d != "" {
		ropts = append(ropts, host.WithCacheDir(d))
	}
	if inv.noCache {
		ropts = append(ropts, host.WithoutCache())
	}
	// Loading allocates heavily and briefly (decoding and validating the
	// module); collecting during it only costs start-up time.
	gc := debug.SetGCPercent(800)
	rt, err := host.NewRuntime(ctx, host.PluginWasm, ropts...)
	debug.SetGCPercent(gc)
	if err != nil {
		out := abi.Failure(&abi.Error{Code: abi.CodeInternal, Message: err.Error()})
		fmt.Fprintf(errw, "ue-prefect: %s\n", out.StatusDescription)
		_ = writeJSON(outw, document(inv, out))
		return out.ExitCode
	}
	defer rt.Close(closeCtx)
	if inv.command == "warm-cache" {
		rt.WaitCache(ctx)
		fmt.Fprintf(errw, "ue-prefect: plugin compiled into %s\n", firstNonEmpty(inv.in.CacheDir, host.DefaultCacheDir()))
		return 0
	}

	in := abi.RunInput{Action: inv.action(), Fields: inv.fields}
	cpPath := inv.in.Checkpoint
	if cpPath != "" {
		if b, err := readBounded(cpPath, 16<<20); err == nil && len(bytes.TrimSpace(b)) > 0 {
			if !json.Valid(b) {
				return reportEarly(stdout, stderr, inv, &fieldError{"checkpoint", cpPath + " is not valid JSON; remove it to start afresh"})
			}
			in.Checkpoint, in.CheckpointSource = b, cpPath
			logf("Resuming from checkpoint %s", cpPath)
		}
	}
	fieldsPath := inv.in.OutputFields
	var lastFields abi.OutputFields
	// A file that cannot be written is said once, not at every progress.
	var cpWarned, fieldsWarned bool
	warnOnce := func(done *bool, format string, args ...any) {
		if !*done {
			*done = true
			logf("warning: "+format, args...)
		}
	}
	cfg := host.RunConfig{
		Connection: prefect.Connection{
			Target:         inv.target,
			APIBase:        inv.apiBase,
			UIBase:         inv.uiBase,
			Credential:     inv.cred,
			RequestTimeout: inv.timeout,
			UserAgent:      "ue-prefect/" + version,
		},
		Interrupter: intr,
		// A waiting task holds almost nothing: each poll sleep of 5 s or
		// more is parked, the plugin unloaded until it ends.
		ParkAfter: parkAfter,
		Log: func(l abi.LogRecord) {
			if l.Source == abi.SourceFlowRun {
				flowLog(errw, l)
				return
			}
			switch l.Level {
			case abi.LevelWarn:
				logf("warning: %s", l.Message)
			case abi.LevelError:
				logf("error: %s", l.Message)
			case abi.LevelDebug:
			default:
				logf("%s", l.Message)
			}
		},
		Progress: func(p abi.Progress) {
			if cpPath != "" && len(p.Checkpoint) > 0 {
				if err := writeFileAtomic(cpPath, p.Checkpoint); err != nil {
					warnOnce(&cpWarned, "cannot write the checkpoint to %s: %v", cpPath, err)
				}
			}
			if p.Fields == lastFields || p.Fields.FlowRunID == "" {
				return
			}
			lastFields = p.Fields
			b, _ := json.Marshal(p.Fields)
			fmt.Fprintf(fieldw, "%s%s\n", OutputPrefix, b)
			if fieldsPath != "" {
				if err := writeJSONFile(fieldsPath, p.Fields, errw); err != nil {
					warnOnce(&fieldsWarned, "cannot write the output fields to %s: %v", fieldsPath, err)
				}
			}
		},
	}
	if inv.command == "launch" {
		logf("ue-prefect %s: %s target %s", version, inv.target, inv.apiBase)
	}
	// While waiting, Prefect's event stream ends each poll interval early
	// when the flow run changes; polling stays the floor. The hub connects
	// only when the plugin first waits with wake_on.
	if inv.command == "launch" && !inv.noEvents {
		hub := prefect.NewEventHub(prefect.EventHubConfig{
			APIBase:   inv.apiBase,
			UserAgent: cfg.UserAgent,
			Log:       func(msg string) { logf("warning: %s", msg) },
		}, inv.cred)
		defer hub.Close()
		cfg.Events = hub
	}
	out, _ := rt.Run(ctx, cfg, in)
	if out.ExitCode != abi.ExitSuccess {
		logf("%s", out.StatusDescription)
	} else if inv.command == "launch" {
		logf("%s (%s)", out.StatusDescription, time.Since(start).Round(time.Millisecond))
	}
	// Keep the checkpoint when the run's fate is unknown: running again
	// resumes it. Remove it when the outcome is settled, so a later run
	// starts afresh.
	if cpPath != "" {
		switch {
		case out.Error != nil && out.Error.Code == abi.CodeInvalidInput:
			// Bad input settles nothing, and a checkpoint that is
			// unreadable or another task's is not ours to remove.
		case fateUnknown(out):
			logf("Checkpoint kept in %s: run again to resume", cpPath)
		default:
			_ = os.Remove(cpPath)
		}
	}
	doc := document(inv, out)
	if p := inv.in.ExtensionOutput; p != "" {
		if err := writeJSONFile(p, doc, errw); err != nil {
			logf("warning: cannot write the extension output to %s: %v", p, err)
		}
	}
	if strings.HasPrefix(inv.command, "list-") && !inv.jsonOut {
		var r abi.Result
		_ = json.Unmarshal(out.Result, &r)
		for _, v := range r.Values {
			fmt.Fprintln(outw, v)
		}
		return out.ExitCode
	}
	_ = writeJSON(outw, doc)
	return out.ExitCode
}

// fateUnknown reports whether a run ended without knowing what became of
// the flow run it launched or followed, so its checkpoint must be kept:
// interrupted, Prefect unreachable or its answers broken past the budgets,
// an internal fault, or a create that failed in a way that may still have
// created the run.
func fateUnknown(out abi.RunOutput) bool {
	if out.Error == nil {
		return false
	}
	switch out.Error.Code {
	case abi.CodeInterrupted, abi.CodeUnavailable, abi.CodeInternal, abi.CodeBadResponse, abi.CodeRefused:
		return true
	case abi.CodeServerError:
		var r struct {
			ID  string `json:"flow_run_id"`
			Key string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(out.Result, &r)
		return r.ID == "" && r.Key != ""
	}
	return false
}

// flowLog prints one line of the flow run's own log: its Prefect time in
// local time, its level, and the message, continuation lines indented.
func flowLog(w io.Writer, l abi.LogRecord) {
	ts := "--:--:--"
	if t, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
		ts = t.Local().Format("15:04:05")
	}
	msg := strings.ReplaceAll(strings.TrimRight(l.Message, "\n"), "\n", "\n           │ ")
	fmt.Fprintf(w, "%s │ %-5s │ %s\n", ts, strings.ToUpper(l.Level), msg)
}

// urlSecrets returns passwords embedded in the URL inputs, for redaction.
func urlSecrets(inv *invocation) []string {
	var out []string
	for i := range options {
		o := &options[i]
		if !o.url {
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(*o.value(&inv.in))); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				out = append(out, pw)
			}
		}
	}
	return out
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}
