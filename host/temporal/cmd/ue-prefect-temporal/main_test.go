package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBadInput: bad input exits 20 with a message naming it, before any
// connection is attempted (the address is unroutable on purpose).
func TestBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"launch"}, "usage"},
		{[]string{"start", "-address", "192.0.2.1:1", "-field", "deployment"}, `-field "deployment": want name=value`},
		{[]string{"start", "-address", "192.0.2.1:1", "-field", "deploymnt=a/b"}, `unknown field "deploymnt"`},
		{[]string{"start", "-address", "192.0.2.1:1", "-fields", "[1]"}, "-fields: want a JSON object"},
		{[]string{"cancel", "-address", "192.0.2.1:1"}, "-id is required"},
		{[]string{"worker", "-address", "192.0.2.1:1", "-api-url", "ftp://x"}, "-api-url"},
		{[]string{"worker", "-address", "192.0.2.1:1", "-api-url", "http://127.0.0.1:1/api", "-target", "moon"}, `-target "moon"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != 20 {
				t.Errorf("exit %d, want 20 (stderr %q)", code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr %q does not name %q", errb.String(), tc.want)
			}
		})
	}
}
