package store

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// scratch holds one stored chunk (at most chunkSize+tagSize bytes) while it
// is opened and inflated; loads may run concurrently, so it is pooled.
var scratch = sync.Pool{New: func() any {
	b := make([]byte, chunkSize+tagSize)
	return &b
}}

// Decode returns the checkpoint in data, the whole of one file, opening its
// sealed sections with keys. Every error wraps exactly one of ErrTruncated,
// ErrChecksum, ErrVersion or ErrCorrupt. A sealed section whose epoch key is
// gone, or does not open it, is left out of Sections and listed in
// Unreadable. Decode never panics; it checks both checksums before reading
// the sections, so a damaged file is refused before anything is inflated,
// and allocates the raw size of the sections plus 1 MiB of scratch. The
// result does not alias data.
//
// A checkpoint's Segments are listed, not read: Decode has only the bytes
// of one file (Load reads them). A segment file is refused (ErrCorrupt):
// DecodeSegment reads those.
func Decode(data []byte, keys KeyLookup) (*Checkpoint, error) {
	cp, err := decode(data, false, keys)
	if err != nil {
		return nil, fmt.Errorf("store: decode: %w", err)
	}
	return cp, nil
}

// DecodeSegment returns the sections of the segment file in data, as Decode
// does for a checkpoint file: errors wrap the same sentinels, and sections
// that cannot be opened are listed in Unreadable. A checkpoint file is
// refused (ErrCorrupt).
func DecodeSegment(data []byte, keys KeyLookup) (*Checkpoint, error) {
	cp, err := decode(data, true, keys)
	if err != nil {
		return nil, fmt.Errorf("store: decode segment: %w", err)
	}
	return cp, nil
}

func decode(data []byte, segment bool, keys KeyLookup) (*Checkpoint, error) {
	h, err := parseHeader(data[:min(len(data), headerSize)], int64(len(data)))
	if err != nil {
		return nil, err
	}
	if err := h.isSegment(segment); err != nil {
		return nil, err
	}
	if c := crc32.Checksum(data[headerSize:], castagnoli); c != h.bodyCRC {
		return nil, fmt.Errorf("body CRC-32C %08x, header says %08x: %w", c, h.bodyCRC, ErrChecksum)
	}
	return parseBody(bytes.NewReader(data[headerSize:]), h, keys)
}

// isSegment checks that the file is a segment if segment is set, and a
// checkpoint otherwise.
func (h *header) isSegment(segment bool) error {
	switch is := h.flags&flagSegment != 0; {
	case is && !segment:
		return fmt.Errorf("a segment file, not a checkpoint: %w", ErrCorrupt)
	case !is && segment:
		return fmt.Errorf("a checkpoint file, not a segment: %w", ErrCorrupt)
	}
	return nil
}

// loadFile decodes the file at path in two passes: the first checks the
// header and the body's checksum, the second reads the sections. Reading the
// file twice (the second time from the page cache) costs less than holding
// the compressed file in memory next to the sections, and it means that
// lengths are trusted only after they passed the checksum.
func loadFile(path string, keys KeyLookup) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := verifyFile(f)
	if err != nil {
		return nil, err
	}
	if err := h.isSegment(false); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, int64(h.bodyLen)), 256<<10)
	return parseBody(br, h, keys)
}

// verifyFile checks the header and the body checksum of f.
func verifyFile(f *os.File) (header, error) {
	fi, err := f.Stat()
	if err != nil {
		return header{}, err
	}
	size := fi.Size()
	var b [headerSize]byte
	n, err := f.ReadAt(b[:min(size, headerSize)], 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == min(size, headerSize)) {
		return header{}, fmt.Errorf("read header: %w", err)
	}
	h, err := parseHeader(b[:n], size)
	if err != nil {
		return header{}, err
	}
	buf := scratch.Get().(*[]byte)
	defer scratch.Put(buf)
	crc := crc32.New(castagnoli)
	if _, err := io.CopyBuffer(crc, io.NewSectionReader(f, headerSize, int64(h.bodyLen)), *buf); err != nil {
		return header{}, fmt.Errorf("read body: %w", err)
	}
	if c := crc.Sum32(); c != h.bodyCRC {
		return header{}, fmt.Errorf("body CRC-32C %08x, header says %08x: %w", c, h.bodyCRC, ErrChecksum)
	}
	return h, nil
}

// parseHeader checks b, the first bytes of a file of size bytes (all of them
// up to headerSize), in the order that makes the error most precise: magic,
// version (so a future version with another header is named as such),
// length, checksum, then what the header says about the rest of the file.
func parseHeader(b []byte, size int64) (header, error) {
	if n := min(len(b), len(magic)); !bytes.Equal(b[:n], magic[:n]) {
		return header{}, fmt.Errorf("not a checkpoint: magic %q, want %q: %w", b[:n], magic[:], ErrCorrupt)
	}
	if len(b) < 6 {
		return header{}, fmt.Errorf("file ends at byte %d, inside the %d-byte header: %w", size, headerSize, ErrTruncated)
	}
	v := binary.BigEndian.Uint16(b[4:6])
	if v != 1 && v != formatVersion {
		return header{}, fmt.Errorf("format version %d; this build reads versions 1 and %d: %w", v, formatVersion, ErrVersion)
	}
	if len(b) < headerSize {
		return header{}, fmt.Errorf("file ends at byte %d, inside the %d-byte header: %w", size, headerSize, ErrTruncated)
	}
	stored, c := binary.BigEndian.Uint32(b[48:52]), crc32.Checksum(b[:48], castagnoli)
	if stored != c {
		return header{}, fmt.Errorf("header CRC-32C %08x, header says %08x: %w", c, stored, ErrChecksum)
	}
	f := binary.BigEndian.Uint16(b[6:8])
	if v == 1 && f != 0 {
		return header{}, fmt.Errorf("format version 1 with flags %#04x; this build knows none: %w", f, ErrVersion)
	}
	if f&^flagSegment != 0 {
		return header{}, fmt.Errorf("format version %d with flags %#04x; this build knows %#04x only: %w", v, f, flagSegment, ErrVersion)
	}
	h := header{
		version:   v,
		flags:     f,
		seq:       binary.BigEndian.Uint64(b[8:16]),
		created:   binary.BigEndian.Uint64(b[16:24]),
		streamSeq: binary.BigEndian.Uint64(b[24:32]),
		bodyLen:   binary.BigEndian.Uint64(b[32:40]),
		sections:  binary.BigEndian.Uint32(b[40:44]),
		bodyCRC:   binary.BigEndian.Uint32(b[44:48]),
	}
	body := uint64(size - headerSize)
	if body < h.bodyLen {
		// Saturate: a lying length must not wrap the reported size.
		want := min(h.bodyLen, 1<<62) + headerSize
		return header{}, fmt.Errorf("file ends at byte %d; its header declares %d: %w", size, want, ErrTruncated)
	}
	if body > h.bodyLen {
		return header{}, fmt.Errorf("%d bytes after the end of the body at byte %d: %w", body-h.bodyLen, h.bodyLen+headerSize, ErrCorrupt)
	}
	return h, nil
}

// bodyReader reads the body, which parseHeader has measured: running past
// its end is a structure error, and any other read error is I/O.
type bodyReader struct {
	r    io.Reader
	left uint64
	off  uint64 // for errors: offset in the file
}

func (b *bodyReader) full(p []byte, what string) error {
	if uint64(len(p)) > b.left {
		return fmt.Errorf("%s of %d bytes at byte %d runs past the end of the body (%d bytes left): %w", what, len(p), b.off, b.left, ErrCorrupt)
	}
	if _, err := io.ReadFull(b.r, p); err != nil {
		return fmt.Errorf("read %s at byte %d: %w", what, b.off, err)
	}
	b.left -= uint64(len(p))
	b.off += uint64(len(p))
	return nil
}

func (b *bodyReader) byte(what string) (byte, error) {
	var p [1]byte
	err := b.full(p[:], what)
	return p[0], err
}

// minSection is the size of the smallest section: a one-byte name, plain,
// empty.
const minSection = 1 + 1 + 1 + 8

func parseBody(r io.Reader, h header, keys KeyLookup) (*Checkpoint, error) {
	br := &bodyReader{r: r, left: h.bodyLen, off: headerSize}
	cp := &Checkpoint{
		Seq:       h.seq,
		Created:   time.Unix(0, int64(h.created)).UTC(),
		StreamSeq: h.streamSeq,
		Sections:  make([]Section, 0, min(uint64(h.sections), h.bodyLen/minSection)),
	}
	if h.version != 1 {
		segs, err := readSegmentList(br, h.flags&flagSegment != 0)
		if err != nil {
			return nil, err
		}
		cp.Segments = segs
	}
	buf := scratch.Get().(*[]byte)
	defer scratch.Put(buf)
	seen := make(map[string]struct{})
	var aad []byte
	for i := range h.sections {
		start := br.off
		sh, err := readSectionHead(br, keys)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", i, err)
		}
		if _, dup := seen[sh.name]; dup {
			return nil, fmt.Errorf("section %d at byte %d: name %q used twice: %w", i, start, sh.name, ErrCorrupt)
		}
		seen[sh.name] = struct{}{}
		aad = sectionHeader(aad[:0], sh.name, sh.epoch, sh.salt, sh.rawLen)
		data, unreadable, err := readChunks(br, &sh, aad, *buf)
		if err != nil {
			return nil, fmt.Errorf("section %q: %w", sh.name, err)
		}
		if unreadable != nil {
			cp.Unreadable = append(cp.Unreadable, &SectionError{Name: sh.name, Epoch: sh.epoch, Err: unreadable})
			continue
		}
		cp.Sections = append(cp.Sections, Section{Name: sh.name, Epoch: sh.epoch, Data: data})
	}
	if br.left != 0 {
		return nil, fmt.Errorf("%d bytes after the last section at byte %d: %w", br.left, br.off, ErrCorrupt)
	}
	return cp, nil
}

// sectionHead is a section up to its chunks.
type sectionHead struct {
	name, epoch string
	salt        []byte
	rawLen      uint64
	aead        cipher.AEAD // of a sealed section whose key is usable
	keyErr      error       // why a sealed section's key is not usable
}

func readSectionHead(br *bodyReader, keys KeyLookup) (sh sectionHead, err error) {
	n, err := br.byte("name length")
	if err != nil {
		return sh, err
	}
	if n == 0 {
		return sh, fmt.Errorf("empty name at byte %d: %w", br.off-1, ErrCorrupt)
	}
	name := make([]byte, n)
	if err := br.full(name, "name"); err != nil {
		return sh, err
	}
	sh.name = string(name)
	e, err := br.byte("epoch length")
	if err != nil {
		return sh, err
	}
	if e > 0 {
		b := make([]byte, int(e)+saltSize)
		if err := br.full(b[:e], "epoch"); err != nil {
			return sh, err
		}
		if err := br.full(b[e:], "salt"); err != nil {
			return sh, err
		}
		sh.epoch, sh.salt = string(b[:e]), b[e:]
		sh.aead, sh.keyErr = sectionAEAD(keys, sh.epoch, sh.salt)
		if sh.keyErr != nil && !errors.Is(sh.keyErr, ErrKeyGone) {
			sh.keyErr = fmt.Errorf("%w: %w", ErrKeyMismatch, sh.keyErr)
		}
	}
	var l [8]byte
	if err := br.full(l[:], "raw length"); err != nil {
		return sh, err
	}
	sh.rawLen = binary.BigEndian.Uint64(l[:])
	if sh.rawLen > 1<<62 {
		return sh, fmt.Errorf("raw length %d at byte %d: %w", sh.rawLen, br.off-8, ErrCorrupt)
	}
	return sh, nil
}

// readChunks reads the chunks of a section and returns its data, or why a
// sealed section cannot be read (its key, or a chunk that fails
// authentication), in which case it reads past the chunks without inflating.
func readChunks(br *bodyReader, sh *sectionHead, aad, buf []byte) (data []byte, unreadable, err error) {
	overhead := 0
	if sh.epoch != "" {
		overhead = tagSize
	}
	unreadable = sh.keyErr
	if unreadable == nil {
		// Trust a large raw length only as far as the bytes left could
		// inflate to; beyond that the buffer grows with the data.
		data = make([]byte, 0, min(sh.rawLen, max(chunkSize, 256*br.left)))
	}
	hdrLen := len(aad)
	var word [4]byte
	for i := uint64(0); i*chunkSize < sh.rawLen; i++ {
		at := br.off
		if err := br.full(word[:], "chunk word"); err != nil {
			return nil, nil, err
		}
		w := binary.BigEndian.Uint32(word[:])
		zst, stored := w&flagZstd != 0, int(w&^flagZstd)
		r := int(min(chunkSize, sh.rawLen-i*chunkSize))
		if stored > r+overhead || stored < overhead || (!zst && stored != r+overhead) || (zst && stored == overhead) {
			return nil, nil, fmt.Errorf("chunk %d at byte %d: %d stored bytes (zstd %t) for %d raw bytes and a %d-byte tag: %w", i, at, stored, zst, r, overhead, ErrCorrupt)
		}
		payload := buf[:stored]
		if err := br.full(payload, "chunk"); err != nil {
			return nil, nil, err
		}
		if unreadable != nil {
			continue
		}
		if sh.aead != nil {
			aad = append(aad[:hdrLen], word[:]...)
			p, err := sh.aead.Open(payload[:0], chunkNonce(i), payload, aad)
			if err != nil {
				unreadable, data = fmt.Errorf("chunk %d: %w", i, ErrKeyMismatch), nil
				continue
			}
			payload = p
		}
		if !zst {
			data = append(data, payload...)
			continue
		}
		data = slices.Grow(data, r)
		n := len(data)
		out, err := zdec.DecodeAll(payload, data[n:n:n+r])
		if err != nil {
			return nil, nil, fmt.Errorf("chunk %d at byte %d: %w: %w", i, at, ErrCorrupt, err)
		}
		if len(out) != r || &out[0] != &data[n : n+1][0] {
			return nil, nil, fmt.Errorf("chunk %d at byte %d inflates to %d bytes, want %d: %w", i, at, len(out), r, ErrCorrupt)
		}
		data = data[:n+r]
	}
	return data, unreadable, nil
}

// minSegmentRef is the size of the smallest entry of a segment list.
const minSegmentRef = 1 + 1 + 1 + 1 + 8 + 4

// readSegmentList reads the segment list of a version 2 body; a segment's
// own list must be empty.
func readSegmentList(br *bodyReader, segment bool) ([]Segment, error) {
	var b [8]byte
	at := br.off
	if err := br.full(b[:4], "segment count"); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(b[:4])
	if segment && n != 0 {
		return nil, fmt.Errorf("a segment file lists %d segments at byte %d: %w", n, at, ErrCorrupt)
	}
	if uint64(n) > br.left/minSegmentRef {
		return nil, fmt.Errorf("%d segments at byte %d cannot fit in the %d bytes left: %w", n, at, br.left, ErrCorrupt)
	}
	segs := make([]Segment, 0, n)
	seen := make(map[string]struct{}, n)
	for i := range n {
		at := br.off
		var s Segment
		for _, field := range []*string{&s.Name, &s.Epoch} {
			l, err := br.byte("segment name length")
			if err != nil {
				return nil, err
			}
			p := make([]byte, l)
			if err := br.full(p, "segment name"); err != nil {
				return nil, err
			}
			*field = string(p)
		}
		if err := br.full(b[:8], "segment size"); err != nil {
			return nil, err
		}
		s.Size = int64(binary.BigEndian.Uint64(b[:8]))
		if err := br.full(b[:4], "segment checksum"); err != nil {
			return nil, err
		}
		s.CRC = binary.BigEndian.Uint32(b[:4])
		err := checkSegmentName(s.Name, s.Epoch)
		if _, dup := seen[s.Name]; err == nil && dup {
			err = fmt.Errorf("name %q listed twice", s.Name)
		}
		if err == nil && (s.Size < headerSize || s.Size > 1<<62) {
			err = fmt.Errorf("segment %q of %d bytes", s.Name, s.Size)
		}
		if err != nil {
			return nil, fmt.Errorf("segment %d at byte %d: %w: %w", i, at, err, ErrCorrupt)
		}
		seen[s.Name] = struct{}{}
		segs = append(segs, s)
	}
	return segs, nil
}
