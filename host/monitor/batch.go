package monitor

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// batcher carries out the runs' requests: a read of one flow run joins
// its API prefix's batch (one POST /flow_runs/filter for up to MaxBatch
// runs), anything else goes out alone; each takes a token of the budget
// first, and a Retry-After holds them all back. Its state is guarded by
// Monitor.mu.
type batcher struct {
	m         *Monitor
	doer      *prefect.Client
	sem       chan struct{}         // bounds the requests that go out alone
	budget    *budget               // Config.RequestsPerMinute, and Retry-After on top
	queues    map[string]*pollQueue // API prefix → reads waiting for a batch
	holdUntil time.Duration         // no request before this (a Retry-After)
	noBatch   bool                  // the server has no /flow_runs/filter
	batchMax  int                   // the most runs one batch reads: MaxBatch, less for a server that refused that
}

// Batched reads.
const (
	// MaxBatch is the most flow runs one POST /flow_runs/filter reads, the
	// server's page limit.
	MaxBatch = 200
	// DefaultBatchWindow is how long a due read waits for others to share
	// its request.
	DefaultBatchWindow = time.Second
)

// pollPath matches a read of one flow run, with the Cloud workspace prefix.
var pollPath = regexp.MustCompile(`^((?:/accounts/[0-9a-fA-F-]{36}/workspaces/[0-9a-fA-F-]{36})?)/flow_runs/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

// request carries out an HTTP command: a read of one flow run joins a
// batch, anything else goes out alone.
func (bt *batcher) request(r *mrun, req abi.HTTPRequest) {
	m := bt.m
	if req.Method == http.MethodGet {
		if sm := pollPath.FindStringSubmatch(req.Path); sm != nil {
			m.mu.Lock()
			if !m.noBatch {
				m.enqueue(r, sm[1], strings.ToLower(sm[2]))
				m.mu.Unlock()
				return
			}
			m.mu.Unlock()
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		resp := m.direct(req)
		if m.stopped() {
			return
		}
		m.answer(r, resp, nil)
	}()
}

// direct sends one request, when the budget and any Retry-After the
// server asked for allow.
func (bt *batcher) direct(req abi.HTTPRequest) abi.HTTPResponse {
	m := bt.m
	closing := abi.HTTPResponse{Error: &abi.TransportError{Kind: abi.TransportInterrupted, Message: "the monitor is closing"}}
	select {
	case m.sem <- struct{}{}:
	case <-m.ctx.Done():
		return closing
	}
	defer func() { <-m.sem }()
	if m.budget.Wait(m.ctx) != nil {
		return closing
	}
	m.mu.Lock()
	m.reqs.Direct++
	m.mu.Unlock()
	resp := m.doer.Do(m.ctx, req)
	m.noteHold(resp)
	return resp
}

// noteHold holds every request back until a Retry-After has passed.
func (bt *batcher) noteHold(resp abi.HTTPResponse) {
	m := bt.m
	if resp.RetryAfterMS <= 0 || (resp.Status != http.StatusTooManyRequests && resp.Status != http.StatusServiceUnavailable) {
		return
	}
	until := m.clock.Since() + time.Duration(min(resp.RetryAfterMS, 5*60*1000))*time.Millisecond
	m.mu.Lock()
	m.holdUntil = max(m.holdUntil, until)
	m.mu.Unlock()
	m.budget.Hold(until)
}

// answer steps r with an HTTP response.
func (bt *batcher) answer(r *mrun, resp abi.HTTPResponse, c *cohort) {
	m := bt.m
	resp.NowMS = m.nowMS()
	m.push(job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventHTTP, HTTP: &resp}}, cohort: c})
}

// pollQueue holds the reads waiting for one batch.
type pollQueue struct {
	prefix   string
	items    []pollItem
	flushAt  time.Duration
	extended int // windows added because steps were still queued
}

// maxExtend bounds how many more windows a batch waits for the steps still
// queued (runs woken but not yet stepped, whose reads would join it): when
// stepping lags (a busy machine), batches then still fill.
const maxExtend = 4

type pollItem struct {
	r  *mrun
	id string
}

// enqueue adds a read to its prefix's queue (m.mu held). The first read of
// a window also takes the polls of its prefix held for a later one (see
// schedule.hold), and wakes, early, sleepers whose read would come soon
// anyway, to fill the request up to MaxBatch (a ride: a fresher read, not
// a poll). The holds bring polls into step; rides do not.
func (bt *batcher) enqueue(r *mrun, prefix, id string) {
	m := bt.m
	r.prefix = prefix
	q := m.queues[prefix]
	if q == nil {
		q = &pollQueue{prefix: prefix}
		m.queues[prefix] = q
	}
	q.items = append(q.items, pollItem{r, id})
	if len(q.items) >= m.batchMax {
		batch := q.items[:m.batchMax:m.batchMax]
		q.items = append([]pollItem(nil), q.items[m.batchMax:]...)
		m.sendBatch(q.prefix, batch)
	}
	if len(q.items) == 1 {
		q.flushAt = max(m.clock.Since()+m.cfg.BatchWindow, m.holdUntil)
		m.releaseHeld(prefix)
		m.pickRiders(q)
		m.poke()
	}
}

// pickRiders wakes sleepers whose read the open batch can carry (m.mu
// held): only runs waiting for news (not backing off), of the same API
// prefix, past half of their sleep, nearest first, and only as many as
// the batch has room for after the runs due within the window. A rider is
// woken as by an event (abi.SleepResponse.Woken), as the CLI's poll wait
// ends early: its read is not a poll and its next poll stays due when it
// was, so Max Number of Polls still means polls × interval. A run rides
// at most once per poll interval.
func (bt *batcher) pickRiders(q *pollQueue) {
	m := bt.m
	dueSoon := 0
	var cands []*mrun
	for _, s := range m.sleeping {
		switch {
		case s.due <= q.flushAt:
			dueSoon++
		case s.wakeable && !s.rode && s.prefix == q.prefix && s.due-q.flushAt <= s.sleepFor/2:
			cands = append(cands, s)
		}
	}
	room := m.batchMax - (len(q.items)+dueSoon)%m.batchMax
	if room == m.batchMax || len(cands) == 0 {
		return
	}
	sortByDue(cands)
	if len(cands) > room {
		cands = cands[:room]
	}
	for _, s := range cands {
		heap.Remove(&m.sleeping, s.heapIdx)
		s.rode, s.early = true, true
		// Woken, as after an event: the machine reads the run, but the
		// read is not a poll and its next poll stays due when it was.
		m.jobs = append(m.jobs, job{r: s, in: abi.StepInput{Checkpoint: s.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: m.nowMS(), Woken: true}}}})
	}
	m.cond.Broadcast()
}

func sortByDue(rs []*mrun) {
	for i := 1; i < len(rs); i++ { // insertion sort: candidates are few
		for j := i; j > 0 && rs[j].due < rs[j-1].due; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// sendBatch sends one batch in the background (m.mu held).
func (bt *batcher) sendBatch(prefix string, items []pollItem) {
	m := bt.m
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.batch(prefix, items)
	}()
}

// batch reads items with one POST /flow_runs/filter and answers each
// machine as if it had read its own run: its row with 200, or 404 when the
// run is not in the answer (deleted). A failed request answers every
// machine with the failure, so each applies its own retry and outage
// budget; their retry sleeps are then aligned (see cohort) so the retry is
// one request again, and a Retry-After holds every request back.
func (bt *batcher) batch(prefix string, items []pollItem) {
	m := bt.m
	if m.budget.Wait(m.ctx) != nil {
		return
	}
	ids := make([]string, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		if !seen[it.id] {
			seen[it.id] = true
			ids = append(ids, it.id)
		}
	}
	// The limit is the number of ids: never more than the server allows
	// when it accepted a batch this size, and never a page that could
	// leave out a run that exists.
	body, _ := json.Marshal(map[string]any{"flow_runs": map[string]any{"id": map[string]any{"any_": ids}}, "limit": len(ids)})
	m.mu.Lock()
	m.reqs.Batches++
	m.reqs.BatchedReads += int64(len(items))
	m.mu.Unlock()
	resp := m.doer.Do(m.ctx, abi.HTTPRequest{Method: http.MethodPost, Path: prefix + "/flow_runs/filter", Body: body})
	if m.stopped() {
		return
	}
	m.noteHold(resp)
	if resp.Error == nil && (resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed) {
		// No filter endpoint (a proxy that allows only single reads): read
		// one by one from now on.
		m.mu.Lock()
		m.noBatch = true
		m.mu.Unlock()
		for _, it := range items {
			m.request(it.r, abi.HTTPRequest{Method: http.MethodGet, Path: prefix + "/flow_runs/" + it.id})
		}
		return
	}
	if n, ok := limitRefused(resp, len(ids)); ok {
		// A server with a lower page limit: smaller batches from now on.
		m.shrinkBatch(prefix, items, ids, n)
		return
	}
	if resp.Error != nil && resp.Error.Kind == abi.TransportTooLarge && len(ids) > 1 {
		// An answer over MaxResponseBytes: halve the batch (down to
		// single runs) rather than fail every run, or send it again.
		m.shrinkBatch(prefix, items, ids, (len(ids)+1)/2)
		return
	}
	var rows []json.RawMessage
	if resp.Error != nil || resp.Status < 200 || resp.Status > 299 || json.Unmarshal(resp.Body, &rows) != nil {
		// A failure, or an answer that is not a list: every machine sees it
		// as the answer to its own read and decides.
		c := &cohort{left: len(items)}
		for _, it := range items {
			m.answer(it.r, resp, c)
		}
		return
	}
	byID := make(map[string]json.RawMessage, len(rows))
	for _, row := range rows {
		var h struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(row, &h) == nil {
			byID[strings.ToLower(h.ID)] = row
		}
	}
	for _, it := range items {
		if row, ok := byID[it.id]; ok {
			m.answer(it.r, abi.HTTPResponse{Status: http.StatusOK, Body: row}, nil)
		} else {
			m.answer(it.r, abi.HTTPResponse{Status: http.StatusNotFound, Body: json.RawMessage(`{"detail":"Flow run not found"}`)}, nil)
		}
	}
}

// limitRefusal matches Prefect's refusal of a page limit over
// PREFECT_SERVER_API_DEFAULT_LIMIT.
var limitRefusal = regexp.MustCompile(`(?i)limit: must be less than or equal to (\d+)`)

// limitRefused reports whether resp refuses a batch of n ids for its
// limit (a 422 that names the limit field) and the largest batch to try
// next: the limit the server names, else half.
func limitRefused(resp abi.HTTPResponse, n int) (int, bool) {
	if resp.Error != nil || resp.Status != http.StatusUnprocessableEntity || n <= 1 {
		return 0, false
	}
	body := string(resp.Body) + resp.BodyText
	if sm := limitRefusal.FindStringSubmatch(body); sm != nil {
		var max int
		if _, err := fmt.Sscan(sm[1], &max); err == nil && max >= 1 && max < n {
			return max, true
		}
	}
	if !strings.Contains(strings.ToLower(body), "limit") {
		return 0, false
	}
	return n / 2, true
}

// shrinkBatch remembers size as the largest batch and sends items again
// in batches of at most size distinct ids, at once.
func (bt *batcher) shrinkBatch(prefix string, items []pollItem, ids []string, size int) {
	m := bt.m
	size = max(size, 1)
	m.mu.Lock()
	m.batchMax = min(m.batchMax, size)
	m.mu.Unlock()
	byID := map[string][]pollItem{}
	for _, it := range items {
		byID[it.id] = append(byID[it.id], it)
	}
	for len(ids) > 0 {
		n := min(size, len(ids))
		var part []pollItem
		for _, id := range ids[:n] {
			part = append(part, byID[id]...)
		}
		ids = ids[n:]
		m.batch(prefix, part)
	}
}
