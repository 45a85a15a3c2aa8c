package prefect

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/ue-prefect/ue-prefect/host/events"
)

// NewEventHub returns an events.Hub for cfg.APIBase whose auth message
// carries cred's secret: the API key, or the auth string of a self-hosted
// server, as Prefect's own client sends them. The secret stays in the
// host; cfg.Token is set here. A nil cfg.Transport gets the proxy from the
// environment and TLS 1.2+ on HTTP/1.1.
func NewEventHub(cfg events.Config, cred Credential) *events.Hub {
	cfg.Token = cred.value
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			// A non-nil empty map keeps the upgrade on HTTP/1.1.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
	}
	return events.New(cfg)
}
