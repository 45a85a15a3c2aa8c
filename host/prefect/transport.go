package prefect

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// NewTransport returns the production transport: the proxy from the
// environment, TLS 1.2+ with verification on, bounded connection set-up.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: every exchange is bounded by the request
		// timeout (Connection.RequestTimeout, up to 600 s) through its context,
		// and a fixed header timeout here would silently cap it.
		IdleConnTimeout:     4 * time.Second, // under uvicorn's 5 s keep-alive, so a reused connection is never one the server is closing
		MaxIdleConnsPerHost: 4,
		ForceAttemptHTTP2:   true,
	}
}
