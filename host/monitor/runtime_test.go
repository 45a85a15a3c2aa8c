package monitor

import (
	"context"
	"sync"
	"testing"

	"github.com/ue-prefect/ue-prefect/host"
)

var (
	sharedRuntime     *host.Runtime
	sharedRuntimeErr  error
	sharedRuntimeOnce sync.Once
)

// newTestRuntime returns the real plugin in the interpreter, compiled once
// per test binary.
func newTestRuntime(t *testing.T) *host.Runtime {
	t.Helper()
	sharedRuntimeOnce.Do(func() {
		sharedRuntime, sharedRuntimeErr = host.NewRuntime(context.Background(), host.PluginWasm, host.WithInterpreter())
	})
	if sharedRuntimeErr != nil {
		t.Fatal(sharedRuntimeErr)
	}
	return sharedRuntime
}
