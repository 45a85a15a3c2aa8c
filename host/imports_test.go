package host

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

var testEpoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// An interrupt that arrives between host calls ends the next blocking call
// at once, so a long poll sleep or a hanging server cannot delay the exit;
// once the plugin has been told, calls are served within the grace period
// so it can still cancel the flow run.
func TestInterruptBetweenCalls(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/api")
	vc := vclock.New(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	intr := NewInterrupter()
	eff, err := (&Runtime{}).Functions(context.Background(), RunConfig{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base}, Clock: vc, Interrupter: intr})
	if err != nil {
		t.Fatal(err)
	}
	defer eff.Close()
	intr.Interrupt("SIGTERM", abi.ExitInterruptedSIGTERM)

	s := eff.Sleep(abi.SleepRequest{DurationMS: 60000})
	if s.Interrupt == nil || vc.Since() != 0 {
		t.Fatalf("first sleep after the interrupt = %+v after %s; want an immediate interrupt", s, vc.Since())
	}
	if s := eff.Sleep(abi.SleepRequest{DurationMS: 1000}); s.Interrupt == nil || vc.Since() != time.Second {
		t.Errorf("a sleep once told = %+v after %s; want a full 1s sleep within grace", s, vc.Since())
	}
	if r := eff.HTTP(abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Status != 200 || hits.Load() != 1 {
		t.Errorf("a request once told = %+v (%d hits); want it served", r, hits.Load())
	}

	// A fresh run interrupted before its first request: nothing is sent.
	intr2 := NewInterrupter()
	eff2, _ := (&Runtime{}).Functions(context.Background(), RunConfig{Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base}, Clock: vc, Interrupter: intr2})
	defer eff2.Close()
	intr2.Interrupt("SIGINT", abi.ExitInterruptedSIGINT)
	if r := eff2.HTTP(abi.HTTPRequest{Method: "GET", Path: "/x"}); r.Error == nil || r.Error.Kind != abi.TransportInterrupted || r.Interrupt == nil || hits.Load() != 1 {
		t.Errorf("first request after the interrupt = %+v (%d hits); want interrupted, unsent", r, hits.Load())
	}
}
