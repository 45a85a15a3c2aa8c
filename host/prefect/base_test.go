package prefect

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
)

func TestValidateAPIBase(t *testing.T) {
	tests := []struct {
		name          string
		raw           string
		allowInsecure bool
		want          string // the URL, or "" for an error
		errHas        string
		secret        string // must not appear in the error
	}{
		{"https", "https://api.prefect.cloud/api", false, "https://api.prefect.cloud/api", "", ""},
		{"https trailing slash", "https://prefect.example.com/api/", false, "https://prefect.example.com/api", "", ""},
		{"https white space", "  https://prefect.example.com/api \n", false, "https://prefect.example.com/api", "", ""},
		{"http loopback v4", "http://127.0.0.1:4200/api", false, "http://127.0.0.1:4200/api", "", ""},
		{"http loopback other v4", "http://127.0.0.2:4200/api", false, "http://127.0.0.2:4200/api", "", ""},
		{"http localhost", "http://localhost:4200/api", false, "http://localhost:4200/api", "", ""},
		{"http loopback v6", "http://[::1]:4200/api", false, "http://[::1]:4200/api", "", ""},
		{"http remote refused", "http://prefect.example.com/api", false, "", "plain http", ""},
		{"http private address refused", "http://10.0.0.5:4200/api", false, "", "plain http", ""},
		{"http remote allowed when insecure", "http://prefect.example.com/api", true, "http://prefect.example.com/api", "", ""},
		{"userinfo refused", "https://admin:s3cretPW@prefect.example.com/api", false, "", "must not contain credentials", "s3cretPW"},
		{"userinfo with @ in the password", "https://admin:p@ssw0rd@prefect.example.com/api", false, "", "must not contain credentials", "p@ssw0rd"},
		{"user only refused", "https://token123@prefect.example.com/api", true, "", "must not contain credentials", "token123"},
		{"unparsable userinfo", "https://admin:pa%zzword@prefect.example.com/api", false, "", "not an absolute http(s) URL", "pa%zzword"},
		{"query refused", "https://prefect.example.com/api?x=1", false, "", "must not have a query or fragment", ""},
		{"fragment refused", "https://prefect.example.com/api#top", false, "", "must not have a query or fragment", ""},
		{"relative refused", "/api", false, "", "not an absolute http(s) URL", ""},
		{"no scheme refused", "prefect.example.com/api", false, "", "not an absolute http(s) URL", ""},
		{"other scheme refused", "ftp://prefect.example.com/api", false, "", "not an absolute http(s) URL", ""},
		{"empty refused", "", false, "", "not an absolute http(s) URL", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ValidateAPIBase(tc.raw, tc.allowInsecure)
			if tc.want != "" {
				if err != nil || u.String() != tc.want {
					t.Fatalf("ValidateAPIBase(%q, %v) = %v, %v, want %s", tc.raw, tc.allowInsecure, u, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateAPIBase(%q, %v) = %v, want an error", tc.raw, tc.allowInsecure, u)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ValidateAPIBase(%q) error = %q, want it to contain %q", tc.raw, err, tc.errHas)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("ValidateAPIBase(%q) error = %q shows the secret", tc.raw, err)
			}
		})
	}
}

func testDoer(t *testing.T, base string, cred Credential, maxBody int64, timeout time.Duration) *Client {
	t.Helper()
	u, err := ValidateAPIBase(base, false)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	d, err := NewClient(Connection{APIBase: u, Transport: tr, Credential: cred, MaxResponseBytes: maxBody, RequestTimeout: timeout, UserAgent: "ue-prefect/test"}, vclock.New(testEpoch).Now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"no userinfo", "https://prefect.example.com/api", "https://prefect.example.com/api"},
		{"user and password", "https://user:hunter2@prefect.example.com/api", "https://%2A%2A%2A%2A@prefect.example.com/api"},
		{"blanks around", "  https://user:hunter2@prefect.example.com/api ", "https://%2A%2A%2A%2A@prefect.example.com/api"},
		{"unparsable, keeps the scheme", "https://user:hun%zzter2@prefect.example.com/api", "https://****@prefect.example.com/api"},
		{"unparsable, '@' in the password", "https://user:a@b%zz@prefect.example.com/api", "https://****@prefect.example.com/api"},
		{"no scheme", "user:pw%zz@host/api", "****@host/api"},
		{"not a URL", "prefect/api", "prefect/api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactURL(tc.raw); got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}
