package tests

import (
	"context"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// TestParkedRunKeepsTheTranscript runs every golden scenario through the
// plugin with every sleep parked (RunConfig.ParkAfter of 1 ns): the
// instance closed, the compiled plugin unloaded and the memory freed, then
// loaded again and resumed from the checkpoint. Each trace must equal the
// golden transcript, which an unbroken run of the run export gives too
// (TestDifferential/wasm). The plugin is loaded from TestMain's warm
// compilation cache, as the CLI loads it at every wake.
func TestParkedRunKeepsTheTranscript(t *testing.T) {
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.PluginWasm, host.WithCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	var parks, unloads, sleeps int
	flowruntest.Each(t, goldenDir, func(t *testing.T, s *flowruntest.Script) abi.RunOutput {
		cfg := scenarioConfig(t, s)
		cfg.ParkAfter = time.Nanosecond
		cfg.OnPark = func(unloaded bool) {
			parks++
			if unloaded {
				unloads++
			}
		}
		trace := cfg.Trace
		cfg.Trace = func(fn string, req, resp []byte) {
			if fn == abi.FuncSleep {
				sleeps++
			}
			trace(fn, req, resp)
		}
		out, err := rt.Run(ctx, cfg, s.Sc.Input)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return out
	})
	// Every sleep was a park, and each park unloaded the plugin (nothing
	// else used the Runtime).
	if parks != sleeps || unloads != parks {
		t.Errorf("%d sleeps, %d parks, %d of them unloading: want every sleep parked and unloaded", sleeps, parks, unloads)
	}
	t.Logf("%d sleeps over the golden scenarios, all parked", sleeps)
}
