package store

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// windows returns the set of all n-byte substrings of b.
func windows(b []byte, n int) map[string]bool {
	set := make(map[string]bool, len(b))
	for i := 0; i+n <= len(b); i++ {
		set[string(b[i:i+n])] = true
	}
	return set
}

// leaks counts the n-byte pieces of secret, at every offset, found in file.
func leaks(file, secret []byte, n int) int {
	set := windows(file, n)
	found := 0
	for i := 0; i+n <= len(secret); i++ {
		if set[string(secret[i:i+n])] {
			found++
		}
	}
	return found
}

// TestSealedAfterKeyDeletion: a sealed section's bytes appear nowhere in the
// file (nor does its key), and once the epoch key is deleted the section is
// unreadable while the rest of the checkpoint still loads. The same bytes in
// a plain section do appear, so the search can find them.
func TestSealedAfterKeyDeletion(t *testing.T) {
	keys := newKeyring("day-1", "day-2")
	// Incompressible, so a plain copy would be stored verbatim; and a
	// compressible, text-like one.
	sketches := randomBytes(11, 64<<10)
	tuning := bytes.Repeat([]byte("device-hash 0123456789abcdef; "), 200)
	d := openDir(t, t.TempDir())
	f, err := d.Write(&Checkpoint{Sections: []Section{
		{Name: "counts", Data: []byte("plain counts")},
		{Name: "minutes/day-1", Epoch: "day-1", Data: sketches},
		{Name: "tuning", Epoch: "day-2", Data: tuning},
	}}, keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	if got := leaks(file, sketches, n); got != 0 {
		t.Errorf("%d %d-byte pieces of the sealed sketches are in the file", got, n)
	}
	if got := leaks(file, tuning, n); got != 0 {
		t.Errorf("%d %d-byte pieces of the sealed tuning table are in the file", got, n)
	}
	for e, k := range keys.keys {
		if bytes.Contains(file, k[:n]) {
			t.Errorf("the key of epoch %s is in the file", e)
		}
	}
	if !bytes.Contains(file, []byte("plain counts")) {
		t.Errorf("the plain section is not in the file as is: the search cannot work")
	}
	plain := encodeBytes(t, &Checkpoint{Sections: []Section{{Name: "p", Data: sketches}}}, 1, nil, nil)
	if got := leaks(plain, sketches, n); got != len(sketches)-n+1 {
		t.Errorf("only %d pieces of a plain section found in its file", got)
	}

	keys.delete("day-1")
	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || len(bad) != 0 || cp == nil {
		t.Fatalf("LoadNewest: %v %v %v", cp, bad, err)
	}
	if _, ok := cp.Section("minutes/day-1"); ok {
		t.Errorf("the section of a deleted key was returned")
	}
	if got, ok := cp.Section("tuning"); !ok || !bytes.Equal(got, tuning) {
		t.Errorf("the section of a kept key: %t", ok)
	}
	if got, ok := cp.Section("counts"); !ok || string(got) != "plain counts" {
		t.Errorf("the plain section: %q %t", got, ok)
	}
	if len(cp.Unreadable) != 1 {
		t.Fatalf("unreadable %v; want one", cp.Unreadable)
	}
	u := cp.Unreadable[0]
	if u.Name != "minutes/day-1" || u.Epoch != "day-1" || !errors.Is(u, ErrKeyGone) {
		t.Errorf("unreadable %v; want minutes/day-1 under day-1, ErrKeyGone", u)
	}

	// Another key under the same epoch id (a key file replaced) opens
	// nothing, and says so.
	keys.keys["day-2"] = bytes.Repeat([]byte{0xee}, 32)
	cp, _, _ = d.LoadNewest(keys.lookup)
	if len(cp.Unreadable) != 2 || !errors.Is(cp.Unreadable[1], ErrKeyMismatch) {
		t.Errorf("unreadable %v; want the tuning table with ErrKeyMismatch too", cp.Unreadable)
	}
	t.Log(cp.Unreadable)
}
