// Package abi is the contract between the ue-prefect plugin (the launch/poll
// state machine compiled to WebAssembly) and any host that runs it: the
// Wasm names, the ABI version, the JSON messages, the error codes and the
// task exit codes. It imports only the standard library; the plugin and
// the host both import it, so no Wasm name is written twice.
//
// # Call sequence
//
// The plugin is a go-pdk "reactor" module (GOOS=wasip1, -buildmode=c-shared).
// A host instantiates it, which runs _initialize, then:
//
//	host                                   plugin
//	 │ abi_version() ───────────────────────► │  {"abi_version":1,…}
//	 │ run(RunInput) ───────────────────────► │
//	 │ ◄──────────────────── get_credential({})│  {"scheme":"bearer","source":"env PREFECT_API_KEY"}
//	 │ ◄─────── prefect_http({"method":"GET",…})│  {"status":200,"body":…,"now_ms":…}
//	 │ ◄──────────── log({"level":"info",…})   │
//	 │ ◄── prefect_http(POST …/create_flow_run) │  201: a new flow run; 200: an existing one
//	 │ ◄──────────── progress({"fields":…})    │  output fields + checkpoint
//	 │ ◄──────────── sleep({"duration_ms":…})  │  {"now_ms":…} or {"interrupt":…}
//	 │ ◄── prefect_http(GET /flow_runs/{id}) … │  until a terminal state
//	 │ ◄──────────────────────── RunOutput ────│  {"exit_code":0,"status_description":…,"result":…}
//
// Instead of run, a host may drive the pure machine itself with step:
// StepInput{Input} returns the first commands and a checkpoint; each later
// StepInput{Checkpoint, Event} answers the last command. step calls no
// host function.
//
// Behind run and step is the state machine, package plugin/flowrun: one
// file per operation (resolve, launch, poll, logs, cancel, list), each
// holding its requests, its response handlers and its part of the
// checkpoint, which is versioned and opaque to hosts.
//
// # Data across the boundary
//
// Every message is JSON. It crosses in Extism kernel memory: the caller
// allocates a block, writes the JSON, passes the block's offset (an i64),
// and the callee returns the offset of its answer, or 0 for none
// ([KernelModule] holds alloc, free, load/store, input and output). A
// host function never learns a guest pointer and the plugin never sees
// host memory.
//
// # Time, randomness and secrets
//
// The plugin reads no clock: every answer from the host carries now_ms,
// the host's monotonic milliseconds, and deadlines are computed from it.
// Wall-clock time enters with [RunInput.NowUnixMS], the host's wall clock
// at the start or resume, against which a scheduled start ([Fields.StartAt])
// is checked and a relative one resolved. The resolved time is kept in the
// checkpoint, so a resumed run never recomputes it; a resume moves the
// machine's time on by the wall-clock time it was away.
// It draws no randomness: [RunInput.Seed] seeds retry jitter and state
// transition ids. It never sees a secret: [FuncCredential] reports only
// the scheme and where the secret came from, and the host adds the
// Authorization header to each [FuncHTTP] request itself.
//
// # Errors
//
// Three channels, each explicit:
//
//   - A business outcome (the flow run failed, an input is invalid, the
//     server is unreachable) is data: [RunOutput] with an exit code, a
//     status description and an [Error] whose [Code] classifies it.
//   - An expected failure inside a host function (connection refused, a
//     body over the cap) is reported inside its response, as
//     [HTTPResponse.Error] with a [TransportKind]. Host functions never
//     trap for these.
//   - A broken contract (unreadable memory, a request that is not JSON, a
//     plugin panic) ends the call: the plugin recovers panics and returns
//     status 1 after error_set; a host function traps. The host reports
//     either as exit 1 with [CodeInternal].
//
// # Versioning
//
// [Version] is checked at load: the host calls abi_version and refuses any
// other version ("abi: version mismatch: host 1, plugin 2"), and it refuses
// a module that lacks an export of [Exports] or imports a function it does
// not supply. Optional JSON fields may be added without a version change;
// both sides ignore fields they do not know. [SleepRequest.WakeOn] and
// [SleepResponse.Woken] were added so: an older host ignores WakeOn and
// sleeps the whole duration, and an older plugin never asks to be woken.
// So was [SleepRequest.Exact]: an older host may lengthen a sleep that
// ends at the Start Deadline as it lengthens a poll, and an older plugin
// never marks one.
//
// # Exit codes
//
// The task exit codes follow Stonebranch ue-prefect 1.0: [ExitSuccess] 0,
// [ExitFailed] 1, [ExitDataValidation] 20, [ExitPollingTimeout] 40, plus
// [ExitStartDeadline] 41 (a flow run that did not start in time) and
// 128+n when a signal ended the wait ([ExitInterruptedSIGINT],
// [ExitInterruptedSIGTERM]).
package abi
