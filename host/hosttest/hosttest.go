// Package hosttest holds what tests of a program embedding package host
// need and production code does not: a virtual clock that makes a run
// deterministic, and the answers of a scripted network and credential
// store in the form the host's own HTTP and credential code take.
package hosttest

import (
	"time"

	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

// VirtualClock is a host.Clock for deterministic tests: it starts at its
// epoch and moves only when something sleeps on it, instantly, so a
// 60-second poll interval costs nothing. Given as host.RunConfig.Clock it
// also makes the plugin's own WASI clocks virtual (from the same epoch)
// and its random source fixed.
type VirtualClock = vclock.Clock

// NewVirtualClock returns a virtual clock at epoch.
func NewVirtualClock(epoch time.Time) *VirtualClock { return vclock.New(epoch) }
