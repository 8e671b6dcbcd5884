package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/store")

const goldenDir = "../../testdata/store"

// encodeBytes encodes cp as a whole file in memory, salts from rnd (nil:
// crypto/rand).
func encodeBytes(t testing.TB, cp *Checkpoint, seq uint64, keys KeyLookup, rnd io.Reader) []byte {
	t.Helper()
	return encodeFile(t, cp, seq, formatVersion, 0, keys, rnd)
}

// encodeFile is encodeBytes of a format version, with header flags.
func encodeFile(t testing.TB, cp *Checkpoint, seq uint64, version, flags uint16, keys KeyLookup, rnd io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := encoder{rand: rnd, version: version}
	h, err := e.encode(&buf, cp, seq, flags, keys)
	if err != nil {
		t.Fatal(err)
	}
	hdr := h.encode()
	b := buf.Bytes()
	copy(b, hdr[:])
	return b
}

// fixHeaderCRC recomputes the header checksum of a file.
func fixHeaderCRC(b []byte) []byte {
	if len(b) >= headerSize {
		binary.BigEndian.PutUint32(b[48:52], crc32.Checksum(b[:48], castagnoli))
	}
	return b
}

// fixFraming makes a (mutated) file's magic, version, body length and both
// checksums right, so that what follows reaches the section parser.
func fixFraming(b []byte) []byte {
	if len(b) < headerSize {
		return b
	}
	b = bytes.Clone(b)
	copy(b, magic[:])
	binary.BigEndian.PutUint16(b[4:6], formatVersion)
	binary.BigEndian.PutUint64(b[32:40], uint64(len(b)-headerSize))
	binary.BigEndian.PutUint32(b[44:48], crc32.Checksum(b[headerSize:], castagnoli))
	return fixHeaderCRC(b)
}

// goldenKeys: the epochs of the golden files. The key of day-2026-03-01 was
// known when the files were written and is deleted when they are read.
func goldenKeys() *keyring {
	return newKeyring("day-2026-03-01", "day-2026-03-02", "week-2026-W10")
}

// runs returns n bytes in runs of 4096 equal bytes: compresses to little.
func runs(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i / 4096)
	}
	return b
}

var goldens = []struct {
	file    string
	version uint16
	flags   uint16 // flagSegment: a segment file
	seq     uint64
	cp      func() *Checkpoint
	// shredded lists the sections of cp that are unreadable when read,
	// their epoch key being gone.
	shredded []string
}{
	{"v1-empty.rtck", 1, 0, 1, func() *Checkpoint {
		return &Checkpoint{Created: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	}, nil},
	{"v1-sections.rtck", 1, 0, 42, func() *Checkpoint {
		return &Checkpoint{
			Created:   time.Date(2026, 3, 2, 12, 30, 0, 123456789, time.UTC),
			StreamSeq: 987654321,
			Sections: []Section{
				{Name: "counts", Data: countsBytes(1, 4000)},
				{Name: "minutes/day-2026-03-01", Epoch: "day-2026-03-01", Data: randomBytes(2, 700)},
				{Name: "minutes/day-2026-03-02", Epoch: "day-2026-03-02", Data: randomBytes(3, 3000)},
				{Name: "hours/week-2026-W10", Epoch: "week-2026-W10", Data: countsBytes(4, 2000)},
				{Name: "tuning", Epoch: "day-2026-03-02", Data: []byte("tuning table v1")},
				{Name: "empty"},
			},
		}
	}, []string{"minutes/day-2026-03-01"}},
	{"v1-chunks.rtck", 1, 0, 1 << 40, func() *Checkpoint {
		return &Checkpoint{
			Created:   time.Date(2026, 3, 2, 23, 59, 59, 999999999, time.UTC),
			StreamSeq: 1,
			Sections: []Section{
				{Name: "plain", Data: runs(5 << 19)},
				{Name: "sealed", Epoch: "week-2026-W10", Data: runs(5<<19 + 1)},
			},
		}
	}, nil},
	{"v2-segments.rtck", 2, 0, 43, func() *Checkpoint {
		return &Checkpoint{
			Created:   time.Date(2026, 3, 2, 12, 30, 30, 0, time.UTC),
			StreamSeq: 987654400,
			Sections: []Section{
				{Name: "counts", Data: countsBytes(1, 400)},
				{Name: "minutes/day-2026-03-02", Epoch: "day-2026-03-02", Data: randomBytes(3, 300)},
			},
			Segments: []Segment{
				{Name: "minutes-2026-03-01T23", Epoch: "day-2026-03-01", Size: 70000, CRC: 0xdeadbeef},
				{Name: "minutes-2026-03-02T11", Epoch: "day-2026-03-02", Size: 52 + 9000, CRC: 1},
				{Name: "reach-2026-03-02T11", Epoch: "week-2026-W10", Size: 1 << 40, CRC: 0xffffffff},
			},
		}
	}, nil},
	{"v2-segment.rtsg", 2, flagSegment, 0, func() *Checkpoint {
		return &Checkpoint{
			Created: time.Date(2026, 3, 2, 12, 0, 1, 0, time.UTC),
			Sections: []Section{
				{Name: "minutes", Epoch: "day-2026-03-02", Data: randomBytes(5, 5000)},
			},
		}
	}, nil},
}

// TestGolden: every golden file decodes to the checkpoint it was made from,
// minus the sections whose key is gone, and encoding that checkpoint with
// the same salts gives the file again, byte for byte. A new zstd release may
// compress to other (still decodable) bytes; check that the files still
// decode before regenerating them with -update.
func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			keys := goldenKeys()
			want := g.cp()
			made := encodeFile(t, want, g.seq, g.version, g.flags, keys.lookup, rand.NewChaCha8([32]byte{1}))
			path := filepath.Join(goldenDir, g.file)
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
				t.Fatalf("%v (run go test ./aggregator/store -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(made, file) {
				t.Errorf("encoding of the golden input (%d bytes) differs from %s (%d bytes)", len(made), g.file, len(file))
			}
			for _, e := range []string{"day-2026-03-01"} {
				keys.delete(e)
			}
			decode := Decode
			if g.flags&flagSegment != 0 {
				decode = DecodeSegment
			}
			got, err := decode(file, keys.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq != g.seq {
				t.Errorf("seq %d; want %d", got.Seq, g.seq)
			}
			var readable []Section
			for _, s := range want.Sections {
				if !contains(g.shredded, s.Name) {
					readable = append(readable, s)
				}
			}
			want.Sections = readable
			if err := sameCheckpoint(got, want); err != nil {
				t.Error(err)
			}
			if len(got.Unreadable) != len(g.shredded) {
				t.Fatalf("unreadable %v; want %v", got.Unreadable, g.shredded)
			}
			for i, u := range got.Unreadable {
				if u.Name != g.shredded[i] || !errors.Is(u, ErrKeyGone) {
					t.Errorf("unreadable %v; want %s with ErrKeyGone", u, g.shredded[i])
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// smallFile is a file with every kind of section, small enough to damage at
// every byte.
func smallFile(t testing.TB) ([]byte, *Checkpoint, *keyring) {
	keys := newKeyring("day-1", "week-1")
	cp := &Checkpoint{
		Created:   time.Unix(1700000000, 5).UTC(),
		StreamSeq: 77,
		Sections: []Section{
			{Name: "counts", Data: countsBytes(1, 200)},
			{Name: "m", Epoch: "day-1", Data: randomBytes(2, 100)},
			{Name: "z", Epoch: "week-1", Data: runs(300)},
			{Name: "t", Epoch: "day-1", Data: []byte("tuning")},
			{Name: "e"},
		},
	}
	return encodeBytes(t, cp, 3, keys.lookup, nil), cp, keys
}

var framingErrors = []error{ErrTruncated, ErrChecksum, ErrVersion, ErrCorrupt}

func isOneOf(err error, sentinels []error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

// TestDamageAtEveryByte: changing any byte of a file, in any way, is
// detected by a checksum or the structure checks before any section is
// returned; cutting the file anywhere is reported as truncation. With the
// framing repaired around the change (as a forger would), a sealed section
// is still never returned altered: it fails authentication.
func TestDamageAtEveryByte(t *testing.T) {
	file, cp, keys := smallFile(t)
	t.Logf("%d-byte file", len(file))
	for i := range file {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(file)
			b[i] ^= mask
			got, err := Decode(b, keys.lookup)
			if err == nil {
				t.Fatalf("byte %d ^ %#02x: accepted", i, mask)
			}
			if !isOneOf(err, framingErrors) || got != nil {
				t.Fatalf("byte %d ^ %#02x: %v", i, mask, err)
			}

			got, err = Decode(fixFraming(b), keys.lookup)
			if err != nil {
				if !isOneOf(err, framingErrors) {
					t.Fatalf("byte %d ^ %#02x, framing repaired: %v", i, mask, err)
				}
				continue
			}
			for _, s := range got.Sections {
				if s.Epoch == "" {
					continue
				}
				orig, ok := cp.Section(s.Name)
				if !ok || !bytes.Equal(orig, s.Data) {
					t.Fatalf("byte %d ^ %#02x, framing repaired: sealed section %q returned altered", i, mask, s.Name)
				}
			}
		}
	}
	for n := range len(file) {
		_, err := Decode(file[:n], keys.lookup)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), fmt.Sprintf("ends at byte %d", n)) {
			t.Fatalf("cut at %d: %v; want ErrTruncated at byte %d", n, err, n)
		}
	}
}

func TestWrongVersion(t *testing.T) {
	file, _, keys := smallFile(t)
	f := func(why string, edit func([]byte) []byte, text string) {
		t.Helper()
		_, err := Decode(edit(bytes.Clone(file)), keys.lookup)
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: %v; want ErrVersion saying %q", why, err, text)
		}
	}
	f("version 3", func(b []byte) []byte { return setVersion(b, 3) }, "format version 3; this build reads versions 1 and 2")
	f("version 0", func(b []byte) []byte { return setVersion(b, 0) }, "format version 0")
	f("version 3, other header", func(b []byte) []byte { b[4], b[5] = 0, 3; return b[:20] }, "format version 3")
	f("flags", func(b []byte) []byte { b[7] = 4; return fixHeaderCRC(b) }, "flags 0x0004; this build knows 0x0001 only")
	f("version 1 flags", func(b []byte) []byte { b[5], b[7] = 1, 1; return fixHeaderCRC(b) }, "format version 1 with flags 0x0001")
}

// malformed holds inputs each broken in one way, with the error they must
// give; they seed FuzzDecode too.
func malformed(t testing.TB) []struct {
	name string
	data []byte
	want error
} {
	file, _, _ := smallFile(t)
	keys := newKeyring("day-1")
	// frame wraps a hand-made body of n sections in a valid header.
	frameFile := func(version, flags uint16, n uint32, body ...[]byte) []byte {
		joined := bytes.Join(body, nil)
		h := header{version: version, flags: flags, seq: 1, bodyLen: uint64(len(joined)), sections: n, bodyCRC: crc32.Checksum(joined, castagnoli)}
		hdr := h.encode()
		return append(hdr[:], joined...)
	}
	// frame is a version 1 body (no segment list); frame2 a version 2 one.
	frame := func(n uint32, body ...[]byte) []byte { return frameFile(1, 0, n, body...) }
	frame2 := func(n uint32, body ...[]byte) []byte { return frameFile(2, 0, n, body...) }
	ref := func(name, epoch string, size uint64) []byte {
		b := append([]byte{byte(len(name))}, name...)
		b = append(append(b, byte(len(epoch))), epoch...)
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(b, size), 7)
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	plain := func(name string, rawLen uint64) []byte { return sectionHeader(nil, name, "", nil, rawLen) }
	word := func(zst bool, n int) []byte {
		w := uint32(n)
		if zst {
			w |= flagZstd
		}
		return binary.BigEndian.AppendUint32(nil, w)
	}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	thousand := zenc.EncodeAll(bytes.Repeat([]byte("a"), 1000), nil) // a frame of a few bytes
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(file)) }
	sealedTiny := encodeBytes(t, &Checkpoint{Sections: []Section{{Name: "s", Epoch: "day-1", Data: []byte("abc")}}}, 1, keys.lookup, nil)
	return []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"magic only", []byte("RTCK"), ErrTruncated},
		{"wrong magic", []byte("RTCX\x00\x01"), ErrCorrupt},
		{"json", []byte(`{"seq":1}`), ErrCorrupt},
		{"version 0", edit(func(b []byte) []byte { return setVersion(b, 0) }), ErrVersion},
		{"header cut", file[:30], ErrTruncated},
		{"header checksum", edit(func(b []byte) []byte { b[20]++; return b }), ErrChecksum},
		{"flags", edit(func(b []byte) []byte { b[6] = 1; return fixHeaderCRC(b) }), ErrVersion},
		{"body longer than file", edit(func(b []byte) []byte { b[32] = 1; return fixHeaderCRC(b) }), ErrTruncated},
		{"trailing bytes", append(bytes.Clone(file), 0), ErrCorrupt},
		{"body checksum", edit(func(b []byte) []byte { b[len(b)-1]++; return b }), ErrChecksum},
		{"more sections than body", frame(2, plain("a", 0)), ErrCorrupt},
		{"huge section count", frame(1<<32-1, plain("a", 0)), ErrCorrupt},
		{"empty name", frame(1, []byte{0, 0}, u64(0)), ErrCorrupt},
		{"name twice", frame(2, plain("a", 0), plain("a", 0)), ErrCorrupt},
		{"raw length 2^63", frame(1, plain("a", 1<<63)), ErrCorrupt},
		{"raw length past the body", frame(1, plain("a", 1<<40)), ErrCorrupt},
		{"raw chunk short", frame(1, plain("a", 5), word(false, 3), []byte("abc")), ErrCorrupt},
		{"zstd chunk larger than raw", frame(1, plain("a", 5), word(true, 6), []byte("abcdef")), ErrCorrupt},
		{"zstd garbage", frame(1, plain("a", 5), word(true, 4), []byte("abcd")), ErrCorrupt},
		{"zstd inflates to more", frame(1, plain("a", 100), word(true, len(thousand)), thousand), ErrCorrupt},
		{"zstd inflates to less", frame(1, plain("a", 2000), word(true, len(thousand)), thousand), ErrCorrupt},
		{"bytes after the last section", frame(1, plain("a", 0), []byte{0}), ErrCorrupt},
		{"sealed chunk shorter than its tag", fixFraming(append(sealedTiny[:len(sealedTiny)-19-4], word(false, 3)...)), ErrCorrupt},
		{"v2 without a segment list", frame2(0), ErrCorrupt},
		{"v2 segment list cut", frame2(0, u32(1), ref("a", "day-1", 100)[:5]), ErrCorrupt},
		{"v2 segment count past the body", frame2(0, u32(1<<30), ref("a", "day-1", 100)), ErrCorrupt},
		{"v2 segment name empty", frame2(0, u32(1), ref("", "day-1", 100)), ErrCorrupt},
		{"v2 segment name not [A-Za-z0-9-]", frame2(0, u32(1), ref("a/b", "day-1", 100)), ErrCorrupt},
		{"v2 segment without an epoch", frame2(0, u32(1), ref("a", "", 100)), ErrCorrupt},
		{"v2 segment listed twice", frame2(0, u32(2), ref("a", "day-1", 100), ref("a", "day-1", 100)), ErrCorrupt},
		{"v2 segment smaller than a header", frame2(0, u32(1), ref("a", "day-1", 51)), ErrCorrupt},
		{"v2 segment file listing segments", frameFile(2, flagSegment, 0, u32(1), ref("a", "day-1", 100)), ErrCorrupt},
		{"v2 segment file, not a checkpoint", frameFile(2, flagSegment, 0, u32(0)), ErrCorrupt},
		{"sealed under an unknown epoch", edit(func(b []byte) []byte { return b }), nil},
	}
}

func TestDecodeMalformed(t *testing.T) {
	keys := newKeyring("day-1")
	for _, m := range malformed(t) {
		t.Run(m.name, func(t *testing.T) {
			cp, err := Decode(m.data, keys.lookup)
			if m.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				// smallFile's week-1 section: keyring has no week-1.
				if len(cp.Unreadable) != 1 || !errors.Is(cp.Unreadable[0], ErrKeyGone) || cp.Unreadable[0].Epoch != "week-1" {
					t.Errorf("unreadable %v; want the week-1 section, ErrKeyGone", cp.Unreadable)
				}
				return
			}
			if !errors.Is(err, m.want) || !isOneOf(err, framingErrors) {
				t.Errorf("%v; want %v", err, m.want)
			}
			t.Log(err)
		})
	}
}

// FuzzDecode: no input panics; every error is one of the documented
// sentinels; what decodes encodes again to a file that decodes to the same.
// Each input is also tried with its framing repaired, so the fuzzer's
// changes reach the section parser instead of stopping at a checksum.
func FuzzDecode(f *testing.F) {
	for _, m := range malformed(f) {
		f.Add(m.data)
	}
	for _, g := range goldens {
		data, err := os.ReadFile(filepath.Join(goldenDir, g.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	file, _, _ := smallFile(f)
	f.Add(file)
	// The keys of the golden files and of smallFile, whose day-1 key is
	// the golden day-2026-03-01 key.
	keys := goldenKeys()
	_, _, small := smallFile(f)
	for e, k := range small.keys {
		keys.keys[e] = k
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, fixFraming(data)} {
			if seg, err := DecodeSegment(in, keys.lookup); err != nil {
				if seg != nil || !isOneOf(err, framingErrors) {
					t.Fatalf("DecodeSegment: %v (segment %v)", err, seg)
				}
			} else if len(seg.Segments) != 0 {
				t.Fatalf("DecodeSegment: a segment listing %d segments", len(seg.Segments))
			}
			cp, err := Decode(in, keys.lookup)
			if err != nil {
				if cp != nil || !isOneOf(err, framingErrors) {
					t.Fatalf("Decode: %v (checkpoint %v)", err, cp)
				}
				continue
			}
			for _, u := range cp.Unreadable {
				if !isOneOf(u, []error{ErrKeyGone, ErrKeyMismatch}) {
					t.Fatalf("unreadable section: %v", u)
				}
			}
			again, err := Decode(encodeBytes(t, cp, cp.Seq, keys.lookup, nil), keys.lookup)
			if err != nil {
				t.Fatalf("re-encoded: %v", err)
			}
			if err := sameCheckpoint(again, cp); err != nil || again.Seq != cp.Seq {
				t.Fatalf("re-encoded: %v (seq %d, %d)", err, again.Seq, cp.Seq)
			}
		}
	})
}
