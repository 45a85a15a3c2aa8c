// Package host is the runtime of the ue-prefect plugin: it loads,
// compile-caches and instantiates the plugin's WebAssembly module on
// wazero (Runtime), calls its exports (Run, Step) and supplies its
// imports: HTTP through Prefect's wire (host/prefect), sleep on a Clock
// that an Interrupter or a Prefect event can cut short, the credential's
// scheme, log and progress. Functions offers the same imports as Go
// methods to a program that drives the state machine itself; a Stepper
// keeps one instance for many calls of the step export (the Monitor's
// pool, in host/monitor, keeps a few).
//
// It must never import the Monitor (host/monitor) or a command
// (host/cmd/..., host/temporal): they import it. Besides abi it imports
// only Prefect's wire, host/prefect, which must never import it back.
package host
