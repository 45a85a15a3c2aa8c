package host

import _ "embed"

// PluginWasm is the plugin module built from ./plugin, embedded so that
// `go install …/host/cmd/ue-prefect@version` yields a working binary.
// `make plugin` regenerates it (GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared -trimpath ./plugin) and CI checks it is fresh.
//
//go:embed plugin.wasm
var PluginWasm []byte
