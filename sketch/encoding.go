package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The encoding is documented in the package doc (Encoding).
const (
	formatVersion = 1
	headerSize    = 16
	flagDense     = 1 << 0
	// libVersion is the library's encoding version that format 1 embeds.
	libVersion = 2
	// libHeaderSize is the library's own header: version, p, b, sparse flag,
	// and a 4-byte count (temporary set or registers).
	libHeaderSize = 8
)

var magic = [4]byte{0x89, 'R', 'H', 'L'}

// The zstd coders are created once and are safe for concurrent use. The
// decoder refuses to produce more than the largest dense payload, and
// DecodeAll is further capped to the exact size of each one (cap of dst).
var (
	zenc = mustEncoder()
	zdec = mustDecoder()
	// scratch holds a dense payload between the library and the compressor.
	scratch = sync.Pool{New: func() any { return new([]byte) }}
)

func mustEncoder() *zstd.Encoder {
	// A single-segment frame always declares its content size, which the
	// decoder checks before inflating (small frames omit it otherwise).
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithSingleSegment(true))
	if err != nil {
		panic("BUG: zstd encoder: " + err.Error())
	}
	return e
}

func mustDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(libHeaderSize+1<<MaxPrecision),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic("BUG: zstd decoder: " + err.Error())
	}
	return d
}

// AppendBinary appends the encoding of s (see Encoding in the package doc)
// to dst. Like Estimate it compacts a sparse sketch first, which may also
// switch it to dense registers, so it needs the owner's exclusive lock unless
// the sketch is sealed. On error dst is returned unchanged.
func (s *Sketch) AppendBinary(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, formatVersion, s.p, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.key.fp))
	if !s.dense {
		if !s.settled {
			// The compaction makes the sparse bytes canonical: an empty
			// temporary set and a sorted list of at most 2^p bytes.
			s.hll.Estimate()
		}
		off := len(dst)
		out, err := s.hll.AppendBinary(dst)
		if err != nil {
			return dst[:start], fmt.Errorf("sketch: encode: %w", err)
		}
		dst = out
		if !s.settled {
			s.observe(dst[off:])
			s.settled = true
		}
		if dst[off+3] == 1 { // sparse
			return dst, nil
		}
		// Dense after all: move the registers out and compress them.
		buf := scratch.Get().(*[]byte)
		defer scratch.Put(buf)
		*buf = append((*buf)[:0], dst[off:]...)
		dst[start+6] = flagDense
		return zenc.EncodeAll(*buf, dst[:off]), nil
	}
	buf := scratch.Get().(*[]byte)
	defer scratch.Put(buf)
	lib, err := s.hll.AppendBinary((*buf)[:0])
	if err != nil {
		return dst[:start], fmt.Errorf("sketch: encode: %w", err)
	}
	*buf = lib
	dst[start+6] = flagDense
	return zenc.EncodeAll(lib, dst), nil
}

// Decode returns the Sketch encoded in data, under key. Every error wraps one
// of ErrCorrupt (not a well-formed encoding), ErrVersion (an unknown format
// version), ErrPrecision (a precision outside [MinPrecision, MaxPrecision])
// or ErrKeyMismatch (encoded under another Key). Decode never panics; it
// allocates about the input size for a sparse sketch and twice the dense
// size, 2 × (8 + 2^p) bytes, for a dense one, whatever a frame claims. The
// result does not alias data.
func Decode(data []byte, key *Key) (*Sketch, error) {
	if key == nil {
		return nil, errors.New("sketch: decode: nil key")
	}
	if len(data) < headerSize {
		return nil, fmt.Errorf("sketch: decode: header needs %d bytes, have %d: %w", headerSize, len(data), ErrCorrupt)
	}
	if !bytes.Equal(data[:4], magic[:]) {
		return nil, fmt.Errorf("sketch: decode: magic %x, want %x: %w", data[:4], magic, ErrCorrupt)
	}
	if v := data[4]; v != formatVersion {
		return nil, fmt.Errorf("sketch: decode: format version %d, know %d: %w", v, formatVersion, ErrVersion)
	}
	p := data[5]
	if err := checkPrecision(p); err != nil {
		return nil, fmt.Errorf("sketch: decode: %w", err)
	}
	flags, reserved := data[6], data[7]
	if flags&^flagDense != 0 || reserved != 0 {
		return nil, fmt.Errorf("sketch: decode: flags %#02x, reserved %#02x: %w", flags, reserved, ErrCorrupt)
	}
	if fp := Fingerprint(binary.BigEndian.Uint64(data[8:16])); fp != key.fp {
		return nil, fmt.Errorf("sketch: decode: encoded under key %v, not %v: %w", fp, key.fp, ErrKeyMismatch)
	}
	dense := flags&flagDense != 0
	lib := data[headerSize:]
	if dense {
		var err error
		if lib, err = inflate(lib, p); err != nil {
			return nil, err
		}
	}
	if err := checkLibHeader(lib, p, dense); err != nil {
		return nil, err
	}
	s := &Sketch{key: key, p: p, dense: dense, settled: true}
	if err := s.hll.UnmarshalBinary(lib); err != nil {
		return nil, fmt.Errorf("sketch: decode payload: %w: %w", ErrCorrupt, err)
	}
	if !dense {
		// checkLibHeader saw an empty temporary set; the list size is next.
		n, _ := sparseListBytes(lib)
		if n > uint64(1)<<p {
			return nil, fmt.Errorf("sketch: decode: sparse list of %d bytes exceeds 2^%d: %w", n, p, ErrCorrupt)
		}
		s.sparseBound = n
	}
	return s, nil
}

// CheckHeader checks the 16-byte header of an encoding under key, as
// Decode does before it reads the payload (magic, version, precision,
// flags, key), and returns the precision. It reads nothing past the header
// and allocates nothing: a caller that keeps encodings and decodes them
// later (a store of sealed sketches) checks them cheaply when it takes them
// in, and must still handle Decode's errors about the payload. Errors wrap
// Decode's sentinels.
func CheckHeader(data []byte, key *Key) (uint8, error) {
	if key == nil {
		return 0, errors.New("sketch: check header: nil key")
	}
	if len(data) < headerSize {
		return 0, fmt.Errorf("sketch: check header: header needs %d bytes, have %d: %w", headerSize, len(data), ErrCorrupt)
	}
	if !bytes.Equal(data[:4], magic[:]) {
		return 0, fmt.Errorf("sketch: check header: magic %x, want %x: %w", data[:4], magic, ErrCorrupt)
	}
	if v := data[4]; v != formatVersion {
		return 0, fmt.Errorf("sketch: check header: format version %d, know %d: %w", v, formatVersion, ErrVersion)
	}
	p := data[5]
	if err := checkPrecision(p); err != nil {
		return 0, fmt.Errorf("sketch: check header: %w", err)
	}
	if flags, reserved := data[6], data[7]; flags&^flagDense != 0 || reserved != 0 {
		return 0, fmt.Errorf("sketch: check header: flags %#02x, reserved %#02x: %w", flags, reserved, ErrCorrupt)
	}
	if fp := Fingerprint(binary.BigEndian.Uint64(data[8:16])); fp != key.fp {
		return 0, fmt.Errorf("sketch: check header: encoded under key %v, not %v: %w", fp, key.fp, ErrKeyMismatch)
	}
	if len(data) == headerSize {
		return 0, fmt.Errorf("sketch: check header: no payload: %w", ErrCorrupt)
	}
	return p, nil
}

// checkLibHeader checks what format 1 pins in the library's encoding: its
// version, the precision of the outer header, the representation of the
// flags, and an empty temporary set (compacted) for sparse payloads.
func checkLibHeader(lib []byte, p uint8, dense bool) error {
	if len(lib) < libHeaderSize {
		return fmt.Errorf("sketch: decode: payload of %d bytes, need at least %d: %w", len(lib), libHeaderSize, ErrCorrupt)
	}
	if lib[0] != libVersion || lib[1] != p || lib[3] != b2u(!dense) {
		return fmt.Errorf("sketch: decode: payload header % x, want version %d, precision %d, sparse %d: %w",
			lib[:4], libVersion, p, b2u(!dense), ErrCorrupt)
	}
	if !dense {
		if n := binary.BigEndian.Uint32(lib[4:8]); n != 0 {
			return fmt.Errorf("sketch: decode: sparse payload has %d uncompacted keys: %w", n, ErrCorrupt)
		}
	}
	return nil
}

// inflate decompresses a dense payload of precision p into a new buffer of
// exactly the dense size. The frame header is checked first, so that a frame
// that does not declare exactly that size is refused before decoding.
func inflate(z []byte, p uint8) ([]byte, error) {
	want := libHeaderSize + uint64(1)<<p
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return nil, fmt.Errorf("sketch: decode: dense payload frame header: %w: %w", ErrCorrupt, err)
	}
	if h.Skippable || !h.HasFCS || h.FrameContentSize != want || h.DictionaryID != 0 {
		return nil, fmt.Errorf("sketch: decode: dense payload frame declares %d bytes (known %t, dictionary %d), want %d: %w",
			h.FrameContentSize, h.HasFCS, h.DictionaryID, want, ErrCorrupt)
	}
	out, err := zdec.DecodeAll(z, make([]byte, 0, want))
	if err != nil {
		return nil, fmt.Errorf("sketch: decode: dense payload: %w: %w", ErrCorrupt, err)
	}
	if uint64(len(out)) != want {
		return nil, fmt.Errorf("sketch: decode: dense payload of %d bytes, want %d: %w", len(out), want, ErrCorrupt)
	}
	return out, nil
}

// sparseListBytes returns an upper bound on the compacted list bytes of the
// library's sparse encoding b: the list's size plus the most that the keys of
// its temporary set can add. b must have passed the library's validation or
// come from its AppendBinary; ok is false if b is too short to tell.
func sparseListBytes(b []byte) (n uint64, ok bool) {
	if len(b) < libHeaderSize {
		return 0, false
	}
	tmp := uint64(binary.BigEndian.Uint32(b[4:8]))
	off := libHeaderSize + 4*tmp + 8 // skip the keys, then count and last
	if uint64(len(b)) < off+4 {
		return 0, false
	}
	return uint64(binary.BigEndian.Uint32(b[off:off+4])) + maxDeltaBytes*tmp, true
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
