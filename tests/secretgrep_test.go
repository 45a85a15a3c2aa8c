package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
)

// TestSecretGrep: the suite's secret grep finds a secret in every form a
// leak may take, including the escaped forms of one holding `"` and `\`.
func TestSecretGrep(t *testing.T) {
	doc, _ := json.Marshal(map[string]string{"status_description": "refused " + testQuotedAuth})
	uac, _ := json.Marshal([]string{uacTestPassword})
	tests := []struct {
		name, data string
		want       bool
	}{
		{"raw", "auth " + testQuotedAuth + "\n", true},
		{"in a JSON document", string(doc), true},
		{"the UAC password in JSON", string(uac), true},
		{"Go's %q", fmt.Sprintf("%q", testQuotedPassword), true},
		{"base64 (a basic-auth header)", base64.StdEncoding.EncodeToString([]byte(testQuotedAuth)), true},
		{"the API key", "key=" + testAPIKey, true},
		{"redacted", `{"secret":"****","status_description":"Prefect refused the basic credential"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := leaks(tc.data); got != tc.want {
				t.Errorf("leaks(%q) = %v, want %v", tc.data, got, tc.want)
			}
		})
	}
}
