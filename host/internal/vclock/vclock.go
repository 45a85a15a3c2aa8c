// Package vclock is a virtual clock: it starts at an epoch and moves only
// when something sleeps on it, instantly. The host uses it for the
// plugin's own WASI clocks in a deterministic run; package hosttest
// exports it for tests.
package vclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a virtual clock. It implements host.Clock.
type Clock struct {
	epoch time.Time
	mu    sync.Mutex
	now   time.Duration
}

// New returns a virtual clock at epoch.
func New(epoch time.Time) *Clock { return &Clock{epoch: epoch} }

// Epoch returns the wall time the clock started at.
func (c *Clock) Epoch() time.Time { return c.epoch }

// Since returns the virtual time elapsed since the epoch.
func (c *Clock) Since() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Now returns the virtual wall time.
func (c *Clock) Now() time.Time { return c.epoch.Add(c.Since()) }

// Sleep advances the clock by d and returns at once, or reports ctx.Err()
// if ctx is already done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the clock forward by d; a negative d is ignored.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now += d
	}
}
