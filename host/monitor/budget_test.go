package monitor

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

const minute = time.Minute

var budgetEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestBudgetWait sends requests one after another on a virtual clock and
// checks the instant each one is let out.
func TestBudgetWait(t *testing.T) {
	s := time.Second
	m := minute + budgetMargin // the window; n tokens come back over it
	p3 := m / 3                // three a minute: a token each 20.3 s
	zeros := func(k int) []time.Duration { return make([]time.Duration, k) }
	// Twenty a minute, two at once: two go, then one each 3.05 s until
	// the window holds twenty, and the 21st waits for the first to leave
	// it, not for the bucket.
	p20 := m / 20
	twenty := []time.Duration{0}
	for i := range 19 {
		twenty = append(twenty, time.Duration(i)*p20)
	}
	twenty = append(twenty, m, m)
	for _, tc := range []struct {
		name     string
		n, burst int
		hold     time.Duration // a Retry-After: nothing before
		arrive   []time.Duration
		wantOut  []time.Duration
	}{
		{"no limit", 0, 0, 0, zeros(4), zeros(4)},
		{"under the limit", 3, 3, 0, []time.Duration{0, 10 * s, 20 * s}, []time.Duration{0, 10 * s, 20 * s}},
		{"a burst of seven, three a minute, three at once", 3, 3, 0, zeros(7), []time.Duration{0, 0, 0, m, m, m, 2 * m}},
		{"a burst of four, three a minute, one at once: evenly spaced", 3, 1, 0, zeros(4), []time.Duration{0, p3, 2 * p3, m}},
		{"the window caps the bucket after a quiet spell", 20, 2, 0, zeros(22), twenty},
		{"each token comes back on its own", 2, 2, 0, []time.Duration{0, 30 * s, 45 * s, 62 * s, 62 * s}, []time.Duration{0, 30 * s, m, 30*s + m, 2 * m}},
		{"a request after a quiet minute goes at once", 1, 1, 0, []time.Duration{0, 5 * minute}, []time.Duration{0, 5 * minute}},
		{"Retry-After alone", 0, 0, 10 * s, []time.Duration{0, 0, 11 * s}, []time.Duration{10 * s, 10 * s, 11 * s}},
		{"Retry-After on top of the tokens", 1, 1, 30 * s, zeros(2), []time.Duration{30 * s, 30*s + m}},
		{"tokens on top of Retry-After", 2, 2, 70 * s, zeros(3), []time.Duration{70 * s, 70 * s, 70*s + m}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vc := vclock.New(budgetEpoch)
			b := newBudget(tc.n, tc.burst, vc)
			if tc.hold > 0 {
				b.Hold(tc.hold)
			}
			var got []time.Duration
			for i, at := range tc.arrive {
				vc.Advance(at - vc.Since())
				if f := b.Free(vc.Since()); f != tc.wantOut[i] {
					t.Errorf("request %d: Free() = %v before it, want %v", i, f, tc.wantOut[i])
				}
				if err := b.Wait(context.Background()); err != nil {
					t.Fatal(err)
				}
				got = append(got, vc.Since())
			}
			if !slices.Equal(got, tc.wantOut) {
				t.Errorf("sent at %v, want %v", got, tc.wantOut)
			}
		})
	}
}

// TestBudgetSent checks the count of requests sent in the last minute, with
// and without a limit.
func TestBudgetSent(t *testing.T) {
	s := time.Second
	for _, n := range []int{0, 10} {
		vc := vclock.New(budgetEpoch)
		b := newBudget(n, n, vc)
		for _, at := range []time.Duration{0, 0, 30 * s, 59 * s} {
			vc.Advance(at - vc.Since())
			if err := b.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []struct {
			at   time.Duration
			want int
		}{{59 * s, 4}, {60*s - 1, 4}, {60 * s, 2}, {90*s - 1, 2}, {90 * s, 1}, {119 * s, 0}, {10 * minute, 0}} {
			vc.Advance(q.at - vc.Since())
			if got := b.Sent(); got != q.want {
				t.Errorf("n=%d: Sent() at %v = %d, want %d", n, q.at, got, q.want)
			}
		}
	}
}

// cancellingClock is a virtual clock whose Sleep is cut short by the end of
// its context, which it brings about itself: a waiter given up on midway.
type cancellingClock struct {
	*vclock.Clock
	cancel context.CancelFunc
}

func (c cancellingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d / 2)
	c.cancel()
	return ctx.Err()
}

// TestBudgetCancelled: a Wait whose context ends takes no token.
func TestBudgetCancelled(t *testing.T) {
	vc := vclock.New(budgetEpoch)
	ctx, cancel := context.WithCancel(context.Background())
	b := newBudget(1, 1, cancellingClock{vc, cancel})
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait given up midway: %v, want context.Canceled", err)
	}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context: %v, want context.Canceled", err)
	}
	if got := b.Sent(); got != 1 {
		t.Errorf("Sent() = %d after one request and two abandoned waits, want 1", got)
	}
	b.clock = vc
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := vc.Since(), minute+budgetMargin; got != want {
		t.Errorf("the next request went at %v, want %v (the token the first took back)", got, want)
	}
}

// slidingServer admits at most n requests in any window, counting a
// request at its arrival, as tests/rig's FaultProxy.RateLimit and a
// rate-limited API do; it returns how many it refused.
func slidingServer(n int, window time.Duration, arrivals []time.Duration) (refused int) {
	var admitted []time.Duration
	for _, a := range arrivals {
		for len(admitted) > 0 && a-admitted[0] >= window {
			admitted = admitted[1:]
		}
		if len(admitted) >= n {
			refused++
			continue
		}
		admitted = append(admitted, a)
	}
	return refused
}

// TestBudgetUnderLoad: many goroutines spend one budget at once, more than
// it allows. No minute holds more than n tokens, and a server that counts
// per minute refuses none of the requests even when each takes up to the
// margin to arrive, in any order.
func TestBudgetUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		n, burst, senders, each int
		gap                     time.Duration // the most a sender pauses between requests
	}{
		{n: 1, burst: 1, senders: 4, each: 20, gap: 0},
		{n: 5, burst: 5, senders: 8, each: 50, gap: 2 * time.Second},
		{n: 300, burst: 30, senders: 16, each: 400, gap: 100 * time.Millisecond},
		{n: 300, burst: 300, senders: 16, each: 400, gap: time.Second},
		{n: 625, burst: 62, senders: 32, each: 300, gap: 0},
	} {
		vc := vclock.New(budgetEpoch)
		b := newBudget(tc.n, tc.burst, vc)
		var mu sync.Mutex
		var taken []time.Duration
		var wg sync.WaitGroup
		for g := range tc.senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range tc.each {
					at, err := b.wait(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					taken = append(taken, at)
					mu.Unlock()
					if tc.gap > 0 {
						_ = vc.Sleep(context.Background(), time.Duration(rng.Int64N(int64(tc.gap))))
					}
				}
			}()
		}
		wg.Wait()
		if len(taken) != tc.senders*tc.each {
			t.Fatalf("n=%d: %d requests let out, want %d", tc.n, len(taken), tc.senders*tc.each)
		}
		slices.Sort(taken)
		for i := tc.n; i < len(taken); i++ {
			if d := taken[i] - taken[i-tc.n]; d < minute+budgetMargin {
				t.Fatalf("n=%d: %d requests within %v (the %dth at %v)", tc.n, tc.n+1, d, i, taken[i])
			}
		}
		// Each request takes up to 900 ms to arrive.
		rng := rand.New(rand.NewPCG(7, 7))
		arrivals := make([]time.Duration, len(taken))
		for i, at := range taken {
			arrivals[i] = at + time.Duration(rng.Int64N(int64(900*time.Millisecond)))
		}
		slices.Sort(arrivals)
		if r := slidingServer(tc.n, minute, arrivals); r != 0 {
			t.Errorf("n=%d: a server counting %d a minute refused %d of %d requests", tc.n, tc.n, r, len(arrivals))
		}
		// The check can fail: the same requests without the margin, or a
		// classic bucket's burst, are refused.
		if tc.n > 1 && tc.each*tc.senders > 2*tc.n {
			burst := make([]time.Duration, 2*tc.n)
			for i := tc.n; i < 2*tc.n; i++ {
				burst[i] = time.Duration(i-tc.n+1) * minute / time.Duration(tc.n)
			}
			if slidingServer(tc.n, minute, burst) == 0 {
				t.Errorf("n=%d: the server admitted a classic token bucket's 2n in a minute", tc.n)
			}
		}
	}
}
