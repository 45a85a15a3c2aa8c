package prefect

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Credential is the secret the host attaches to API requests. It stays on
// the host side: the plugin learns only its scheme and source
// (abi.CredentialResponse). Its String and GoString never show the secret,
// so it cannot leak through %v or a panic.
type Credential struct {
	scheme string
	source string
	// sec holds the secret behind a closure: fmt prints a func only as an
	// address, whatever the verb, so a Credential printed where String is
	// not called (an unexported field of another struct) stays safe.
	sec func() string
}

func hide(s string) func() string { return func() string { return s } }

// NoCredential sends no Authorization header.
func NoCredential() Credential { return Credential{scheme: abi.SchemeNone} }

// BearerCredential sends "Authorization: Bearer <key>" (a Prefect Cloud API key).
func BearerCredential(key, source string) (Credential, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return Credential{}, fmt.Errorf("the API key from %s is empty", source)
	}
	if strings.ContainsAny(key, " \t\r\n") {
		return Credential{}, fmt.Errorf("the API key from %s contains white space", source)
	}
	// An HTTP header cannot carry a control character: Go refuses to send
	// it, which would otherwise look like a network failure and be retried.
	if i := strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return Credential{}, fmt.Errorf("the API key from %s contains a control character (at byte %d)", source, i+1)
	}
	return Credential{scheme: abi.SchemeBearer, source: source, sec: hide(key)}, nil
}

// BasicCredential sends "Authorization: Basic base64(user:password)", the
// PREFECT_API_AUTH_STRING of a self-hosted server.
func BasicCredential(authString, source string) (Credential, error) {
	authString = strings.TrimRight(authString, "\r\n")
	if !strings.Contains(authString, ":") {
		return Credential{}, fmt.Errorf("the auth string from %s is not user:password", source)
	}
	if strings.ContainsAny(authString, "\r\n") {
		return Credential{}, fmt.Errorf("the auth string from %s spans several lines", source)
	}
	return Credential{scheme: abi.SchemeBasic, source: source, sec: hide(authString)}, nil
}

// ReadSecretFile reads a secret from a file, trimming one trailing newline.
// Errors name the file, never its contents.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s: %w", path, errors.Unwrap(err))
	}
	if fi.Size() > 64<<10 {
		return "", fmt.Errorf("secret file %s is larger than 64 KiB", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s", path)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Scheme returns abi.SchemeBearer, abi.SchemeBasic or abi.SchemeNone.
func (c Credential) Scheme() string {
	if c.scheme == "" {
		return abi.SchemeNone
	}
	return c.scheme
}

// Source says where the secret came from.
func (c Credential) Source() string { return c.source }

// Secrets returns the forms in which the secret could appear in output,
// for redaction: the secret itself and its Basic encoding.
func (c Credential) Secrets() []string {
	sec := c.value()
	if sec == "" {
		return nil
	}
	out := []string{sec, base64.StdEncoding.EncodeToString([]byte(sec))}
	if _, pw, ok := strings.Cut(sec, ":"); ok && c.scheme == abi.SchemeBasic && len(pw) >= 4 {
		out = append(out, pw)
	}
	return out
}

func (c Credential) value() string {
	if c.sec == nil {
		return ""
	}
	return c.sec()
}

func (c Credential) header() string {
	switch c.scheme {
	case abi.SchemeBearer:
		return "Bearer " + c.value()
	case abi.SchemeBasic:
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.value()))
	}
	return ""
}

// String implements fmt.Stringer without the secret.
func (c Credential) String() string {
	if c.source == "" {
		return c.Scheme() + " credential"
	}
	return c.Scheme() + " credential from " + c.source
}

// GoString implements fmt.GoStringer without the secret.
func (c Credential) GoString() string { return "prefect.Credential{" + c.String() + "}" }
