package prefect

import "testing"

func TestIsCSRFRefusal(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"detail":"Missing CSRF token."}`, true},
		{`{"detail":"Missing client identifier."}`, true},
		{`{"detail":"Invalid CSRF token or client identifier."}`, true},
		{`{"detail":"Forbidden"}`, false},
		{`{"detail":"Unauthorized: the API key is invalid"}`, false},
		{`<html>Missing CSRF token.</html>`, false},
		{``, false},
	}
	for _, tc := range tests {
		if got := isCSRFRefusal([]byte(tc.body)); got != tc.want {
			t.Errorf("isCSRFRefusal(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

// TestRequestTimeoutNotCapped: the request timeout (up to 600 s) alone
// bounds an exchange; the production transport adds no shorter cap on the
// wait for response headers (it had a fixed 60 s one, so a longer
// --request-timeout did nothing).
