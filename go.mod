module github.com/ue-prefect/ue-prefect

// Floor: //go:wasmexport needs Go 1.24; wazero v1.12 needs 1.25.
go 1.25.0

require (
	github.com/extism/go-pdk v1.1.3
	github.com/tetratelabs/wazero v1.12.0
	github.com/tidwall/gjson v1.20.0
)

require (
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
