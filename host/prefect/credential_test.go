package prefect

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCredentialNeverPrinted(t *testing.T) {
	const key, pw = "pnu_SECRETkey0123456789", "hunter22pw"
	bearer, err := BearerCredential(key, "env PREFECT_API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	basic, err := BasicCredential("admin:"+pw, "file /run/secrets/prefect")
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		Cred  Credential
		Ptr   *Credential
		Creds []Credential
	}
	// fmt does not call String on an unexported field; the secret's
	// indirection must keep it out anyway.
	type private struct {
		cred Credential
		ptr  *Credential
	}
	for _, c := range []Credential{bearer, basic} {
		secrets := c.Secrets()
		if len(secrets) < 2 {
			t.Fatalf("Secrets() = %d forms, want the secret and its encoding", len(secrets))
		}
		outputs := map[string]string{}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%T"} {
			outputs[verb] = fmt.Sprintf(verb, c)
			outputs[verb+" pointer"] = fmt.Sprintf(verb, &c)
			outputs[verb+" in a struct"] = fmt.Sprintf(verb, holder{Cred: c, Ptr: &c, Creds: []Credential{c}})
			outputs[verb+" in a map"] = fmt.Sprintf(verb, map[string]Credential{"c": c})
			outputs[verb+" in an unexported field"] = fmt.Sprintf(verb, private{cred: c, ptr: &c})
			outputs[verb+" in an unexported field, by pointer"] = fmt.Sprintf(verb, &private{cred: c, ptr: &c})
		}
		outputs["Sprint"] = fmt.Sprint(c)
		outputs["Errorf %w"] = fmt.Errorf("request failed with %v: %w", c, io.EOF).Error()
		//lint:ignore SA9005 marshalling a Credential on purpose: the secret must stay out of JSON too
		outputs["json"] = func() string { b, _ := json.Marshal(c); return string(b) }()
		outputs["recovered panic"] = func() (s string) {
			defer func() { s = fmt.Sprint(recover()) }()
			panic(c)
		}()
		for what, out := range outputs {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of a %s credential = %q, which contains the secret", what, c.Scheme(), out)
				}
			}
		}
	}
	// The runtime prints an unrecovered panic value itself: check it in a
	// child process.
	if os.Getenv("UE_PREFECT_PANIC_CHILD") == "1" {
		panic(bearer)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCredentialNeverPrinted$")
	cmd.Env = append(os.Environ(), "UE_PREFECT_PANIC_CHILD=1")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "panic: ") || !strings.Contains(string(out), "bearer credential from env PREFECT_API_KEY") {
		t.Fatalf("child process output does not show the panic:\n%s", out)
	}
	if strings.Contains(string(out), key) {
		t.Errorf("an unrecovered panic(Credential) printed the secret:\n%s", out)
	}
}

func TestCredentialErrorsHideSecret(t *testing.T) {
	tests := []struct {
		name   string
		make   func() (Credential, error)
		secret string
	}{
		{"bearer with a space", func() (Credential, error) { return BearerCredential("pnu_abc def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with a newline", func() (Credential, error) { return BearerCredential("pnu_abc\ndef", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with a control character", func() (Credential, error) { return BearerCredential("pnu_abc\x01def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"bearer with DEL", func() (Credential, error) { return BearerCredential("pnu_abc\x7fdef", "file /run/key") }, "pnu_abc"},
		{"bearer with NUL", func() (Credential, error) { return BearerCredential("pnu_abc\x00def", "env PREFECT_API_KEY") }, "pnu_abc"},
		{"basic without a colon", func() (Credential, error) { return BasicCredential("adminhunter22", "env PREFECT_API_AUTH_STRING") }, "hunter22"},
		{"basic on two lines", func() (Credential, error) { return BasicCredential("admin:hun\nter22", "env PREFECT_API_AUTH_STRING") }, "hun"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.make()
			if err == nil || strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error = %v, want an error without %q", err, tc.secret)
			}
		})
	}
}

// TestHTTPConcurrentDoers checks one doer serves concurrent requests (the
// host may run several plugins at once) under the race detector.
