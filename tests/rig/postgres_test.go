// The PostgreSQL option's own tests run with `make test.scale` (-tags scale),
// beside the scale tests that use it; `make test` stays on SQLite for time.

//go:build scale

package rig_test

import (
	"context"
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

// TestPostgresServer: the rig's PostgreSQL option. A Prefect server on a
// throw-away cluster serves a flow run to COMPLETED; the run is a row in
// PostgreSQL, not in a SQLite file; Stop leaves neither the cluster's
// process nor its folder behind.
func TestPostgresServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := rig.StartServer(ctx, rig.ServerOptions{Database: rig.DatabasePostgres})
	if err != nil {
		if rig.Required() {
			t.Fatalf("Prefect on PostgreSQL did not start (CI=true, so this is a failure): %v", err)
		}
		t.Skipf("Prefect on PostgreSQL not available (set CI=true to make this a failure): %v", err)
	}
	defer srv.Stop()
	pg := srv.Postgres
	if srv.Database != rig.DatabasePostgres || pg == nil {
		t.Fatalf("Database %q, Postgres %v: want postgres and a cluster", srv.Database, pg)
	}
	if !strings.HasPrefix(pg.URL, "postgresql+asyncpg://prefect:") || !strings.HasSuffix(pg.URL, fmt.Sprintf("@127.0.0.1:%d/prefect", pg.Port)) {
		t.Errorf("URL %q: want postgresql+asyncpg://prefect:…@127.0.0.1:%d/prefect", pg.URL, pg.Port)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(pg.Dir, "data"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("data folder %v: want it owned by the unprivileged %s user, not root", err, rig.PostgresUser)
		}
	}
	t.Logf("Prefect healthy on PostgreSQL %s (127.0.0.1:%d) after %v", pg.Version, pg.Port, srv.StartupTime)

	fl, err := rig.ServeFlows(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Stop()
	depID, err := srv.DeploymentID(ctx, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	key := "pg-" + rig.NewUUID()
	_, run, err := srv.CreateFlowRun(ctx, depID, map[string]any{"idempotency_key": key})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := run["id"].(string)
	if _, err := srv.WaitForState(ctx, id, "COMPLETED", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := psql(t, pg, "select state_type from flow_run where idempotency_key = '"+key+"'"); got != "COMPLETED" {
		t.Errorf("flow_run row in PostgreSQL: state %q, want COMPLETED", got)
	}
	if _, err := os.Stat(filepath.Join(srv.Home, "prefect.db")); err == nil {
		t.Errorf("%s/prefect.db exists: the server wrote to SQLite", srv.Home)
	}

	fl.Stop()
	srv.Stop()
	if _, err := os.Stat(pg.Dir); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v, want it removed", pg.Dir, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port)), time.Second); err == nil {
		c.Close()
		t.Errorf("after Stop, 127.0.0.1:%d still accepts connections", pg.Port)
	}
}

// psql runs one query on the cluster and returns its single value.
func psql(t *testing.T, pg *rig.Postgres, query string) string {
	t.Helper()
	bin, err := rig.PostgresBin()
	if err != nil {
		t.Fatal(err)
	}
	_, pass, _ := strings.Cut(strings.TrimPrefix(pg.URL, "postgresql+asyncpg://"), ":")
	pass, _, _ = strings.Cut(pass, "@")
	cmd := exec.Command(filepath.Join(bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "prefect", "-d", "prefect", "-tAc", query)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPostgresGoneWithTestBinary: a test binary that dies (SIGKILL: no
// cleanup of its own) leaves no cluster behind; the rig's supervisor stops
// it and removes its folder.
func TestPostgresGoneWithTestBinary(t *testing.T) {
	if os.Getenv("UE_PREFECT_RIG_PG_CHILD") == "1" {
		pg, err := rig.StartPostgres(context.Background())
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(3)
		}
		fmt.Printf("STARTED %d %s\n", pg.Port, pg.Dir)
		time.Sleep(10 * time.Minute) // killed by the parent
		return
	}
	if _, err := rig.PostgresBin(); err != nil {
		if rig.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPostgresGoneWithTestBinary$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UE_PREFECT_RIG_PG_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 0, 512)
	buf := make([]byte, 1)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(string(line), "\n") || !strings.Contains(string(line), "STARTED") {
		if time.Now().After(deadline) {
			t.Fatalf("child did not start a cluster: %q", line)
		}
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("child: %v (%q)", err, line)
		}
		line = append(line, buf[:n]...)
		if strings.HasSuffix(string(line), "\n") && !strings.Contains(string(line), "STARTED") {
			if strings.Contains(string(line), "ERROR") {
				t.Fatalf("child: %s", line)
			}
			line = line[:0]
		}
	}
	var port int
	var dir string
	if _, err := fmt.Sscanf(strings.TrimSpace(string(line)), "STARTED %d %s", &port, &dir); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		t.Fatalf("cluster not listening on %s: %v", addr, err)
	} else {
		c.Close()
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	gone := time.Now().Add(30 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		c, dialErr := net.DialTimeout("tcp", addr, time.Second)
		if dialErr == nil {
			c.Close()
		}
		if os.IsNotExist(statErr) && dialErr != nil {
			return
		}
		if time.Now().After(gone) {
			t.Fatalf("30 s after the test binary died: folder %s: %v; %s accepting: %v", dir, statErr, addr, dialErr == nil)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
