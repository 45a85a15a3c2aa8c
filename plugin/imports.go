//go:build wasip1

package main

import (
	"encoding/json"

	"github.com/extism/go-pdk"
	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
)

// The host functions of package abi. The module name is abi.HostModule and
// each name is an abi.Func* constant; go:wasmimport needs them as literals,
// and tests/deps_test.go checks they agree.

//go:wasmimport extism:host/user prefect_http
func hostHTTP(req uint64) uint64

//go:wasmimport extism:host/user sleep
func hostSleep(req uint64) uint64

//go:wasmimport extism:host/user get_credential
func hostCredential(req uint64) uint64

//go:wasmimport extism:host/user log
func hostLog(req uint64) uint64

//go:wasmimport extism:host/user progress
func hostProgress(req uint64) uint64

// wasmHost carries out commands through the host functions.
type wasmHost struct{}

var _ flowrun.Host = wasmHost{}

// call sends req to a host function and decodes its answer into resp (if
// not nil). Kernel memory is freed on the way out.
func call(fn func(uint64) uint64, req, resp any) {
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	in := pdk.AllocateBytes(b)
	defer in.Free()
	off := fn(in.Offset())
	if resp == nil || off == 0 {
		return
	}
	out := pdk.FindMemory(off)
	defer out.Free()
	if err := json.Unmarshal(out.ReadBytes(), resp); err != nil {
		panic("abi: undecodable host response: " + err.Error())
	}
}

func (wasmHost) HTTP(r abi.HTTPRequest) (resp abi.HTTPResponse) {
	call(hostHTTP, r, &resp)
	return resp
}

func (wasmHost) Sleep(r abi.SleepRequest) (resp abi.SleepResponse) {
	call(hostSleep, r, &resp)
	return resp
}

func (wasmHost) Credential(r abi.CredentialRequest) (resp abi.CredentialResponse) {
	call(hostCredential, r, &resp)
	return resp
}

func (wasmHost) Log(r abi.LogRecord) { call(hostLog, r, nil) }

func (wasmHost) Progress(p abi.Progress) { call(hostProgress, p, nil) }
