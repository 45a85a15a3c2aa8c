// Package prefect is how ue-prefect reaches Prefect's API, and nothing
// else: the rules for an API base (ValidateAPIBase, RedactURL), the secret
// attached to requests (Credential), the transport, Prefect's CSRF tokens,
// the one-attempt HTTP exchange with its error classes (Client), and the
// hub that follows Prefect's event stream (EventHub).
// Connection gathers what reaching one API takes; the runtime, the Monitor
// and the Temporal worker embed it in their configurations.
//
// It must never import the runtime (package host), the Monitor, the
// commands or anything that imports them: they all import it. Besides the
// standard library it imports only abi, whose messages (abi.HTTPRequest,
// abi.HTTPResponse, abi.TransportError) it speaks, and a websocket client
// for Prefect's event stream (EventHub).
package prefect
