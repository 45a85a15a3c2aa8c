package prefect

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testStream(maxRuns int, ids ...string) *stream {
	base, _ := url.Parse("http://127.0.0.1:1/api")
	h := newEventHub(EventHubConfig{APIBase: base, MaxFilterRuns: maxRuns})
	s := &stream{hub: h, subs: map[string][]*sub{}, changed: make(chan struct{}, 1), seen: map[string]time.Time{}, owed: map[string]bool{}}
	for _, id := range ids {
		s.subs[id] = []*sub{{fn: func(Event) {}}}
	}
	return s
}

// TestFilter: the filter message is Prefect's: the watched runs'
// resources, backfill from a minute before, a year ahead; past
// MaxFilterRuns, every flow run's events.
func TestFilter(t *testing.T) {
	now := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	a, b := "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b", "0b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	tests := []struct {
		name    string
		max     int
		want    string
		covered []string
	}{
		{"ids", 5, `{"backfill":true,"filter":{"occurred":{"since":"2026-11-28T07:59:00Z","until":"2027-11-28T08:00:00Z"},"resource":{"id":["prefect.flow-run.` + b + `","prefect.flow-run.` + a + `"]}},"type":"filter"}`, []string{a, b}},
		{"past the cap", 1, `{"backfill":true,"filter":{"occurred":{"since":"2026-11-28T07:59:00Z","until":"2027-11-28T08:00:00Z"},"resource":{"id_prefix":["prefect.flow-run."]}},"type":"filter"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testStream(tc.max, a, b)
			got, err := s.filter(now)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("filter =\n%s\nwant\n%s", got, tc.want)
			}
			if s.needsResubscribe() {
				t.Errorf("needs a resubscription right after the filter")
			}
			s.subs["1b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"] = []*sub{{fn: func(Event) {}}}
			if got := s.needsResubscribe(); got != (tc.covered != nil) {
				t.Errorf("a new run needs a resubscription = %v, want %v", got, tc.covered != nil)
			}
		})
	}
}

// TestDeliver: events reach their run's subscribers once, whatever
// repeats them (a backfill after a reconnect); others are dropped; the
// backfill start follows the newest event, a minute back.
func TestDeliver(t *testing.T) {
	a, b := "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b", "0b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
	s := testStream(10)
	var got []string
	s.subs[a] = []*sub{{fn: func(e Event) { got = append(got, e.FlowRunID+" "+e.Name+" "+e.StateType) }}}
	s.since = time.Date(2026, 11, 28, 7, 59, 0, 0, time.UTC)
	ev := func(id, run, name, state, at string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"id":%q,"event":%q,"occurred":%q,"resource":{"prefect.resource.id":"prefect.flow-run.%s","prefect.state-type":%q},"payload":{}}`, id, name, at, run, state))
	}
	s.deliver(ev("e1", a, "prefect.flow-run.Running", "RUNNING", "2026-11-28T08:00:00Z"))
	s.deliver(ev("e2", b, "prefect.flow-run.Running", "RUNNING", "2026-11-28T08:00:01Z"))
	s.deliver(ev("e1", a, "prefect.flow-run.Running", "RUNNING", "2026-11-28T08:00:00Z"))
	s.deliver(ev("e3", strings.ToUpper(a), "prefect.flow-run.Completed", "COMPLETED", "2026-11-28T08:00:05Z"))
	s.deliver(json.RawMessage(`{"id":"e4","event":"prefect.task-run.Running","occurred":"2026-11-28T08:00:06Z","resource":{"prefect.resource.id":"prefect.task-run.x"}}`))
	s.deliver(json.RawMessage(`not json`))
	want := []string{a + " prefect.flow-run.Running RUNNING", a + " prefect.flow-run.Completed COMPLETED"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("delivered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if want := time.Date(2026, 11, 28, 7, 59, 5, 0, time.UTC); !s.since.Equal(want) {
		t.Errorf("since = %s, want %s (a minute before the newest event)", s.since, want)
	}
}

// TestSubscribeRefuses: only an events path and a flow run id.
func TestSubscribeRefuses(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:1/api")
	h := newEventHub(EventHubConfig{APIBase: base})
	defer h.Close()
	for _, tc := range []struct{ path, id string }{
		{"/flow_runs/x", "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"},
		{"/../events/out", "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"},
		{"/events/out", "not-a-uuid"},
	} {
		if _, err := h.Subscribe(tc.path, tc.id, func(Event) {}); err == nil {
			t.Errorf("Subscribe(%q, %q) accepted", tc.path, tc.id)
		}
	}
}
