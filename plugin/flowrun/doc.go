// Package flowrun is the launch/poll state machine of ue-prefect: pure logic
// over JSON.
//
// A [Machine] takes events (the answer to its last command) and returns
// commands (send this HTTP request, sleep this long, ask which credential is
// configured, log this line, publish these output fields, finish with this
// outcome). It never reads a clock, draws randomness, touches the network or
// files: time arrives inside events as the host's monotonic milliseconds,
// randomness is a seed in the input, and every effect is a command the
// driver carries out. Its whole state is a JSON document ([Machine.Checkpoint])
// from which [Restore] rebuilds it, so a run can be checkpointed and resumed
// in another process.
//
// The driver loop is [Run]: it executes commands through a [Host]
// implementation. Inside the Wasm plugin that implementation calls the host
// functions of package abi; in tests it is a scripted fake with a virtual
// clock, so a 60-second poll interval costs nothing.
//
//	in ──► Start ──► [credential] ──► Step ──► [http] ──► Step ──► … ──► [finish]
//	                     ▲                │         ▲          │
//	                     └── event ◄──────┘         └─ event ◄─┘
//
// # Layout
//
// The machine has one outstanding command at a time, named by an op;
// machine.go holds the table of ops and the handler of each. Each
// operation is one file, with its requests, its handlers and its part of
// the state (the checkpoint, declared in checkpoint.go, holds one part per
// operation):
//
//   - resolve.go: the credential, the Cloud workspace, the deployment.
//   - launch.go: the idempotent create of the flow run.
//   - poll.go: reading the flow run until it ends, through outages.
//   - logs.go: relaying the flow run's log lines after each poll.
//   - cancel.go: interrupts, the one rule of what an interrupt stops, and
//     cancelling the flow run within the grace period.
//   - list.go: the list actions, and the names in not-found and ambiguity
//     errors.
//   - schedule.go: the scheduled start (resolved once against the host's
//     wall clock), the start deadline, and the readiness warnings.
//   - paramschema.go: parameter values against the deployment's schema,
//     after what Prefect's server does first (paramprefect.go), with the
//     package's own JSON Schema validator (minischema.go).
//
// What they share: http.go sends requests, checks answers and retries
// them; clock.go keeps time, in milliseconds throughout; finish.go builds
// the outcome; config.go validates the input fields.
//
// This package imports only package abi, gjson and the standard library,
// and no part of the standard library that does I/O or reads the clock.
package flowrun
