package host

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// TestDropResidentKeepsContent: dropping the embedded plugin's pages from
// the resident set loses nothing (they fault in again from the
// executable), and any other memory, which MADV_DONTNEED would zero, is
// left alone.
func TestDropResidentKeepsContent(t *testing.T) {
	want := sha256.Sum256(PluginWasm)
	heap := bytes.Clone(PluginWasm)
	dropResident(PluginWasm)
	dropResident(heap)
	if got := sha256.Sum256(PluginWasm); got != want {
		t.Fatal("the embedded plugin changed after dropResident")
	}
	if got := sha256.Sum256(heap); got != want {
		t.Fatal("dropResident changed a copy of the plugin on the heap")
	}
	if !isEmbedded(PluginWasm) || isEmbedded(heap) || isEmbedded(PluginWasm[1:]) {
		t.Fatal("isEmbedded does not tell the embedded plugin from other memory")
	}
}
