package monitor

import (
	"context"
	"sort"
	"sync"
	"time"
)

// budgetMargin is how long after a minute a spent request's token comes
// back. A request reaches the server a little after it leaves the budget
// (goroutine scheduling, a connection, the network), and not always in the
// order it left; the margin keeps a request that took up to this long on
// its way inside the minute the server counts it in, so the server never
// sees more than the limit in any minute of its own.
const budgetMargin = time.Second

// budgetClock is the part of Clock a budget uses.
type budgetClock interface {
	Since() time.Duration
	Sleep(ctx context.Context, d time.Duration) error
}

// budget paces requests to at most n in any minute (and budgetMargin).
// It is a token bucket that holds up to burst tokens and gains one every
// (minute + budgetMargin)/n, so that a run of requests goes out evenly
// spaced rather than n at once and then nothing for a minute; and on top
// of it a window: a request never goes out while the last minute (and
// budgetMargin) already holds n. A server that counts requests per minute,
// in a sliding window, a fixed window or a bucket that refills n a minute,
// then never refuses one for the rate. The bucket alone would not do: after
// a quiet spell it lets burst through at once and n more in the minute
// after, more than a sliding window admits.
//
// It also holds every request back until a Retry-After has passed (Hold),
// on top of the tokens, and counts the requests sent in the last minute
// (Sent) whether or not it limits them. n <= 0 means no limit.
type budget struct {
	n      int
	burst  int
	period time.Duration // one token comes back each period
	clock  budgetClock

	mu    sync.Mutex
	hold  time.Duration   // no request before this
	tat   time.Duration   // the bucket is full again at tat (GCRA's theoretical arrival time)
	spent []time.Duration // when each request of the last minute (and margin) went out, oldest first
}

// newBudget returns a budget of n requests a minute that lets up to burst
// of them out at once after a quiet spell (at least 1, at most n).
func newBudget(n, burst int, clock budgetClock) *budget {
	b := &budget{n: max(n, 0), clock: clock}
	if b.n > 0 {
		b.burst = min(max(burst, 1), b.n)
		b.period = (time.Minute + budgetMargin) / time.Duration(b.n)
	}
	return b
}

// Wait blocks until a request may go out, takes a token for it and
// returns nil; or returns ctx.Err() if ctx ends first, having taken
// nothing. Callers send the request at once after it returns.
func (b *budget) Wait(ctx context.Context) error {
	_, err := b.wait(ctx)
	return err
}

// wait is Wait that also returns the instant the token was taken.
func (b *budget) wait(ctx context.Context) (time.Duration, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b.mu.Lock()
		now := b.clock.Since()
		at := b.earliest(now)
		if at <= now {
			b.spent = append(b.spent, now)
			b.tat = max(b.tat, now) + b.period
			b.mu.Unlock()
			return now, nil
		}
		b.mu.Unlock()
		// Others may take the token meanwhile, or a Retry-After may come:
		// look again after the sleep.
		if err := b.clock.Sleep(ctx, at-now); err != nil {
			return 0, err
		}
	}
}

// earliest returns when the next request may go out: now or later (b.mu
// held).
func (b *budget) earliest(now time.Duration) time.Duration {
	b.prune(now)
	at := max(now, b.hold)
	if b.n > 0 {
		at = max(at, b.tat-time.Duration(b.burst-1)*b.period)
		if len(b.spent) >= b.n {
			at = max(at, b.spent[len(b.spent)-b.n]+time.Minute+budgetMargin)
		}
	}
	return at
}

// Free returns when a request could go out, seen from now on the clock:
// now, or later when no token is left or a Retry-After holds requests
// back. It takes nothing.
func (b *budget) Free(now time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.earliest(now)
}

// prune forgets tokens that have come back and are out of the last
// minute's count (b.mu held).
func (b *budget) prune(now time.Duration) {
	keep := now - time.Minute - budgetMargin
	i := sort.Search(len(b.spent), func(i int) bool { return b.spent[i] > keep })
	b.spent = b.spent[i:] // append moves the rest to a new array when it grows
}

// Hold keeps every request back until the clock reads until (a
// Retry-After), on top of the tokens.
func (b *budget) Hold(until time.Duration) {
	b.mu.Lock()
	b.hold = max(b.hold, until)
	b.mu.Unlock()
}

// Sent returns how many requests were sent in the last minute.
func (b *budget) Sent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	since := b.clock.Since() - time.Minute
	return len(b.spent) - sort.Search(len(b.spent), func(i int) bool { return b.spent[i] > since })
}
