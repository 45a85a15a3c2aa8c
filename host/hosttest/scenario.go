package hosttest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// ScriptedResponse is what an http.RoundTripper that answers a host's real
// HTTP client from a scripted scenario returns for request r when the
// script answers a: a transport error of a.Error's kind, of the form the
// host's client classifies back to that kind (a refused connection, a
// deadline, a cancellation, a reset or an EOF), or a response with a's
// status, Retry-After (whole seconds) and body (a.Body, else a.BodyText).
func ScriptedResponse(r *http.Request, a abi.HTTPResponse) (*http.Response, error) {
	if e := a.Error; e != nil {
		switch e.Kind {
		case abi.TransportConnect:
			return nil, syscall.ECONNREFUSED
		case abi.TransportTimeout:
			return nil, context.DeadlineExceeded
		case abi.TransportInterrupted:
			return nil, context.Canceled
		case abi.TransportReset:
			if e.Message == "EOF" {
				return nil, io.EOF
			}
			return nil, syscall.ECONNRESET
		}
		return nil, errors.New(e.Message)
	}
	h := http.Header{}
	if a.RetryAfterMS > 0 {
		h.Set("Retry-After", strconv.FormatInt(a.RetryAfterMS/1000, 10))
	}
	body := string(a.Body)
	if body == "" {
		body = a.BodyText
	}
	return &http.Response{StatusCode: a.Status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// ScriptedCredential is a credential of the scheme and source a scripted
// credential answer names, holding a fixed test secret: an API key for
// Bearer, user:password for Basic, none otherwise.
func ScriptedCredential(t testing.TB, c abi.CredentialResponse) prefect.Credential {
	t.Helper()
	var cred prefect.Credential
	var err error
	switch c.Scheme {
	case abi.SchemeBearer:
		cred, err = prefect.BearerCredential("pnu_differential_test_key", c.Source)
	case abi.SchemeBasic:
		cred, err = prefect.BasicCredential("user:differential-test-pw", c.Source)
	default:
		return prefect.NoCredential()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cred
}
