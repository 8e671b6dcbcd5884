package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// keyring is a KeyLookup backed by a map, whose keys can be deleted.
type keyring struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func newKeyring(epochs ...string) *keyring {
	k := &keyring{keys: make(map[string][]byte)}
	for i, e := range epochs {
		key := make([]byte, 32)
		for j := range key {
			key[j] = byte(i*32 + j)
		}
		k.keys[e] = key
	}
	return k
}

func (k *keyring) lookup(epoch string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[epoch]
	return key, ok
}

func (k *keyring) delete(epoch string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, epoch)
}

func openDir(t testing.TB, path string) *Dir {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// randomBytes returns n incompressible bytes, like encoded sketches.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// countsBytes returns n bytes of slowly varying little-endian counters, like
// per-minute audience counts: they compress.
func countsBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	v := uint32(1000)
	for i := 0; i+4 <= n; i += 4 {
		v = v + uint32(r.IntN(21)) - 10
		b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return b
}

func sampleCheckpoint() *Checkpoint {
	return &Checkpoint{
		Created:   time.Date(2026, 3, 2, 12, 30, 0, 123456789, time.UTC),
		StreamSeq: 123456,
		Sections: []Section{
			{Name: "counts", Data: countsBytes(1, 4000)},
			{Name: "minutes/day-2026-03-02", Epoch: "day-2026-03-02", Data: randomBytes(2, 3000)},
			{Name: "tuning", Epoch: "day-2026-03-02", Data: []byte("stb-table")},
			{Name: "empty"},
		},
	}
}

// sameCheckpoint reports how got differs from want (Seq is not compared).
func sameCheckpoint(got, want *Checkpoint) error {
	if !got.Created.Equal(want.Created) || got.StreamSeq != want.StreamSeq {
		return fmt.Errorf("got created %v stream %d; want %v %d", got.Created, got.StreamSeq, want.Created, want.StreamSeq)
	}
	if len(got.Sections) != len(want.Sections) {
		return fmt.Errorf("got %d sections; want %d", len(got.Sections), len(want.Sections))
	}
	for i, g := range got.Sections {
		w := want.Sections[i]
		if g.Name != w.Name || g.Epoch != w.Epoch || !bytes.Equal(g.Data, w.Data) {
			return fmt.Errorf("section %d: got %q/%q with %d bytes; want %q/%q with %d bytes", i, g.Name, g.Epoch, len(g.Data), w.Name, w.Epoch, len(w.Data))
		}
	}
	if len(got.Segments) != len(want.Segments) {
		return fmt.Errorf("got %d segments; want %d", len(got.Segments), len(want.Segments))
	}
	for i := range got.Segments {
		if g, w := got.Segments[i].ref(), want.Segments[i].ref(); g.Name != w.Name || g.Epoch != w.Epoch || g.Size != w.Size || g.CRC != w.CRC {
			return fmt.Errorf("segment %d: got %+v; want %+v", i, g, w)
		}
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	keys := newKeyring("day-1", "week-1", "day-2026-03-02")
	cases := []struct {
		name     string
		sections []Section
	}{
		{"no sections", nil},
		{"empty plain", []Section{{Name: "x"}}},
		{"empty sealed", []Section{{Name: "x", Epoch: "day-1"}}},
		{"sample", sampleCheckpoint().Sections},
		{"one byte", []Section{{Name: "a", Data: []byte{7}}, {Name: "b", Epoch: "week-1", Data: []byte{8}}}},
		// 2.5 MiB: two full chunks and a partial one, compressed and raw.
		{"chunks compressible", []Section{{Name: "c", Data: countsBytes(3, 5<<19)}, {Name: "s", Epoch: "day-1", Data: countsBytes(4, 5<<19)}}},
		{"chunks incompressible", []Section{{Name: "r", Data: randomBytes(5, 5<<19)}, {Name: "s", Epoch: "week-1", Data: randomBytes(6, 5<<19)}}},
		{"exact chunk", []Section{{Name: "r", Epoch: "day-1", Data: randomBytes(7, chunkSize)}}},
		{"long names", []Section{{Name: strings.Repeat("n", 255), Epoch: strings.Repeat("e", 255), Data: []byte("x")}}},
	}
	keys.keys[strings.Repeat("e", 255)] = bytes.Repeat([]byte{9}, 16)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := openDir(t, t.TempDir())
			want := &Checkpoint{Created: time.Unix(1700000000, int64(i)).UTC(), StreamSeq: uint64(i), Sections: c.sections}
			f, err := d.Write(want, keys.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if f.Seq != 1 || filepath.Base(f.Path) != "checkpoint-00000000000000000001.rtck" {
				t.Errorf("first file %+v", f)
			}
			if fi, err := os.Stat(f.Path); err != nil || fi.Size() != f.Size {
				t.Errorf("file size %v (%v); Write says %d", fi.Size(), err, f.Size)
			}
			got, bad, err := d.LoadNewest(keys.lookup)
			if err != nil || len(bad) != 0 || got == nil {
				t.Fatalf("LoadNewest: %v %v %v", got, bad, err)
			}
			if got.Seq != 1 || len(got.Unreadable) != 0 {
				t.Errorf("seq %d, unreadable %v", got.Seq, got.Unreadable)
			}
			if err := sameCheckpoint(got, want); err != nil {
				t.Error(err)
			}
			data, err := os.ReadFile(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := Decode(data, keys.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameCheckpoint(dec, want); err != nil {
				t.Errorf("Decode: %v", err)
			}
		})
	}
}

func TestWriteSequenceAndCreated(t *testing.T) {
	path := t.TempDir()
	d := openDir(t, path)
	before := time.Now()
	for want := uint64(1); want <= 3; want++ {
		f, err := d.Write(&Checkpoint{Seq: 99}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != want {
			t.Errorf("Write %d got seq %d", want, f.Seq)
		}
	}
	cp, _, _ := d.LoadNewest(nil)
	if cp.Seq != 3 || cp.Created.Before(before) || cp.Created.After(time.Now()) {
		t.Errorf("newest seq %d created %v; want 3, now", cp.Seq, cp.Created)
	}
	// A new Dir on the same directory continues the sequence.
	d.Close()
	d2 := openDir(t, path)
	if f, err := d2.Write(&Checkpoint{}, nil); err != nil || f.Seq != 4 {
		t.Errorf("after reopening: %+v %v; want seq 4", f, err)
	}
	if _, err := d.Write(&Checkpoint{}, nil); err == nil {
		t.Errorf("Write on a closed Dir succeeded")
	}
}

func TestWriteInvalid(t *testing.T) {
	keys := newKeyring("day-1")
	keys.keys["short"] = make([]byte, 15)
	f := func(why string, sections []Section, wantErr error) {
		t.Helper()
		d := openDir(t, t.TempDir())
		_, err := d.Write(&Checkpoint{Sections: sections}, keys.lookup)
		if err == nil {
			t.Errorf("%s: Write succeeded", why)
			return
		}
		if wantErr != nil && !errors.Is(err, wantErr) {
			t.Errorf("%s: error %v; want %v", why, err, wantErr)
		}
		if entries, _ := os.ReadDir(d.Path()); len(entries) != 1 { // LOCK
			t.Errorf("%s: directory holds %d entries after a failed write", why, len(entries))
		}
		t.Logf("%s: %v", why, err)
	}
	f("empty name", []Section{{Name: ""}}, nil)
	f("long name", []Section{{Name: strings.Repeat("n", 256)}}, nil)
	f("name twice", []Section{{Name: "a"}, {Name: "b"}, {Name: "a"}}, nil)
	f("long epoch", []Section{{Name: "a", Epoch: strings.Repeat("e", 256)}}, nil)
	f("key gone", []Section{{Name: "a", Epoch: "day-0", Data: []byte("x")}}, ErrKeyGone)
	f("short key", []Section{{Name: "a", Epoch: "short"}}, nil)
}

// TestCrashLeftovers: what a crash can leave (a temporary file, or a final
// file cut short by a copy that was not atomic) is never taken for a
// checkpoint: LoadNewest reports the cut file precisely and returns the
// previous one, and Open removes the temporary file.
func TestCrashLeftovers(t *testing.T) {
	path := t.TempDir()
	d := openDir(t, path)
	keys := newKeyring("day-2026-03-02")
	good, err := d.Write(sampleCheckpoint(), keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Write(sampleCheckpoint(), keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(second.Path)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(data) - 100
	if err := os.WriteFile(second.Path, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(path, fileName(3)+"-123"+tempSuffix)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}

	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || cp == nil {
		t.Fatalf("LoadNewest: %v %v", cp, err)
	}
	if cp.Seq != good.Seq {
		t.Errorf("loaded seq %d; want %d", cp.Seq, good.Seq)
	}
	if len(bad) != 1 || !errors.Is(bad[0], ErrTruncated) {
		t.Fatalf("bad files %v; want one truncated", bad)
	}
	msg := bad[0].Error()
	for _, want := range []string{second.Path, fmt.Sprintf("ends at byte %d", cut), fmt.Sprintf("declares %d", len(data))} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}

	d.Close()
	d = openDir(t, path)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open left the temporary file: %v", err)
	}
	if f, err := d.Write(sampleCheckpoint(), keys.lookup); err != nil || f.Seq != 3 {
		t.Errorf("Write after the crash: %+v %v; want seq 3", f, err)
	}
}

func TestLoadNewestSkipsBadFiles(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-2026-03-02")
	var files []File
	for range 5 {
		f, err := d.Write(sampleCheckpoint(), keys.lookup)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	damage := func(f File, edit func([]byte) []byte) {
		t.Helper()
		data, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.Path, edit(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	damage(files[4], func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })        // body
	damage(files[3], func(b []byte) []byte { b[10] ^= 1; return b })                 // header
	damage(files[2], func(b []byte) []byte { return setVersion(b, 3) })              // future version
	damage(files[1], func(b []byte) []byte { return append(b, "trailing junk"...) }) // appended to
	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || cp == nil || cp.Seq != files[0].Seq {
		t.Fatalf("LoadNewest: %v %v; want seq %d", cp, err, files[0].Seq)
	}
	want := []struct {
		err  error
		text string
	}{
		{ErrChecksum, "body CRC-32C"},
		{ErrChecksum, "header CRC-32C"},
		{ErrVersion, "format version 3"},
		{ErrCorrupt, "13 bytes after the end of the body"},
	}
	if len(bad) != len(want) {
		t.Fatalf("%d bad files reported; want %d: %v", len(bad), len(want), bad)
	}
	for i, w := range want {
		if !errors.Is(bad[i], w.err) || !strings.Contains(bad[i].Error(), w.text) || !strings.Contains(bad[i].Error(), files[4-i].Path) {
			t.Errorf("bad[%d] = %v; want %v saying %q and naming %s", i, bad[i], w.err, w.text, files[4-i].Path)
		}
	}
	// Nothing decodes: no checkpoint, five errors, no directory error.
	damage(files[0], func(b []byte) []byte { return b[:0] })
	cp, bad, err = d.LoadNewest(keys.lookup)
	if cp != nil || len(bad) != 5 || err != nil {
		t.Errorf("all damaged: %v, %d errors, %v", cp, len(bad), err)
	}
}

// setVersion rewrites the version of a file and its header checksum, as a
// future writer would.
func setVersion(b []byte, v uint16) []byte {
	b[4], b[5] = byte(v>>8), byte(v)
	return fixHeaderCRC(b)
}

func TestPrune(t *testing.T) {
	d := openDir(t, t.TempDir())
	write := func() File {
		t.Helper()
		f, err := d.Write(&Checkpoint{Sections: []Section{{Name: "x", Data: []byte("data")}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	remaining := func() []uint64 {
		t.Helper()
		files, err := d.list()
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, f := range files {
			seqs = append(seqs, f.Seq)
		}
		return seqs
	}
	var files []File
	for range 6 {
		files = append(files, write())
	}
	// Damage seq 5 behind the Dir's back, with the same size.
	data, _ := os.ReadFile(files[4].Path)
	data[len(data)-1] ^= 1
	if err := os.WriteFile(files[4].Path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d.good = map[string]int64{} // as after a restart
	if err := d.Prune(DefaultKeep); err != nil {
		t.Fatal(err)
	}
	if got, want := remaining(), []uint64{6, 5, 4, 3}; !slices.Equal(got, want) {
		t.Errorf("after Prune(3): %v; want %v (three good, and the damaged 5)", got, want)
	}
	write()
	write()
	if err := d.Prune(DefaultKeep); err != nil {
		t.Fatal(err)
	}
	if got, want := remaining(), []uint64{8, 7, 6}; !slices.Equal(got, want) {
		t.Errorf("after two more and Prune(3): %v; want %v", got, want)
	}
	if err := d.Prune(1); err != nil {
		t.Fatal(err)
	}
	if got, want := remaining(), []uint64{8}; !slices.Equal(got, want) {
		t.Errorf("after Prune(1): %v; want %v", got, want)
	}
	if err := d.Prune(0); err == nil {
		t.Errorf("Prune(0) succeeded")
	}
	if got := remaining(); len(got) != 1 {
		t.Errorf("Prune(0) removed files: %v", got)
	}
}

func TestOpenUnusable(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(why, path string, want error) {
		t.Helper()
		d, err := Open(path)
		if err == nil {
			d.Close()
			t.Errorf("%s: Open(%q) succeeded", why, path)
			return
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: %v; want %v", why, err, want)
		}
		if path != "" && !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name %s", why, err, path)
		}
		t.Logf("%s: %v", why, err)
	}
	f("empty path", "", nil)
	f("a file where the directory should be", file, syscall.ENOTDIR)
	f("parent is a file", filepath.Join(file, "data"), syscall.ENOTDIR)

	dir := filepath.Join(base, "data")
	d := openDir(t, dir)
	f("held by another Dir", dir, ErrLocked)
	d.Close()
	d = openDir(t, dir)
	d.Close()
}

func TestConcurrentLoadsDuringWrites(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-2026-03-02")
	if _, err := d.Write(sampleCheckpoint(), keys.lookup); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			last := uint64(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				cp, bad, err := d.LoadNewest(keys.lookup)
				if err != nil || len(bad) != 0 || cp == nil {
					t.Errorf("LoadNewest during writes: %v %v %v", cp, bad, err)
					return
				}
				if cp.Seq < last {
					t.Errorf("loaded seq %d after %d", cp.Seq, last)
				}
				last = cp.Seq
			}
		})
	}
	for range 20 {
		if _, err := d.Write(sampleCheckpoint(), keys.lookup); err != nil {
			t.Error(err)
		}
		if err := d.Prune(2); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
}

// failingWriter passes the first n bytes to w, then fails with err: the seam
// that injects a write error at any offset.
type failingWriter struct {
	w   io.Writer
	n   int
	err error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	n, err := f.w.Write(p[:f.n])
	f.n -= n
	if err == nil {
		err = f.err
	}
	return n, err
}

// TestWriteErrorAtEveryOffset: a write that fails after any number of bytes
// leaves no file behind, and the previous checkpoint stays the newest.
func TestWriteErrorAtEveryOffset(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-2026-03-02")
	first, err := d.Write(sampleCheckpoint(), keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	enospc := &os.PathError{Op: "write", Path: "injected", Err: syscall.ENOSPC}
	for n := 0; n < int(first.Size); n += 97 {
		d.wrap = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: n, err: enospc} }
		_, err := d.Write(sampleCheckpoint(), keys.lookup)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("failing after %d bytes: %v; want ENOSPC", n, err)
		}
		if !strings.Contains(err.Error(), d.Path()) {
			t.Errorf("error %q does not name the file", err)
		}
		entries, _ := os.ReadDir(d.Path())
		if len(entries) != 2 { // LOCK and the first checkpoint
			t.Fatalf("failing after %d bytes left %d entries", n, len(entries))
		}
	}
	d.wrap = nil
	f, err := d.Write(sampleCheckpoint(), keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || len(bad) != 0 || cp.Seq != f.Seq {
		t.Errorf("after the failures: %v %v %v; want seq %d", cp, bad, err, f.Seq)
	}
}

// TestWriteAfterDirectoryVanishes: a directory removed under a running
// service (and a file put in its place) fails writes with the cause, and
// writes succeed again once the directory is back.
func TestWriteAfterDirectoryVanishes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	d := openDir(t, path)
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := d.Write(sampleCheckpoint(), newKeyring("day-2026-03-02").lookup)
	if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), path) {
		t.Errorf("Write into a file: %v; want ENOTDIR naming %s", err, path)
	}
	if _, _, err := d.LoadNewest(nil); err == nil {
		t.Errorf("LoadNewest of a file succeeded")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(sampleCheckpoint(), newKeyring("day-2026-03-02").lookup); err != nil {
		t.Errorf("Write after the directory is back: %v", err)
	}
}
