package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// ---------------------------------------------------------------------------
// 6. Monitor: many runs in one process

var monitorOnce once

// envInt reads a positive integer parameter from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// parallel calls f(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// retry calls f until it succeeds, up to 10 times a second apart: the
// server, busy with thousands of writes on SQLite, answers 503 at times.
func retry(f func() error) error {
	var err error
	for range 10 {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

// BenchmarkMonitor follows N flow runs (UE_PREFECT_BENCH_MONITOR_N,
// default 1,000; the figure is 10,000) with one monitor.Monitor in a child process, behind a proxy
// that admits 625 requests a minute (Prefect Cloud's Hobby limit). The runs
// are created through the API on an unserved deployment, and once the
// Monitor has followed them for two poll intervals
// (UE_PREFECT_BENCH_MONITOR_INTERVAL seconds, default 20) they are driven
// to COMPLETED, or FAILED for every tenth, with set_state. The server's
// database is the rig's default: UE_PREFECT_RIG_DATABASE=postgres runs it on
// PostgreSQL (as `UE_PREFECT_SCALE_MONITOR=1 make test.scale` does).
func BenchmarkMonitor(b *testing.B) {
	if monitorOnce.replay(b) {
		return
	}
	tl := need(b)
	n := envInt("UE_PREFECT_BENCH_MONITOR_N", 1000)
	interval := time.Duration(envInt("UE_PREFECT_BENCH_MONITOR_INTERVAL", 20)) * time.Second
	s := server(b, false)
	load0 := loadavg()
	wall0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	dep, err := s.DeploymentID(ctx, "idle", "idle")
	if err != nil {
		b.Fatal(err)
	}

	// The runs, created through the API (not through the proxy).
	t0 := time.Now()
	ids := make([]string, n)
	if err := parallel(n, 4, func(i int) error {
		return retry(func() error {
			_, run, err := s.CreateFlowRun(ctx, dep, map[string]any{"name": fmt.Sprintf("bench-%d", i), "idempotency_key": fmt.Sprintf("bench-%d-%d", t0.UnixNano(), i)})
			if err != nil {
				return err
			}
			ids[i], _ = run["id"].(string)
			return nil
		})
	}); err != nil {
		b.Fatalf("creating %d flow runs: %v", n, err)
	}
	created := time.Since(t0)
	idsFile := filepath.Join(tmpRoot, "monitor-ids.txt")
	if err := os.WriteFile(idsFile, []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}

	proc := filepath.Join(tmpRoot, "monitorproc")
	build := exec.Command("go", "build", "-o", proc, "./tests/bench/monitorproc")
	build.Dir = tl.root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building monitorproc: %v\n%s", err, out)
	}
	monCache := filepath.Join(tmpRoot, "monitor-cache")
	if out, err := exec.Command(proc, "-warm", "-cache-dir", monCache).CombinedOutput(); err != nil {
		b.Fatalf("monitorproc -warm: %v\n%s", err, out)
	}
	proxy := rig.NewFaultProxy(s.URL)
	defer proxy.Close()
	proxy.RateLimit(625, time.Minute)

	outFile := filepath.Join(tmpRoot, "monitor-outcomes.json")
	cmd := exec.Command(proc, "-api", proxy.URL(), "-ids", idsFile, "-interval", fmt.Sprint(int(interval/time.Second)),
		"-out", outFile, "-cache-dir", monCache)
	cmd.Env = cleanEnv(nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	tStart := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	expect := func(prefix string, within time.Duration) string {
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				b.Fatalf("monitorproc: want %q, got %q\n%s", prefix, l, stderr.String())
			}
			return l
		case <-time.After(within):
			b.Fatalf("monitorproc: no %q after %s\n%s", prefix, within, stderr.String())
		}
		return ""
	}
	following := expect("following", 10*time.Minute)
	tFollow := time.Now()

	// Steady state: count the reads of two whole intervals, after the first.
	time.Sleep(interval)
	mark := len(proxy.Log())
	time.Sleep(2 * interval)
	steady := proxy.Log()[mark:]
	var steadyReads int
	for _, ex := range steady {
		if ex.Method == "POST" && strings.HasSuffix(ex.Path, "/flow_runs/filter") {
			steadyReads++
		}
	}

	// Drive every run to its end, directly on the server.
	want := make(map[string]string, n)
	for i, id := range ids {
		want[id] = "COMPLETED"
		if i%10 == 9 {
			want[id] = "FAILED"
		}
	}
	t1 := time.Now()
	if err := parallel(n, 4, func(i int) error {
		st := want[ids[i]]
		return retry(func() error {
			code, body, err := s.Do(ctx, "POST", "/flow_runs/"+ids[i]+"/set_state",
				map[string]any{"state": map[string]any{"type": st, "name": strings.ToUpper(st[:1]) + strings.ToLower(st[1:])}, "force": true})
			if err == nil && code != 200 && code != 201 {
				err = fmt.Errorf("set_state %s: HTTP %d: %s", ids[i], code, body)
			}
			return err
		})
	}); err != nil {
		b.Fatal(err)
	}
	driven := time.Since(t1)
	done := expect("done ", 10*time.Minute+3*interval)
	tEnd := time.Now()

	var sum struct {
		Runs      int   `json:"runs"`
		ElapsedMS int64 `json:"elapsed_ms"`
		VmHWMKiB  int64 `json:"vmhwm_kib"`
		Warnings  int   `json:"warnings"`
		Requests  struct {
			Batches, BatchedReads, Direct int64
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(done, "done ")), &sum); err != nil {
		b.Fatalf("monitorproc summary %q: %v", done, err)
	}
	raw, err := os.ReadFile(outFile)
	if err != nil {
		b.Fatal(err)
	}
	var outs map[string]struct {
		Exit  int    `json:"exit"`
		State string `json:"state"`
		Desc  string `json:"desc"`
	}
	if err := json.Unmarshal(raw, &outs); err != nil {
		b.Fatal(err)
	}
	correct := 0
	var wrong []string
	for id, st := range want {
		o, ok := outs[id]
		wantExit := 0
		if st == "FAILED" {
			wantExit = 1
		}
		if ok && o.Exit == wantExit && o.State == st {
			correct++
		} else if len(wrong) < 5 {
			wrong = append(wrong, fmt.Sprintf("%s: want %s/%d, got %+v", id, st, wantExit, o))
		}
	}
	log := proxy.Log()
	var total, filters, singles, limited int
	var limitedAnswered int
	for _, ex := range log {
		total++
		switch {
		case ex.Fault == "rate-limit":
			limited++
		case ex.Method == "POST" && strings.HasSuffix(ex.Path, "/flow_runs/filter"):
			filters++
		case ex.Method == "GET" && strings.Contains(ex.Path, "/flow_runs/"):
			singles++
		}
	}
	limitedAnswered = limited // each refused request was answered 429 with Retry-After; the runs' outcomes show none was lost
	perInterval := float64(steadyReads) / 2
	goalReads := (n + 199) / 200
	table := fmt.Sprintf("== 6. Monitor: %d flow runs in one process, real server on %s, behind a proxy admitting 625 requests/min ==\n", n, s.Database)
	dbEnv := ""
	if s.Database != rig.DatabaseSQLite {
		dbEnv = rig.DatabaseEnv + "=" + s.Database + " "
	}
	table += fmt.Sprintf("   command: %sUE_PREFECT_BENCH_MONITOR_N=%d UE_PREFECT_BENCH_MONITOR_INTERVAL=%d go test -run '^$' -bench Monitor ./tests/bench/\n", dbEnv, n, int(interval/time.Second))
	table += fmt.Sprintf("   setup: %d runs created through the API in %s; monitorproc %s; set_state on all in %s\n",
		n, created.Round(time.Second), strings.TrimPrefix(following, "following "), driven.Round(time.Second))
	table += fmt.Sprintf("%-58s %14s %s\n", "figure", "value", "goal")
	table += fmt.Sprintf("%-58s %10.1f MiB %s\n", "peak RSS of the Monitor process (VmHWM)", float64(sum.VmHWMKiB)/1024, "≤ 300 MB")
	table += fmt.Sprintf("%-58s %14.1f ≤ %d (⌈N/200⌉)\n", fmt.Sprintf("read requests per %s interval, steady state", interval), perInterval, goalReads)
	table += fmt.Sprintf("%-58s %8d/%d %s\n", "outcomes correct (exit 0 COMPLETED / exit 1 FAILED)", correct, n, "all")
	table += fmt.Sprintf("%-58s %14d %s\n", "runs lost (no outcome)", n-len(outs), "0")
	table += fmt.Sprintf("%-58s %14d %s\n", "requests refused 429 by the 625/min limit", limitedAnswered, "each rides through Retry-After")
	table += fmt.Sprintf("   requests through the proxy: %d (%d filter reads, %d single reads, %d refused); monitor counters: %d batches carrying %d reads, %d other; %d warnings\n",
		total, filters, singles, limited, sum.Requests.Batches, sum.Requests.BatchedReads, sum.Requests.Direct, sum.Warnings)
	table += fmt.Sprintf("   last state set → last outcome: %s; monitor start → all outcomes: %s (%s after it followed all)\n",
		tEnd.Sub(t1.Add(driven)).Round(time.Millisecond), tEnd.Sub(tStart).Round(time.Second), tEnd.Sub(tFollow).Round(time.Second))
	table += fmt.Sprintf("   wall time of the whole bench (create, follow, drive, outcomes): %s\n", time.Since(wall0).Round(time.Second))
	table += fmt.Sprintf("   one CLI process per run instead: %d processes × ~52 MiB ≈ %.0f GiB, and %d reads per interval\n", n, float64(n)*52/1024, n)
	for _, w := range wrong {
		table += "   WRONG " + w + "\n"
	}
	table += loadLine(load0)
	publish(b, table)
	if correct != n {
		b.Errorf("%d of %d outcomes correct", correct, n)
	}
	monitorOnce.report(b, float64(sum.VmHWMKiB)/1024, "peak-rss-MiB")
	monitorOnce.report(b, perInterval, "reads/interval")
	monitorOnce.report(b, float64(correct), "correct")
	monitorOnce.report(b, float64(limited), "429s")
	monitorOnce.done = true
}
