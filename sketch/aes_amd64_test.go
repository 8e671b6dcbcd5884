//go:build amd64 && linux && !purego

package sketch

import (
	"math/rand/v2"
	"syscall"
	"testing"
)

// The assembly loads an id 16 bytes at a time, so it must never touch the
// page after the id's last byte nor the page before its first: ids that end
// at a page followed by an unmapped one, and ids that start on a page
// preceded by one, hash as refHash says, without a fault. Ids that end in
// the last 16 bytes of a page also take the load that ends at the last byte.
func TestHashAESNIStaysInPage(t *testing.T) {
	if !useAESNI {
		t.Logf("no AES-NI and AVX here: checking the portable path")
	}
	page := guardedPage(t)
	ps := len(page)
	r := rand.New(rand.NewPCG(13, 14))
	k := randKey(t, r)
	check := func(where string, id []byte) {
		t.Helper()
		if got, want := k.Hash(id), refHash(t, k.Bytes(), id); got != want {
			t.Fatalf("%s, %d bytes: Hash = %#016x; refHash %#016x", where, len(id), got, want)
		}
	}
	for n := range 300 {
		check("at the end of the page", page[ps-n:])
		check("at the start of the page", page[:n])
		for back := 1; back < 20 && back+n <= ps; back++ {
			check("near the end of the page", page[ps-n-back:ps-back])
		}
	}
}

// HashIDs loads ids as Hash does, 8 side by side: batches of ids at the
// edges of a page between unmapped ones hash as Hash says, without a
// fault, whatever lane an id takes.
func TestHashIDsStaysInPage(t *testing.T) {
	page := guardedPage(t)
	ps := len(page)
	r := rand.New(rand.NewPCG(15, 16))
	k := randKey(t, r)
	for n := range 140 {
		var ids [][]byte
		for back := range 20 {
			if back+n <= ps {
				ids = append(ids, page[ps-n-back:ps-back], page[back:back+n])
			}
		}
		for _, size := range []int{1, 3, 8, len(ids)} {
			batch := ids[:size]
			dst := make([]uint64, size)
			k.HashIDs(dst, batch)
			for i, id := range batch {
				if want := refHash(t, k.Bytes(), id); dst[i] != want {
					t.Fatalf("HashIDs of %d ids, [%d] of %d bytes at page offset %d = %#016x; refHash %#016x",
						size, i, len(id), cap(page)-cap(id), dst[i], want)
				}
			}
		}
	}
}

// guardedPage returns a page of random bytes between two pages that fault
// when touched, unmapped when the test ends.
func guardedPage(t *testing.T) []byte {
	t.Helper()
	ps := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 3*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap 3 pages: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	for _, guard := range [][]byte{mem[:ps], mem[2*ps:]} {
		if err := syscall.Mprotect(guard, syscall.PROT_NONE); err != nil {
			t.Fatalf("mprotect guard page: %v", err)
		}
	}
	page := mem[ps : 2*ps : 2*ps]
	r := rand.New(rand.NewPCG(uint64(ps), 17))
	for i := range page {
		page[i] = byte(r.Uint32())
	}
	return page
}
