// Package sketch estimates distinct devices from keyed HyperLogLog sketches.
//
// Device IDs are hashed with a secret Key (AES-128 in CBC-MAC over a
// length-prefixed encoding, a PRF) before any register sees them, so a
// sketch cannot be tested for a known ID without the key, and once the key
// is deleted no sketch under it can be linked to a device.
// Sketches with the same Key and precision merge losslessly: the merge of two
// sketches is the sketch of the union of their devices. The package holds the
// math and the bytes only: no time, no I/O, no locks.
//
// A Sketch wraps github.com/axiomhq/hyperloglog v0.3.0. It starts sparse: a
// sorted, delta-encoded list of 25-bit hash positions, estimated by linear
// counting over 2^25 positions, so small audiences are counted almost exactly
// (standard error about n/8192: 0.12 at n = 1000). When that list outgrows
// 2^p bytes (about 7,700 devices at p = 14) it becomes 2^p dense registers,
// estimated with LogLog-Beta, relative standard error 1.04/√(2^p) (0.81% at
// p = 14). Estimate returns the value and a ~95% interval, value ± 1.96σ with
// the bounds rounded outwards and clamped at 0: ±1 for a sparse count below
// about 4,000.
//
// # Which σ
//
// The library does not say which representation a sketch is in, so a Sketch
// tracks it, soundly: it keeps an upper bound on the bytes its sparse list
// would take after compaction (5 per insert; the sum of both bounds on Merge,
// since a key's delta never grows when keys are added) and a flag set when it
// learns the sketch is dense (a dense Merge operand, a dense encoding,
// NewUnion). A sketch whose bound is at most 2^p bytes cannot have left the
// sparse form; one whose estimate exceeds the largest value the sparse form
// can report (linear counting of 2^p entries) must have. Between the two,
// Estimate reads the representation byte of the library's own encoding
// (byte 3, documented by the library) once, at the cost of copying at most
// 2^p bytes, which settles the question until the next insert.
//
// # Encoding
//
// AppendBinary and Decode use format version 1, frozen by the golden files in
// testdata/sketch. Integers are big-endian.
//
//	offset  size  field
//	0       4     magic 0x89 'R' 'H' 'L' (the high byte catches 7-bit transports)
//	4       1     format version: 1
//	5       1     precision p, 4..18
//	6       1     flags: bit 0 set = dense, payload zstd-compressed; others 0
//	7       1     reserved: 0
//	8       8     Fingerprint of the Key the IDs were hashed with
//	16      ...   payload, to the end of the input
//
// The payload is the library's own encoding (its AppendBinary, format
// version 2, sparse precision 25):
//
//   - sparse (flag bit 0 clear), stored as is and compacted: the library's
//     header 02 p 00 01, an empty temporary set (count 0), then the
//     compressed list (count, last, size, varint deltas) of at most 2^p
//     bytes. A small audience takes about 3 bytes per device.
//   - dense (flag bit 0 set): one single-segment zstd frame declaring its
//     content size, 8 + 2^p bytes: the library's header 02 p 00 00, the
//     register count 2^p, and 2^p one-byte registers. At p = 14 the 16 KiB
//     of registers compress to about 6.5 KiB (zstd's default level: 0.3 ms
//     to encode, 0.05 ms to decode; its fastest level leaves them raw).
//
// Because sparse payloads are compacted, equal sketches encode to equal
// bytes and a decoded sketch is already sealed (see Concurrency). Decode
// refuses a frame that does not declare exactly the dense size before
// inflating it, and never inflates more.
//
// # Concurrency
//
// A Sketch is not safe for concurrent use: its owner holds the lock. Note that
// Estimate and AppendBinary mutate the sketch (they compact its sparse part),
// so they need the owner's exclusive lock, not a read lock. Once a sketch has
// been estimated, encoded or decoded and is not modified again (a sealed
// minute), Estimate, AppendBinary, Clone, SizeBytes, Precision, Key and use as
// the argument of Merge only read it and may run concurrently. A Key is
// immutable and safe for concurrent use, and so are Decode and NewKey.
package sketch

import (
	"errors"
	"fmt"
	"math"

	"github.com/axiomhq/hyperloglog"
)

// Precisions: a sketch of precision p has 2^p dense registers and a relative
// standard error of 1.04/√(2^p). DefaultPrecision is 0.81% in 16 KiB.
const (
	MinPrecision     = 4
	MaxPrecision     = 18
	DefaultPrecision = 14
)

// Errors, always wrapped with the values involved; match them with errors.Is.
var (
	// ErrPrecision: a precision outside [MinPrecision, MaxPrecision].
	ErrPrecision = errors.New("precision out of range")
	// ErrPrecisionMismatch: Merge of sketches of different precisions.
	ErrPrecisionMismatch = errors.New("sketch precisions differ")
	// ErrKeyMismatch: Merge of sketches under different keys, or Decode of
	// a sketch encoded under another key than the one given.
	ErrKeyMismatch = errors.New("sketch keys differ")
	// ErrCorrupt: Decode of bytes that are not a valid sketch encoding.
	ErrCorrupt = errors.New("corrupt sketch encoding")
	// ErrVersion: Decode of an encoding of an unknown format version.
	ErrVersion = errors.New("unknown sketch format version")
)

const (
	// sparsePrecision is the library's pp: sparse positions are 25-bit.
	sparsePrecision = 25
	sparseM         = float64(uint64(1) << sparsePrecision)
	// z95 is the two-sided 95% quantile of the normal distribution.
	z95 = 1.96
	// maxDeltaBytes is the longest varint of a sparse-list delta (32 bits).
	maxDeltaBytes = 5
)

// Sketch is a keyed HyperLogLog sketch of a set of device IDs. Create one
// with New, NewUnion, Decode or Clone; the zero value is not usable, and a
// Sketch must not be copied by value (use Clone). See the package doc for the
// concurrency contract.
type Sketch struct {
	hll hyperloglog.Sketch
	key *Key
	// sparseBound bounds from above the bytes of the library's sparse list
	// after a compaction. While it is at most 2^p, the library cannot have
	// switched to dense registers (it switches only when the list exceeds 2^p
	// bytes). Saturating.
	sparseBound uint64
	// dense is set once the sketch is known to be in the dense
	// representation, which is final: the library never goes back to sparse.
	dense bool
	// settled is set by Estimate, AppendBinary and Decode once the library
	// has compacted the sketch and the bookkeeping above is final (dense, or
	// a bound of at most 2^p); AddHash and Merge clear it. Nothing writes to
	// a settled sketch: that is what makes a sealed sketch safe to read
	// concurrently.
	settled bool
	p       uint8
}

// Estimate is a distinct count with a ~95% interval: Low <= Value <= High.
type Estimate struct {
	Value, Low, High uint64
}

// New returns an empty Sketch of the given precision whose IDs are hashed
// with key. The precision must be in [MinPrecision, MaxPrecision]; otherwise
// the error wraps ErrPrecision.
func New(key *Key, precision uint8) (*Sketch, error) {
	return newSketch(key, precision, false)
}

// NewUnion returns an empty Sketch that starts in the dense representation,
// an accumulator for merging many sketches. Merging a sparse sketch into it
// costs one register update per entry, where merging into a sparse sketch
// re-sorts and re-encodes the growing list each time its temporary set
// fills. Measured on 1440 minute sketches (BenchmarkUnion): about 3 times
// faster and 27 times less garbage when they hold 50 devices each, the same
// when they hold thousands or are dense. The price: it occupies 2^p bytes even
// when empty, and its estimate carries the dense interval (±1.6% at p = 14)
// even for a union small enough to be counted near-exactly by a sketch from
// New, so prefer New when the union is expected to be small.
func NewUnion(key *Key, precision uint8) (*Sketch, error) {
	return newSketch(key, precision, true)
}

func newSketch(key *Key, precision uint8, dense bool) (*Sketch, error) {
	if key == nil {
		return nil, errors.New("sketch: nil key")
	}
	if err := checkPrecision(precision); err != nil {
		return nil, fmt.Errorf("sketch: new: %w", err)
	}
	h, err := hyperloglog.NewSketch(precision, !dense)
	if err != nil {
		panic(fmt.Sprintf("BUG: hyperloglog.NewSketch(%d): %v", precision, err))
	}
	s := &Sketch{key: key, p: precision, dense: dense}
	// The library documents that a Sketch must not be copied after first
	// use; h is fresh, and is not used again.
	s.hll = *h
	return s, nil
}

func checkPrecision(p uint8) error {
	if p < MinPrecision || p > MaxPrecision {
		return fmt.Errorf("precision %d outside [%d, %d]: %w", p, MinPrecision, MaxPrecision, ErrPrecision)
	}
	return nil
}

// Add inserts the device id, hashed with the sketch's Key. The id is not
// retained.
func (s *Sketch) Add(id []byte) { s.AddHash(s.key.Hash(id)) }

// AddHash inserts a hash made by s.Key().Hash. Use it when one hash goes into
// several sketches (channel, total, region). It does not allocate in the
// steady state (the sparse part allocates as it grows).
func (s *Sketch) AddHash(h uint64) {
	s.hll.InsertHash(h)
	s.sparseBound = satAdd(s.sparseBound, maxDeltaBytes)
	s.settled = false
}

// Merge adds the devices of o to s. It refuses, leaving s unchanged, a sketch
// of another precision (ErrPrecisionMismatch) or under another Key
// (ErrKeyMismatch, compared by Fingerprint). o is only read. A nil o is empty.
func (s *Sketch) Merge(o *Sketch) error {
	if o == nil || o == s {
		return nil
	}
	if o.p != s.p {
		return fmt.Errorf("sketch: merge precision %d into precision %d: %w", o.p, s.p, ErrPrecisionMismatch)
	}
	if o.key.fp != s.key.fp {
		return fmt.Errorf("sketch: merge sketch of key %v into key %v: %w", o.key.fp, s.key.fp, ErrKeyMismatch)
	}
	if err := s.hll.Merge(&o.hll); err != nil {
		panic(fmt.Sprintf("BUG: merge of equal precisions %d failed: %v", s.p, err))
	}
	// A dense operand makes the library convert s to dense registers.
	if o.dense {
		s.markDense()
	}
	s.sparseBound = satAdd(s.sparseBound, o.sparseBound)
	s.settled = false
	return nil
}

// Estimate returns the number of distinct devices added, with a ~95%
// interval (see the package doc). It mutates the sketch: the library compacts
// the sparse part, and may switch it to dense registers. A dense estimate
// costs about 0.4 ms at p = 14, so estimate a sealed sketch once.
func (s *Sketch) Estimate() Estimate {
	e, _ := s.estimate()
	return e
}

// estimate is Estimate that also says which representation it assumed.
func (s *Sketch) estimate() (e Estimate, dense bool) {
	v := s.hll.Estimate() // read-only when settled: the sketch is compacted
	var sigma float64
	dense = s.denseAfterEstimate(v)
	if !s.settled {
		s.settled = true
	}
	if dense {
		sigma = 1.04 / math.Sqrt(float64(uint64(1)<<s.p)) * float64(v)
	} else {
		// Linear counting of n items over M positions has variance
		// M(e^t - t - 1), t = n/M (Whang et al. 1990); about n²/2M here.
		t := float64(v) / sparseM
		sigma = math.Sqrt(sparseM * (math.Expm1(t) - t))
	}
	return interval(v, sigma), dense
}

// denseAfterEstimate reports whether s is in the dense representation; v is
// the estimate just computed, after which a sparse list holds at most 2^p
// bytes. It writes to s only when it learns something, which never happens
// once s is settled (dense, or bound at most 2^p).
func (s *Sketch) denseAfterEstimate(v uint64) bool {
	m := uint64(1) << s.p
	switch {
	case s.dense:
		return true
	case s.sparseBound <= m:
		return false
	case v > maxSparseEstimate(s.p):
		s.markDense()
		return true
	}
	b, err := s.hll.AppendBinary(nil)
	if err != nil {
		panic(fmt.Sprintf("BUG: hyperloglog AppendBinary of precision %d: %v", s.p, err))
	}
	return s.observe(b)
}

// observe learns the representation of s from b, the library's encoding of
// s just after a compaction, and reports whether it is dense. It must not be
// called on a settled sketch.
func (s *Sketch) observe(b []byte) bool {
	if b[3] != 1 {
		s.markDense()
		return true
	}
	if n, ok := sparseListBytes(b); ok && n < s.sparseBound {
		s.sparseBound = n
	}
	return false
}

func (s *Sketch) markDense() {
	if !s.dense {
		s.dense = true
	}
}

// maxSparseEstimate is the largest estimate a compacted sparse sketch can
// report: at most 2^p entries (each takes at least one of its at most 2^p
// bytes), linear-counted over 2^25 positions, plus one for rounding.
func maxSparseEstimate(p uint8) uint64 {
	m := float64(uint64(1) << p)
	return uint64(sparseM*math.Log(sparseM/(sparseM-m))+0.5) + 1
}

// interval returns v ± 1.96σ with the bounds rounded outwards (so that a
// near-exact sparse count still says ±1 rather than claiming exactness) and
// clamped to [0, MaxUint64].
func interval(v uint64, sigma float64) Estimate {
	half := z95 * sigma
	e := Estimate{
		Value: v,
		Low:   toUint(math.Floor(float64(v) - half)),
		High:  toUint(math.Ceil(float64(v) + half)),
	}
	// float64 cannot hold every uint64: never let rounding cross v.
	e.Low = min(e.Low, v)
	e.High = max(e.High, v)
	return e
}

func toUint(f float64) uint64 {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f >= math.MaxUint64:
		return math.MaxUint64
	}
	return uint64(f)
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// Clone returns a deep copy of s under the same Key.
func (s *Sketch) Clone() *Sketch {
	c := *s
	c.hll = *s.hll.Clone()
	return &c
}

// Precision returns the sketch's precision p (2^p dense registers).
func (s *Sketch) Precision() uint8 { return s.p }

// Key returns the Key the sketch's IDs are hashed with.
func (s *Sketch) Key() *Key { return s.key }

// sketchOverhead is the heap a Sketch takes beyond its registers, list and
// temporary set: this struct and the library's (measured with
// runtime.MemStats, see TestSizeBytes).
const sketchOverhead = 160

// SizeBytes returns the approximate heap bytes s holds, for a memory metric:
// within a factor of two of what runtime.MemStats measures, and exact-ish for
// a dense or an encoded sketch. It derives the sparse size from the bound on
// the list bytes, which overstates an unsealed sparse sketch by up to 5/3.
func (s *Sketch) SizeBytes() int {
	m := uint64(1) << s.p
	if s.dense {
		return sketchOverhead + int(m)
	}
	list := min(s.sparseBound, m)
	// The temporary set buffers up to m/100 keys between compactions in an
	// open-addressed table of 4-byte slots filled to at most 70%, kept
	// across compactions. Sparse entries take about 3 bytes, bounded at 5.
	tmp := min(list/4, m/100+1)
	slots := uint64(2)
	for slots*7 < tmp*10 {
		slots *= 2
	}
	return sketchOverhead + int(list+4*slots)
}
