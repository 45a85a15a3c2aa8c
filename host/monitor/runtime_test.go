package monitor

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ue-prefect/ue-prefect/host"
)

var (
	sharedRuntime     *host.Runtime
	sharedRuntimeErr  error
	sharedRuntimeOnce sync.Once
)

// newTestRuntime returns the real plugin, compiled to machine code once per
// machine and shared by every test of the binary. The tests drive
// thousands of steps, each about 40 times slower in wazero's interpreter.
// The code is kept where `go test` keeps its own cache (GOCACHE), so a
// fresh clone compiles it once.
func newTestRuntime(t *testing.T) *host.Runtime {
	t.Helper()
	sharedRuntimeOnce.Do(func() {
		sharedRuntime, sharedRuntimeErr = compiledRuntime(context.Background())
	})
	if sharedRuntimeErr != nil {
		t.Fatal(sharedRuntimeErr)
	}
	return sharedRuntime
}

// compiledRuntime opens the plugin from the compilation cache, filling it
// first when it is cold: a cold runtime interprets while it compiles.
func compiledRuntime(ctx context.Context) (*host.Runtime, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	opt := host.WithCacheDir(filepath.Join(dir, "ue-prefect-test"))
	cold, err := host.NewRuntime(ctx, host.PluginWasm, opt)
	if err != nil {
		return nil, err
	}
	cold.WaitCache(ctx)
	if err := cold.Close(ctx); err != nil {
		return nil, err
	}
	return host.NewRuntime(ctx, host.PluginWasm, opt)
}
