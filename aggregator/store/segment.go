package store

// Segments: immutable files of sealed data that checkpoints list instead of
// holding (see Segments in the package doc).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	segmentPrefix = "segment-"
	segmentSuffix = ".rtsg"
)

func segmentFileName(name string) string { return segmentPrefix + name + segmentSuffix }

// fileList is the segment list of a checkpoint file of size bytes.
type fileList struct {
	size int64
	segs []Segment
}

// WriteSegment writes seg as the segment file segment-<Name>.rtsg,
// replacing any file of that name, each of its sections sealed under
// seg.Epoch with the key from keys, and returns its reference (Size and CRC
// set, no Sections), for a checkpoint to list. Until a checkpoint is
// written, Prune leaves it alone. Errors are Write's.
func (d *Dir) WriteSegment(seg *Segment, keys KeyLookup) (Segment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return Segment{}, fmt.Errorf("store: write segment in %s: directory closed", d.path)
	}
	return d.writeSegmentLocked(seg, keys)
}

func (d *Dir) writeSegmentLocked(seg *Segment, keys KeyLookup) (Segment, error) {
	final := filepath.Join(d.path, segmentFileName(seg.Name))
	if err := checkSegmentName(seg.Name, seg.Epoch); err != nil {
		return Segment{}, fmt.Errorf("store: write segment %s: %w", final, err)
	}
	for _, s := range seg.Sections {
		if s.Epoch != seg.Epoch {
			return Segment{}, fmt.Errorf("store: write segment %s: section %q sealed under %q, not the segment's epoch %q", final, s.Name, s.Epoch, seg.Epoch)
		}
	}
	cp := &Checkpoint{Created: time.Now(), Sections: seg.Sections}
	size, crc, err := d.writeLocked(cp, 0, flagSegment, final, keys)
	if err != nil {
		return Segment{}, fmt.Errorf("store: write segment %s: %w", final, err)
	}
	d.pending[seg.Name] = true
	return Segment{Name: seg.Name, Epoch: seg.Epoch, Size: size, CRC: crc}, nil
}

// loadSegments reads the segments that cp, loaded from the checkpoint file
// at path, lists. A segment whose epoch key is gone is not read (Err says
// so); one that is missing or not the file listed is an error wrapping
// ErrSegment, never os.ErrNotExist, unless the checkpoint itself is gone
// meanwhile (a Prune), which is reported as its own os.ErrNotExist.
func (d *Dir) loadSegments(path string, cp *Checkpoint, keys KeyLookup) error {
	for i := range cp.Segments {
		s := &cp.Segments[i]
		if keys == nil {
			keys = func(string) ([]byte, bool) { return nil, false }
		}
		if _, ok := keys(s.Epoch); !ok {
			s.Err = &SectionError{Name: segmentFileName(s.Name), Epoch: s.Epoch, Err: ErrKeyGone}
			continue
		}
		err := d.loadSegment(s, keys)
		if err == nil {
			continue
		}
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			return serr
		}
		return fmt.Errorf("segment %s: %w: %v", segmentFileName(s.Name), ErrSegment, err)
	}
	return nil
}

// loadSegment reads the file of s, which must be the one described.
func (d *Dir) loadSegment(s *Segment, keys KeyLookup) error {
	f, err := os.Open(filepath.Join(d.path, segmentFileName(s.Name)))
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := verifyFile(f)
	if err != nil {
		return err
	}
	if err := h.isSegment(true); err != nil {
		return err
	}
	hdr := h.encode()
	if size := headerSize + int64(h.bodyLen); size != s.Size || crcOf(hdr) != s.CRC {
		return fmt.Errorf("%d bytes, header CRC-32C %08x; the checkpoint lists %d bytes, %08x: another file", size, crcOf(hdr), s.Size, s.CRC)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, int64(h.bodyLen)), 256<<10)
	seg, err := parseBody(br, h, keys)
	if err != nil {
		return err
	}
	for _, sec := range seg.Sections {
		if sec.Epoch != s.Epoch {
			return fmt.Errorf("section %q sealed under %q, not the segment's epoch %q: %w", sec.Name, sec.Epoch, s.Epoch, ErrCorrupt)
		}
	}
	for _, u := range seg.Unreadable {
		if u.Epoch != s.Epoch {
			return fmt.Errorf("section %q sealed under %q, not the segment's epoch %q: %w", u.Name, u.Epoch, s.Epoch, ErrCorrupt)
		}
	}
	if len(seg.Unreadable) > 0 {
		s.Err = seg.Unreadable[0]
		return nil
	}
	s.Sections = seg.Sections
	return nil
}

func crcOf(hdr [headerSize]byte) uint32 {
	return uint32(hdr[48])<<24 | uint32(hdr[49])<<16 | uint32(hdr[50])<<8 | uint32(hdr[51])
}

// listOf returns the segment list of checkpoint file f (nil for version 1),
// remembered from a Write or an earlier read while its size is the same.
func (d *Dir) listOf(f File) ([]Segment, error) {
	name := filepath.Base(f.Path)
	if l, ok := d.lists[name]; ok && l.size == f.Size {
		return l.segs, nil
	}
	file, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var b [headerSize]byte
	if _, err := io.ReadFull(file, b[:]); err != nil {
		return nil, err
	}
	h, err := parseHeader(b[:], f.Size)
	if err != nil {
		return nil, err
	}
	var segs []Segment
	if h.version != 1 {
		br := &bodyReader{r: bufio.NewReader(io.NewSectionReader(file, headerSize, int64(h.bodyLen))), left: h.bodyLen, off: headerSize}
		if segs, err = readSegmentList(br, h.flags&flagSegment != 0); err != nil {
			return nil, err
		}
	}
	d.lists[name] = fileList{size: f.Size, segs: segs}
	return segs, nil
}

// segmentsPresent reports whether every unexpired segment that checkpoint
// file f lists is there with the size listed.
func (d *Dir) segmentsPresent(f File, keys KeyLookup) bool {
	segs, err := d.listOf(f)
	if err != nil {
		return false
	}
	for _, s := range segs {
		if keys != nil {
			if _, ok := keys(s.Epoch); !ok {
				continue
			}
		}
		fi, err := os.Stat(filepath.Join(d.path, segmentFileName(s.Name)))
		if err != nil || fi.Size() != s.Size {
			return false
		}
	}
	return true
}

// pruneSegmentsLocked removes the segment files that no checkpoint file of
// kept lists (a damaged list protects nothing: its file never loads), that
// were not written since the last checkpoint, and those of epochs whose key
// keys no longer has.
func (d *Dir) pruneSegmentsLocked(kept []File, keys KeyLookup) error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("store: prune: list checkpoint directory %s: %w", d.path, err)
	}
	listed := make(map[string]bool)
	for _, f := range kept {
		segs, err := d.listOf(f)
		if err != nil {
			continue
		}
		for _, s := range segs {
			if keys != nil {
				if _, ok := keys(s.Epoch); !ok {
					continue
				}
			}
			listed[s.Name] = true
		}
	}
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), segmentPrefix)
		if !ok {
			continue
		}
		if name, ok = strings.CutSuffix(name, segmentSuffix); !ok || listed[name] || d.pending[name] {
			continue
		}
		if err := os.Remove(filepath.Join(d.path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("store: prune: %w", err))
		}
	}
	return errors.Join(errs...)
}
