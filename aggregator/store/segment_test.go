package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hourSegment is a segment of sealed data of epoch, as the engine makes
// one per sealed hour.
func hourSegment(name, epoch string, seed uint64) *Segment {
	return &Segment{Name: name, Epoch: epoch, Sections: []Section{{Name: "minutes", Epoch: epoch, Data: randomBytes(seed, 2000)}}}
}

// segmentFiles returns the names of the segment files in d.
func segmentFiles(t *testing.T, d *Dir) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(d.Path(), segmentPrefix+"*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), segmentPrefix), segmentSuffix)
	}
	slices.Sort(names)
	return names
}

// TestSegments: a segment is written once and listed by every later
// checkpoint; Load reads it back with its checkpoint; a checkpoint whose
// segment is missing, replaced or damaged is passed over (ErrSegment) for
// an older one; a segment whose key is gone is reported expired, unread.
func TestSegments(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-1", "day-2")
	h1 := hourSegment("minutes-h1", "day-1", 1)
	ref1, err := d.WriteSegment(h1, keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.Path(), segmentFileName("minutes-h1")))
	if err != nil || fi.Size() != ref1.Size || ref1.Sections != nil || ref1.CRC == 0 {
		t.Fatalf("segment file %v, ref %+v", err, ref1)
	}
	// The first checkpoint lists the segment written ahead and writes
	// another, carried with its content.
	f1, err := d.Write(&Checkpoint{Sections: []Section{{Name: "open", Data: []byte("1")}},
		Segments: []Segment{ref1, *hourSegment("minutes-h2", "day-2", 2)}}, keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if len(f1.Segments) != 2 || f1.Segments[0].CRC != ref1.CRC || f1.Segments[1].Size == 0 || f1.Segments[1].Sections != nil {
		t.Fatalf("file segments %+v", f1.Segments)
	}
	// The second only references both.
	f2, err := d.Write(&Checkpoint{Sections: []Section{{Name: "open", Data: []byte("2")}}, Segments: f1.Segments}, keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || len(bad) > 0 || cp.Seq != f2.Seq {
		t.Fatalf("load: %v %v %v", cp, bad, err)
	}
	for i, want := range []*Segment{h1, hourSegment("minutes-h2", "day-2", 2)} {
		got := cp.Segments[i]
		if got.Err != nil || len(got.Sections) != 1 || string(got.Sections[0].Data) != string(want.Sections[0].Data) {
			t.Errorf("segment %d read back: %+v", i, got.Err)
		}
	}

	// A segment replaced by another write of its name: the checkpoints
	// listing the old one are passed over, naming it.
	if _, err := d.WriteSegment(hourSegment("minutes-h2", "day-2", 3), keys.lookup); err != nil {
		t.Fatal(err)
	}
	cp, bad, err = d.LoadNewest(keys.lookup)
	if err != nil || cp != nil || len(bad) != 2 {
		t.Fatalf("replaced segment: %v, %d bad, %v", cp, len(bad), err)
	}
	var sk *Skipped
	if !errors.As(bad[0], &sk) || sk.Reason() != "segment" || !errors.Is(sk, ErrSegment) || !strings.Contains(sk.Error(), "segment-minutes-h2.rtsg") {
		t.Errorf("replaced segment reported as %v", bad[0])
	}
	// Missing: the same, and never mistaken for a checkpoint that vanished.
	os.Remove(filepath.Join(d.Path(), segmentFileName("minutes-h2")))
	if _, bad, err = d.LoadNewest(keys.lookup); err != nil || len(bad) != 2 || !strings.Contains(bad[0].Error(), "no such file") {
		t.Errorf("missing segment: %v %v", bad, err)
	}
	// Expired: its key is gone, so it is not read, and the checkpoint is
	// taken with the segment's Err saying so.
	keys.delete("day-2")
	cp, bad, err = d.LoadNewest(keys.lookup)
	if err != nil || len(bad) != 0 || cp.Seq != f2.Seq {
		t.Fatalf("expired segment: %v %v %v", cp, bad, err)
	}
	if e := cp.Segments[1].Err; !errors.Is(e, ErrKeyGone) || cp.Segments[1].Sections != nil || cp.Segments[0].Err != nil {
		t.Errorf("expired segment: %v", e)
	}
}

// TestPruneSegments: Prune keeps the segments that a kept checkpoint lists
// and those written since the last checkpoint, and removes the rest;
// PruneKeys also removes those of epochs whose key is gone.
func TestPruneSegments(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-1", "day-2", "day-3")
	ref := func(name, epoch string, seed uint64) Segment {
		t.Helper()
		r, err := d.WriteSegment(hourSegment(name, epoch, seed), keys.lookup)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	write := func(segs ...Segment) {
		t.Helper()
		if _, err := d.Write(&Checkpoint{Segments: segs}, keys.lookup); err != nil {
			t.Fatal(err)
		}
	}
	a, b := ref("a", "day-1", 1), ref("b", "day-2", 2)
	write(a, b)
	c := ref("c", "day-3", 3)
	write(b, c) // a expired from the engine
	ref("pending", "day-3", 4)
	if err := d.Prune(2); err != nil {
		t.Fatal(err)
	}
	if got, want := segmentFiles(t, d), []string{"a", "b", "c", "pending"}; !slices.Equal(got, want) {
		t.Errorf("after Prune(2): %v; want %v", got, want)
	}
	if err := d.Prune(1); err != nil {
		t.Fatal(err)
	}
	if got, want := segmentFiles(t, d), []string{"b", "c", "pending"}; !slices.Equal(got, want) {
		t.Errorf("after Prune(1): %v; want %v (a listed by no kept checkpoint)", got, want)
	}
	write(b, c)
	keys.delete("day-2")
	if err := d.PruneKeys(3, keys.lookup); err != nil {
		t.Fatal(err)
	}
	if got, want := segmentFiles(t, d), []string{"c"}; !slices.Equal(got, want) {
		t.Errorf("after PruneKeys without day-2's key: %v; want %v", got, want)
	}
	// The checkpoints listing the expired b still load, b expired.
	cp, bad, err := d.LoadNewest(keys.lookup)
	if err != nil || len(bad) != 0 || !errors.Is(cp.Segments[0].Err, ErrKeyGone) || cp.Segments[1].Err != nil {
		t.Errorf("load after b expired: %v %v %v", cp, bad, err)
	}
}

// TestWriteSegmentInvalid: a bad name or a section under another epoch is
// refused before any file is written.
func TestWriteSegmentInvalid(t *testing.T) {
	d := openDir(t, t.TempDir())
	keys := newKeyring("day-1", "day-2")
	f := func(seg *Segment, text string) {
		t.Helper()
		_, err := d.WriteSegment(seg, keys.lookup)
		if err == nil || !strings.Contains(err.Error(), text) {
			t.Errorf("%+v: %v; want an error saying %q", seg.Name, err, text)
		}
	}
	f(&Segment{Name: "", Epoch: "day-1"}, "segment name of 0 bytes")
	f(&Segment{Name: "a/b", Epoch: "day-1"}, "is not [A-Za-z0-9-]")
	f(&Segment{Name: strings.Repeat("a", 129), Epoch: "day-1"}, "want 1..128")
	f(&Segment{Name: "a", Epoch: ""}, "epoch id of 0 bytes")
	f(&Segment{Name: "a", Epoch: "day-1", Sections: []Section{{Name: "s", Epoch: "day-2"}}}, `sealed under "day-2", not the segment's epoch "day-1"`)
	f(&Segment{Name: "a", Epoch: "day-1", Sections: []Section{{Name: "s"}}}, `sealed under "", not the segment's epoch`)
	f(&Segment{Name: "a", Epoch: "day-9", Sections: []Section{{Name: "s", Epoch: "day-9"}}}, "epoch key gone")
	if got := segmentFiles(t, d); len(got) != 0 {
		t.Errorf("files left: %v", got)
	}
	_, err := d.Write(&Checkpoint{Segments: []Segment{{Name: "x", Epoch: "day-1", Size: 10}}}, keys.lookup)
	if err == nil || !strings.Contains(err.Error(), "size 10") {
		t.Errorf("a reference smaller than a header: %v", err)
	}
}
