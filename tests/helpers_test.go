package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// eachScenario runs f as a subtest for every golden scenario of
// plugin/flowrun, with the scenario's text and its golden trace.
func eachScenario(t *testing.T, f func(t *testing.T, text string, want string)) {
	t.Helper()
	files, _ := filepath.Glob("../plugin/flowrun/testdata/scenarios/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("../plugin/flowrun/testdata/golden", name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			f(t, string(text), string(want))
		})
	}
}

// parseScenario parses a scenario or fails the test.
func parseScenario(t *testing.T, text string) *flowruntest.Scenario {
	t.Helper()
	sc, err := flowruntest.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
