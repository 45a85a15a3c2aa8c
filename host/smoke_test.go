package host

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

type fnRT func(*http.Request) (*http.Response, error)

func (f fnRT) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonResp(code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, PluginWasm, WithInterpreter())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	polls := 0
	tr := fnRT(func(r *http.Request) (*http.Response, error) {
		t.Logf("%s %s", r.Method, r.URL)
		switch {
		case strings.Contains(r.URL.Path, "/deployments/name/"):
			return jsonResp(200, `{"id":"11111111-1111-4111-8111-111111111111","name":"ok","flow_id":"22222222-2222-4222-8222-222222222222"}`), nil
		case strings.HasSuffix(r.URL.Path, "/create_flow_run"):
			return jsonResp(201, `{"id":"33333333-3333-4333-8333-333333333333","name":"tidy-fox","state_type":"SCHEDULED","state_name":"Scheduled"}`), nil
		case strings.Contains(r.URL.Path, "/flow_runs/"):
			polls++
			st := "RUNNING"
			if polls > 2 {
				st = "COMPLETED"
			}
			return jsonResp(200, `{"id":"33333333-3333-4333-8333-333333333333","name":"tidy-fox","state_type":"`+st+`","state_name":"x"}`), nil
		}
		return jsonResp(404, `{"detail":"Not found"}`), nil
	})
	base, _ := url.Parse("http://prefect.test/api")
	vc := vclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	start := time.Now()
	out, err := rt.Run(ctx, RunConfig{
		Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Transport: tr}, Clock: vc,
		Log: func(l abi.LogRecord) { t.Logf("log %s: %s", l.Level, l.Message) },
	}, abi.RunInput{Fields: abi.Fields{Deployment: "ok/ok", Wait: "true"}, InvocationID: "inv", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("out=%+v result=%s wall=%v virtual=%v", out, out.Result, time.Since(start), vc.Since())
	if out.ExitCode != 0 {
		t.Fatalf("exit %d", out.ExitCode)
	}
}
