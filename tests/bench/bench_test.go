// Package bench holds the `make bench` harness: start-up, launch and
// wait figures of the built ue-prefect binary side by side with the Prefect
// CLI, and the per-step cost of the state machine natively and in Wasm.
//
// Sections 1-3 (BenchmarkStartup, BenchmarkLaunchWait, BenchmarkLaunchOnly)
// repeat their measurements inside one call, report medians with
// b.ReportMetric and print a table; they ignore b.N. They take far longer
// than the benchmark time, so `go test -bench .` calls each of them once.
// Section 4 (BenchmarkStep) is an ordinary b.Loop benchmark; do not run it
// with -benchtime 1x. It is declared before the server sections so that it
// runs while no Prefect server is up. See README.md.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// Repetitions.
const (
	nStartWarm    = 15
	nStartCold    = 7
	nStartNoCache = 3
	nStartPrefect = 7
	nLaunch       = 7
	nWait         = 5
)

var (
	tmpRoot string // everything this binary writes; removed in TestMain

	summaryMu sync.Mutex
	summary   []string // each section's table, printed again at the end
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "ue-prefect-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	code := m.Run()
	rig.Shutdown()
	os.RemoveAll(tmpRoot)
	summaryMu.Lock()
	if len(summary) > 0 {
		fmt.Printf("\n==================== ue-prefect bench summary (%s, %d sections) ====================\n",
			time.Since(t0).Round(time.Second), len(summary))
		slices.SortStableFunc(summary, func(a, b string) int { return strings.Compare(a[:6], b[:6]) }) // by "== N."
		for _, s := range summary {
			fmt.Print(s)
		}
	}
	summaryMu.Unlock()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Prerequisites

type tools struct {
	root     string // repository root
	ue       string // bin/ue-prefect
	prefect  string // .venv/bin/prefect
	warmDir  string // a compile cache filled by `ue-prefect warm-cache`
	prefHome string // PREFECT_HOME for the Prefect CLI, initialised once
}

var (
	toolsOnce sync.Once
	toolsVal  tools
	toolsErr  error
)

// need returns the binaries under test, or fails the benchmark with the
// reason: nothing is skipped silently.
func need(b *testing.B) tools {
	b.Helper()
	toolsOnce.Do(func() { toolsVal, toolsErr = findTools() })
	if toolsErr != nil {
		b.Fatal(toolsErr)
	}
	return toolsVal
}

func findTools() (tools, error) {
	var t tools
	root, err := rig.RepoRoot()
	if err != nil {
		return t, err
	}
	t.root = root
	t.ue = filepath.Join(root, "bin", "ue-prefect")
	if fi, err := os.Stat(t.ue); err != nil || fi.Mode()&0o111 == 0 {
		return t, fmt.Errorf("no executable %s (run `make build`, or `make bench` which builds it): %v", t.ue, err)
	}
	py, err := rig.Python()
	if err != nil {
		return t, fmt.Errorf("the Prefect venv is missing (run `make venv`): %w", err)
	}
	t.prefect = filepath.Join(filepath.Dir(py), "prefect")
	if _, err := os.Stat(t.prefect); err != nil {
		return t, fmt.Errorf("no Prefect CLI in the venv (run `make venv`): %w", err)
	}
	t.warmDir = filepath.Join(tmpRoot, "warm-cache")
	warm := exec.Command(t.ue, "warm-cache", "--cache-dir", t.warmDir)
	warm.Env = cleanEnv(nil)
	if out, err := warm.CombinedOutput(); err != nil {
		return t, fmt.Errorf("%s warm-cache: %v\n%s", t.ue, err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(t.warmDir, "ok-*")); len(m) == 0 {
		return t, fmt.Errorf("warm-cache left no ok-* marker in %s", t.warmDir)
	}
	t.prefHome = filepath.Join(tmpRoot, "prefect-home")
	if err := os.MkdirAll(t.prefHome, 0o700); err != nil {
		return t, err
	}
	// One unmeasured CLI call creates PREFECT_HOME's files and warms the
	// page cache and __pycache__ for the measured ones.
	v := exec.Command(t.prefect, "version")
	v.Env = cleanEnv(map[string]string{"PREFECT_HOME": t.prefHome})
	if out, err := v.CombinedOutput(); err != nil {
		return t, fmt.Errorf("%s version: %v\n%s", t.prefect, err, out)
	}
	return t, nil
}

// cleanEnv is PATH and HOME plus extra: nothing from the caller's Prefect
// profile or ue-prefect settings leaks in.
func cleanEnv(extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// ---------------------------------------------------------------------------
// Statistics and tables

type durStats struct {
	n             int
	med, min, max time.Duration
}

func stats(ds []time.Duration) durStats {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return durStats{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return durStats{n: n, med: med, min: s[0], max: s[n-1]}
}

func medianInt(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// loadLine reports the machine's load during a section: these are wall
// times, and on a shared machine other processes inflate them.
func loadLine(before string) string {
	after := loadavg()
	var l1 float64
	fmt.Sscan(before, &l1)
	var l1b float64
	fmt.Sscan(after, &l1b)
	warn := ""
	if n := float64(runtime.NumCPU()); l1 > n || l1b > n {
		warn = "  WARNING: busy machine (load > CPUs): wall times are inflated"
	}
	return fmt.Sprintf("   load average (1/5/15 min) at start %s, at end %s, %d CPUs%s\n", before, after, runtime.NumCPU(), warn)
}

// publish prints a section's table now and keeps it for the final summary.
func publish(b *testing.B, table string) {
	b.Helper()
	fmt.Print("\n" + table)
	summaryMu.Lock()
	summary = append(summary, "\n"+table)
	summaryMu.Unlock()
}

// once makes the repeat-inside benchmarks measure only on their first call
// (Go may call a benchmark again with a larger b.N); later calls re-report.
type once struct {
	done    bool
	metrics [][2]any // value, unit
}

func (o *once) replay(b *testing.B) bool {
	if !o.done {
		return false
	}
	for _, m := range o.metrics {
		b.ReportMetric(m[0].(float64), m[1].(string))
	}
	return true
}

func (o *once) report(b *testing.B, v float64, unit string) {
	b.ReportMetric(v, unit)
	o.metrics = append(o.metrics, [2]any{v, unit})
}

// ---------------------------------------------------------------------------
// Processes

// started is a child process in its own process group.
type started struct {
	cmd    *exec.Cmd
	t0     time.Time
	stderr *bytes.Buffer
	stdout *bytes.Buffer
	done   chan struct{}
	wall   time.Duration // set when done
}

func start(argv []string, env []string) (*started, error) {
	p := &started{cmd: exec.Command(argv[0], argv[1:]...), stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Dir = tmpRoot
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.t0 = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		p.wall = time.Since(p.t0)
		close(p.done)
	}()
	return p, nil
}

// kill ends the process group and waits for the process.
func (p *started) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// maxRSSKiB is ru_maxrss; see timeBin for why it is only a fallback.
func (p *started) maxRSSKiB() int64 {
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // KiB on Linux
	}
	return 0
}

// output is the tail of what the process wrote, for failure messages.
func (p *started) output() string {
	tail := func(s string) string {
		if len(s) > 3000 {
			return "…" + s[len(s)-3000:]
		}
		return s
	}
	return "--- stderr\n" + tail(p.stderr.String()) + "\n--- stdout\n" + tail(p.stdout.String())
}

// ---------------------------------------------------------------------------
// 1. Start-up to the first HTTP request

// firstRequest starts argv with PREFECT_API_URL pointing at a fresh loopback
// listener and returns the time from just before exec.Cmd.Start to the
// instant the first connection was accepted, plus the first request line.
// The process group is killed afterwards.
func firstRequest(argv []string, extra map[string]string) (time.Duration, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	defer ln.Close()
	type accepted struct {
		at   time.Time
		conn net.Conn
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		acc <- accepted{time.Now(), c}
	}()
	env := map[string]string{"PREFECT_API_URL": "http://" + ln.Addr().String() + "/api"}
	for k, v := range extra {
		env[k] = v
	}
	p, err := start(argv, cleanEnv(env))
	if err != nil {
		return 0, "", err
	}
	defer p.kill()
	select {
	case a := <-acc:
		d := a.at.Sub(p.t0)
		// Read the request line, to show what was asked (and that it is HTTP).
		_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, rerr := bufio.NewReader(a.conn).ReadString('\n')
		a.conn.Close()
		line = strings.TrimSpace(line)
		if rerr != nil || !strings.Contains(line, " HTTP/1.") {
			return d, line, fmt.Errorf("%s: first connection did not carry an HTTP request line (%q, %v)", argv[0], line, rerr)
		}
		return d, line, nil
	case <-p.done:
		return 0, "", fmt.Errorf("%s exited (%v) before making a request\n%s", strings.Join(argv, " "), p.cmd.ProcessState, p.output())
	case <-time.After(90 * time.Second):
		return 0, "", fmt.Errorf("%s: no request within 90 s\n%s", strings.Join(argv, " "), p.output())
	}
}

type startCase struct {
	name  string
	n     int
	argv  []string
	env   func(i int) (map[string]string, func()) // per-run env and cleanup
	times []time.Duration
	line  string
}

var startupOnce once

// BenchmarkStartup: time from exec to the first HTTP request (section 1).
func BenchmarkStartup(b *testing.B) {
	if startupOnce.replay(b) {
		return
	}
	tl := need(b)
	load0 := loadavg()
	dep := map[string]string{"UE_PREFECT_DEPLOYMENT": "ok/ok"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range dep {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []*startCase{
		{name: "ue-prefect, warm cache", n: nStartWarm, argv: []string{tl.ue},
			env: func(int) (map[string]string, func()) { return with("UE_PREFECT_CACHE_DIR", tl.warmDir), func() {} }},
		{name: "ue-prefect, cold cache", n: nStartCold, argv: []string{tl.ue},
			env: func(i int) (map[string]string, func()) {
				dir := filepath.Join(tmpRoot, fmt.Sprintf("cold-%d", i))
				if err := os.MkdirAll(dir, 0o700); err != nil {
					b.Fatal(err)
				}
				return with("UE_PREFECT_CACHE_DIR", dir), func() { os.RemoveAll(dir) }
			}},
		{name: "ue-prefect --no-cache (compiler)", n: nStartNoCache, argv: []string{tl.ue, "--no-cache"},
			env: func(int) (map[string]string, func()) {
				return with("UE_PREFECT_CACHE_DIR", filepath.Join(tmpRoot, "unused-cache")), func() {}
			}},
		{name: "prefect deployment run ok/ok", n: nStartPrefect, argv: []string{tl.prefect, "deployment", "run", "ok/ok"},
			env: func(int) (map[string]string, func()) {
				return map[string]string{"PREFECT_HOME": tl.prefHome}, func() {}
			}},
	}
	run := func(c *startCase, i int, keep bool) {
		env, cleanup := c.env(i)
		defer cleanup()
		d, line, err := firstRequest(c.argv, env)
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		c.line = line
		if keep {
			c.times = append(c.times, d)
		}
	}
	// One unmeasured run of each (page cache, __pycache__), then rounds
	// that interleave the cases so that drift hits all of them alike.
	for _, c := range cases {
		run(c, -1, false)
	}
	for i := 0; ; i++ {
		ran := false
		for _, c := range cases {
			if i < c.n {
				run(c, i, true)
				ran = true
			}
		}
		if !ran {
			break
		}
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "== 1. Start-up: exec -> first HTTP connection accepted (loopback listener, process killed after) ==\n")
	fmt.Fprintf(&sb, "%-36s %3s %10s %10s %10s   %s\n", "case", "N", "median", "min", "max", "first request line")
	for _, c := range cases {
		s := stats(c.times)
		fmt.Fprintf(&sb, "%-36s %3d %8.1fms %8.1fms %8.1fms   %s\n", c.name, s.n, ms(s.med), ms(s.min), ms(s.max), c.line)
	}
	warm, cold, nocache, pf := stats(cases[0].times), stats(cases[1].times), stats(cases[2].times), stats(cases[3].times)
	fmt.Fprintf(&sb, "targets: warm <= 50 ms -> %s; cold <= 400 ms -> %s\n", verdict(warm.med, 50*time.Millisecond), verdict(cold.med, 400*time.Millisecond))
	fmt.Fprintf(&sb, "prefect CLI / ue-prefect warm = %.1f×   (prefect CLI / ue-prefect cold = %.1f×)\n",
		float64(pf.med)/float64(warm.med), float64(pf.med)/float64(cold.med))
	sb.WriteString(loadLine(load0))
	publish(b, sb.String())
	startupOnce.report(b, ms(warm.med), "warm-ms")
	startupOnce.report(b, ms(cold.med), "cold-ms")
	startupOnce.report(b, ms(nocache.med), "nocache-ms")
	startupOnce.report(b, ms(pf.med), "prefect-ms")
	startupOnce.report(b, float64(pf.med)/float64(warm.med), "prefect/warm")
	startupOnce.done = true
}

func verdict(got, target time.Duration) string {
	if got <= target {
		return fmt.Sprintf("met (%.1f ms)", ms(got))
	}
	return fmt.Sprintf("MISSED (%.1f ms, %.1f× the target)", ms(got), float64(got)/float64(target))
}

// ---------------------------------------------------------------------------
// 4. Per-step cost of the state machine, native vs Wasm

// waitScenario is wait_completed from plugin/flowrun/testdata: the step
// measured answers the fourth GET /flow_runs/RUN (RUNNING after RUNNING),
// the steady state of --wait.
const waitScenario = `
input {"target":"server","api_base":"http://127.0.0.1:4200/api","invocation_id":"inv-1","seed":42,"fields":{"deployment":"etl/nightly","wait":"true","poll_interval":"1"}}
GET /deployments/name/etl/nightly -> 200 @deployment
POST /deployments/DEP/create_flow_run -> 201 @run(SCHEDULED,Scheduled)
GET /flow_runs/RUN -> 200 @run(SCHEDULED,Late)
GET /flow_runs/RUN -> 200 @run(PENDING,Pending)
GET /flow_runs/RUN -> 200 @run(RUNNING,Running)
GET /flow_runs/RUN -> 200 @run(RUNNING,Running)
GET /flow_runs/RUN -> 200 @run(COMPLETED,Completed)
`

// readStep drives the machine natively to the fourth read of the flow run
// and returns the checkpoint before it and the event that answers it.
func readStep(b *testing.B) ([]byte, abi.Event) {
	b.Helper()
	sc, err := flowruntest.Parse(waitScenario)
	if err != nil {
		b.Fatal(err)
	}
	s := flowruntest.NewScript(sc)
	m, cmds := flowrun.Start(sc.Input)
	reads := 0
	for range 100 {
		var ev *abi.Event
		for _, c := range cmds {
			switch c.Kind {
			case abi.CommandLog, abi.CommandProgress:
			case abi.CommandFinish:
				b.Fatalf("machine finished before the read: %+v", c.Finish)
			case abi.CommandCredential:
				r := s.Credential(abi.CredentialRequest{})
				ev = &abi.Event{Kind: abi.EventCredential, Credential: &r}
			case abi.CommandSleep:
				r := s.Sleep(*c.Sleep)
				ev = &abi.Event{Kind: abi.EventWoke, Woke: &r}
			case abi.CommandHTTP:
				isRead := c.HTTP.Method == "GET" && c.HTTP.Path == "/flow_runs/"+flowruntest.RunID
				if isRead {
					reads++
				}
				cp := m.Checkpoint()
				r := s.HTTP(*c.HTTP)
				ev = &abi.Event{Kind: abi.EventHTTP, HTTP: &r}
				if isRead && reads == 4 {
					if !strings.Contains(string(r.Body), `"RUNNING"`) {
						b.Fatalf("fourth read answers %s, want RUNNING", r.Body)
					}
					return cp, *ev
				}
			}
		}
		if ev == nil {
			b.Fatalf("no command to answer in %+v", cmds)
		}
		cmds = m.Step(*ev)
	}
	b.Fatal("the machine never reached the fourth read")
	return nil, abi.Event{}
}

// nativeStep is what the plugin's step export does around the machine,
// without Wasm: no JSON boundary.
func nativeStep(cp []byte, ev abi.Event) (abi.StepOutput, error) {
	m, err := flowrun.Restore(cp)
	if err != nil {
		return abi.StepOutput{}, err
	}
	cmds := m.Step(ev)
	return abi.StepOutput{Checkpoint: m.Checkpoint(), Commands: cmds}, nil
}

// nativeExport is the whole step export natively, JSON boundary included:
// the host's marshal, the plugin's check and decode, Restore, Step,
// Checkpoint, the plugin's marshal and the host's decode.
func nativeExport(in abi.StepInput) (abi.StepOutput, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return abi.StepOutput{}, err
	}
	if e := flowrun.CheckJSON(string(input), flowrun.MaxResponseDepth); e != "" {
		return abi.StepOutput{}, errors.New(e)
	}
	var pin abi.StepInput
	if err := json.Unmarshal(input, &pin); err != nil {
		return abi.StepOutput{}, err
	}
	so, err := nativeStep(pin.Checkpoint, *pin.Event)
	if err != nil {
		return so, err
	}
	out, err := json.Marshal(so)
	if err != nil {
		return so, err
	}
	var res abi.StepOutput
	err = json.Unmarshal(out, &res)
	return res, err
}

// canon makes step outputs comparable (the checkpoint's JSON key order and
// spacing may differ across the JSON boundary).
func canon(b *testing.B, so abi.StepOutput) string {
	b.Helper()
	var cp any
	if err := json.Unmarshal(so.Checkpoint, &cp); err != nil {
		b.Fatalf("checkpoint: %v", err)
	}
	out, err := json.Marshal(struct {
		C any
		K []abi.Command
	}{cp, so.Commands})
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

var (
	stepMu      sync.Mutex
	stepResults = map[string]time.Duration{} // ns/op of each sub-benchmark's final run
	stepOrder   []string
)

func recordStep(name string, b *testing.B, n int) {
	if n <= 1 {
		return
	}
	stepMu.Lock()
	defer stepMu.Unlock()
	if _, ok := stepResults[name]; !ok {
		stepOrder = append(stepOrder, name)
	}
	stepResults[name] = b.Elapsed() / time.Duration(n)
}

// BenchmarkStep: one steady-state poll step (a read of a RUNNING flow run),
// natively and through the Wasm plugin's pure step export (section 4).
func BenchmarkStep(b *testing.B) {
	ctx := context.Background()
	load0 := loadavg()
	cp, ev := readStep(b)
	in := abi.StepInput{Checkpoint: cp, Event: &ev}
	want, err := nativeStep(cp, ev)
	if err != nil {
		b.Fatal(err)
	}
	if len(want.Commands) == 0 || !slices.ContainsFunc(want.Commands, func(c abi.Command) bool { return c.Kind == abi.CommandSleep }) {
		b.Fatalf("the measured step should end in a poll sleep; commands %+v", want.Commands)
	}
	wantCanon := canon(b, want)

	warmDir := filepath.Join(tmpRoot, "step-cache")
	rtCompiled, err := host.NewRuntime(ctx, host.PluginWasm, host.WithCacheDir(warmDir))
	if err != nil {
		b.Fatal(err)
	}
	rtCompiled.WaitCache(ctx) // fill the cache; a second runtime then loads compiled code
	rtCompiled.Close(ctx)
	if rtCompiled, err = host.NewRuntime(ctx, host.PluginWasm, host.WithCacheDir(warmDir)); err != nil {
		b.Fatal(err)
	}
	defer rtCompiled.Close(ctx)
	rtInterp, err := host.NewRuntime(ctx, host.PluginWasm, host.WithInterpreter())
	if err != nil {
		b.Fatal(err)
	}
	defer rtInterp.Close(ctx)

	check := func(name string, so abi.StepOutput, err error) {
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		if got := canon(b, so); got != wantCanon {
			b.Fatalf("%s: step output differs from native\n got %s\nwant %s", name, got, wantCanon)
		}
	}
	so, err := nativeExport(in)
	check("native+json", so, err)
	so, err = rtCompiled.Step(ctx, in)
	check("wasm compiled", so, err)
	so, err = rtInterp.Step(ctx, in)
	check("wasm interpreter", so, err)

	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			if _, err := nativeStep(cp, ev); err != nil {
				b.Fatal(err)
			}
		}
		recordStep("native (Restore+Step+Checkpoint)", b, n)
	})
	b.Run("native+json", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			if _, err := nativeExport(in); err != nil {
				b.Fatal(err)
			}
		}
		recordStep("native + JSON boundary (export body)", b, n)
	})
	b.Run("wasm-compiled", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			if _, err := rtCompiled.Step(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
		recordStep("wasm, compiled (warm cache), rt.Step", b, n)
	})
	// An input the export rejects at once: what is left is the cost of a
	// fresh module instance (Go runtime init inside the plugin) plus the
	// call and its error path.
	bad := abi.StepInput{}
	if _, err := rtCompiled.Step(ctx, bad); err == nil {
		b.Fatal("an empty StepInput should be rejected")
	}
	b.Run("wasm-compiled-reject", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n++
			if _, err := rtCompiled.Step(ctx, bad); err == nil {
				b.Fatal("no error")
			}
		}
		recordStep("  of which: instance + rejected call (compiled)", b, n)
	})
	b.Run("wasm-interpreter", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			if _, err := rtInterp.Step(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
		recordStep("wasm, interpreter (cold-cache path), rt.Step", b, n)
	})
	b.Run("wasm-interpreter-reject", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n++
			if _, err := rtInterp.Step(ctx, bad); err == nil {
				b.Fatal("no error")
			}
		}
		recordStep("  of which: instance + rejected call (interpreter)", b, n)
	})

	stepMu.Lock()
	defer stepMu.Unlock()
	if len(stepResults) == 0 {
		b.Logf("BenchmarkStep ran with b.N=1 (-benchtime 1x?): no per-step table")
		return
	}
	base := stepResults["native (Restore+Step+Checkpoint)"]
	exp := stepResults["native + JSON boundary (export body)"]
	var sb strings.Builder
	sb.WriteString("== 4. Per-step cost: one poll step (read of a RUNNING flow run), native vs Wasm ==\n")
	fmt.Fprintf(&sb, "%-46s %14s %12s %14s\n", "variant", "ns/op", "× native", "× native+json")
	for _, name := range stepOrder {
		d := stepResults[name]
		fmt.Fprintf(&sb, "%-46s %14d %11.1f× %13.1f×\n", name, d.Nanoseconds(), float64(d)/float64(base), float64(d)/float64(exp))
	}
	if wc, ok := stepResults["wasm, compiled (warm cache), rt.Step"]; ok && base > 0 {
		fmt.Fprintf(&sb, "wasm compiled / native = %.1f×  (rt.Step instantiates the plugin afresh for every call)\n", float64(wc)/float64(base))
		if inst, ok := stepResults["  of which: instance + rejected call (compiled)"]; ok && exp > 0 {
			net := wc - inst
			fmt.Fprintf(&sb, "wasm compiled minus instance = %d ns/op = %.1f× native+json (the step itself, in Wasm)\n", net.Nanoseconds(), float64(net)/float64(exp))
		}
	}
	sb.WriteString(loadLine(load0))
	publish(b, sb.String())
}

// ---------------------------------------------------------------------------
// 2./3. End to end against a real Prefect server

var (
	envMu   sync.Mutex
	srv     *rig.Server
	flows   *rig.Flows
	depID   string
	srvInfo string
)

// server returns the shared real server. With serving=true the test
// deployments are being served (flow runs execute); with serving=false the
// serving process is stopped (deployments stay registered, runs stay
// SCHEDULED) so that launched runs cost the machine nothing afterwards.
func server(b *testing.B, serving bool) *rig.Server {
	b.Helper()
	envMu.Lock()
	defer envMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if srv == nil {
		s, err := rig.StartServer(ctx, rig.ServerOptions{})
		if err != nil {
			b.Fatalf("rig: start the Prefect server: %v", err)
		}
		srv = s
		srvInfo = fmt.Sprintf("prefect server healthy after %s", s.StartupTime.Round(time.Millisecond))
	}
	if serving && flows == nil {
		f, err := rig.ServeFlows(ctx, srv)
		if err != nil {
			b.Fatalf("rig: serve flows.py: %v", err)
		}
		flows = f
		srvInfo += fmt.Sprintf("; flows.py READY after %s", f.StartupTime.Round(time.Millisecond))
		if depID == "" {
			if depID, err = srv.DeploymentID(ctx, "ok", "ok"); err != nil {
				b.Fatalf("rig: deployment ok/ok: %v", err)
			}
		}
	}
	if !serving {
		if depID == "" { // deployments exist only once flows.py has registered them
			f, err := rig.ServeFlows(ctx, srv)
			if err != nil {
				b.Fatalf("rig: serve flows.py: %v", err)
			}
			flows = f
			if depID, err = srv.DeploymentID(ctx, "ok", "ok"); err != nil {
				b.Fatalf("rig: deployment ok/ok: %v", err)
			}
		}
		if flows != nil {
			if err := flows.Stop(); err != nil {
				b.Fatalf("rig: stop flows.py: %v", err)
			}
			flows = nil
		}
	}
	return srv
}

type e2eCase struct {
	name string
	argv []string
	env  map[string]string
	ok   func(p *started) error // checks the outcome of one run
	// runID extracts the flow run's id from the output (section 3), to read
	// the run's server-side lifetime (created -> end_time).
	runID func(p *started) string
	wall  []time.Duration
	rss   []int64
	life  []time.Duration
}

// timeBin is GNU time, used for peak RSS. The rusage Go's os/exec returns
// is not usable for that: Go starts children with vfork (CLONE_VM), so the
// kernel records the harness's own RSS high-water mark in the child's
// ru_maxrss at exec. /usr/bin/time forks the command from its own small
// process, so its %M is the command's own peak.
var timeBin = func() string {
	if p, err := exec.LookPath("/usr/bin/time"); err == nil {
		return p
	}
	return ""
}()

// rssNote says how peak RSS was measured, for the tables.
func rssNote() string {
	if timeBin != "" {
		return "peak RSS = GNU time %M (the command's own maximum resident set)"
	}
	return fmt.Sprintf("peak RSS = rusage ru_maxrss: NO /usr/bin/time, so each figure is max(command, this harness's own peak at exec = %.1f MiB) and may be the harness's", float64(selfHWMKiB())/1024)
}

// selfHWMKiB is this process's VmHWM.
func selfHWMKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib)
			return kib
		}
	}
	return 0
}

// runToEnd runs argv to its end (ceiling timeout) and checks exit 0. It
// returns the process and its peak RSS in KiB.
func runToEnd(c *e2eCase, timeout time.Duration) (*started, int64, error) {
	argv := c.argv
	var rssFile string
	if timeBin != "" {
		f, err := os.CreateTemp(tmpRoot, "rss-")
		if err != nil {
			return nil, 0, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		argv = append([]string{timeBin, "-f", "%M", "-o", rssFile}, argv...)
	}
	p, err := start(argv, cleanEnv(c.env))
	if err != nil {
		return nil, 0, err
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return p, 0, fmt.Errorf("%s: did not end within %s\n%s", c.name, timeout, p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return p, 0, fmt.Errorf("%s: exit %d\n%s", c.name, code, p.output())
	}
	if c.ok != nil {
		if err := c.ok(p); err != nil {
			return p, 0, fmt.Errorf("%s: %v\n%s", c.name, err, p.output())
		}
	}
	rss := p.maxRSSKiB()
	if rssFile != "" {
		b, err := os.ReadFile(rssFile)
		lines := strings.Fields(string(b))
		if err != nil || len(lines) == 0 {
			return p, 0, fmt.Errorf("%s: no peak RSS from %s (%v)", c.name, timeBin, err)
		}
		if _, err := fmt.Sscan(lines[len(lines)-1], &rss); err != nil || rss <= 0 {
			return p, 0, fmt.Errorf("%s: peak RSS %q from %s: %v", c.name, b, timeBin, err)
		}
	}
	return p, rss, nil
}

func measureE2E(b *testing.B, cases []*e2eCase, n, warmups int, timeout time.Duration) {
	b.Helper()
	for w := 0; w < warmups; w++ {
		for _, c := range cases {
			if _, _, err := runToEnd(c, timeout); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
	}
	for i := 0; i < n; i++ {
		for _, c := range cases {
			p, rss, err := runToEnd(c, timeout)
			if err != nil {
				b.Fatal(err)
			}
			c.wall = append(c.wall, p.wall)
			c.rss = append(c.rss, rss)
			if c.runID != nil {
				life, err := lifetime(c.runID(p))
				if err != nil {
					b.Fatalf("%s: %v\n%s", c.name, err, p.output())
				}
				c.life = append(c.life, life)
			}
		}
	}
}

func e2eTable(title string, cases []*e2eCase) string {
	var sb strings.Builder
	sb.WriteString(title)
	life := cases[0].runID != nil
	fmt.Fprintf(&sb, "%-56s %3s %10s %10s %10s %12s", "case", "N", "wall med", "min", "max", "peak RSS med")
	if life {
		fmt.Fprintf(&sb, " %16s %14s", "run created->end", "wall - that")
	}
	sb.WriteString("\n")
	for _, c := range cases {
		s := stats(c.wall)
		fmt.Fprintf(&sb, "%-56s %3d %9.0fms %9.0fms %9.0fms %8.1f MiB", c.name, s.n, ms(s.med), ms(s.min), ms(s.max), float64(medianInt(c.rss))/1024)
		if life {
			over := make([]time.Duration, len(c.wall))
			for i := range c.wall {
				over[i] = c.wall[i] - c.life[i]
			}
			fmt.Fprintf(&sb, " %14.0fms %12.0fms", ms(stats(c.life).med), ms(stats(over).med))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("   (" + rssNote() + ")\n")
	return sb.String()
}

// lifetime reads a flow run from the server and returns end_time - created.
func lifetime(id string) (time.Duration, error) {
	if id == "" {
		return 0, errors.New("no flow run id in the output")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := srv.ReadFlowRun(ctx, id)
	if err != nil {
		return 0, err
	}
	created, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(run["created"]))
	end, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(run["end_time"]))
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("flow run %s: created %v, end_time %v: %w", id, run["created"], run["end_time"], err)
	}
	return end.Sub(created), nil
}

var uuidRE = regexp.MustCompile(`UUID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

func prefectRunID(p *started) string {
	if m := uuidRE.FindStringSubmatch(p.stdout.String()); m != nil {
		return m[1]
	}
	return ""
}

func ueRunID(p *started) string {
	var doc struct {
		Result struct {
			ID string `json:"flow_run_id"`
		} `json:"result"`
	}
	_ = json.Unmarshal(p.stdout.Bytes(), &doc)
	return doc.Result.ID
}

// ueDoc checks ue-prefect's JSON document: exit_code 0 and the run's state.
func ueDoc(wantState string) func(p *started) error {
	return func(p *started) error {
		var doc struct {
			ExitCode int            `json:"exit_code"`
			Result   map[string]any `json:"result"`
		}
		if err := json.Unmarshal(p.stdout.Bytes(), &doc); err != nil {
			return fmt.Errorf("stdout is not one JSON document: %v", err)
		}
		if doc.ExitCode != 0 {
			return fmt.Errorf("document exit_code %d", doc.ExitCode)
		}
		if !strings.Contains(p.stderr.String()+p.stdout.String(), wantState) {
			return fmt.Errorf("output does not mention %s", wantState)
		}
		return nil
	}
}

func contains(s string) func(p *started) error {
	return func(p *started) error {
		if !strings.Contains(p.stdout.String()+p.stderr.String(), s) {
			return fmt.Errorf("output does not contain %q", s)
		}
		return nil
	}
}

var waitOnce, launchOnce once

// BenchmarkLaunchWait: launch ok/ok (seconds=0) and wait until COMPLETED
// (section 3). Flow pickup by the runner dominates both figures.
func BenchmarkLaunchWait(b *testing.B) {
	if waitOnce.replay(b) {
		return
	}
	tl := need(b)
	s := server(b, true)
	load0 := loadavg()
	cases := []*e2eCase{
		{name: "ue-prefect --wait --poll-interval 1", argv: []string{tl.ue, "--wait", "--poll-interval", "1"},
			env: map[string]string{"PREFECT_API_URL": s.URL, "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_CACHE_DIR": tl.warmDir,
				"UE_PREFECT_PARAMETERS": `{"parameters":{"seconds":0}}`},
			ok: ueDoc("COMPLETED"), runID: ueRunID},
		{name: "prefect deployment run ok/ok --watch --watch-interval 1",
			argv: []string{tl.prefect, "deployment", "run", "ok/ok", "--param", "seconds=0", "--watch", "--watch-interval", "1"},
			env:  map[string]string{"PREFECT_API_URL": s.URL, "PREFECT_HOME": tl.prefHome},
			ok:   contains("Flow run finished successfully in 'Completed'"), runID: prefectRunID},
	}
	measureE2E(b, cases, nWait, 1, 3*time.Minute)
	table := e2eTable("== 3. Launch ok/ok (seconds=0) and wait to COMPLETED, real server + flows.py runner (pickup latency dominates) ==\n", cases)
	table += "   (" + srvInfo + ")\n" + loadLine(load0)
	ue, pf := stats(cases[0].wall), stats(cases[1].wall)
	table += fmt.Sprintf("prefect CLI / ue-prefect wall = %.2f×; peak RSS prefect / ue-prefect = %.1f×\n",
		float64(pf.med)/float64(ue.med), float64(medianInt(cases[1].rss))/float64(medianInt(cases[0].rss)))
	publish(b, table)
	waitOnce.report(b, ms(ue.med), "ue-wall-ms")
	waitOnce.report(b, ms(pf.med), "prefect-wall-ms")
	waitOnce.report(b, float64(medianInt(cases[0].rss))/1024, "ue-rss-MiB")
	waitOnce.report(b, float64(medianInt(cases[1].rss))/1024, "prefect-rss-MiB")
	waitOnce.done = true
}

// BenchmarkLaunchOnly: create a flow run of ok/ok and exit (section 2). The
// runner is stopped first so that the created runs stay SCHEDULED and do
// not load the machine.
func BenchmarkLaunchOnly(b *testing.B) {
	if launchOnce.replay(b) {
		return
	}
	tl := need(b)
	s := server(b, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	load0 := loadavg()
	before, err := s.FlowRunsByDeployment(ctx, depID)
	if err != nil {
		b.Fatal(err)
	}
	cases := []*e2eCase{
		{name: "ue-prefect (launch, no wait; warm cache)", argv: []string{tl.ue},
			env: map[string]string{"PREFECT_API_URL": s.URL, "UE_PREFECT_DEPLOYMENT": "ok/ok", "UE_PREFECT_CACHE_DIR": tl.warmDir},
			ok:  ueDoc("SCHEDULED")},
		{name: "prefect deployment run ok/ok", argv: []string{tl.prefect, "deployment", "run", "ok/ok"},
			env: map[string]string{"PREFECT_API_URL": s.URL, "PREFECT_HOME": tl.prefHome},
			ok:  contains("Created flow run")},
	}
	measureE2E(b, cases, nLaunch, 1, 2*time.Minute)
	after, err := s.FlowRunsByDeployment(ctx, depID)
	if err != nil {
		b.Fatal(err)
	}
	if want := len(before) + (nLaunch+1)*len(cases); len(after) != want {
		b.Fatalf("deployment ok/ok has %d flow runs after the launches, want %d", len(after), want)
	}
	table := e2eTable("== 2. Launch only (create a flow run of ok/ok, no wait), real server ==\n", cases) + loadLine(load0)
	ue, pf := stats(cases[0].wall), stats(cases[1].wall)
	table += fmt.Sprintf("prefect CLI / ue-prefect wall = %.1f×; peak RSS prefect / ue-prefect = %.1f×   (%d new flow runs verified on the server)\n",
		float64(pf.med)/float64(ue.med), float64(medianInt(cases[1].rss))/float64(medianInt(cases[0].rss)), len(after)-len(before))
	publish(b, table)
	launchOnce.report(b, ms(ue.med), "ue-wall-ms")
	launchOnce.report(b, ms(pf.med), "prefect-wall-ms")
	launchOnce.report(b, float64(medianInt(cases[0].rss))/1024, "ue-rss-MiB")
	launchOnce.report(b, float64(medianInt(cases[1].rss))/1024, "prefect-rss-MiB")
	launchOnce.done = true
}

// ---------------------------------------------------------------------------
// 5. Seeing the end: events, and the polling floor when they are refused

// nEvents flow runs are watched at once, each by every case of section 5.
const nEvents = 5

var eventsOnce once

// pctl is the nearest-rank percentile of ds.
func pctl(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// BenchmarkEventsWait: nEvents runs of sleepy/sleepy (10 s) are created at
// once; each is followed to its end by ue-prefect --flow-run-id --wait with
// the default 60 s poll interval (events on; through a proxy that answers
// 404 to the websocket upgrade; through a proxy that cuts the socket once
// every run is watched and refuses it after), by `ue-prefect-temporal
// start` through a worker with events on (Temporal's dev server), and by
// `prefect flow-run watch`, directly and through the refusing proxy. Each
// figure is from the run's terminal state's timestamp to the process's
// exit.
func BenchmarkEventsWait(b *testing.B) {
	if eventsOnce.replay(b) {
		return
	}
	tl := need(b)
	s := server(b, true)
	load0 := loadavg()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	refuse := rig.Rule{Path: regexp.MustCompile(`/events/out$`), Fault: rig.Status(404, nil, `{"detail":"Not Found"}`)}
	refused := rig.NewFaultProxy(s.URL)
	defer refused.Close()
	refused.Add(refuse)
	cut := rig.NewFaultProxy(s.URL)
	defer cut.Close()
	dep, err := s.DeploymentID(ctx, "sleepy", "sleepy")
	if err != nil {
		b.Fatal(err)
	}
	tr := startTemporal(b, tl, s.URL)
	defer tr.stop()
	ue := func(string) []string { return []string{tl.ue, "--wait"} }
	cases := []struct {
		name string
		argv func(id string) []string
		env  func() map[string]string
		ue   bool
		code int // the expected exit code; -1: report whatever it is
	}{
		{"ue-prefect --wait (60 s interval), events", func(id string) []string { return append(ue(""), "--flow-run-id", id) },
			func() map[string]string { return map[string]string{"PREFECT_API_URL": s.URL} }, true, 0},
		{"ue-prefect --wait (60 s interval), socket refused (404)", func(id string) []string { return append(ue(""), "--flow-run-id", id) },
			func() map[string]string { return map[string]string{"PREFECT_API_URL": refused.URL()} }, true, 0},
		{"ue-prefect --wait (60 s interval), socket cut mid-wait", func(id string) []string { return append(ue(""), "--flow-run-id", id) },
			func() map[string]string { return map[string]string{"PREFECT_API_URL": cut.URL()} }, true, 0},
		{"ue-prefect-temporal start (60 s interval), worker with events", tr.startArgv,
			func() map[string]string { return map[string]string{} }, false, 0},
		{"prefect flow-run watch", func(id string) []string { return []string{tl.prefect, "flow-run", "watch", id} },
			func() map[string]string {
				return map[string]string{"PREFECT_API_URL": s.URL, "PREFECT_HOME": tl.prefHome}
			}, false, 0},
		{"prefect flow-run watch --timeout 150, socket refused (404)", func(id string) []string {
			return []string{tl.prefect, "flow-run", "watch", id, "--timeout", "150"}
		}, func() map[string]string {
			return map[string]string{"PREFECT_API_URL": refused.URL(), "PREFECT_HOME": tl.prefHome}
		}, false, -1},
	}
	type watch struct {
		run string
		c   int
		p   *started
	}
	var ws []watch
	var runs []string
	for i := 0; i < nEvents; i++ {
		_, run, err := s.CreateFlowRun(ctx, dep, map[string]any{"parameters": map[string]any{"seconds": 10}})
		if err != nil {
			b.Fatal(err)
		}
		id, _ := run["id"].(string)
		runs = append(runs, id)
		for ci, c := range cases {
			env := c.env()
			if c.ue {
				env["UE_PREFECT_CACHE_DIR"] = tl.warmDir
			}
			p, err := start(c.argv(id), cleanEnv(env))
			if err != nil {
				b.Fatal(err)
			}
			defer p.kill()
			ws = append(ws, watch{id, ci, p})
		}
	}
	// Cut every socket once all runs are watched, and refuse the reconnections.
	deadline := time.Now().Add(2 * time.Minute)
	for open, _ := cut.Websockets(); open < nEvents; open, _ = cut.Websockets() {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d websockets opened through the cutting proxy", open, nEvents)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cut.Add(refuse)
	cut.CutWebsockets()
	for _, w := range ws {
		select {
		case <-w.p.done:
		case <-ctx.Done():
			b.Fatalf("%s on %s did not end (hang)\n%s", cases[w.c].name, w.run, w.p.output())
		}
	}
	ends := map[string]time.Time{}
	for _, id := range runs {
		run, err := s.ReadFlowRun(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := run["state"].(map[string]any)
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["timestamp"]))
		if err != nil || rig.StateType(run) != "COMPLETED" {
			b.Fatalf("flow run %s: state %v at %v (%v)", id, rig.StateType(run), st["timestamp"], err)
		}
		ends[id] = at
	}
	lat := make([][]time.Duration, len(cases))
	codes := make([]map[int]int, len(cases))
	notes := make([]string, len(cases))
	for _, w := range ws {
		c := cases[w.c]
		code := w.p.cmd.ProcessState.ExitCode()
		if codes[w.c] == nil {
			codes[w.c] = map[int]int{}
		}
		codes[w.c][code]++
		if c.code >= 0 && code != c.code {
			b.Fatalf("%s on %s: exit %d, want %d\n%s", c.name, w.run, code, c.code, w.p.output())
		}
		if c.ue {
			if err := ueDoc("COMPLETED")(w.p); err != nil {
				b.Fatalf("%s on %s: %v\n%s", c.name, w.run, err, w.p.output())
			}
			if fell := strings.Contains(w.p.stderr.String(), "event stream is unavailable"); fell != (w.c != 0) {
				b.Fatalf("%s on %s: fallback said = %v\n%s", c.name, w.run, fell, w.p.output())
			}
		}
		lat[w.c] = append(lat[w.c], w.p.t0.Add(w.p.wall).Sub(ends[w.run]))
		if code != 0 && notes[w.c] == "" {
			out := strings.TrimSpace(w.p.stdout.String() + "\n" + w.p.stderr.String())
			lines := strings.Split(out, "\n")
			notes[w.c] = fmt.Sprintf("exit %d: %q", code, strings.TrimSpace(lines[len(lines)-1]))
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "== 5. From the terminal state's timestamp to exit: %d sleepy runs (10 s) watched at once by each case ==\n", nEvents)
	fmt.Fprintf(&sb, "%-62s %3s %10s %10s %10s  %s\n", "case", "N", "p50", "p95", "max", "exit codes")
	for i, c := range cases {
		var cs []string
		for code, n := range codes[i] {
			cs = append(cs, fmt.Sprintf("%d×%d", n, code))
		}
		slices.Sort(cs)
		fmt.Fprintf(&sb, "%-62s %3d %9.0fms %9.0fms %9.0fms  %s\n", c.name, len(lat[i]), ms(pctl(lat[i], 0.5)), ms(pctl(lat[i], 0.95)), ms(pctl(lat[i], 1)), strings.Join(cs, " "))
	}
	sb.WriteString("   (p95 is nearest-rank over the N runs; the polling floor is one 60 s interval; negative: exited before the run ended)\n")
	for i, n := range notes {
		if n != "" {
			fmt.Fprintf(&sb, "   %s: %s\n", cases[i].name, n)
		}
	}
	sb.WriteString(loadLine(load0))
	publish(b, sb.String())
	eventsOnce.report(b, ms(pctl(lat[0], 0.5)), "ue-events-p50-ms")
	eventsOnce.report(b, ms(pctl(lat[0], 0.95)), "ue-events-p95-ms")
	eventsOnce.report(b, ms(pctl(lat[3], 0.5)), "temporal-events-p50-ms")
	eventsOnce.report(b, ms(pctl(lat[4], 0.5)), "prefect-watch-p50-ms")
	eventsOnce.done = true
}
