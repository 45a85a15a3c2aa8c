package monitor_test

import (
	"context"
	"fmt"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
	"github.com/ue-prefect/ue-prefect/host/monitor"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// Follow many flow runs from one process: each waiting run is a parked
// checkpoint in the store, not a live plugin instance, and the runs' polls
// go out together, up to 200 per request. Keep the store (here a
// directory) across restarts and every unfinished run resumes, with no
// second launch; each outcome is what the CLI would report.
func Example() {
	ctx := context.Background()
	rt, _ := host.NewRuntime(ctx, host.PluginWasm)
	defer rt.Close(ctx)
	base, _ := prefect.ValidateAPIBase("http://127.0.0.1:4200/api", false)
	store, _ := monitor.NewFileStore("/var/lib/scheduler/prefect-runs")
	mon, _ := monitor.New(ctx, rt, monitor.Config{
		Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		Store:      store,
		OnOutcome:  func(key string, out abi.RunOutput) { fmt.Println(key, out.ExitCode, out.StatusDescription) }})
	defer mon.Close()
	mon.Launch("nightly-2026-11-28", abi.Fields{Deployment: "etl/nightly"}) // the key is the idempotency key
	mon.Follow("adhoc-17", "0b6c2f4e-1d1a-4a39-9a57-58c9b3f0b5aa")          // a run launched elsewhere
}

// A run whose fate was unknown (Prefect unreachable past the outage
// budget) keeps its checkpoint in the store, and a Launch of its key
// resumes it, or refuses other inputs with exit 20 on Checkpoint. Once
// the flow run has been checked on Prefect, Forget the key and launch it
// afresh.
func ExampleMonitor_Forget() {
	ctx := context.Background()
	rt, _ := host.NewRuntime(ctx, host.PluginWasm)
	defer rt.Close(ctx)
	base, _ := prefect.ValidateAPIBase("http://127.0.0.1:4200/api", false)
	store, _ := monitor.NewFileStore("/var/lib/scheduler/prefect-runs")
	mon, _ := monitor.New(ctx, rt, monitor.Config{
		Connection: prefect.Connection{Target: abi.TargetServer, APIBase: base, Credential: prefect.NoCredential()},
		Store:      store})
	defer mon.Close()
	key := "nightly-2026-11-28"
	if w := mon.Watch(key); w != nil {
		<-w.Done() // a run still followed is not forgotten
	}
	if err := mon.Forget(key); err != nil {
		fmt.Println(err)
		return
	}
	mon.Launch(key, abi.Fields{Deployment: "etl/nightly", Parameters: `{"day":"2026-11-28"}`})
}
