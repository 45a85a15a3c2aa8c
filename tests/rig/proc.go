package rig

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed supervise.py
var superviseSrc string

// markerVar is the environment variable carried by every process the rig
// starts (and, by inheritance, by everything those processes start).
const markerVar = "UE_PREFECT_RIG"

// rigToken identifies this test binary's processes; each launch appends a
// sequence number so that one launch can be swept without touching another.
var (
	rigToken = func() string {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b))
	}()
	launchSeq struct {
		sync.Mutex
		n int
	}
)

// Python returns the venv python: $UE_PREFECT_PYTHON if set, else
// <repo root>/.venv/bin/python (created by tests/rig/venv.sh). It returns an
// error naming the fix when the interpreter is missing.
func Python() (string, error) {
	if p := os.Getenv("UE_PREFECT_PYTHON"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("UE_PREFECT_PYTHON=%s: %w", p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Python venv at %s (run tests/rig/venv.sh): %w", p, err)
	}
	return p, nil
}

// Python2 returns the interpreter of the Prefect 2.20 venv: UE_PREFECT_PYTHON2
// when set, else <repo root>/.venv-prefect2/bin/python (created by
// `tests/rig/venv.sh .venv-prefect2 tests/rig/requirements-prefect2.txt`,
// which `make venv` runs).
func Python2() (string, error) {
	if p := os.Getenv("UE_PREFECT_PYTHON2"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("UE_PREFECT_PYTHON2=%s: %w", p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".venv-prefect2", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Prefect 2 venv at %s (run tests/rig/venv.sh .venv-prefect2 tests/rig/requirements-prefect2.txt): %w", p, err)
	}
	return p, nil
}

// Required reports whether end-to-end tests must run (CI=true). If the rig
// cannot start and Required() is true, tests must FAIL, never skip.
func Required() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// keepRig reports whether temp dirs should be kept (UE_PREFECT_KEEP_RIG=1).
func keepRig() bool {
	v, _ := strconv.ParseBool(os.Getenv("UE_PREFECT_KEEP_RIG"))
	return v
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod and tests/rig (so a nested module,
// host/temporal, finds the root too).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "tests", "rig")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("rig: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// childEnv returns the test process's environment without PREFECT_* and
// marker variables (so a developer's profile cannot leak in), plus extra.
func childEnv(marker string, extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PREFECT_") || k == markerVar {
			continue
		}
		if _, ok := extra[k]; ok {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, markerVar+"="+marker, "PYTHONUNBUFFERED=1")
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// proc is one supervised child process (supervise.py + the real command) in
// its own process group.
type proc struct {
	name   string
	marker string
	cmd    *exec.Cmd
	stdinW *os.File
	done   chan struct{}
	err    error // exit status, valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

var live struct {
	sync.Mutex
	procs map[*proc]bool
}

// superviseCode is supervise.py without its docstring (keeps ps output short).
func superviseCode() string {
	if _, after, ok := strings.Cut(superviseSrc[3:], `"""`); ok && strings.HasPrefix(superviseSrc, `"""`) {
		return strings.TrimSpace(after)
	}
	return superviseSrc
}

// startProc starts argv under supervise.py in dir. stdout/stderr go to out.
// rmdir (may be "") is removed by the supervisor if the test binary dies.
func startProc(name, python, dir, rmdir string, argv []string, extra map[string]string, out *os.File) (*proc, error) {
	launchSeq.Lock()
	launchSeq.n++
	marker := fmt.Sprintf("%s-%d", rigToken, launchSeq.n)
	launchSeq.Unlock()
	installSignalHandler()

	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if keepRig() {
		rmdir = ""
	}
	args := append([]string{"-S", "-c", superviseCode(), markerVar + "=" + marker, rmdir}, argv...)
	cmd := exec.Command(python, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(marker, extra)
	cmd.Stdin = r
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	r.Close()
	p := &proc{name: name, marker: marker, cmd: cmd, stdinW: w, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	live.Lock()
	if live.procs == nil {
		live.procs = map[*proc]bool{}
	}
	live.procs[p] = true
	live.Unlock()
	return p, nil
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, SIGKILL after 10 s, waits, and
// sweeps any process still carrying the launch marker. Idempotent.
func (p *proc) stop() error {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		if !p.exited() {
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.done
			}
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // grandchildren left in the group
		sweep(markerVar+"="+p.marker, false, syscall.SIGKILL)
		p.stdinW.Close()
		live.Lock()
		delete(live.procs, p)
		live.Unlock()
	})
	return p.stopErr
}

// sweep signals every process whose environment holds entry (exactly, or as
// a prefix when prefix is true). It returns how many were signalled.
func sweep(entry string, prefix bool, sig syscall.Signal) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	me := os.Getpid()
	n := 0
	want := []byte(entry)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == me {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) || (prefix && bytes.HasPrefix(kv, want)) {
				if syscall.Kill(pid, sig) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}

// stopAllProcs stops every live process started by this test binary and
// then kills anything that still carries this binary's marker.
func stopAllProcs() {
	live.Lock()
	ps := make([]*proc, 0, len(live.procs))
	for p := range live.procs {
		ps = append(ps, p)
	}
	live.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.stop() }()
	}
	wg.Wait()
	sweep(markerVar+"="+rigToken+"-", true, syscall.SIGKILL)
}
