package aggregator

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePageBytes is the size of a transparent huge page on amd64 and arm64.
const hugePageBytes = 2 << 20

// adviseHuge asks the kernel to back the whole 2 MiB pages inside s with
// transparent huge pages (madvise MADV_HUGEPAGE), for the tables that are
// probed at random: the device index of the tuning table, the minute's
// (cell, device) pairs. At millions of devices they are hundreds of
// megabytes, and with 4 KiB pages nearly every probe also misses the TLB
// (its reach is a few megabytes) and walks the page tables. With the
// kernel's default "madvise" mode a process gets huge pages only where it
// asks; where THP is off the call does nothing. Errors are ignored: the
// advice only changes speed. s must be freshly allocated (its pages not
// yet touched), as a page already faulted in stays small until the kernel
// collapses it.
func adviseHuge[T any](s []T) {
	n := uintptr(len(s)) * unsafe.Sizeof(*new(T))
	if n < 2*hugePageBytes {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(s))
	start := uintptr(p)
	from := (start + hugePageBytes - 1) &^ (hugePageBytes - 1)
	to := (start + n) &^ (hugePageBytes - 1)
	if to <= from {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, from-start)), to-from)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
