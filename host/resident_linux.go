package host

import (
	"os"
	"syscall"
	"unsafe"
)

// dropResident lets the kernel drop the pages of the embedded plugin from
// this process's resident set: they are clean pages of the executable's
// read-only data, so the next read faults them in again from the page
// cache. Any other memory is left alone: on anonymous memory MADV_DONTNEED
// would zero it.
func dropResident(b []byte) {
	if !isEmbedded(b) {
		return
	}
	// Only whole pages inside b: a partly shared page may hold other data.
	pg := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (start+pg-1)&^(pg-1) - start
	hi := (start+uintptr(len(b)))&^(pg-1) - start
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(b[lo:hi], syscall.MADV_DONTNEED)
}
