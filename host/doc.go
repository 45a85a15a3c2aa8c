// Package host is the runtime of the ue-prefect plugin: it loads,
// compile-caches and instantiates the plugin's WebAssembly module on
// wazero (Runtime), calls its exports (Run, Step) and supplies its
// imports: HTTP through Prefect's wire (host/prefect), sleep on a Clock
// that an Interrupter or a Prefect event can cut short, the credential's
// scheme, log and progress. Functions offers the same imports as Go
// methods to a program that drives the state machine itself; Monitor
// follows many runs with a few plugin instances.
//
// It must never import a command (host/cmd/..., host/temporal) nor be
// imported by host/prefect: the arrows run from the commands to host, and
// from host to host/prefect and abi.
package host
