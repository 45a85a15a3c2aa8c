package flowrun

import (
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Log streaming: after each poll, relay the flow run's new log lines,
// oldest first; after the run ends, one last read for stragglers. Logs are
// a courtesy: a failed read never fails or delays the task.

const (
	logPageSize = 200 // lines per read (Prefect's maximum)
	maxLogPages = 10  // reads after one poll
	// logStraggler is how long after the run ends the last read waits:
	// Prefect ships log lines in batches every 2 s.
	logStraggler = 5 * second / 2
)

// logState is the streaming's own.
type logState struct {
	// After is the newest timestamp relayed, and Seen the ids relayed at
	// it (Prefect's after_ is inclusive).
	After  string   `json:"after,omitempty"`
	Seen   []string `json:"seen,omitempty"`
	Pages  int      `json:"pages,omitempty"`  // reads since the last poll
	Final  bool     `json:"final,omitempty"`  // the read after the run ended is done
	Warned bool     `json:"warned,omitempty"` // a failed read was reported
}

// sendLogs reads the flow run's log lines after the last one relayed.
func (m *Machine) sendLogs() {
	filter := map[string]any{"flow_run_id": map[string]any{"any_": []string{m.s.Run.ID}}}
	if m.s.Logs.After != "" {
		filter["timestamp"] = map[string]any{"after_": m.s.Logs.After}
	}
	body := mustJSON(map[string]any{"logs": filter, "sort": "TIMESTAMP_ASC", "limit": logPageSize})
	m.s.Logs.Pages++
	m.send(opLogs, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/logs/filter", Body: body})
}

// onLogs relays new log lines, oldest first, and pages on while pages are
// full and bring something new.
func (m *Machine) onLogs(r *abi.HTTPResponse) {
	arr := gjson.ParseBytes(r.Body)
	if !arr.IsArray() {
		m.onLogsFailed(r)
		return
	}
	l := &m.s.Logs
	seen := map[string]bool{}
	for _, id := range l.Seen {
		seen[id] = true
	}
	n, fresh := 0, 0
	arr.ForEach(func(_, line gjson.Result) bool {
		n++
		id, ts := line.Get("id").String(), line.Get("timestamp").String()
		if id == "" || ts == "" || seen[id] {
			return true
		}
		fresh++
		if ts != l.After {
			l.After, l.Seen, seen = ts, nil, map[string]bool{}
		}
		l.Seen = append(l.Seen, id)
		seen[id] = true
		m.emit(abi.Command{Kind: abi.CommandLog, Log: &abi.LogRecord{
			Level: logLevel(line.Get("level").Int()), Message: line.Get("message").String(),
			Source: abi.SourceFlowRun, Time: ts,
		}})
		return true
	})
	m.afterLogs(n >= logPageSize && fresh > 0)
}

// onLogsFailed warns, once, that the logs cannot be read, and goes on:
// whatever the failure (an error, another status, a body that is not a
// JSON array, such as a proxy's login page).
func (m *Machine) onLogsFailed(r *abi.HTTPResponse) {
	if !m.s.Logs.Warned {
		m.s.Logs.Warned = true
		m.logf(abi.LevelWarn, "Could not read the flow run's logs (%s); the wait goes on", logsFailure(r))
	}
	m.afterLogs(false)
}

// logsFailure says why a log read failed.
func logsFailure(r *abi.HTTPResponse) string {
	switch {
	case r.Error != nil || r.Status != 200:
		return describe(r)
	case len(r.Body) == 0:
		return "HTTP 200 with a body that is not JSON: " + clip(strings.TrimSpace(r.BodyText))
	}
	return "HTTP 200 without an array of log lines"
}

// afterLogs continues after a log read: another page, the final read
// after the run ended, or what follows the poll.
func (m *Machine) afterLogs(more bool) {
	switch {
	case more && m.s.Logs.Pages < maxLogPages:
		m.sendLogs()
	case IsTerminal(m.s.Run.StateType) && !m.s.Logs.Final:
		m.s.Logs.Final, m.s.Logs.Pages = true, 0
		m.sleep(opSleepLogs, logStraggler)
	default:
		m.afterPoll()
	}
}

// logLevel maps Prefect's numeric levels to abi levels.
func logLevel(n int64) string {
	switch {
	case n >= 40:
		return abi.LevelError
	case n >= 30:
		return abi.LevelWarn
	case n >= 20:
		return abi.LevelInfo
	}
	return abi.LevelDebug
}
