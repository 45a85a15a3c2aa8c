// Package monitor follows many Prefect flow runs from one process with a
// few instances of the plugin: a waiting run is its checkpoint, parked
// until its next event, not a live instance. Monitor is the face (Launch,
// Follow, Watch, Forget, Close, the outcomes); the stepping pool (pool.go) steps
// runs through the plugin's pure step export; the schedule (schedule.go)
// parks and wakes them; the batcher (batch.go) sends their requests,
// reading the runs due together with one POST /flow_runs/filter, each
// after a token of Config.RequestsPerMinute's budget (budget.go). A Store
// keeps the checkpoints of unfinished runs, so a new process resumes them.
//
// It imports the runtime (package host) and Prefect's wire (host/prefect),
// never a command; neither of those may import it.
package monitor
