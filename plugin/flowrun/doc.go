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
// The driver loop is [Run]: it executes commands through an [Effects]
// implementation. Inside the Wasm plugin that implementation calls the host
// functions of package abi; in tests it is a scripted fake with a virtual
// clock, so a 60-second poll interval costs nothing.
//
//	in ──► Start ──► [credential] ──► Step ──► [http] ──► Step ──► … ──► [finish]
//	                     ▲                │         ▲          │
//	                     └── event ◄──────┘         └─ event ◄─┘
//
// This package imports only package abi, gjson and the standard library,
// and no part of the standard library that does I/O or reads the clock.
package flowrun
