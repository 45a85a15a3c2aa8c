package flowruntest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Host runs the plugin (or the machine) over one scenario and returns the
// run's output. It serves the host functions from s: either s's own
// methods (HTTP, Sleep, Credential, Log, Progress, which record the trace),
// or, for a host with its own HTTP, clock and credential code, s.Next and
// s.SleepInterrupted as the network and the clock, with every host-function
// call passed to s.Trace.Call from the host's trace hook.
type Host func(t *testing.T, s *Script) abi.RunOutput

// Each is the conformance runner: it runs every scenario in
// dir/scenarios/*.txt on fn, each as a subtest named after its file, and
// requires of each that
//
//   - its trace equals dir/golden/NAME.golden,
//   - the run asked for no request the scenario did not script, and
//   - it used every scripted exchange.
//
// The goldens are the behaviour of the native machine (package flowrun,
// which writes them with [Record]); any host, in Go or not, that runs the
// plugin and passes Each behaves as the plugin does everywhere else. The
// files are plain text, so a host in another language can read the same
// scenarios and goldens (tests/pyextism does, under the Python Extism SDK).
func Each(t *testing.T, dir string, fn Host) { each(t, dir, fn, false) }

// Record is Each for the reference implementation: it writes each trace to
// dir/golden/NAME.golden instead of comparing. Review the diff after.
func Record(t *testing.T, dir string, fn Host) { each(t, dir, fn, true) }

func each(t *testing.T, dir string, fn Host, record bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "scenarios", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s: %v", filepath.Join(dir, "scenarios"), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := Parse(string(text))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			s := NewScript(sc)
			s.Trace.Finish(fn(t, s))
			got := s.Trace.String()
			if strings.Contains(got, "\n!!! ") {
				t.Errorf("scenario and run disagree:\n%s", got)
			}
			if n := s.Unused(); n > 0 {
				t.Errorf("%d scripted exchanges were never requested", n)
			}
			golden := filepath.Join(dir, "golden", name+".golden")
			if record {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (the native test writes it: go test ./plugin/flowrun -update)", err)
			}
			if got != string(want) {
				t.Errorf("trace of %s differs from %s:\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
		})
	}
}
