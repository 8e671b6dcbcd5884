package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadFallsBack damages the newest files of a directory in every way a
// start-up meets (a cut file, a flipped byte, a future version, a sealed
// section whose key is gone, a section the caller refuses): Load takes the
// newest good one, reports each newer file with its path, its sequence
// number and a reason, and Prune keeps the file taken until enough good
// files follow it.
func TestLoadFallsBack(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-2026-03-02")
	var files []File
	for i := range 7 {
		cp := sampleCheckpoint()
		cp.StreamSeq = uint64(100 + i)
		if i == 4 { // under an epoch whose key is deleted below
			cp.Sections = append(cp.Sections, Section{Name: "old", Epoch: "day-2026-03-01", Data: []byte("sketches")})
			keys.keys["day-2026-03-01"] = make([]byte, 32)
		}
		f, err := d.Write(cp, keys.lookup)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	keys.delete("day-2026-03-01")
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
	damage(files[6], func(b []byte) []byte { return b[:len(b)-100] })      // cut short
	damage(files[5], func(b []byte) []byte { b[len(b)/3] ^= 1; return b }) // one bit
	damage(files[3], func(b []byte) []byte { return setVersion(b, 7) })    // a future version
	// files[4] decodes, with its "old" section unreadable; files[2] decodes
	// but holds what the caller calls damaged.
	accept := func(cp *Checkpoint) error {
		if len(cp.Unreadable) > 0 {
			return fmt.Errorf("%w: %w", ErrUnusable, cp.Unreadable[0])
		}
		if cp.StreamSeq == 102 {
			return fmt.Errorf("section \"counts\": a count past its end: %w", ErrUnusable)
		}
		return nil
	}
	cp, skipped, err := d.Load(keys.lookup, accept)
	if err != nil || cp == nil || cp.Seq != files[1].Seq || cp.StreamSeq != 101 {
		t.Fatalf("Load: %v, %v; want seq %d", cp, err, files[1].Seq)
	}
	want := []struct {
		file   File
		reason string
		err    error
		text   string
	}{
		{files[6], "truncated", ErrTruncated, "file ends at byte"},
		{files[5], "checksum", ErrChecksum, "body CRC-32C"},
		{files[4], "unusable", ErrKeyGone, `section "old" sealed under epoch "day-2026-03-01"`},
		{files[3], "version", ErrVersion, "format version 7"},
		{files[2], "unusable", ErrUnusable, "a count past its end"},
	}
	if len(skipped) != len(want) {
		t.Fatalf("%d files skipped, want %d: %v", len(skipped), len(want), skipped)
	}
	for i, w := range want {
		s := skipped[i]
		if s.Path != w.file.Path || s.Seq != w.file.Seq || s.Reason() != w.reason || !errors.Is(s, w.err) ||
			!strings.Contains(s.Error(), w.text) || !strings.Contains(s.Error(), filepath.Base(w.file.Path)) {
			t.Errorf("skipped[%d] = %v (seq %d, reason %s); want %s, seq %d, %s, %v saying %q",
				i, s, s.Seq, s.Reason(), w.file.Path, w.file.Seq, w.reason, w.err, w.text)
		}
	}

	// The files passed over do not count as good: Prune(1) keeps the one
	// taken (and everything newer), though three of the newer ones pass
	// their checksums.
	if err := d.Prune(1); err != nil {
		t.Fatal(err)
	}
	if got, want := remaining(t, d), []uint64{7, 6, 5, 4, 3, 2}; !slices.Equal(got, want) {
		t.Errorf("after Load and Prune(1): %v; want %v", got, want)
	}
	// One good file written after them: it is now the fallback.
	if _, err := d.Write(sampleCheckpoint(), keys.lookup); err != nil {
		t.Fatal(err)
	}
	if err := d.Prune(1); err != nil {
		t.Fatal(err)
	}
	if got, want := remaining(t, d), []uint64{8}; !slices.Equal(got, want) {
		t.Errorf("after a good write and Prune(1): %v; want %v", got, want)
	}

	// An error that does not wrap ErrUnusable stops Load.
	stop := errors.New("written under another model")
	cp, skipped, err = d.Load(keys.lookup, func(*Checkpoint) error { return stop })
	if cp != nil || len(skipped) != 0 || !errors.Is(err, stop) {
		t.Errorf("Load with a refusing accept: %v, %v, %v; want %v", cp, skipped, err, stop)
	}
	// Nothing usable: no checkpoint, every file reported, no error.
	cp, skipped, err = d.Load(keys.lookup, func(*Checkpoint) error { return ErrUnusable })
	if cp != nil || len(skipped) != 1 || err != nil {
		t.Errorf("Load with nothing usable: %v, %v, %v", cp, skipped, err)
	}
}

func remaining(t *testing.T, d *Dir) []uint64 {
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
