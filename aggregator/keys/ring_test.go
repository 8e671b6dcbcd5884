package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ratingsd/ratingsd/sketch"
)

const (
	mar14 = 20161 // day-2025-03-14
	w11   = 2880  // week-2025-W11
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestRingFiles is the life of key files: the directory is 0700, every
// file 0600; an epoch's file appears on its first use and holds the key
// that a reopened Ring reads back; Forget deletes it, and neither that
// epoch nor an older one of its tier is ever made again, not even after
// reopening.
func TestRingFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	if got := files(t, dir); !slices.Equal(got, []string{PseudonymFile}) {
		t.Errorf("a new ring holds %v, want only %s", got, PseudonymFile)
	}
	if ID(Minute, mar14) != "day-2025-03-14" || ID(Reach, w11) != "week-2025-W11" {
		t.Fatalf("test constants: %s %s", ID(Minute, mar14), ID(Reach, w11))
	}
	day, err := r.Key(Minute, mar14)
	if err != nil {
		t.Fatal(err)
	}
	week, err := r.Key(Reach, w11)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Key(Minute, mar14); again != day {
		t.Error("a second Key of one epoch made a new key")
	}
	want := []string{"day-2025-03-14.key", PseudonymFile, "week-2025-W11.key"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	for _, name := range want {
		if got := mode(t, filepath.Join(dir, name)); got != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, got)
		}
	}
	if day.Fingerprint() == week.Fingerprint() || day.Fingerprint() == r.Pseudonym().Fingerprint() {
		t.Error("two epochs share a key")
	}

	// Reopened, the ring reads the same keys.
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := r2.Key(Minute, mar14)
	if err != nil || k.Bytes() != day.Bytes() || r2.Pseudonym().Bytes() != r.Pseudonym().Bytes() {
		t.Fatalf("reopened: %v, %v; want the same keys", k, err)
	}
	if got := r2.Epochs(Minute); !slices.Equal(got, []int64{mar14}) {
		t.Errorf("Epochs(minute) = %v, want [%d]", got, mar14)
	}
	if b, ok := r2.Lookup("day-2025-03-14"); !ok || !bytes.Equal(b, sliceOf(day.Bytes())) {
		t.Errorf("Lookup of a held epoch: %v", ok)
	}
	if _, ok := r2.Lookup("day-2025-03-13"); ok {
		t.Error("Lookup made a key of an epoch never used")
	}
	if _, err := r2.Key(Minute, mar14+1); err != nil {
		t.Fatal(err)
	}

	// Forget: the file goes, the epoch and every older one are refused.
	if err := r2.Forget(Minute, mar14); err != nil {
		t.Fatal(err)
	}
	if err := r2.Forget(Minute, mar14); err != nil {
		t.Errorf("forgetting twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "day-2025-03-14.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the forgotten key's file: %v", err)
	}
	for _, n := range []int64{mar14, mar14 - 1, mar14 - 400} {
		if _, err := r2.Key(Minute, n); !errors.Is(err, ErrForgotten) || !strings.Contains(err.Error(), "day-2025-03-14") {
			t.Errorf("Key(%s) after forgetting day-2025-03-14: %v, want ErrForgotten naming it", ID(Minute, n), err)
		}
	}
	if _, ok := r2.Lookup("day-2025-03-14"); ok {
		t.Error("Lookup of a forgotten epoch")
	}
	if _, err := r2.Key(Reach, w11); err != nil {
		t.Errorf("the other tier is not forgotten: %v", err)
	}
	if _, err := r2.Key(Minute, mar14+1); err != nil {
		t.Errorf("a newer day: %v", err)
	}
	if got := mode(t, filepath.Join(dir, ForgottenFile)); got != 0o600 {
		t.Errorf("%s has mode %v, want 0600", ForgottenFile, got)
	}

	// Reopened, the ring still refuses it, and has no file for it.
	r3, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r3.Key(Minute, mar14); !errors.Is(err, ErrForgotten) {
		t.Errorf("after reopening: %v, want ErrForgotten", err)
	}
	if n, ok := r3.Forgotten(Minute); !ok || n != mar14 {
		t.Errorf("Forgotten(minute) = %d, %v", n, ok)
	}
	if got := files(t, dir); slices.Contains(got, "day-2025-03-14.key") {
		t.Errorf("files after reopening: %v", got)
	}
}

func sliceOf(b [sketch.KeySize]byte) []byte { return b[:] }

// A crash between recording the forgotten epoch and deleting its file
// leaves the file: Open deletes it. A crash in a write leaves a temporary
// file: Open deletes it. Other files are left alone.
func TestRingOpenFinishesForget(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(mar14 - 2); n <= mar14; n++ {
		if _, err := r.Key(Minute, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ForgottenFile), []byte("day-2025-03-13\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"week-2025-W11.key.123.tmp", "forgotten.9.tmp", "sketch.key", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("0123456789abcdef"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.Epochs(Minute); !slices.Equal(got, []int64{mar14}) {
		t.Errorf("epochs %v, want only day-2025-03-14", got)
	}
	want := []string{"day-2025-03-14.key", ForgottenFile, "notes.txt", PseudonymFile, "sketch.key"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestRingOpenErrors(t *testing.T) {
	f := func(name string, setup func(dir string), mention string) {
		t.Helper()
		dir := t.TempDir()
		setup(dir)
		_, err := Open(dir)
		if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), mention) {
			t.Errorf("%s: %v, want ErrKeyFile mentioning %q", name, err, mention)
		}
	}
	write := func(name string, b []byte) func(string) {
		return func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	f("short pseudonym", write(PseudonymFile, make([]byte, 15)), "pseudonym.key: 15 bytes, want 16")
	f("long epoch key", write("day-2025-03-14.key", make([]byte, 17)), "day-2025-03-14.key: 17 bytes, want 16")
	f("bad record", write(ForgottenFile, []byte("day-2025-03-14\nyesterday\n")), "line 2")
	f("directory as key", func(dir string) {
		if err := os.Mkdir(filepath.Join(dir, PseudonymFile), 0o700); err != nil {
			t.Fatal(err)
		}
	}, "is a directory")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "keys")); !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), file) {
		t.Errorf("key directory under a file: %v", err)
	}
	// A looser directory is tightened.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("directory mode %v after Open, want 0700", got)
	}
}

// Derived rings give the same keys for the same root, different ones per
// epoch and root; Forget makes them refuse the epoch like any ring.
func TestDerived(t *testing.T) {
	root, _ := sketch.KeyFromBytes([]byte("derived-root-016"))
	other, _ := sketch.KeyFromBytes([]byte("derived-root-017"))
	a, b, c := Derived(root), Derived(root), Derived(other)
	ka, _ := a.Key(Minute, mar14)
	kb, _ := b.Key(Minute, mar14)
	kc, _ := c.Key(Minute, mar14)
	kw, _ := a.Key(Reach, w11)
	kn, _ := a.Key(Minute, mar14+1)
	if ka.Bytes() != kb.Bytes() {
		t.Error("one root, one epoch: two keys")
	}
	if ka.Bytes() == kc.Bytes() || ka.Bytes() == kw.Bytes() || ka.Bytes() == kn.Bytes() || ka.Bytes() == root.Bytes() {
		t.Error("different roots or epochs share a key")
	}
	if a.Pseudonym() != root {
		t.Error("a derived ring's pseudonym key is not its root")
	}
	if bs, ok := b.Lookup("week-2025-W11"); !ok || !bytes.Equal(bs, sliceOf(kw.Bytes())) {
		t.Error("a derived ring's Lookup does not compute the key")
	}
	if err := a.Forget(Minute, mar14); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Key(Minute, mar14); !errors.Is(err, ErrForgotten) {
		t.Errorf("derived after Forget: %v", err)
	}
	if _, ok := a.Lookup("day-2025-03-14"); ok {
		t.Error("derived Lookup after Forget")
	}
	if got := a.Epochs(Minute); !slices.Equal(got, []int64{mar14 + 1}) {
		t.Errorf("Epochs %v", got)
	}
}

func TestMemory(t *testing.T) {
	a, err := NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewMemory()
	ka, _ := a.Key(Minute, mar14)
	kb, _ := b.Key(Minute, mar14)
	if ka.Bytes() == kb.Bytes() || a.Pseudonym().Bytes() == b.Pseudonym().Bytes() {
		t.Error("two memory rings share keys")
	}
	if a.Dir() != "" {
		t.Errorf("Dir %q", a.Dir())
	}
	if err := a.Forget(Minute, mar14); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Key(Minute, mar14); !errors.Is(err, ErrForgotten) {
		t.Errorf("after Forget: %v", err)
	}
	if _, err := a.Key(Tier(7), 1); err == nil {
		t.Error("Key of an unknown tier")
	}
	if _, err := a.Key(Minute, -1); err == nil {
		t.Error("Key of a negative epoch")
	}
}
