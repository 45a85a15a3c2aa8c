package host

import (
	"bytes"
	"strings"
	"testing"
)

// kcall calls the kernel function name on k the way the plugin does, with
// args on the Wasm stack, and returns the stack afterwards.
func kcall(t *testing.T, k *kernel, name string, args ...uint64) []uint64 {
	t.Helper()
	for _, f := range kernelFuncs {
		if f.name == name {
			stack := make([]uint64, max(len(f.params), len(f.results)))
			copy(stack, args)
			f.fn(k, nil, stack)
			return stack
		}
	}
	t.Fatalf("no kernel function %q", name)
	return nil
}

// mustPanic runs f and returns the panic message, failing if f returns.
func mustPanic(t *testing.T, what string, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("%s did not panic", what)
		}
		if e, ok := r.(error); ok {
			msg = e.Error()
		} else {
			msg = r.(string)
		}
	}()
	f()
	return ""
}

func TestKernelAlloc(t *testing.T) {
	k := newKernel(1 << 20)
	k.reset(nil)
	sizes := []uint64{1, 7, 8, 9, 0, 100, 3}
	prevEnd := uint64(0)
	for _, n := range sizes {
		off := kcall(t, k, "alloc", n)[0]
		if off == 0 {
			t.Fatalf("alloc(%d) = 0, want a non-null offset", n)
		}
		if off%8 != 0 {
			t.Errorf("alloc(%d) = %d, want 8-byte aligned", n, off)
		}
		if off < prevEnd {
			t.Errorf("alloc(%d) = %d, overlaps the previous block ending at %d", n, off, prevEnd)
		}
		prevEnd = off + n
		if got := kcall(t, k, "length", off)[0]; got != n {
			t.Errorf("length(alloc(%d)) = %d, want %d", n, got, n)
		}
		if got := kcall(t, k, "length_unsafe", off)[0]; got != n {
			t.Errorf("length_unsafe(alloc(%d)) = %d, want %d", n, got, n)
		}
	}
	if got := kcall(t, k, "length", 0)[0]; got != 0 {
		t.Errorf("length(0) = %d, want 0", got)
	}
	if got := kcall(t, k, "length", 12345)[0]; got != 0 {
		t.Errorf("length(unknown) = %d, want 0", got)
	}
}

func TestKernelLoadStore(t *testing.T) {
	k := newKernel(1 << 20)
	k.reset([]byte("input bytes!"))
	off := kcall(t, k, "alloc", 16)[0]
	kcall(t, k, "store_u64", off, 0x0102030405060708)
	kcall(t, k, "store_u8", off+8, 0x1ff) // only the low byte is stored
	if got := kcall(t, k, "load_u64", off)[0]; got != 0x0102030405060708 {
		t.Errorf("load_u64 = %#x, want %#x", got, 0x0102030405060708)
	}
	if got := kcall(t, k, "load_u8", off)[0]; got != 0x08 {
		t.Errorf("load_u8 (little-endian low byte) = %#x, want 0x08", got)
	}
	if got := kcall(t, k, "load_u8", off+8)[0]; got != 0xff {
		t.Errorf("load_u8 = %#x, want 0xff", got)
	}
	if got := kcall(t, k, "input_length")[0]; got != 12 {
		t.Errorf("input_length = %d, want 12", got)
	}
	if got := kcall(t, k, "input_load_u8", 1)[0]; got != 'n' {
		t.Errorf("input_load_u8(1) = %q, want 'n'", rune(got))
	}
	if got := kcall(t, k, "input_load_u64", 4)[0]; got != 0x2173657479622074 { // "t bytes!"
		t.Errorf("input_load_u64(4) = %#x, want %#x", got, 0x2173657479622074)
	}
	copy(k.bytes(off), "hello, plugin!!!")
	kcall(t, k, "output_set", off, 5)
	if string(k.output) != "hello" {
		t.Errorf("output after output_set = %q, want %q", k.output, "hello")
	}
	copy(k.bytes(off), "XXXXX")
	if string(k.output) != "hello" {
		t.Errorf("output_set kept a reference to kernel memory: %q", k.output)
	}
	msg := k.write([]byte("it broke"))
	kcall(t, k, "error_set", msg)
	if !k.hasErr || k.err != "it broke" {
		t.Errorf("error_set: err = %q, %v, want %q, true", k.err, k.hasErr, "it broke")
	}
	k.reset([]byte("x"))
	if k.hasErr || k.output != nil || len(k.mem) != 8 || len(k.blocks) != 0 {
		t.Errorf("reset left state: hasErr=%v output=%q len(mem)=%d blocks=%d", k.hasErr, k.output, len(k.mem), len(k.blocks))
	}
}

func TestKernelOutOfBounds(t *testing.T) {
	k := newKernel(1 << 20)
	k.reset([]byte("12345678"))
	off := kcall(t, k, "alloc", 8)[0]
	end := uint64(len(k.mem))
	freed := k.write([]byte("gone"))
	kcall(t, k, "free", freed)
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"load_u64 past the end", func() { kcall(t, k, "load_u64", end-4) }, "out of bounds"},
		{"load_u8 at the end", func() { kcall(t, k, "load_u8", end) }, "out of bounds"},
		{"store_u64 past the end", func() { kcall(t, k, "store_u64", end-1, 1) }, "out of bounds"},
		{"store_u8 far away", func() { kcall(t, k, "store_u8", 1<<40, 1) }, "out of bounds"},
		{"load_u64 wrapping around", func() { kcall(t, k, "load_u64", 1<<64-4) }, "out of bounds"},
		{"output_set past the end", func() { kcall(t, k, "output_set", off, 1<<20) }, "out of bounds"},
		{"output_set wrapping around", func() { kcall(t, k, "output_set", off, 1<<64-1) }, "out of bounds"},
		{"input_load_u8 past the input", func() { kcall(t, k, "input_load_u8", 8) }, "input read out of bounds"},
		{"input_load_u64 past the input", func() { kcall(t, k, "input_load_u64", 1) }, "input read out of bounds"},
		{"input_load_u64 wrapping around", func() { kcall(t, k, "input_load_u64", 1<<64-2) }, "input read out of bounds"},
		{"error_set of no block", func() { kcall(t, k, "error_set", 12345) }, "no kernel memory block"},
		{"error_set of a freed block", func() { kcall(t, k, "error_set", freed) }, "no kernel memory block"},
		{"bytes of the null offset", func() { k.bytes(0) }, "no kernel memory block at offset 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if msg := mustPanic(t, tc.name, tc.call); !strings.HasPrefix(msg, "host: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("%s panicked with %q, want a host: error containing %q", tc.name, msg, tc.want)
			}
		})
	}
}

func TestKernelMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		sizes []uint64
	}{
		{"one block over the limit", []uint64{4097}},
		{"blocks adding up over the limit", []uint64{2000, 2000, 200}},
		{"a size that wraps around", []uint64{1<<64 - 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKernel(4096)
			k.reset(nil)
			msg := mustPanic(t, "alloc", func() {
				for _, n := range tc.sizes {
					kcall(t, k, "alloc", n)
				}
			})
			if !strings.Contains(msg, "kernel memory limit of 4096 bytes exceeded") {
				t.Errorf("alloc panic = %q, want the memory limit", msg)
			}
		})
	}
	// Exactly at the limit is fine.
	k := newKernel(4096)
	k.reset(nil)
	if off := kcall(t, k, "alloc", 4096-8)[0]; off != 8 {
		t.Errorf("alloc(4088) = %d, want 8", off)
	}
}

func TestKernelFreeReclaimsTop(t *testing.T) {
	k := newKernel(1 << 20)
	k.reset(nil)
	a := kcall(t, k, "alloc", 10)[0]
	b := kcall(t, k, "alloc", 20)[0]
	c := kcall(t, k, "alloc", 30)[0]

	kcall(t, k, "free", b) // not at the top: kept, but no longer readable
	if got := kcall(t, k, "length", b)[0]; got != 0 {
		t.Errorf("length(freed) = %d, want 0", got)
	}
	if len(k.mem) != int(c+30) {
		t.Errorf("len(mem) after freeing a middle block = %d, want %d", len(k.mem), c+30)
	}
	kcall(t, k, "free", c) // the top, and the free block below it
	if len(k.mem) != int(b) {
		t.Errorf("len(mem) after freeing the top = %d, want %d (where b began)", len(k.mem), b)
	}
	kcall(t, k, "free", c) // double free: ignored
	kcall(t, k, "free", 0) // null: ignored
	kcall(t, k, "free", a)
	if len(k.mem) != 8 || len(k.blocks) != 0 {
		t.Errorf("after freeing everything len(mem) = %d, blocks = %d, want 8, 0", len(k.mem), len(k.blocks))
	}
	if again := kcall(t, k, "alloc", 5)[0]; again != a {
		t.Errorf("alloc after reclaiming = %d, want the reclaimed offset %d", again, a)
	}
}

// TestKernelRequestResponseLoop plays the pattern of a long wait: per host
// call, go-pdk allocates the request, the host writes the response, and
// both are freed. Memory must stay bounded whatever the free order.
func TestKernelRequestResponseLoop(t *testing.T) {
	for _, order := range []string{"response first", "request first"} {
		t.Run(order, func(t *testing.T) {
			k := newKernel(1 << 20)
			k.reset([]byte(`{"target":"server"}`))
			live := k.write(bytes.Repeat([]byte("c"), 100)) // a block held across calls
			peak := 0
			for i := 0; i < 100_000; i++ {
				req := kcall(t, k, "alloc", uint64(50+i%200))[0]
				resp := k.write(bytes.Repeat([]byte("r"), 100+i%300))
				if order == "response first" {
					kcall(t, k, "free", resp)
					kcall(t, k, "free", req)
				} else {
					kcall(t, k, "free", req)
					kcall(t, k, "free", resp)
				}
				peak = max(peak, len(k.mem))
			}
			if peak > 1024 {
				t.Errorf("len(mem) peaked at %d bytes over 100000 calls, want it bounded (≤ 1024)", peak)
			}
			if len(k.blocks) != 1 || kcall(t, k, "length", live)[0] != 100 {
				t.Errorf("blocks = %d, want only the live one", len(k.blocks))
			}
		})
	}
}

func TestKernelFromOutsideACall(t *testing.T) {
	msg := mustPanic(t, "kernelFrom", func() { kernelFrom(t.Context()) })
	if !strings.Contains(msg, "outside a plugin call") {
		t.Errorf("kernelFrom(no kernel) panicked with %q", msg)
	}
}
