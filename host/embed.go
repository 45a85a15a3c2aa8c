package host

import (
	_ "embed"
	"unsafe"
)

//go:embed plugin.wasm
var pluginWasm string

// PluginWasm is the plugin module built from ./plugin, embedded so that
// `go install …/host/cmd/ue-prefect@version` yields a working binary.
// `make plugin` regenerates it (GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared -trimpath ./plugin) and CI checks it is fresh.
//
// It is read-only: it lies in the executable's read-only data (writing to
// it faults), which lets a parked run drop its pages from the resident set
// (see dropResident).
var PluginWasm = unsafe.Slice(unsafe.StringData(pluginWasm), len(pluginWasm))

// isEmbedded reports whether b is exactly PluginWasm's memory.
func isEmbedded(b []byte) bool {
	return len(b) == len(pluginWasm) && len(b) > 0 && unsafe.SliceData(b) == unsafe.StringData(pluginWasm)
}
