package host

import (
	"context"
	"time"
)

// Clock is the host's notion of time: the monotonic milliseconds reported
// to the plugin (abi now_ms), the wall time used for Retry-After dates, and
// sleeping. The plugin itself reads no clock.
type Clock interface {
	// Since returns the monotonic time elapsed since the clock was made.
	Since() time.Duration
	// Now returns the wall time.
	Now() time.Time
	// Sleep blocks for d, or until ctx is done, and reports ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock returns a Clock on the system clocks.
func RealClock() Clock { return realClock{start: time.Now()} }

type realClock struct{ start time.Time }

func (c realClock) Since() time.Duration { return time.Since(c.start) }
func (c realClock) Now() time.Time       { return time.Now() }
func (c realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// virtualClock is a Clock that makes a run deterministic
// (hosttest.VirtualClock): the plugin's own WASI clocks then start at its
// epoch and move only when the guest sleeps, and its random source is fixed.
type virtualClock interface {
	Clock
	Epoch() time.Time
}
