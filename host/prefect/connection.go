package prefect

import (
	"net/http"
	"net/url"
	"time"
)

// Connection is how a program reaches one Prefect API. It is declared
// once, here, and embedded by the configurations of the runtime
// (host.RunConfig), the Monitor and the Temporal worker.
type Connection struct {
	// Target is abi.TargetCloud or abi.TargetServer.
	Target string
	// APIBase is the Cloud API root or the server's API URL; only requests
	// under it are made. Check it with ValidateAPIBase.
	APIBase *url.URL
	// UIBase optionally overrides the UI root for links.
	UIBase string
	// Credential is attached to every request. The plugin never sees it.
	Credential Credential
	// Transport carries requests; nil means NewTransport().
	Transport http.RoundTripper
	// RequestTimeout bounds one HTTP exchange; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxResponseBytes caps response bodies; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UserAgent is sent with every request; "" means "ue-prefect" (the
	// runtime adds its plugin's version).
	UserAgent string
}
