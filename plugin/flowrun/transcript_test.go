package flowrun_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current behaviour")

// TestTranscripts runs every scenario in testdata/scenarios natively and
// compares its trace with testdata/golden. tests/differential_test.go runs
// the same scenarios through the Wasm plugin against the same goldens.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := flowruntest.Parse(string(text))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			s := flowruntest.NewScript(sc)
			out := flowrun.Run(s, sc.Input)
			s.Trace.Finish(out)
			got := s.Trace.String()
			if strings.Contains(got, "\n!!! ") {
				t.Errorf("scenario and machine disagree:\n%s", got)
			}
			if n := s.Unused(); n > 0 {
				t.Errorf("%d scripted exchanges were never requested", n)
			}
			golden := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./plugin/flowrun -update)", err)
			}
			if got != string(want) {
				t.Errorf("trace of %s differs from %s (review, then go test ./plugin/flowrun -update):\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
		})
	}
}
