package flowrun_test

import (
	"flag"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current behaviour")

// TestTranscripts runs every scenario in testdata/scenarios natively, the
// machine driven by the scripted effects, and compares its trace with
// testdata/golden; with -update it writes them (review the diff). The
// same runner drives the plugin through the host (tests/differential_test.go),
// the stock Extism host (tests/extism_test.go), and tests/pyextism does
// the same from Python.
func TestTranscripts(t *testing.T) {
	native := func(t *testing.T, s *flowruntest.Script) abi.RunOutput { return flowrun.Run(s, s.Sc.Input) }
	if *update {
		flowruntest.Record(t, "testdata", native)
		return
	}
	flowruntest.Each(t, "testdata", native)
}
