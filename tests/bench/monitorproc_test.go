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
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// What the Monitor benches (6 and 6b) share: flow runs on the unserved
// deployment idle/idle, one monitorproc child following them, and the
// runs driven to their ends on the server.

// createIdleRuns creates n flow runs of idle/idle through the API of s (not
// through a proxy), four at a time, each retried while the server is busy;
// run i is named name-i. Their ids are written one a line to
// tmpRoot/idsFile, whose path it returns with the time the creation took.
func createIdleRuns(ctx context.Context, b *testing.B, s *rig.Server, n int, name, idsFile string) (ids []string, path string, took time.Duration) {
	b.Helper()
	dep, err := s.DeploymentID(ctx, "idle", "idle")
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	ids = make([]string, n)
	if err := parallel(n, 4, func(i int) error {
		return retry(func() error {
			_, run, err := s.CreateFlowRun(ctx, dep, map[string]any{"name": fmt.Sprintf("%s-%d", name, i), "idempotency_key": fmt.Sprintf("%s-%d-%d", name, t0.UnixNano(), i)})
			if err != nil {
				return err
			}
			ids[i], _ = run["id"].(string)
			return nil
		})
	}); err != nil {
		b.Fatalf("creating %d flow runs: %v", n, err)
	}
	took = time.Since(t0)
	path = filepath.Join(tmpRoot, idsFile)
	if err := os.WriteFile(path, []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	return ids, path, took
}

// buildMonitorproc builds ./tests/bench/monitorproc from the repository at
// root and fills its compile cache (-warm), so that starting it measures
// following, not compiling.
func buildMonitorproc(b *testing.B, root string) monitorproc {
	b.Helper()
	mp := monitorproc{path: filepath.Join(tmpRoot, "monitorproc"), cache: filepath.Join(tmpRoot, "monitor-cache")}
	build := exec.Command("go", "build", "-o", mp.path, "./tests/bench/monitorproc")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building monitorproc: %v\n%s", err, out)
	}
	if out, err := exec.Command(mp.path, "-warm", "-cache-dir", mp.cache).CombinedOutput(); err != nil {
		b.Fatalf("monitorproc -warm: %v\n%s", err, out)
	}
	return mp
}

// monitorproc is a built tests/bench/monitorproc and its compile cache.
type monitorproc struct{ path, cache string }

// monitorprocRun is a started monitorproc: expect reads its stdout a line
// at a time; stop kills its process group.
type monitorprocRun struct {
	b       *testing.B
	cmd     *exec.Cmd
	stderr  *strings.Builder
	lines   chan string
	started time.Time // just before the process started
}

// start runs monitorproc with args (and its compile cache) in a clean
// environment and its own process group. The caller defers stop.
func (mp monitorproc) start(b *testing.B, args ...string) *monitorprocRun {
	b.Helper()
	cmd := exec.Command(mp.path, append(args, "-cache-dir", mp.cache)...)
	cmd.Env = cleanEnv(nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &monitorprocRun{b: b, cmd: cmd, stderr: &strings.Builder{}, lines: make(chan string, 4)}
	cmd.Stderr = r.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	r.started = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return r
}

// stop kills the process group and waits for the process.
func (r *monitorprocRun) stop() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	_ = r.cmd.Wait()
}

// expect returns the next line of the output, which must start with
// prefix and come within the given time; else the benchmark fails with
// the process's stderr.
func (r *monitorprocRun) expect(prefix string, within time.Duration) string {
	r.b.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok || !strings.HasPrefix(l, prefix) {
			r.b.Fatalf("monitorproc: want %q, got %q\n%s", prefix, l, r.stderr.String())
		}
		return l
	case <-time.After(within):
		r.b.Fatalf("monitorproc: no %q after %s\n%s", prefix, within, r.stderr.String())
	}
	return ""
}

// monitorprocSummary is the JSON of monitorproc's last line, "done {...}".
type monitorprocSummary struct {
	Runs      int   `json:"runs"`
	ElapsedMS int64 `json:"elapsed_ms"`
	VmHWMKiB  int64 `json:"vmhwm_kib"`
	Warnings  int   `json:"warnings"`
	Requests  struct {
		Batches, BatchedReads, Direct, LastMinute int64
	} `json:"requests"`
	PeakLastMinute int64 `json:"peak_last_minute"`
	// WarningKinds counts the warnings by text, ids and numbers cut out.
	WarningKinds map[string]int `json:"warning_kinds"`
}

// warningLines are the table lines for the most frequent kinds of warning.
func (s monitorprocSummary) warningLines(most int) string {
	kinds := make([]string, 0, len(s.WarningKinds))
	for k := range s.WarningKinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if a, b := s.WarningKinds[kinds[i]], s.WarningKinds[kinds[j]]; a != b {
			return a > b
		}
		return kinds[i] < kinds[j]
	})
	var out string
	for i, k := range kinds {
		if i == most {
			out += fmt.Sprintf("   warnings: %d more kinds\n", len(kinds)-most)
			break
		}
		out += fmt.Sprintf("   warning ×%d: %s\n", s.WarningKinds[k], k)
	}
	return out
}

// done waits (within the given time) for the line "done {...}" and
// returns its summary.
func (r *monitorprocRun) done(within time.Duration) monitorprocSummary {
	r.b.Helper()
	done := r.expect("done ", within)
	var sum monitorprocSummary
	if err := json.Unmarshal([]byte(strings.TrimPrefix(done, "done ")), &sum); err != nil {
		r.b.Fatalf("monitorproc summary %q: %v", done, err)
	}
	return sum
}

// drive is what driveToEnds did: the end each run was driven to, when the
// server answered each run's set_state (by index in ids), when the
// driving started and how long it took.
type drive struct {
	want  map[string]string // id → COMPLETED, or FAILED for every tenth
	setAt []time.Time
	start time.Time
	took  time.Duration
}

// driveToEnds drives every run in ids to COMPLETED, or FAILED for every
// tenth, with set_state directly on the server, four at a time, each
// retried while the server is busy.
func driveToEnds(ctx context.Context, b *testing.B, s *rig.Server, ids []string) drive {
	b.Helper()
	d := drive{want: make(map[string]string, len(ids)), setAt: make([]time.Time, len(ids))}
	for i, id := range ids {
		d.want[id] = "COMPLETED"
		if i%10 == 9 {
			d.want[id] = "FAILED"
		}
	}
	d.start = time.Now()
	if err := parallel(len(ids), 4, func(i int) error {
		st := d.want[ids[i]]
		return retry(func() error {
			code, body, err := s.Do(ctx, "POST", "/flow_runs/"+ids[i]+"/set_state",
				map[string]any{"state": map[string]any{"type": st, "name": strings.ToUpper(st[:1]) + strings.ToLower(st[1:])}, "force": true})
			if err == nil && code != 200 && code != 201 {
				err = fmt.Errorf("set_state %s: HTTP %d: %s", ids[i], code, body)
			}
			d.setAt[i] = time.Now()
			return err
		})
	}); err != nil {
		b.Fatal(err)
	}
	d.took = time.Since(d.start)
	return d
}

// monitorOutcome is one run's outcome in monitorproc's -out file.
type monitorOutcome struct {
	Exit  int    `json:"exit"`
	State string `json:"state"`
	Desc  string `json:"desc"`
	AtMS  int64  `json:"at_ms"`
}

// judgeOutcomes reads monitorproc's outcomes file and counts the runs of
// ids whose outcome is the end d drove them to (exit 0 COMPLETED, exit 1
// FAILED). It returns up to five wrong ones, described, and for each
// correct one the time from the server's answer to its set_state to the
// outcome. outs is the whole file.
func judgeOutcomes(b *testing.B, outFile string, ids []string, d drive) (outs map[string]monitorOutcome, correct int, wrong []string, delays []time.Duration) {
	b.Helper()
	raw, err := os.ReadFile(outFile)
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &outs); err != nil {
		b.Fatal(err)
	}
	for i, id := range ids {
		st := d.want[id]
		o, ok := outs[id]
		wantExit := 0
		if st == "FAILED" {
			wantExit = 1
		}
		if ok && o.Exit == wantExit && o.State == st {
			correct++
			delays = append(delays, time.UnixMilli(o.AtMS).Sub(d.setAt[i]))
		} else if len(wrong) < 5 {
			wrong = append(wrong, fmt.Sprintf("%s: want %s/%d, got %+v", id, st, wantExit, o))
		}
	}
	return outs, correct, wrong, delays
}
