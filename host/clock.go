package host

import (
	"context"
	"sync"
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

// VirtualClock is a Clock for deterministic tests: it starts at Epoch and
// moves only when something sleeps on it, instantly. A 60-second poll
// interval costs nothing.
type VirtualClock struct {
	Epoch time.Time
	mu    sync.Mutex
	now   time.Duration
}

// NewVirtualClock returns a virtual clock at epoch.
func NewVirtualClock(epoch time.Time) *VirtualClock { return &VirtualClock{Epoch: epoch} }

// Since implements Clock.
func (c *VirtualClock) Since() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Now implements Clock.
func (c *VirtualClock) Now() time.Time { return c.Epoch.Add(c.Since()) }

// Sleep implements Clock: it advances the clock by d and returns at once.
func (c *VirtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the clock forward by d.
func (c *VirtualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now += d
	}
}
