package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

// TestParkReloads: after a park has unloaded the plugin (and closed the
// compilation cache that held its code), the next call loads it again:
// from the cache while it is complete, in the interpreter once its marker
// is gone (a cache directory someone emptied).
func TestParkReloads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rt, err := NewRuntime(ctx, PluginWasm, WithCacheDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	rt.WaitCache(ctx)
	markers, _ := filepath.Glob(filepath.Join(dir, "ok-*"))
	if len(markers) != 1 {
		t.Fatalf("cache markers %v, want one", markers)
	}
	in := abi.StepInput{Input: &abi.RunInput{Action: abi.ActionLaunchFlowRun, Target: abi.TargetServer,
		APIBase: "http://prefect.test/api", InvocationID: "inv", Seed: 1, Fields: abi.Fields{Deployment: "a/b"}}}
	for _, tc := range []struct {
		name   string
		before func()
	}{
		{"from the cache", func() {}},
		{"without the cache's marker", func() { os.Remove(markers[0]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !rt.park(ctx) {
				t.Fatal("park did not unload the plugin")
			}
			tc.before()
			out, err := rt.Step(ctx, in)
			if err != nil || len(out.Commands) == 0 {
				t.Fatalf("Step after a park = %+v, %v", out, err)
			}
		})
	}
}
