package monitor

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

// idleClock is a virtual clock that moves only when the Monitor is idle:
// no step queued or running, no request in flight, every run parked in
// the heap or waiting in a batch's queue. Virtual time then reads as the
// real time of a Monitor whose steps and requests take no time, and a
// test of many intervals costs only its steps. At given virtual times it
// runs the test's actions (a launch, a wake) before moving on.
type idleClock struct {
	*vclock.Clock
	mu      sync.Mutex
	m       *Monitor
	actions []clockAction // by time
	stopAt  time.Duration // the clock stops here; stopped is closed
	stopped chan struct{}
}

type clockAction struct {
	at time.Duration
	fn func()
}

func newIdleClock(stopAt time.Duration) *idleClock {
	return &idleClock{Clock: vclock.New(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)), stopAt: stopAt, stopped: make(chan struct{})}
}

func (c *idleClock) at(t time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.actions = append(c.actions, clockAction{t, fn})
	sort.SliceStable(c.actions, func(i, j int) bool { return c.actions[i].at < c.actions[j].at })
}

// idle reports whether every run of m is parked or queued for a batch,
// and if so the earliest time the loop must act (a due sleeper, a batch
// to flush), or -1: a sleep the loop asked for before its last change
// must not pass that time.
func (c *idleClock) idle() (bool, time.Duration) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.jobs) > 0 {
		return false, 0
	}
	next := time.Duration(-1)
	parked := len(m.sleeping) // a run is in the heap or in one queue or neither
	for _, q := range m.queues {
		parked += len(q.items)
		if len(q.items) > 0 && (next < 0 || q.flushAt < next) {
			next = q.flushAt
		}
	}
	if parked < len(m.runs) {
		return false, 0
	}
	if len(m.sleeping) > 0 && (next < 0 || m.sleeping[0].due < next) {
		next = m.sleeping[0].due
	}
	return true, next
}

// Sleep, called by the Monitor's loop (the only sleeper here), waits for
// the Monitor to be idle, then runs the next action due by the end of the
// sleep, or moves the clock to it.
func (c *idleClock) Sleep(ctx context.Context, d time.Duration) error {
	var next time.Duration
	for {
		var idle bool
		if idle, next = c.idle(); idle {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	end := c.Since() + d
	if next >= 0 && next < end {
		end = next // the loop's sleep began before its last change
	}
	if len(c.actions) > 0 && c.actions[0].at <= end {
		a := c.actions[0]
		c.actions = c.actions[1:]
		c.mu.Unlock()
		c.Advance(a.at - c.Since())
		a.fn()
		return nil
	}
	c.mu.Unlock()
	if end >= c.stopAt {
		c.Advance(c.stopAt - c.Since())
		select {
		case <-c.stopped:
		default:
			close(c.stopped)
		}
		<-ctx.Done()
		return ctx.Err()
	}
	c.Advance(end - c.Since())
	return nil
}

// alignRig runs a Monitor on an idleClock against the fake Prefect and
// records each batch and each run's reads in virtual time.
type alignRig struct {
	f     *fakePrefect
	clock *idleClock
	m     *Monitor
	log   outcomeLog

	mu      sync.Mutex
	batches []time.Duration            // virtual time of each filter request
	reads   map[string][]time.Duration // flow run id → virtual times of its reads
}

func newAlignRig(t *testing.T, stopAt time.Duration) *alignRig {
	g := &alignRig{f: newFakePrefect(t), clock: newIdleClock(stopAt), reads: map[string][]time.Duration{}}
	g.f.filter = func(w http.ResponseWriter, ids []string, limit int) bool {
		now := g.clock.Since()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.batches = append(g.batches, now)
		for _, id := range ids {
			g.reads[id] = append(g.reads[id], now)
		}
		return false // the fake's own answer
	}
	cfg := g.f.base(t)
	cfg.Clock, cfg.OnOutcome, cfg.BatchWindow = g.clock, g.log.on, DefaultBatchWindow
	m := newMonitor(t, *cfg)
	t.Cleanup(func() { m.Close() })
	g.m, g.clock.m = m, m
	return g
}

// follow attaches key to the RUNNING flow run id at virtual time at.
func (g *alignRig) follow(t *testing.T, at time.Duration, key, id string, fields abi.Fields) {
	g.f.set(id, "RUNNING")
	fields.FlowRunID = id
	g.clock.at(at, func() {
		if _, err := g.m.Launch(key, fields); err != nil {
			t.Error(err)
		}
	})
}

// run carries out the actions due at virtual time 0 (the Monitor's loop
// sleeps only once it has something to wait for) and waits until the
// clock has stopped, or until every run has ended and no action is left.
func (g *alignRig) run(t *testing.T) {
	t.Helper()
	c := g.clock
	c.mu.Lock()
	var now []clockAction
	for len(c.actions) > 0 && c.actions[0].at <= 0 {
		now = append(now, c.actions[0])
		c.actions = c.actions[1:]
	}
	c.mu.Unlock()
	for _, a := range now {
		a.fn()
	}
	deadline := time.After(8 * time.Minute)
	for {
		select {
		case <-c.stopped:
			return
		case <-deadline:
			t.Fatalf("the virtual clock is at %s after 8 minutes", c.Since())
		case <-time.After(10 * time.Millisecond):
		}
		c.mu.Lock()
		left := len(c.actions)
		c.mu.Unlock()
		if left == 0 && g.m.Len() == 0 {
			return
		}
	}
}

// batchesIn counts the filter requests sent in [from, to).
func (g *alignRig) batchesIn(from, to time.Duration) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, at := range g.batches {
		if at >= from && at < to {
			n++
		}
	}
	return n
}

// TestMonitorAlignsPolls: runs launched at scattered times come into step
// by lengthen-only holds, so that after a few intervals the Monitor sends
// at most ⌈N/200⌉ batches per interval plus one per tolerance's share of
// it (AlignFraction), where without alignment every second of the interval
// has its own batch.
func TestMonitorAlignsPolls(t *testing.T) {
	for _, tc := range []struct {
		n        int
		interval time.Duration
		spread   time.Duration // launches evenly over this
	}{
		{100, 60 * time.Second, time.Minute},
		{60, 30 * time.Second, 45 * time.Second},
	} {
		t.Run(fmt.Sprintf("%d runs, %s", tc.n, tc.interval), func(t *testing.T) {
			const settle, measured = 4, 2 // intervals
			stop := tc.spread + (settle+measured)*tc.interval
			g := newAlignRig(t, stop)
			for i := range tc.n {
				g.follow(t, time.Duration(i)*tc.spread/time.Duration(tc.n), fmt.Sprint("k", i), fakeID(i),
					abi.Fields{PollInterval: fmt.Sprint(int(tc.interval / time.Second))})
			}
			started := time.Now()
			g.run(t)
			want := (tc.n+MaxBatch-1)/MaxBatch + AlignFraction + 1
			for k := range measured {
				from := tc.spread + time.Duration(settle+k)*tc.interval
				got := g.batchesIn(from, from+tc.interval)
				t.Logf("interval [%s, %s): %d batches", from, from+tc.interval, got)
				if got > want {
					t.Errorf("%d batches in the interval from %s, want at most ⌈%d/%d⌉ + %d + 1 = %d", got, from, tc.n, MaxBatch, AlignFraction, want)
				}
			}
			rs := g.m.Requests()
			t.Logf("%d batches carrying %d reads, %d direct requests; %s of real time", rs.Batches, rs.BatchedReads, rs.Direct, time.Since(started).Round(time.Millisecond))
		})
	}
}

// TestMonitorAlignMaxPolls: a hold only lengthens a poll interval, by at
// most its tolerance: Max Number of Polls ends a run (exit 40) no sooner
// than polls × interval after its first read, and no later than polls ×
// (interval × (1 + 1/AlignFraction) + BatchWindow), each read waiting for
// its batch window as without alignment. Runs are launched a little less
// than a tolerance apart, so that polls are held.
func TestMonitorAlignMaxPolls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int
		interval time.Duration
		gap      time.Duration // between launches
	}{
		{"within the tolerance", 6, 60 * time.Second, 5 * time.Second},
		{"scattered", 40, 60 * time.Second, 1700 * time.Millisecond},
		{"tolerance at its cap", 4, 10 * time.Minute, 25 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxPolls = 3
			tol := alignTolerance(tc.interval)
			most := maxPolls * (tc.interval + tol + DefaultBatchWindow)
			g := newAlignRig(t, time.Duration(tc.n)*tc.gap+most+tc.interval)
			for i := range tc.n {
				g.follow(t, time.Duration(i)*tc.gap, fmt.Sprint("k", i), fakeID(i),
					abi.Fields{PollInterval: fmt.Sprint(int(tc.interval / time.Second)), MaxPolls: fmt.Sprint(maxPolls)})
			}
			g.run(t)
			g.mu.Lock()
			defer g.mu.Unlock()
			for i := range tc.n {
				key := fmt.Sprint("k", i)
				g.log.mu.Lock()
				outs := g.log.outs[key]
				g.log.mu.Unlock()
				if len(outs) != 1 || outs[0].ExitCode != abi.ExitPollingTimeout {
					t.Errorf("run %d: outcomes %+v, want one exit %d", i, outs, abi.ExitPollingTimeout)
					continue
				}
				// The outcome comes at the last read; the first is not a
				// poll, and rides between are not either.
				rs := g.reads[fakeID(i)]
				if len(rs) < maxPolls+1 {
					t.Errorf("run %d: %d reads, want its first and %d polls", i, len(rs), maxPolls)
					continue
				}
				if got := rs[len(rs)-1] - rs[0]; got < maxPolls*tc.interval || got > most {
					t.Errorf("run %d: exit 40 %s after its first read, want %s to %s", i, got, maxPolls*tc.interval, most)
				}
			}
			held := g.m.Requests().Held
			t.Logf("%d of %d polls held; %d batches", held, tc.n*maxPolls, len(g.batches))
			if held == 0 {
				t.Errorf("no poll was held: the test does not exercise alignment")
			}
		})
	}
}

// TestMonitorAlignWakeNotHeld: a read an event brings forward is sent
// within the batch window, whether the run is sleeping or its poll is held
// for a later one; and a held run's poll is not held past its tolerance.
func TestMonitorAlignWakeNotHeld(t *testing.T) {
	const interval = 60 * time.Second
	for _, tc := range []struct {
		name   string
		wakeAt time.Duration // virtual time of the wake of run 0
		held   bool          // run 0's poll is held then: no read since its due
	}{
		// Run 0's first read is at 1 s, its poll due at 62 s, held
		// until run 1's at 67 s.
		{"sleeping", 30 * time.Second, false},
		{"held", 64 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newAlignRig(t, 100*time.Second)
			fields := abi.Fields{PollInterval: fmt.Sprint(int(interval / time.Second))}
			g.follow(t, 0, "k0", fakeID(0), fields)
			g.follow(t, 5*time.Second, "k1", fakeID(1), fields)
			var woke int
			g.clock.at(tc.wakeAt, func() { woke = g.m.Wake(fakeID(0)) })
			g.run(t)
			g.mu.Lock()
			defer g.mu.Unlock()
			if woke != 1 {
				t.Fatalf("Wake woke %d runs", woke)
			}
			var after []time.Duration
			for _, at := range g.reads[fakeID(0)] {
				if at >= tc.wakeAt {
					after = append(after, at)
				} else if tc.held && at >= 62*time.Second {
					t.Errorf("run 0 read at %s: its poll was not held", at)
				}
			}
			t.Logf("run 0 reads %v, run 1 reads %v", g.reads[fakeID(0)], g.reads[fakeID(1)])
			if len(after) == 0 || after[0] > tc.wakeAt+DefaultBatchWindow {
				t.Errorf("woken at %s, run 0 read at %v: want a read within %s", tc.wakeAt, after, DefaultBatchWindow)
			}
		})
	}
}

// TestMonitorAlignStartDeadline: a poll sleep the machine shortened to end
// at the Start Deadline is never held for a later poll of its prefix, so
// exit 41 comes at the deadline (its last read within the batch window),
// as from the CLI, however the other runs' polls fall. The deadline run's
// sleep (25 s, a 60 s interval cut at the deadline) has a tolerance of
// 2.5 s, and the other runs' polls fall due 1 to 3 s after its deadline.
func TestMonitorAlignStartDeadline(t *testing.T) {
	const deadline = 25 * time.Second
	g := newAlignRig(t, 2*time.Minute)
	id := fakeID(99)
	g.f.set(id, "SCHEDULED")
	g.clock.at(0, func() {
		if _, err := g.m.Launch("late", abi.Fields{FlowRunID: id, PollInterval: "60", StartDeadline: fmt.Sprint(int(deadline / time.Second))}); err != nil {
			t.Error(err)
		}
	})
	for i := range 20 {
		g.follow(t, time.Duration(i)*150*time.Millisecond, fmt.Sprint("k", i), fakeID(i),
			abi.Fields{PollInterval: "27", MaxPolls: "1"})
	}
	g.run(t)
	g.log.mu.Lock()
	outs := g.log.outs["late"]
	g.log.mu.Unlock()
	if len(outs) != 1 || outs[0].ExitCode != abi.ExitStartDeadline {
		t.Fatalf("outcomes %+v, want one exit %d", outs, abi.ExitStartDeadline)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.reads[id]
	t.Logf("deadline run read at %v; %d polls held", rs, g.m.Requests().Held)
	if len(rs) < 2 {
		t.Fatalf("reads %v, want its first and one at the deadline", rs)
	}
	if got := rs[len(rs)-1] - rs[0]; got > deadline+DefaultBatchWindow {
		t.Errorf("exit 41 read %s after the first read, want at most the deadline %s + the batch window %s", got, deadline, DefaultBatchWindow)
	}
}

// TestMonitorSlowStepsKeepTheInterval: a run's next poll is due an
// interval after the answer its machine was given (the input's now), not
// after its step ended. The Monitor steps a batch's runs one after
// another, so on a busy machine a run's step can end seconds after its
// answer came; timed from the step's end, each round added that time to
// the run's interval, and the runs of one batch drifted apart by their
// places in the queue. Here each step that ends in a sleep takes 5 s of
// virtual time: the reads must still come an interval plus the batch
// window apart (before the fix: 66 s for a 60 s interval).
func TestMonitorSlowStepsKeepTheInterval(t *testing.T) {
	const interval, step = 60 * time.Second, 5 * time.Second
	g := newAlignRig(t, 5*interval)
	g.m.beforeSleep = func(string, abi.SleepRequest) { g.clock.Advance(step) }
	g.follow(t, 0, "k", fakeID(1), abi.Fields{PollInterval: fmt.Sprint(int(interval / time.Second))})
	g.run(t)
	g.mu.Lock()
	reads := g.reads[fakeID(1)]
	g.mu.Unlock()
	if len(reads) < 4 {
		t.Fatalf("%d reads in %s, want at least 4", len(reads), 5*interval)
	}
	for i := 1; i < len(reads); i++ {
		if gap := reads[i] - reads[i-1]; gap > interval+DefaultBatchWindow {
			t.Errorf("read %d came %s after the one before, want at most the interval %s + the batch window %s", i, gap, interval, DefaultBatchWindow)
		}
	}
}
