package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// spoof is a line that would set the output fields if a reader took it for
// one of ours.
const spoof = `ue-prefect::output {"flow_run_id":"spoofed"}`

func TestPeopleWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"plain lines pass", []string{"a\n", "b\n"}, "a\nb\n"},
		{"a line of its own", []string{spoof + "\n"}, "  " + spoof + "\n"},
		{"after a newline", []string{"msg\n" + spoof + "\n"}, "msg\n  " + spoof + "\n"},
		{"after a carriage return", []string{"msg\r" + spoof + "\n"}, "msg\n  " + spoof + "\n"},
		{"after CRLF", []string{"msg\r\n" + spoof + "\r\n"}, "msg\n  " + spoof + "\n"},
		{"after other breaks splitlines knows", []string{"a\v" + spoof + "\u2028" + spoof + "\x1e" + spoof + "\n"},
			"a\n  " + spoof + "\n  " + spoof + "\n  " + spoof + "\n"},
		{"the marker without its space", []string{"x\nue-prefect::output\t{}\n"}, "x\n  ue-prefect::output\t{}\n"},
		{"mid-line is not a line start", []string{"x " + spoof + "\n"}, "x " + spoof + "\n"},
		{"a write continuing a line", []string{"x ", spoof + "\n"}, "x " + spoof + "\n"},
		{"a write starting a line", []string{"x\n", spoof + "\n"}, "x\n  " + spoof + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newPeopleWriter(&b)
			for _, w := range tc.writes {
				if n, err := p.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if b.String() != tc.want {
				t.Errorf("wrote %q, want %q", b.String(), tc.want)
			}
		})
	}
}

// TestRun_NoSpoofedOutputLines: a state message, a flow run's log line and
// a server's error detail, each holding line breaks and an output line,
// reach stderr with no line that a reader would take for output fields.
// Every line that starts with the prefix is one ue-prefect meant.
func TestRun_NoSpoofedOutputLines(t *testing.T) {
	evil := "first line\n" + spoof + "\r" + spoof + "\r\n" + spoof
	createStatus := 201
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/deployments/name/"):
			w.Write([]byte(flowruntest.Deployment()))
		case strings.HasSuffix(r.URL.Path, "/create_flow_run") && createStatus != 201:
			m, _ := json.Marshal(map[string]string{"detail": evil})
			w.WriteHeader(createStatus)
			w.Write(m)
		case strings.HasSuffix(r.URL.Path, "/create_flow_run"):
			w.WriteHeader(201)
			w.Write([]byte(flowruntest.Run("RUNNING", "Running", evil)))
		case strings.HasSuffix(r.URL.Path, "/flow_runs/"+flowruntest.RunID):
			w.Write([]byte(flowruntest.Run("FAILED", "Failed", evil)))
		case strings.HasSuffix(r.URL.Path, "/logs/filter"):
			m, _ := json.Marshal(evil)
			w.Write([]byte(`[{"id":"9d0c6b1e-0000-4000-8000-000000000001","level":40,"message":` + string(m) + `,"timestamp":"2026-01-01T00:00:00Z","flow_run_id":"` + flowruntest.RunID + `"}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	for _, status := range []int{201, 422} {
		createStatus = status
		args := []string{"--deployment", "etl/nightly", "--wait", "--poll-interval", "1", "--stream-logs", "--no-events"}
		code, _, stderr := runCLI(t, args, map[string]string{"PREFECT_API_URL": srv.URL + "/api"})
		var genuine int
		for _, line := range strings.Split(stderr, "\n") {
			if !strings.HasPrefix(line, OutputPrefix) {
				continue
			}
			var f map[string]string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, OutputPrefix)), &f); err != nil || f["flow_run_id"] != flowruntest.RunID {
				t.Errorf("create %d: a line not meant as output starts with the prefix: %q", status, line)
				continue
			}
			genuine++
		}
		if strings.Count(stderr, spoof) < 3 {
			t.Errorf("create %d: exit %d; the server's text did not reach stderr at all, so this test shows nothing:\n%s", status, code, stderr)
		}
		t.Logf("create %d: exit %d, %d genuine output lines", status, code, genuine)
	}
}
