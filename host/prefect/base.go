package prefect

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// PrefectAPIVersion is sent as X-PREFECT-API-VERSION; Prefect 3 servers
// accept 0.8.0 and above.
const PrefectAPIVersion = "0.8.4"

// Defaults for HTTP.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxResponseBytes = 8 << 20
)

// ValidateAPIBase checks an API base URL: absolute http(s), no credentials
// or query in it, and plain http only for a loopback host unless
// allowInsecure. It returns the URL without a trailing slash.
func ValidateAPIBase(raw string, allowInsecure bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL such as https://prefect.example.com/api", RedactURL(raw))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not contain credentials; use PREFECT_API_AUTH_STRING or PREFECT_API_KEY", RedactURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not have a query or fragment", raw)
	}
	if u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%q uses plain http to a host that is not loopback; use https, or allow insecure http explicitly", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// RedactURL masks the user information (user:password@) of a URL for a
// message or an echo of the input, also when the URL does not parse.
func RedactURL(raw string) string {
	if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
		u.User = url.User("****")
		return u.String()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			return raw[:i+3] + "****" + raw[at:]
		}
		return "****" + raw[at:]
	}
	return raw
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
