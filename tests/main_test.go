// Package tests holds black-box and end-to-end tests of ue-prefect: the
// Wasm differential test, and e2e tests that run the built binary against
// a real Prefect server (tests/rig) with real flows served by flow.serve.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

var (
	binPath  string // the ue-prefect binary under test
	cacheDir string // its compile cache, warmed once

	// Every output of every ue-prefect process in the suite, for the secret grep.
	outputsMu sync.Mutex
	outputs   []capturedOutput
)

type capturedOutput struct {
	name string
	data string
}

// Secrets used by tests; none may appear in any output.
const (
	testAPIKey     = "pnu_e2eSECRETkey0123456789abcdefghij"
	testAuthString = "prefect-admin:e2e-Secret-Passw0rd"
	// A secret holding characters that JSON and Go's %q escape: a leak
	// into a JSON document would show only its escaped form.
	testQuotedPassword = `e2e-"Quo\ted\Passw0rd`
	testQuotedAuth     = "prefect-admin:" + testQuotedPassword
	// The UAC extension suite's credential password (host/uac/tests).
	uacTestPassword = `uac-S3"cret\Passw0rd!`
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "ue-prefect-tests-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "ue-prefect")
		cacheDir = filepath.Join(dir, "cache")
		build := exec.Command("go", "build", "-o", binPath, "./host/cmd/ue-prefect")
		build.Dir = ".."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building ue-prefect:", err)
			return 1
		}
		warm := exec.Command(binPath, "warm-cache", "--cache-dir", cacheDir)
		if out, err := warm.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "warm-cache: %v\n%s", err, out)
			return 1
		}
		code := m.Run()
		rig.Shutdown()
		if n, hits := grepSecrets(); len(hits) > 0 {
			fmt.Fprintf(os.Stderr, "SECRET LEAK: %d of %d outputs contain a test secret: %s\n", len(hits), n, strings.Join(hits, ", "))
			code = 1
		} else if n > 0 {
			line := fmt.Sprintf("secret grep: %d outputs of ue-prefect scanned for %d test secrets, 0 hits\n", n, len(secretForms()))
			fmt.Fprint(os.Stderr, line)
			// go test hides a passing package's output; make test prints this file.
			if p := os.Getenv("UE_PREFECT_TEST_REPORT"); p != "" {
				if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
					fmt.Fprint(f, line)
					f.Close()
				}
			}
		}
		return code
	}()
	os.Exit(code)
}

// secretForms is every test secret as it may leak: as is, base64-encoded
// (a basic-auth header), and JSON-escaped (inside a document or a log
// line that quotes it, where `"` and `\` are escaped).
func secretForms() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range []string{testAPIKey, testAuthString, "e2e-Secret-Passw0rd", testQuotedAuth, testQuotedPassword, uacTestPassword} {
		add(s)
		add(base64.StdEncoding.EncodeToString([]byte(s)))
		j, _ := json.Marshal(s)
		add(string(j[1 : len(j)-1]))
		add(strings.Trim(fmt.Sprintf("%q", s), `"`))
	}
	return out
}

// leaks reports whether data holds any form of a test secret.
func leaks(data string) bool {
	for _, s := range secretForms() {
		if strings.Contains(data, s) {
			return true
		}
	}
	return false
}

func grepSecrets() (int, []string) {
	outputsMu.Lock()
	defer outputsMu.Unlock()
	var hits []string
	for _, o := range outputs {
		if leaks(o.data) {
			hits = append(hits, o.name)
		}
	}
	return len(outputs), hits
}

func capture(name, data string) {
	outputsMu.Lock()
	defer outputsMu.Unlock()
	outputs = append(outputs, capturedOutput{name, data})
}

// result is what one ue-prefect process did.
type result struct {
	code    int
	stdout  string
	stderr  string
	doc     extDoc
	fields  []map[string]string // each ue-prefect::output line, in order
	elapsed time.Duration
}

type extDoc struct {
	ExitCode          int             `json:"exit_code"`
	StatusDescription string          `json:"status_description"`
	Status            string          `json:"status"`
	Changed           bool            `json:"changed"`
	Invocation        json.RawMessage `json:"invocation"`
	Result            map[string]any  `json:"result"`
	Error             *struct {
		Code, Field, Message string
	} `json:"error"`
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stderr\n%s--- stdout\n%s", r.code, r.elapsed.Round(time.Millisecond), r.stderr, r.stdout)
}

func (r result) str(key string) string {
	s, _ := r.doc.Result[key].(string)
	return s
}

// baseEnv is a clean environment: nothing from the developer's Prefect
// profile may leak into a test.
func baseEnv(extra map[string]string) []string {
	vars := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "UE_PREFECT_CACHE_DIR": cacheDir}
	for k, v := range extra {
		vars[k] = v
	}
	var env []string
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// proc is a started ue-prefect process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr syncBuffer
	start  time.Time
	done   chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startUE(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = baseEnv(env)
	return startProc(t, cmd)
}

// startProc starts cmd, capturing its output, and kills it at the end of
// the test if it is still running.
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitFor waits until stderr contains s.
func (p *proc) waitFor(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stderr.String(), s) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.stderr.String(), s)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// wait waits for the process to end and parses what it wrote.
func (p *proc) wait(timeout time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("ue-prefect did not end within %s\n--- stderr\n%s", timeout, p.stderr.String())
	}
	r := result{code: p.cmd.ProcessState.ExitCode(), stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.start)}
	capture(p.t.Name()+" stdout", r.stdout)
	capture(p.t.Name()+" stderr", r.stderr)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return r // killed: no document expected
	}
	if err := json.Unmarshal([]byte(r.stdout), &r.doc); err != nil && !strings.HasPrefix(strings.Join(p.cmd.Args, " "), binPath+" list-") {
		p.t.Fatalf("stdout is not one JSON document: %v\n%s", err, r)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ue-prefect::output "); ok {
			var f map[string]string
			if err := json.Unmarshal([]byte(rest), &f); err != nil {
				p.t.Errorf("bad output-field line %q: %v", sc.Text(), err)
			}
			r.fields = append(r.fields, f)
		}
	}
	return r
}

// runUE runs ue-prefect to its end.
func runUE(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return startUE(t, env, args...).wait(4 * time.Minute)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// slow marks a test that costs real flow runs; under -short it is skipped
// unless CI requires the e2e suite.
func e2e(t *testing.T) *rig.Env {
	t.Helper()
	if runtime.GOOS != "linux" && !rig.Required() {
		t.Skip("the e2e rig runs on Linux")
	}
	return rig.Shared(t)
}
