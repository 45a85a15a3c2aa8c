package abi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

// seed adds every testdata file whose name starts with one of prefixes.
func seed(f *testing.F, prefixes ...string) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		for _, p := range prefixes {
			if strings.HasPrefix(filepath.Base(file), p) {
				data, err := os.ReadFile(file)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(data)
			}
		}
	}
	for _, s := range []string{``, `null`, `{}`, `[]`, `{"kind":null}`, `{"seed":-1}`, `{"checkpoint":null}`, `{"http":{"body":  [1, 2]}}`, "{\"fields\":{\"wait\":\"\\ud800\"}}"} {
		f.Add([]byte(s))
	}
}

// FuzzDecodeRunInput checks that decoding a RunInput never panics and that
// a decoded value survives encode→decode unchanged.
func FuzzDecodeRunInput(f *testing.F) {
	seed(f, "run_input", "step_input")
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = roundTrip(t, func() any { return new(abi.RunInput) }, data, false)
	})
}

// FuzzDecodeEvent checks the same for Event, the machine's input.
func FuzzDecodeEvent(f *testing.F) {
	seed(f, "event", "http_response")
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = roundTrip(t, func() any { return new(abi.Event) }, data, false)
	})
}
