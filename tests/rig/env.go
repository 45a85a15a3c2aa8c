package rig

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Env is the one shared rig of a test binary: a Prefect server and the
// flows.py deployments served against it.
type Env struct {
	Server *Server
	Flows  *Flows
}

var shared struct {
	once sync.Once
	env  *Env
	err  error
}

// Shared returns the test binary's shared rig, starting it on first use
// (once; later callers get the same Env or the same error). If it cannot
// start, the test fails (t.Fatalf) when Required(), else it is skipped with
// the reason. The rig is torn down by Shutdown, which TestMain must call
// after m.Run:
//
//	func TestMain(m *testing.M) { code := m.Run(); rig.Shutdown(); os.Exit(code) }
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.once.Do(func() {
		installSignalHandler()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		shared.env, shared.err = startEnv(ctx, ServerOptions{})
	})
	if shared.err != nil {
		if Required() {
			t.Fatalf("e2e rig did not start (CI=true, so this is a failure): %v", shared.err)
		}
		t.Skipf("e2e rig not available (set CI=true to make this a failure): %v", shared.err)
	}
	return shared.env
}

var shared2 struct {
	once sync.Once
	env  *Env
	err  error
}

// SharedPrefect2 is Shared for a Prefect 2.20 server and flows.py served by
// Prefect 2.20 (the venv of Python2), started on first use; Shutdown tears
// it down with the rest.
func SharedPrefect2(t testing.TB) *Env {
	t.Helper()
	shared2.once.Do(func() {
		installSignalHandler()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		python, err := Python2()
		if err != nil {
			shared2.err = err
			return
		}
		shared2.env, shared2.err = startEnv(ctx, ServerOptions{Python: python, Env: map[string]string{"PREFECT_UI_ENABLED": "false"}})
	})
	if shared2.err != nil {
		if Required() {
			t.Fatalf("Prefect 2 e2e rig did not start (CI=true, so this is a failure): %v", shared2.err)
		}
		t.Skipf("Prefect 2 e2e rig not available (set CI=true to make this a failure): %v", shared2.err)
	}
	return shared2.env
}

func startEnv(ctx context.Context, opts ServerOptions) (*Env, error) {
	srv, err := StartServer(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start prefect server: %w", err)
	}
	fl, err := ServeFlows(ctx, srv)
	if err != nil {
		log := srv.Log()
		srv.Stop()
		return nil, fmt.Errorf("serve flows: %w\n--- server.log (tail) ---\n%s", err, lastN(log, 2000))
	}
	return &Env{Server: srv, Flows: fl}, nil
}

var shutdownMu sync.Mutex

// Shutdown tears down the shared rig and every other server or flows
// process this test binary started: process groups are killed, stray
// flow-run processes swept, and temp dirs removed (kept when
// UE_PREFECT_KEEP_RIG=1). It is safe to call more than once, and it is also
// run on SIGINT/SIGTERM.
func Shutdown() {
	shutdownMu.Lock()
	defer shutdownMu.Unlock()
	owned.Lock()
	fls, srvs, pgs := owned.flows, owned.servers, owned.postgres
	owned.flows, owned.servers, owned.postgres = nil, nil, nil
	owned.Unlock()
	for _, f := range fls {
		f.Stop()
	}
	for _, s := range srvs {
		s.Stop()
	}
	for _, p := range pgs {
		p.Stop()
	}
	stopAllProcs()
}

// owned lists every Server and Flows created by this test binary, so that
// Shutdown can stop them (and remove their temp dirs) even if a test did not.
var owned struct {
	sync.Mutex
	servers  []*Server
	flows    []*Flows
	postgres []*Postgres
}

var sigOnce sync.Once

// installSignalHandler makes SIGINT/SIGTERM tear the rig down before the
// test binary exits.
func installSignalHandler() {
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "rig: %v: tearing down\n", sig)
			Shutdown()
			os.Exit(130)
		}()
	})
}
