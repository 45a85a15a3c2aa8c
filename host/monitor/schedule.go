package monitor

import (
	"container/heap"
	"context"
	"strings"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// schedule parks waiting runs, each its checkpoint in a timer heap, and
// wakes them: at the end of their sleep, for an event on their flow run,
// or together with the others of a failed batch (a cohort). Its loop also
// closes the batch windows. Its state is guarded by Monitor.mu.
type schedule struct {
	m        *Monitor
	sleeping sleepHeap
	kick     chan struct{} // wakes the loop
}

// event ends r's poll sleep for an event on its flow run, or keeps the
// event for its next one. It runs on the event source's goroutine.
func (sc *schedule) event(r *mrun) {
	m := sc.m
	m.mu.Lock()
	if r.heapIdx >= 0 && r.wakeable {
		heap.Remove(&m.sleeping, r.heapIdx)
		m.reqs.Woken++
		m.mu.Unlock()
		m.wakeJob(r, true)
		return
	}
	r.pending = true
	m.mu.Unlock()
}

// subscribe follows r's flow run on the event source, once per run.
func (sc *schedule) subscribe(r *mrun, on *abi.WakeOn) {
	m := sc.m
	if m.cfg.Events == nil || on == nil || on.FlowRunID == "" {
		return
	}
	key := on.EventsPath + " " + strings.ToLower(on.FlowRunID)
	if r.subKey == key {
		return
	}
	if r.unsub != nil {
		r.unsub()
		r.unsub = nil
	}
	r.subKey = key
	if stop, err := m.cfg.Events.Subscribe(on.EventsPath, on.FlowRunID, func(prefect.Event) { m.event(r) }); err == nil {
		r.unsub = stop
	}
}

// park puts r to sleep for d. In a cohort (the runs of one failed batch)
// it waits for the others, so that they all wake together at the latest of
// their times and their retries share one request again.
func (sc *schedule) park(r *mrun, d time.Duration, wakeable bool, c *cohort) {
	m := sc.m
	m.mu.Lock()
	r.due = m.clock.Since() + d
	r.sleepFor = d
	r.wakeable = wakeable
	if wakeable && r.pending && c == nil {
		r.pending = false
		m.reqs.Woken++
		m.mu.Unlock()
		m.wakeJob(r, true)
		return
	}
	m.mu.Unlock()
	if c != nil {
		m.cohortDone(c, r)
		return
	}
	m.mu.Lock()
	heap.Push(&m.sleeping, r)
	m.mu.Unlock()
	m.poke()
}

func (sc *schedule) poke() {
	m := sc.m
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// cohort gathers the runs answered by one failed batch until each has
// either parked (its retry sleep) or gone elsewhere.
type cohort struct {
	left   int
	due    time.Duration
	parked []*mrun
}

func (sc *schedule) cohortDone(c *cohort, r *mrun) {
	m := sc.m
	m.mu.Lock()
	c.left--
	if r != nil {
		c.parked = append(c.parked, r)
		c.due = max(c.due, r.due)
	}
	last := c.left == 0
	if last {
		for _, p := range c.parked {
			p.due = c.due
			heap.Push(&m.sleeping, p)
		}
	}
	m.mu.Unlock()
	if last {
		m.poke()
	}
}

// loop wakes sleepers when they are due and sends batches when their
// window closes.
func (sc *schedule) loop() {
	m := sc.m
	defer m.wg.Done()
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		now := m.clock.Since()
		for len(m.sleeping) > 0 && m.sleeping[0].due <= now {
			r := heap.Pop(&m.sleeping).(*mrun)
			r.rode = false
			m.jobs = append(m.jobs, job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now.Milliseconds()}}}})
			m.cond.Signal()
		}
		next := time.Duration(-1)
		for _, q := range m.queues {
			if len(q.items) == 0 {
				continue
			}
			if q.flushAt <= now && len(m.jobs) > 0 && len(q.items) < m.batchMax && q.extended < maxExtend {
				q.flushAt = now + m.cfg.BatchWindow
				q.extended++
			}
			if q.flushAt <= now {
				m.sendBatch(q.prefix, q.items)
				q.items, q.extended = nil, 0
				continue
			}
			if next < 0 || q.flushAt < next {
				next = q.flushAt
			}
		}
		if len(m.sleeping) > 0 && (next < 0 || m.sleeping[0].due < next) {
			next = m.sleeping[0].due
		}
		m.cond.Broadcast()
		m.mu.Unlock()
		if next < 0 {
			select {
			case <-m.kick:
			case <-m.ctx.Done():
				return
			}
			continue
		}
		wctx, cancel := context.WithCancel(m.ctx)
		go func() {
			select {
			case <-m.kick:
				cancel()
			case <-wctx.Done():
			}
		}()
		_ = m.clock.Sleep(wctx, next-now)
		cancel()
		if m.stopped() {
			return
		}
	}
}

// sleepHeap orders parked runs by due time.
type sleepHeap []*mrun

func (h sleepHeap) Len() int { return len(h) }

func (h sleepHeap) Less(i, j int) bool { return h[i].due < h[j].due }

func (h sleepHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (h *sleepHeap) Push(x any) {
	r := x.(*mrun)
	r.heapIdx = len(*h)
	*h = append(*h, r)
}

func (h *sleepHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.heapIdx = -1
	*h = old[:len(old)-1]
	return r
}
