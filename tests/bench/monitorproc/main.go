// Command monitorproc is the process the Monitor bench measures: it
// follows every flow run id of a file through one monitor.Monitor and reports
// the outcomes, the Monitor's request counters and its own peak RSS.
//
//	monitorproc -api URL -ids FILE -interval S -out FILE [-budget RPM]
//
// It prints "following N" once every run is in the Monitor, then
// "done {json}" with the summary, and writes id → {exit, state, at_ms}
// to -out (at_ms: the Unix milliseconds when the outcome came).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/monitor"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

type outcome struct {
	Exit  int    `json:"exit"`
	State string `json:"state"`
	Desc  string `json:"desc,omitempty"`
	AtMS  int64  `json:"at_ms"`
}

func main() {
	api := flag.String("api", "", "Prefect API URL")
	idsFile := flag.String("ids", "", "file of flow run ids, one a line")
	interval := flag.Int("interval", 60, "poll interval, seconds")
	outFile := flag.String("out", "", "outcomes file")
	instances := flag.Int("instances", 2, "plugin instances")
	cacheDir := flag.String("cache-dir", "", "compile cache")
	warm := flag.Bool("warm", false, "only fill the compile cache, then exit")
	budget := flag.Int("budget", 0, "monitor.Config.RequestsPerMinute (0: no limit)")
	flag.Parse()
	if *warm {
		// The plugin runs compiled only from a warm cache; a cold one means
		// the interpreter, which is no Monitor's steady state.
		rt, err := host.NewRuntime(context.Background(), host.PluginWasm, host.WithCacheDir(*cacheDir))
		if err == nil {
			rt.WaitCache(context.Background())
			err = rt.Close(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "monitorproc:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*api, *idsFile, *interval, *outFile, *instances, *cacheDir, *budget); err != nil {
		fmt.Fprintln(os.Stderr, "monitorproc:", err)
		os.Exit(1)
	}
}

func run(api, idsFile string, interval int, outFile string, instances int, cacheDir string, budget int) error {
	ctx := context.Background()
	t0 := time.Now()
	raw, err := os.ReadFile(idsFile)
	if err != nil {
		return err
	}
	ids := strings.Fields(string(raw))
	var opts []host.RuntimeOption
	if cacheDir != "" {
		opts = append(opts, host.WithCacheDir(cacheDir))
	}
	rt, err := host.NewRuntime(ctx, host.PluginWasm, opts...)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	base, err := prefect.ValidateAPIBase(api, false)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	outs := make(map[string]outcome, len(ids))
	all := make(chan struct{})
	warns := 0
	kinds := map[string]int{} // warning texts, ids cut, by count
	m, err := monitor.New(ctx, rt, monitor.Config{
		Connection:        prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		Instances:         instances,
		RequestsPerMinute: budget,
		OnOutcome: func(key string, out abi.RunOutput) {
			var r struct {
				State string `json:"flow_run_state"`
			}
			_ = json.Unmarshal(out.Result, &r)
			mu.Lock()
			defer mu.Unlock()
			o := outcome{Exit: out.ExitCode, State: r.State, AtMS: time.Now().UnixMilli()}
			if out.ExitCode != 0 && r.State != "FAILED" {
				o.Desc = out.StatusDescription
			}
			outs[key] = o
			if len(outs) == len(ids) {
				close(all)
			}
		},
		Log: func(_ string, l abi.LogRecord) {
			if l.Level == abi.LevelWarn || l.Level == abi.LevelError {
				mu.Lock()
				warns++
				kinds[warningKind(l.Message)]++
				mu.Unlock()
			}
		},
	})
	if err != nil {
		return err
	}
	defer m.Close()
	// The most requests sent in the last minute, sampled each second.
	var peak atomic.Int64
	go func() {
		for range time.Tick(time.Second) {
			if c := m.Requests().LastMinute; c > peak.Load() {
				peak.Store(c)
			}
		}
	}()
	pi := fmt.Sprint(interval)
	for _, id := range ids {
		if _, err := m.Launch(id, abi.Fields{FlowRunID: id, PollInterval: pi, IncludeMetadata: "false"}); err != nil {
			return err
		}
	}
	fmt.Printf("following %d after %s\n", len(ids), time.Since(t0).Round(time.Millisecond))
	<-all
	elapsed := time.Since(t0)
	b, _ := json.Marshal(outs)
	if err := os.WriteFile(outFile, b, 0o600); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	sum, _ := json.Marshal(map[string]any{
		"runs": len(ids), "elapsed_ms": elapsed.Milliseconds(), "vmhwm_kib": vmHWM(),
		"requests": m.Requests(), "warnings": warns, "peak_last_minute": peak.Load(),
		"warning_kinds": kinds,
	})
	fmt.Fprintf(w, "done %s\n", sum)
	return nil
}

// vmHWM is this process's peak resident set, KiB.
func vmHWM() int64 {
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

// warningKind is a warning's text with flow run ids and numbers cut out,
// so that the same warning for many runs counts as one kind.
func warningKind(msg string) string {
	msg = uuidRE.ReplaceAllString(msg, "<id>")
	msg = numRE.ReplaceAllString(msg, "N")
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	return msg
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	numRE  = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)
)
