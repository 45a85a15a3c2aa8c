package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// ---------------------------------------------------------------------------
// 6b. Monitor with a request budget, behind a proxy with the same limit

var budgetOnce once

// maxInWindow is the most of the sorted times ts that fall in any window
// [t, t+w): what a server counting per sliding window sees at its busiest.
func maxInWindow(ts []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// budgetImplied is the detection delay a budget of rpm requests a minute
// implies for n runs polled every interval, in batches of up to 200 ids,
// and the arithmetic behind it. Each round reads every run once: ⌈n/200⌉
// requests. Once its burst (a tenth) is spent, the budget lets one out
// every 61/rpm s (rpm in any 61 s: a second of margin for the way to the
// server), so a round needs ⌈n/200⌉×61/rpm s of it. A run is read again an
// interval after its last read, or when the round's tokens allow,
// whichever is later; a read then waits up to a batch window (1 s) for
// others to share its request.
func budgetImplied(n int, interval time.Duration, rpm int) (time.Duration, string) {
	reads := (n + 199) / 200
	round := time.Duration(reads) * 61 * time.Second / time.Duration(rpm)
	bound := max(interval, round) + time.Second
	return bound, fmt.Sprintf("⌈%d/200⌉ = %d reads a round; at %d/min (one each 61/%[3]d s) a round needs %d×61/%d = %.1f s of budget; "+
		"max(interval %s, %.1f s) + 1 s batch window = %.1f s; reads need %.0f/min of the %d",
		n, reads, rpm, reads, rpm, round.Seconds(), interval, round.Seconds(), bound.Seconds(),
		float64(reads)*float64(time.Minute)/float64(max(interval, round)), rpm)
}

// BenchmarkMonitorBudget follows N flow runs (UE_PREFECT_BENCH_BUDGET_N,
// default 5,000) with one monitor.Monitor in a child process, polling every
// UE_PREFECT_BENCH_BUDGET_INTERVAL seconds (default 10), with a budget of
// UE_PREFECT_BENCH_BUDGET_RPM requests a minute (default 300,
// monitor.Config.RequestsPerMinute), behind a proxy that admits the same
// number in any minute and answers the rest 429. After two rounds of reads the
// runs are driven to COMPLETED, or FAILED for every tenth, with set_state.
// The Monitor must be refused 0 times and every outcome must be correct;
// the table gives the busiest minute the proxy saw and the detection delay
// beside the one the budget implies.
func BenchmarkMonitorBudget(b *testing.B) {
	if budgetOnce.replay(b) {
		return
	}
	tl := need(b)
	n := envInt("UE_PREFECT_BENCH_BUDGET_N", 5000)
	interval := time.Duration(envInt("UE_PREFECT_BENCH_BUDGET_INTERVAL", 10)) * time.Second
	rpm := envInt("UE_PREFECT_BENCH_BUDGET_RPM", 300)
	s := server(b, false)
	load0 := loadavg()
	date := time.Now().UTC().Format(time.RFC3339)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	ids, idsFile, created := createIdleRuns(ctx, b, s, n, "budget", "budget-ids.txt")
	mp := buildMonitorproc(b, tl.root)
	proxy := rig.NewFaultProxy(s.URL)
	defer proxy.Close()
	proxy.RateLimit(rpm, time.Minute)

	outFile := filepath.Join(tmpRoot, "budget-outcomes.json")
	run := mp.start(b, "-api", proxy.URL(), "-ids", idsFile, "-interval", fmt.Sprint(int(interval/time.Second)),
		"-budget", fmt.Sprint(rpm), "-out", outFile)
	defer run.stop()
	following := run.expect("following", 10*time.Minute)
	implied, arithmetic := budgetImplied(n, interval, rpm)
	time.Sleep(2 * implied) // two rounds of reads, at the pace the budget allows

	// Drive every run to its end, directly on the server, noting when the
	// server answered each set_state.
	d := driveToEnds(ctx, b, s, ids)
	driven := d.took
	sum := run.done(10*time.Minute + 3*implied)
	tEnd := time.Now()

	_, correct, wrong, delays := judgeOutcomes(b, outFile, ids, d)
	var sent []time.Time
	var limited, filters, others int
	for _, ex := range proxy.Log() {
		if ex.Fault == "rate-limit" {
			limited++
			continue
		}
		sent = append(sent, ex.Time)
		if ex.Method == "POST" && strings.HasSuffix(ex.Path, "/flow_runs/filter") {
			filters++
		} else {
			others++
		}
	}
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	busiest := maxInWindow(sent, time.Minute)

	dbEnv := ""
	if s.Database != rig.DatabaseSQLite {
		dbEnv = rig.DatabaseEnv + "=" + s.Database + " "
	}
	cmdline := fmt.Sprintf("%sUE_PREFECT_BENCH_BUDGET_N=%d UE_PREFECT_BENCH_BUDGET_INTERVAL=%d UE_PREFECT_BENCH_BUDGET_RPM=%d go test -run '^$' -bench MonitorBudget ./tests/bench/",
		dbEnv, n, int(interval/time.Second), rpm)
	table := fmt.Sprintf("== 6b. Monitor with a budget of %d requests/min: %d flow runs, %s polls, real server on %s, behind a proxy admitting %d/min ==\n",
		rpm, n, interval, s.Database, rpm)
	table += fmt.Sprintf("   command (%s): %s\n", date, cmdline)
	table += fmt.Sprintf("   setup: %d runs created through the API in %s; monitorproc %s; set_state on all in %s\n",
		n, created.Round(time.Second), strings.TrimPrefix(following, "following "), driven.Round(time.Second))
	table += fmt.Sprintf("   implied delay: %s\n", arithmetic)
	table += fmt.Sprintf("%-58s %14s %s\n", "figure", "value", "goal")
	table += fmt.Sprintf("%-58s %14d %s\n", "requests refused 429 by the proxy", limited, "0")
	table += fmt.Sprintf("%-58s %8d/%d %s\n", "outcomes correct (exit 0 COMPLETED / exit 1 FAILED)", correct, n, "all")
	table += fmt.Sprintf("%-58s %14d ≤ %d\n", "most requests the proxy saw in any minute", busiest, rpm)
	table += fmt.Sprintf("%-58s %14d ≤ %d\n", "most in Requests().LastMinute, sampled each second", sum.PeakLastMinute, rpm)
	table += fmt.Sprintf("%-58s %14s ≤ %.1f s (implied)\n", "detection delay p50 (set_state answered → outcome)", pctl(delays, 0.5).Round(10*time.Millisecond), implied.Seconds())
	table += fmt.Sprintf("%-58s %14s\n", "detection delay p95", pctl(delays, 0.95).Round(10*time.Millisecond))
	table += fmt.Sprintf("%-58s %14s\n", "detection delay max", pctl(delays, 1).Round(10*time.Millisecond))
	table += fmt.Sprintf("   requests through the proxy: %d filter reads, %d others; monitor counters: %d batches carrying %d reads, %d other; peak RSS %.1f MiB; %d warnings\n",
		filters, others, sum.Requests.Batches, sum.Requests.BatchedReads, sum.Requests.Direct, float64(sum.VmHWMKiB)/1024, sum.Warnings)
	table += sum.warningLines(5)
	table += fmt.Sprintf("   monitor start → all outcomes: %s\n", tEnd.Sub(run.started).Round(time.Second))
	for _, w := range wrong {
		table += "   WRONG " + w + "\n"
	}
	table += loadLine(load0)
	publish(b, table)
	if limited != 0 {
		b.Errorf("the proxy refused %d requests 429: the budget of %d/min did not hold", limited, rpm)
	}
	if busiest > rpm {
		b.Errorf("the proxy saw %d requests in one minute, over the budget of %d", busiest, rpm)
	}
	if correct != n {
		b.Errorf("%d of %d outcomes correct", correct, n)
	}
	budgetOnce.report(b, float64(limited), "429s")
	budgetOnce.report(b, float64(correct), "correct")
	budgetOnce.report(b, float64(busiest), "busiest-minute")
	budgetOnce.report(b, pctl(delays, 0.5).Seconds(), "delay-p50-s")
	budgetOnce.report(b, pctl(delays, 0.95).Seconds(), "delay-p95-s")
	budgetOnce.done = true
}
