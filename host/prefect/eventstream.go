package prefect

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

type sub struct{ fn func(Event) }

// stream is one websocket, reconnected as needed.
type stream struct {
	hub     *EventHub
	url     string
	changed chan struct{} // the watched set grew

	mu     sync.Mutex
	subs   map[string][]*sub
	status StreamStatus
	// Prefect's backfill bookkeeping: since moves forward with the events
	// seen; seen holds the ids of events at or after since.
	since  time.Time
	seen   map[string]time.Time
	pruned time.Time
	// covered is what the live connection's filter covers: nil for every
	// flow run (id_prefix), else the ids named.
	covered map[string]bool
	all     bool
	// owed holds the watched runs owed a catch-up read (StreamConnected).
	owed map[string]bool
	// upSince is when the filter was first sent on the live chain of
	// connections that replaced each other only to change the filter
	// (zero after a failure). Only the run goroutine uses it.
	upSince time.Time
	// cb serializes the subscribers' callbacks: events come from the
	// reader, StreamConnected from the keep-alive goroutine.
	cb sync.Mutex
}

func (s *stream) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *stream) unsubscribe(id string, sb *sub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.subs[id]
	for i, x := range list {
		if x == sb {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.subs, id)
		delete(s.owed, id)
	} else {
		s.subs[id] = list
	}
}

// needsResubscribe reports whether a watched run is missing from the live
// filter.
func (s *stream) needsResubscribe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all {
		return false
	}
	for id := range s.subs {
		if !s.covered[id] {
			return true
		}
	}
	return false
}

func (s *stream) watching() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs) > 0
}

// run connects, reads, and reconnects with backoff until the hub closes.
func (s *stream) run() {
	defer s.hub.wg.Done()
	ctx := s.hub.ctx
	cfg := s.hub.cfg
	backoff := cfg.BackoffMin
	for ctx.Err() == nil {
		if !s.watching() {
			select {
			case <-s.changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		healthy, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		resub := errors.Is(err, errResubscribe)
		s.mu.Lock()
		s.status.Connected = false
		if !resub {
			// Lost: whatever happened until the next connection may
			// be missing from its backfill.
			for id := range s.subs {
				s.owed[id] = true
			}
			s.upSince = time.Time{}
		}
		s.mu.Unlock()
		if healthy {
			backoff = cfg.BackoffMin
		}
		if resub {
			continue
		}
		s.mu.Lock()
		s.status.Failures++
		s.status.LastError = err.Error()
		s.mu.Unlock()
		s.hub.down(err.Error())
		d := jitter(backoff)
		backoff = nextBackoff(backoff, cfg.BackoffMax)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// nextBackoff is the wait after one more failure: twice d, at most max.
func nextBackoff(d, max time.Duration) time.Duration {
	return min(d*2, max)
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

var errResubscribe = errors.New("the watched runs changed")

// filter builds the filter message and records what it covers.
func (s *stream) filter(now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		s.since = now.Add(-BackfillWindow)
	}
	ids := make([]string, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	resource := map[string]any{}
	s.covered, s.all = nil, len(ids) > s.hub.cfg.MaxFilterRuns
	if s.all {
		resource["id_prefix"] = []string{"prefect.flow-run."}
	} else {
		s.covered = map[string]bool{}
		rids := make([]string, len(ids))
		for i, id := range ids {
			rids[i] = "prefect.flow-run." + id
			s.covered[id] = true
		}
		resource["id"] = rids
	}
	return json.Marshal(map[string]any{
		"type": "filter",
		"filter": map[string]any{
			"occurred": map[string]string{
				"since": s.since.UTC().Format(time.RFC3339Nano),
				"until": now.Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339Nano),
			},
			"resource": resource,
		},
		"backfill": true,
	})
}

// catchUp sends StreamConnected to the subscribers of every run owed a catch-up
// read that the live filter covers, once.
func (s *stream) catchUp() {
	type call struct {
		fn func(Event)
		id string
	}
	var calls []call
	s.mu.Lock()
	ids := make([]string, 0, len(s.owed))
	for id := range s.owed {
		if s.all || s.covered[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		delete(s.owed, id)
		for _, sb := range s.subs[id] {
			calls = append(calls, call{sb.fn, id})
		}
	}
	s.mu.Unlock()
	now := time.Now()
	s.cb.Lock()
	defer s.cb.Unlock()
	for _, c := range calls {
		c.fn(Event{Name: StreamConnected, Occurred: now, FlowRunID: c.id})
	}
}

// deliver hands a new event to its run's subscribers.
func (s *stream) deliver(raw json.RawMessage) {
	var e struct {
		ID       string            `json:"id"`
		Event    string            `json:"event"`
		Occurred time.Time         `json:"occurred"`
		Resource map[string]string `json:"resource"`
	}
	if json.Unmarshal(raw, &e) != nil || e.ID == "" {
		return
	}
	rid := e.Resource["prefect.resource.id"]
	id, ok := strings.CutPrefix(rid, "prefect.flow-run.")
	if !ok {
		return
	}
	id = strings.ToLower(id)
	s.mu.Lock()
	if _, dup := s.seen[e.ID]; dup {
		s.mu.Unlock()
		return
	}
	// Prefect's client: the next backfill starts a minute before the
	// newest event seen; ids older than that cannot come back.
	if next := e.Occurred.Add(-BackfillWindow); next.After(s.since) {
		s.since = next
		if s.since.Sub(s.pruned) > BackfillWindow {
			s.pruned = s.since
			for k, t := range s.seen {
				if t.Before(s.since) {
					delete(s.seen, k)
				}
			}
		}
	}
	s.seen[e.ID] = e.Occurred
	list := append([]*sub(nil), s.subs[id]...)
	if len(list) > 0 {
		s.status.Events++
	}
	s.mu.Unlock()
	ev := Event{ID: e.ID, Name: e.Event, Occurred: e.Occurred, FlowRunID: id,
		StateType: e.Resource["prefect.state-type"], StateName: e.Resource["prefect.state-name"]}
	s.cb.Lock()
	defer s.cb.Unlock()
	for _, sb := range list {
		sb.fn(ev)
	}
}
