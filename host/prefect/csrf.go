package prefect

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Headers of Prefect's CSRF protection (PREFECT_SERVER_CSRF_PROTECTION_ENABLED
// on a self-hosted server): every POST, PUT, PATCH and DELETE must carry a
// token issued by GET /csrf-token?client=<id> for the same client id.
// See prefect/server/api/middleware.py (CsrfMiddleware) and
// prefect/client/base.py (_add_csrf_headers) in PrefectHQ/prefect.
const (
	csrfTokenHeader  = "Prefect-Csrf-Token"
	csrfClientHeader = "Prefect-Csrf-Client"
)

// csrfState is one doer's CSRF token. It is fetched only after the server
// refuses a POST for want of one, so servers without CSRF protection (and
// Prefect Cloud) never see the extra request, then reused until shortly
// before it expires.
type csrfState struct {
	mu      sync.Mutex
	client  string
	token   string
	expires time.Time
}

// headers returns the CSRF headers for a request, or nil when the method
// needs none or no token is held.
func (c *csrfState) headers(method string, now time.Time) http.Header {
	if method == http.MethodGet {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" || (!c.expires.IsZero() && now.After(c.expires.Add(-30*time.Second))) {
		return nil
	}
	return c.headersLocked()
}

func (c *csrfState) headersLocked() http.Header {
	return http.Header{csrfTokenHeader: {c.token}, csrfClientHeader: {c.client}}
}

// sender performs one HTTP exchange: Client.send.
type sender func(ctx context.Context, method string, u *url.URL, body []byte, extra http.Header) (*http.Response, []byte, *abi.TransportError)

// refresh fetches a new token from the API base with send and returns the
// headers to send. ok is false when the server issued none (protection is
// off, an older server, an error): the caller then keeps the answer it had.
func (c *csrfState) refresh(ctx context.Context, base *url.URL, send sender) (http.Header, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == "" {
		c.client = newUUID()
	}
	u := *base
	u.Path += "/csrf-token"
	u.RawPath = ""
	u.RawQuery = url.Values{"client": {c.client}}.Encode()
	resp, data, terr := send(ctx, http.MethodGet, &u, nil, nil)
	if terr != nil || resp.StatusCode != http.StatusOK {
		return nil, false
	}
	var tok struct {
		Token      string    `json:"token"`
		Expiration time.Time `json:"expiration"`
	}
	if json.Unmarshal(data, &tok) != nil || tok.Token == "" {
		return nil, false
	}
	c.token, c.expires = tok.Token, tok.Expiration
	return c.headersLocked(), true
}

// isCSRFRefusal reports whether a 403 body is Prefect's CSRF middleware
// refusing a request: {"detail": "Missing CSRF token."}, "Missing client
// identifier." or "Invalid CSRF token or client identifier.".
func isCSRFRefusal(body []byte) bool {
	var e struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	switch e.Detail {
	case "Missing CSRF token.", "Missing client identifier.":
		return true
	}
	return strings.HasPrefix(e.Detail, "Invalid CSRF token")
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
