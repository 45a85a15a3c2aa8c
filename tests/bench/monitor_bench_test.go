package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/host/monitor"
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
// Monitor has followed them for UE_PREFECT_BENCH_MONITOR_SETTLE (default 3)
// poll intervals and then two more, whose reads give the steady state
// (UE_PREFECT_BENCH_MONITOR_INTERVAL seconds, default 20), they are driven
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
	ids, idsFile, created := createIdleRuns(ctx, b, s, n, "bench", "monitor-ids.txt")
	mp := buildMonitorproc(b, tl.root)
	proxy := rig.NewFaultProxy(s.URL)
	defer proxy.Close()
	proxy.RateLimit(625, time.Minute)

	outFile := filepath.Join(tmpRoot, "monitor-outcomes.json")
	run := mp.start(b, "-api", proxy.URL(), "-ids", idsFile, "-interval", fmt.Sprint(int(interval/time.Second)),
		"-out", outFile)
	defer run.stop()
	following := run.expect("following", 10*time.Minute)
	tFollow := time.Now()

	// Reads in each interval since the Monitor followed every run; the
	// steady state is the last two, after settle intervals in which
	// alignment brings the polls into step.
	settle := envInt("UE_PREFECT_BENCH_MONITOR_SETTLE", 3)
	marks := []int{len(proxy.Log())}
	for range settle + 2 {
		time.Sleep(interval)
		marks = append(marks, len(proxy.Log()))
	}
	logged := proxy.Log()
	readsIn := make([]int, len(marks)-1)
	for k := range readsIn {
		for _, ex := range logged[marks[k]:marks[k+1]] {
			if ex.Method == "POST" && strings.HasSuffix(ex.Path, "/flow_runs/filter") {
				readsIn[k]++
			}
		}
	}
	steadyReads := readsIn[settle] + readsIn[settle+1]

	// Drive every run to its end, directly on the server.
	d := driveToEnds(ctx, b, s, ids)
	t1, driven := d.start, d.took
	sum := run.done(10*time.Minute + 3*interval)
	tEnd := time.Now()

	outs, correct, wrong, _ := judgeOutcomes(b, outFile, ids, d)
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
	table += fmt.Sprintf("%-58s %14.1f ≤ %d (⌈N/200⌉ + %d + 1, alignment's bound)\n", fmt.Sprintf("read requests per %s interval, steady state", interval), perInterval, goalReads+monitor.AlignFraction+1, monitor.AlignFraction)
	table += fmt.Sprintf("   read requests in each interval since the Monitor followed every run: %v (steady state: the last two)\n", readsIn)
	table += fmt.Sprintf("%-58s %8d/%d %s\n", "outcomes correct (exit 0 COMPLETED / exit 1 FAILED)", correct, n, "all")
	table += fmt.Sprintf("%-58s %14d %s\n", "runs lost (no outcome)", n-len(outs), "0")
	table += fmt.Sprintf("%-58s %14d %s\n", "requests refused 429 by the 625/min limit", limitedAnswered, "each rides through Retry-After")
	table += fmt.Sprintf("   requests through the proxy: %d (%d filter reads, %d single reads, %d refused); monitor counters: %d batches carrying %d reads, %d other; %d warnings\n",
		total, filters, singles, limited, sum.Requests.Batches, sum.Requests.BatchedReads, sum.Requests.Direct, sum.Warnings)
	table += sum.warningLines(5)
	table += fmt.Sprintf("   last state set → last outcome: %s; monitor start → all outcomes: %s (%s after it followed all)\n",
		tEnd.Sub(t1.Add(driven)).Round(time.Millisecond), tEnd.Sub(run.started).Round(time.Second), tEnd.Sub(tFollow).Round(time.Second))
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
