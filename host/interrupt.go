package host

import (
	"sync"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Interrupter stops a run from another goroutine, typically a signal
// handler. The first Interrupt ends the blocking host call in progress and
// is reported to the plugin, which may still cancel the flow run within
// the grace period; after that, or on Abort, every host call fails at once.
type Interrupter struct {
	mu      sync.Mutex
	it      *abi.Interrupt
	soft    chan struct{}
	hard    chan struct{}
	hardSet bool
}

// NewInterrupter returns an Interrupter that has not fired.
func NewInterrupter() *Interrupter {
	return &Interrupter{soft: make(chan struct{}), hard: make(chan struct{})}
}

// Interrupt asks the run to stop; exitCode is what it should end with
// (abi.ExitInterruptedSIGTERM …). Later calls are ignored.
func (i *Interrupter) Interrupt(reason string, exitCode int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.it == nil {
		i.it = &abi.Interrupt{Reason: reason, ExitCode: exitCode}
		close(i.soft)
	}
}

// Abort ends the grace period at once (a second signal).
func (i *Interrupter) Abort() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.hardSet {
		i.hardSet = true
		close(i.hard)
	}
}

func (i *Interrupter) get() *abi.Interrupt {
	if i == nil {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.it
}
