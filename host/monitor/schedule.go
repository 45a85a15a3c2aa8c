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
	kick     chan struct{}         // wakes the loop
	aligns   map[string]*alignment // API prefix → its poll hold (see hold)
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

// park puts r to sleep for d from at, the machine's now (the time of the
// input that led to the sleep); an exact sleep (abi.SleepRequest.Exact)
// is never held. In a cohort (the runs of one failed batch) it waits for
// the others, so that they all wake together at the latest of their times
// and their retries share one request again.
func (sc *schedule) park(r *mrun, at, d time.Duration, wakeable, exact bool, c *cohort) {
	m := sc.m
	m.mu.Lock()
	r.due = at + d
	r.sleepFor = d
	r.wakeable, r.exact = wakeable, exact
	r.held = false
	if !r.early || r.span == 0 {
		r.span = d
	}
	r.early = false
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
			if m.hold(r, now) {
				continue
			}
			r.held, r.rode = false, false
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
			if q.flushAt <= now && len(q.items) < m.batchMax {
				// No token yet: the batch keeps filling until one is free.
				q.flushAt = m.budget.Free(now)
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

// Poll alignment: lengthen-only holds that bring runs' poll schedules into
// step, so that their reads share batches.
//
// A read brought forward (an event, a ride) is not a poll and leaves the
// next poll due when it was, so nothing else brings the polls of runs
// launched at scattered times together: without alignment a Monitor with
// a 1 s BatchWindow sends up to one batch per second of the interval,
// whatever the number of runs. The rule: when a run's poll comes due and
// a poll of another run of the same API prefix is due within the run's
// tolerance (1/AlignFraction of its poll interval, at most MaxAlignHold),
// the run is held until the latest such due time (or until a batch of its
// prefix opens, if sooner) and reads in the same batch. Both next polls then count from the
// same answer and stay in step. A hold only lengthens a sleep, by at most
// its tolerance, never shortens one: Max Number of Polls still means at
// least polls × interval, and at most polls × (interval × (1 +
// 1/AlignFraction) + the batch window), each read waiting for its window. A held run still wakes at once for an
// event (its heap entry is wakeable), and retry backoffs are never held,
// nor a poll sleep the machine cut short to end at the Start Deadline
// (abi.SleepRequest.Exact): exit 41 comes at the deadline, as from the CLI.
//
// In steady state the due times of one prefix's runs with one interval are
// clusters more than the tolerance apart, so an interval holds at most
// about AlignFraction clusters and each cluster ⌈its runs/MaxBatch⌉
// batches: about AlignFraction + ⌈N/MaxBatch⌉ batches per interval.
const (
	// A due poll may be held by 1/AlignFraction of its poll interval to
	// share a batch with a later one: a tenth, so that at most about ten
	// clusters remain per interval while no interval grows by more than a
	// tenth.
	AlignFraction = 10
	// MaxAlignHold caps the hold, so that a long interval (10 minutes) is
	// not stretched by a minute: at 30 s, intervals over 5 minutes hold at
	// most 30 s, and their clusters are then at most one per 30 s, a
	// request rate far below any server limit.
	MaxAlignHold = 30 * time.Second
)

// alignment is one API prefix's current hold: polls due up to until are
// held there, and held lists the runs held (some may since have been
// woken: see releaseHeld).
type alignment struct {
	until time.Duration
	held  []*mrun
}

// alignTolerance is how long a poll due an interval of d after the last
// may be held. The interval is the run's span, not its current sleep: a
// sleep after an early read (an event, a ride) lasts only what is left of
// the interval.
func alignTolerance(d time.Duration) time.Duration {
	return min(d/AlignFraction, MaxAlignHold)
}

// hold decides whether r, a sleeper just popped as due at now, is held
// for a later poll of its prefix (m.mu held). A held run goes back into
// the heap at the hold's end, marked held, and is not held again in that
// sleep. Only a poll sleep (wakeable) is held, never one that ends at a
// deadline (exact), and only when the later poll is due after r's read's
// batch window would have closed anyway.
func (sc *schedule) hold(r *mrun, now time.Duration) bool {
	m := sc.m
	if !r.wakeable || r.exact || r.held {
		return false
	}
	tol := alignTolerance(r.span)
	if tol <= m.cfg.BatchWindow {
		return false
	}
	a := m.aligns[r.prefix]
	if a == nil {
		a = &alignment{}
		m.aligns[r.prefix] = a
	}
	if a.until < now {
		// No hold in progress: the runs due first start one, up to the
		// latest poll due within their tolerance. The runs held before
		// have all been popped (their due was a.until < now).
		a.until = max(m.latestDue(r.prefix, now+tol), now)
		clear(a.held)
		a.held = a.held[:0]
	}
	if a.until-now <= m.cfg.BatchWindow || a.until-r.due > tol {
		return false
	}
	r.held = true
	m.reqs.Held++
	r.due = a.until
	heap.Push(&m.sleeping, r)
	a.held = append(a.held, r)
	return true
}

// latestDue returns the latest due time, at most limit, of a poll sleep
// of prefix in the heap, or 0 (m.mu held). It walks only the part of the
// heap due by limit: the runs due within one tolerance, which are about to
// pop anyway, so a hold costs amortised O(1) per poll beside its O(log N)
// heap push.
func (sc *schedule) latestDue(prefix string, limit time.Duration) time.Duration {
	m := sc.m
	var best time.Duration
	h := m.sleeping
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(h) || h[i].due > limit {
			continue
		}
		if s := h[i]; s.wakeable && s.prefix == prefix && s.due > best {
			best = s.due
		}
		stack = append(stack, 2*i+1, 2*i+2)
	}
	return best
}

// releaseHeld reads the runs held for a later poll of prefix in the batch
// that is opening now instead (m.mu held): their polls are already due,
// so this is still no earlier than their interval.
func (sc *schedule) releaseHeld(prefix string) {
	m := sc.m
	a := m.aligns[prefix]
	if a == nil || len(a.held) == 0 {
		return
	}
	now := m.clock.Since()
	for _, r := range a.held {
		if r.held && r.heapIdx >= 0 {
			heap.Remove(&m.sleeping, r.heapIdx)
			r.held, r.rode = false, false
			m.jobs = append(m.jobs, job{r: r, in: abi.StepInput{Checkpoint: r.cp, Event: &abi.Event{Kind: abi.EventWoke, Woke: &abi.SleepResponse{NowMS: now.Milliseconds()}}}})
		}
	}
	clear(a.held)
	a.held = a.held[:0]
	m.cond.Broadcast()
}
