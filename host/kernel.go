package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/ue-prefect/ue-prefect/abi"
)

// kernel is a Go-native implementation of the Extism kernel functions that
// go-pdk imports (module abi.KernelModule). Extism keeps plugin↔host data
// in a separate "kernel memory" addressed by offsets; here that memory is a
// Go byte slice per plugin instance.
//
// Blocks are 8-byte aligned and offsets start at 8, so 0 stays the null
// offset. Freed blocks at the top of the arena are reclaimed, which keeps
// a long-running call (a wait of hours) from growing without bound: go-pdk
// frees the request and response of each host call right after it.
type kernel struct {
	mem    []byte
	blocks map[uint64]*block
	input  []byte
	output []byte
	err    string
	hasErr bool
	limit  int
}

type block struct {
	len  uint64
	free bool
}

func newKernel(limit int) *kernel {
	return &kernel{mem: make([]byte, 8, 4096), blocks: map[uint64]*block{}, limit: limit}
}

// reset prepares the kernel for one export call.
func (k *kernel) reset(input []byte) {
	k.mem = k.mem[:8]
	clear(k.blocks)
	k.input, k.output, k.err, k.hasErr = input, nil, "", false
}

func (k *kernel) alloc(n uint64) uint64 {
	off := (uint64(len(k.mem)) + 7) &^ 7
	end := off + n
	if end > uint64(k.limit) || end < off {
		panic(fmt.Errorf("host: kernel memory limit of %d bytes exceeded", k.limit))
	}
	if end > uint64(cap(k.mem)) {
		grown := make([]byte, end, max(end, 2*uint64(cap(k.mem))))
		copy(grown, k.mem)
		k.mem = grown
	}
	k.mem = k.mem[:end]
	k.blocks[off] = &block{len: n}
	return off
}

func (k *kernel) free(off uint64) {
	b, ok := k.blocks[off]
	if !ok {
		return
	}
	b.free = true
	// Reclaim free blocks from the top of the arena.
	for len(k.blocks) > 0 {
		top := uint64(0)
		for o := range k.blocks {
			top = max(top, o)
		}
		if !k.blocks[top].free {
			return
		}
		delete(k.blocks, top)
		k.mem = k.mem[:top]
	}
}

func (k *kernel) length(off uint64) uint64 {
	if b, ok := k.blocks[off]; ok && !b.free {
		return b.len
	}
	return 0
}

// bytes returns the block at off; it panics (trapping the plugin) if off
// is not a live block, which is an ABI violation.
func (k *kernel) bytes(off uint64) []byte {
	b, ok := k.blocks[off]
	if !ok || b.free {
		panic(fmt.Errorf("host: no kernel memory block at offset %d", off))
	}
	return k.mem[off : off+b.len]
}

// write allocates a block holding data and returns its offset.
func (k *kernel) write(data []byte) uint64 {
	off := k.alloc(uint64(len(data)))
	copy(k.mem[off:], data)
	return off
}

func (k *kernel) check(off, n uint64) {
	if off+n > uint64(len(k.mem)) || off+n < off {
		panic(fmt.Errorf("host: kernel memory access out of bounds at offset %d", off))
	}
}

type kernelKey struct{}

func kernelFrom(ctx context.Context) *kernel {
	k, _ := ctx.Value(kernelKey{}).(*kernel)
	if k == nil {
		panic(fmt.Errorf("host: kernel function called outside a plugin call"))
	}
	return k
}

// kernelFunc is one kernel import: its name, Wasm signature and body.
type kernelFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(k *kernel, m api.Module, stack []uint64)
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// kernelFuncs are the kernel functions go-pdk v1.1.3 may import. Logging,
// config and vars are supported minimally: the plugin uses none of them,
// but a module built with them must still load.
var kernelFuncs = []kernelFunc{
	{"alloc", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = k.alloc(s[0]) }},
	{"free", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) { k.free(s[0]) }},
	{"length", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = k.length(s[0]) }},
	{"length_unsafe", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = k.length(s[0]) }},
	{"load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(k *kernel, _ api.Module, s []uint64) {
		k.check(s[0], 1)
		s[0] = uint64(k.mem[s[0]])
	}},
	{"load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) {
		k.check(s[0], 8)
		s[0] = binary.LittleEndian.Uint64(k.mem[s[0]:])
	}},
	{"store_u8", []api.ValueType{i64, i32}, nil, func(k *kernel, _ api.Module, s []uint64) {
		k.check(s[0], 1)
		k.mem[s[0]] = byte(s[1])
	}},
	{"store_u64", []api.ValueType{i64, i64}, nil, func(k *kernel, _ api.Module, s []uint64) {
		k.check(s[0], 8)
		binary.LittleEndian.PutUint64(k.mem[s[0]:], s[1])
	}},
	{"input_length", nil, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = uint64(len(k.input)) }},
	{"input_load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(k *kernel, _ api.Module, s []uint64) {
		if s[0] >= uint64(len(k.input)) {
			panic(fmt.Errorf("host: input read out of bounds at %d", s[0]))
		}
		s[0] = uint64(k.input[s[0]])
	}},
	{"input_load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) {
		if s[0]+8 > uint64(len(k.input)) || s[0]+8 < s[0] {
			panic(fmt.Errorf("host: input read out of bounds at %d", s[0]))
		}
		s[0] = binary.LittleEndian.Uint64(k.input[s[0]:])
	}},
	{"output_set", []api.ValueType{i64, i64}, nil, func(k *kernel, _ api.Module, s []uint64) {
		k.check(s[0], s[1])
		k.output = append([]byte(nil), k.mem[s[0]:s[0]+s[1]]...)
	}},
	{"error_set", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {
		k.err, k.hasErr = string(k.bytes(s[0])), true
	}},
	{"config_get", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = 0 }},
	{"var_get", []api.ValueType{i64}, []api.ValueType{i64}, func(k *kernel, _ api.Module, s []uint64) { s[0] = 0 }},
	{"var_set", []api.ValueType{i64, i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
	{"get_log_level", nil, []api.ValueType{i32}, func(k *kernel, _ api.Module, s []uint64) { s[0] = 0 }},
	{"log_debug", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
	{"log_info", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
	{"log_warn", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
	{"log_error", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
	{"log_trace", []api.ValueType{i64}, nil, func(k *kernel, _ api.Module, s []uint64) {}},
}

// instantiateKernel defines the kernel host module in r.
func instantiateKernel(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.KernelModule)
	for _, f := range kernelFuncs {
		f := f
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
				f.fn(kernelFrom(ctx), m, stack)
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// kernelNames lists the kernel functions this host supplies, sorted.
func kernelNames() []string {
	var names []string
	for _, f := range kernelFuncs {
		names = append(names, f.name)
	}
	sort.Strings(names)
	return names
}
