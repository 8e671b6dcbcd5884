package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/sketch")

const goldenDir = "../testdata/sketch"

// goldens freeze format version 1 together with the keyed hash: each file is
// the encoding of the ids "device-000000".."device-<n-1>" added under key
// 00..0f (seqKey). want is the estimate the file must decode to, recorded
// when the file was made; the truth is n.
var goldens = []struct {
	file  string
	p     uint8
	n     int
	dense bool
	want  Estimate
}{
	{"empty-p14.bin", 14, 0, false, Estimate{0, 0, 0}},
	{"sparse-p14.bin", 14, 1000, false, Estimate{1000, 999, 1001}},
	{"sparse-p18.bin", 18, 3000, false, Estimate{3000, 2999, 3001}},
	{"dense-p14.bin", 14, 50_000, true, Estimate{49513, 48724, 50302}},
	{"dense-p4.bin", 4, 100, true, Estimate{129, 63, 195}},
}

func goldenSketch(t testing.TB, p uint8, n int) *Sketch {
	t.Helper()
	s := mustNew(t, seqKey(t), p)
	for i := range n {
		s.Add(fmt.Appendf(nil, "device-%06d", i))
	}
	return s
}

// TestGolden: the encoding of a fixed input is byte-for-byte the file (so a
// change to the hash, the key handling or the layout cannot go unnoticed),
// the file decodes to the recorded estimate, which is within 4σ of the
// truth, and re-encoding the decoded sketch gives the file again.
//
// A new version of the zstd encoder could compress dense payloads to other
// (still decodable) bytes; then check that the old files still decode before
// regenerating them with -update.
func TestGolden(t *testing.T) {
	key := seqKey(t)
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join(goldenDir, g.file)
			made := encode(t, goldenSketch(t, g.p, g.n))
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, made, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./sketch -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(made, file) {
				t.Errorf("encoding of the golden input (%d bytes) differs from %s (%d bytes)", len(made), g.file, len(file))
			}
			if got := file[6]&flagDense != 0; got != g.dense {
				t.Errorf("%s has dense flag %t; want %t", g.file, got, g.dense)
			}
			s, err := Decode(file, key)
			if err != nil {
				t.Fatal(err)
			}
			again := encode(t, s)
			got := s.Estimate()
			if got != g.want {
				t.Errorf("%s estimates %+v; want %+v", g.file, got, g.want)
			}
			sigma := 1.04 / math.Sqrt(float64(uint64(1)<<g.p)) * float64(g.n)
			if d := math.Abs(float64(got.Value) - float64(g.n)); d > max(4*sigma, 1) {
				t.Errorf("%s estimates %d for %d ids: more than 4σ = %.1f off", g.file, got.Value, g.n, 4*sigma)
			}
			if !bytes.Equal(again, file) {
				t.Errorf("re-encoding %s gives other bytes", g.file)
			}
			if after := encode(t, s); !bytes.Equal(after, file) {
				t.Errorf("re-encoding %s after Estimate gives other bytes", g.file)
			}
		})
	}
}

// TestDensePacksSmall: dense registers of random hashes compress to well
// under half their 16 KiB at p = 14, whatever the audience. (zstd's fastest
// level, tried for its speed, packs some sketches to ~6 KB and stores
// others raw, 16 KB: FromHashes of 50,000 or more hashes.)
func TestDensePacksSmall(t *testing.T) {
	key := seqKey(t)
	for _, n := range []int{8_000, 50_000, 1_000_000} {
		hs := make([]uint64, n)
		x := uint64(n)
		for i := range hs {
			x += 0x9E3779B97F4A7C15 // splitmix64
			z := (x ^ x>>30) * 0xBF58476D1CE4E5B9
			z = (z ^ z>>27) * 0x94D049BB133111EB
			hs[i] = z ^ z>>31
		}
		s, err := FromHashes(key, DefaultPrecision, hs)
		if err != nil {
			t.Fatal(err)
		}
		if b := encode(t, s); b[6]&flagDense == 0 || len(b) > 8000 {
			t.Errorf("%d devices: %d bytes packed (dense flag %d); want dense and under 8,000", n, len(b), b[6]&flagDense)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	key := seqKey(t)
	for _, p := range []uint8{MinPrecision, 10, DefaultPrecision, MaxPrecision} {
		for _, n := range []int{0, 1, 100, 3000, 200_000} {
			t.Run(fmt.Sprintf("p=%d/n=%d", p, n), func(t *testing.T) {
				s := mustNew(t, key, p)
				addIDs(s, 0, n)
				prefix := []byte("prefix")
				b, err := s.AppendBinary(bytes.Clone(prefix))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, prefix) {
					t.Fatalf("AppendBinary overwrote its dst")
				}
				b = b[len(prefix):]
				d, err := Decode(b, key)
				if err != nil {
					t.Fatal(err)
				}
				want, wantDense := s.estimate()
				got, gotDense := d.estimate()
				if got != want || gotDense != wantDense {
					t.Errorf("decoded %+v (dense %t); encoded %+v (dense %t)", got, gotDense, want, wantDense)
				}
				if d.Precision() != p || d.Key() != key {
					t.Errorf("decoded precision %d key %v", d.Precision(), d.Key())
				}
				if again := encode(t, d); !bytes.Equal(again, b) {
					t.Errorf("re-encoding differs")
				}
				// The decoded sketch keeps working: it grows and merges.
				addIDs(d, n, n)
				if err := d.Merge(s); err != nil {
					t.Fatal(err)
				}
				sigma := 1.04 / math.Sqrt(float64(uint64(1)<<p)) * float64(2*n)
				if e := d.Estimate(); math.Abs(float64(e.Value)-float64(2*n)) > 4*sigma+1 {
					t.Errorf("decoded sketch grown to %d ids estimates %d", 2*n, e.Value)
				}
			})
		}
	}
}

// validEncodings returns a sparse and a dense encoding under seqKey, and
// the library's raw bytes of each.
func validEncodings(t testing.TB) (sparse, dense, sparseLib, denseLib []byte) {
	t.Helper()
	s := goldenSketch(t, 14, 100)
	sparse = encode(t, s)
	d := goldenSketch(t, 14, 20_000)
	dense = encode(t, d)
	var err error
	if sparseLib, err = s.hll.AppendBinary(nil); err != nil {
		t.Fatal(err)
	}
	if denseLib, err = d.hll.AppendBinary(nil); err != nil {
		t.Fatal(err)
	}
	return sparse, dense, sparseLib, denseLib
}

// malformed is the table of bad inputs: each must be refused with its
// sentinel. It also seeds FuzzDecode.
func malformed(t testing.TB) []struct {
	name string
	data []byte
	want error
} {
	sparse, dense, sparseLib, denseLib := validEncodings(t)
	// withHeader puts payload behind a valid p = 14 header under seqKey.
	withHeader := func(flags byte, payload []byte) []byte {
		h := append(bytes.Clone(sparse[:6]), flags, 0)
		h = append(h, sparse[8:16]...)
		return append(h, payload...)
	}
	set := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	zstdOf := func(b []byte) []byte { return zenc.EncodeAll(b, nil) }
	// A frame that does not declare its size: the default encoder leaves it
	// out of small multi-segment frames, such as a p = 4 dense payload.
	p4 := goldenSketch(t, 4, 100)
	p4Lib, err := p4.hll.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := zstd.NewWriter(nil)
	noSize := withHeader(flagDense, plain.EncodeAll(p4Lib, nil))
	noSize[5] = 4

	// A valid library sparse list of 20 one-byte deltas: more than 2^4 bytes,
	// a state compaction never leaves at p = 4.
	long := []byte{libVersion, 4, 0, 1, 0, 0, 0, 0}
	long = binary.BigEndian.AppendUint32(long, 20) // count
	long = binary.BigEndian.AppendUint32(long, 40) // last
	long = binary.BigEndian.AppendUint32(long, 20) // size
	for range 20 {
		long = append(long, 2)
	}
	longHdr := withHeader(0, long)
	longHdr[5] = 4

	uncompacted := bytes.Clone(sparseLib)
	binary.BigEndian.PutUint32(uncompacted[4:8], 1)
	uncompacted = append(uncompacted[:8], append([]byte{0, 0, 0, 2}, uncompacted[8:]...)...)

	badReg := bytes.Clone(denseLib)
	badReg[100] = 64 - 14 + 2 // above the largest rho at p = 14

	otherKey := bytes.Clone(sparse)
	binary.BigEndian.PutUint64(otherKey[8:16], 0x0123456789abcdef)

	flipped := bytes.Clone(dense)
	flipped[len(flipped)/2] ^= 0xff

	return []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"short header", sparse[:headerSize-1], ErrCorrupt},
		{"bad magic", set(sparse, 1, 'X'), ErrCorrupt},
		{"text", []byte("sketch of audience 1234"), ErrCorrupt},
		{"version 0", set(sparse, 4, 0), ErrVersion},
		{"version 2", set(sparse, 4, 2), ErrVersion},
		{"precision 3", set(sparse, 5, 3), ErrPrecision},
		{"precision 19", set(sparse, 5, 19), ErrPrecision},
		{"unknown flag", set(sparse, 6, 2), ErrCorrupt},
		{"reserved byte", set(sparse, 7, 1), ErrCorrupt},
		{"other key", otherKey, ErrKeyMismatch},
		{"sparse header only", sparse[:headerSize], ErrCorrupt},
		{"dense header only", dense[:headerSize], ErrCorrupt},
		{"sparse truncated", sparse[:len(sparse)-1], ErrCorrupt},
		{"sparse trailing byte", append(bytes.Clone(sparse), 0), ErrCorrupt},
		{"dense truncated", dense[:len(dense)-1], ErrCorrupt},
		{"dense trailing byte", append(bytes.Clone(dense), 0), ErrCorrupt},
		{"dense frame flipped", flipped, ErrCorrupt},
		{"dense frames twice", append(bytes.Clone(dense), dense[headerSize:]...), ErrCorrupt},
		{"sparse flag, dense payload", withHeader(0, denseLib), ErrCorrupt},
		{"dense flag, compressed sparse payload", withHeader(flagDense, zstdOf(sparseLib)), ErrCorrupt},
		{"dense flag, raw dense payload", withHeader(flagDense, denseLib), ErrCorrupt},
		{"dense frame without size", noSize, ErrCorrupt},
		{"dense frame of another size", withHeader(flagDense, zstdOf(denseLib[:len(denseLib)-1])), ErrCorrupt},
		{"dense bomb", withHeader(flagDense, zstdOf(make([]byte, 64<<20))), ErrCorrupt},
		{"dense register too large", withHeader(flagDense, zstdOf(badReg)), ErrCorrupt},
		{"payload precision differs", withHeader(0, set(sparseLib, 1, 13)), ErrCorrupt},
		{"payload library version 1", withHeader(0, set(sparseLib, 0, 1)), ErrCorrupt},
		{"sparse not compacted", withHeader(0, uncompacted), ErrCorrupt},
		{"sparse list longer than 2^p", longHdr, ErrCorrupt},
	}
}

func TestDecodeErrors(t *testing.T) {
	key := seqKey(t)
	for _, tc := range malformed(t) {
		s, err := Decode(tc.data, key)
		if !errors.Is(err, tc.want) || s != nil {
			t.Errorf("%s: Decode = %t, %v; want nil, %v", tc.name, s != nil, err, tc.want)
		}
	}
	sparse, _, _, _ := validEncodings(t)
	if _, err := Decode(sparse, nil); err == nil {
		t.Errorf("Decode with a nil key succeeded")
	}
	if _, err := Decode(sparse, key); err != nil {
		t.Errorf("valid encoding: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range malformed(f) {
		f.Add(tc.data)
	}
	for _, g := range goldens {
		b, err := os.ReadFile(filepath.Join(goldenDir, g.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key := seqKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, herr := CheckHeader(data, key)
		if herr != nil && !errors.Is(herr, ErrCorrupt) && !errors.Is(herr, ErrVersion) &&
			!errors.Is(herr, ErrPrecision) && !errors.Is(herr, ErrKeyMismatch) {
			t.Fatalf("CheckHeader: undocumented error: %v", herr)
		}
		s, err := Decode(data, key)
		if err == nil && (herr != nil || p != s.Precision()) {
			t.Fatalf("Decode accepts what CheckHeader refuses (%v) or says precision %d, not %d", herr, p, s.Precision())
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) &&
				!errors.Is(err, ErrPrecision) && !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("undocumented error: %v", err)
			}
			if s != nil {
				t.Fatalf("Decode returned a sketch with error %v", err)
			}
			return
		}
		// A dense estimate costs 0.4 ms at p = 14: estimate once, and compare
		// encodings, which determine estimates, after that.
		e := s.Estimate()
		if !(e.Low <= e.Value && e.Value <= e.High) {
			t.Fatalf("estimate %+v out of order", e)
		}
		acc := mustNew(t, key, s.Precision())
		acc.AddHash(0x0123456789abcdef)
		if err := acc.Merge(s); err != nil {
			t.Fatal(err)
		}
		if err := s.Merge(acc); err != nil {
			t.Fatal(err)
		}
		out, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(out, key)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if again := encode(t, d); !bytes.Equal(again, out) {
			t.Fatalf("re-encoding is not stable")
		}
	})
}

// TestCheckHeader: CheckHeader refuses what Decode refuses for its header,
// with the same sentinels, and reads nothing past the header.
func TestCheckHeader(t *testing.T) {
	key := seqKey(t)
	sk := mustNew(t, key, 12)
	sk.AddHash(42)
	good := encode(t, sk)
	f := func(name string, data []byte, want error) {
		t.Helper()
		p, err := CheckHeader(data, key)
		if want == nil {
			if err != nil || p != 12 {
				t.Errorf("%s: %d, %v; want precision 12", name, p, err)
			}
			return
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v; want %v", name, err, want)
		}
	}
	edit := func(i int, b byte) []byte { d := bytes.Clone(good); d[i] = b; return d }
	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f("valid", good, nil)
	f("payload damaged (not checked)", append(good[:headerSize:headerSize], 0xff), nil)
	f("header only", good[:headerSize], ErrCorrupt)
	f("short", good[:5], ErrCorrupt)
	f("magic", edit(1, 'X'), ErrCorrupt)
	f("version", edit(4, 2), ErrVersion)
	f("precision", edit(5, 19), ErrPrecision)
	f("flags", edit(6, 2), ErrCorrupt)
	f("reserved", edit(7, 1), ErrCorrupt)
	if _, err := CheckHeader(good, other); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("other key: %v; want ErrKeyMismatch", err)
	}
}
