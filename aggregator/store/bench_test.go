package store

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// bench100MB is a 100 MiB checkpoint shaped like the engine's: 80 MiB of
// sealed sketches (random bytes: sparse sketches are high-entropy varints and
// dense ones are already zstd-compressed), 20 MiB of plain counts.
func bench100MB() *Checkpoint {
	sketches := make([]byte, 80<<20)
	rand.NewChaCha8([32]byte{3}).Read(sketches)
	return &Checkpoint{
		Created:   time.Now(),
		StreamSeq: 1 << 30,
		Sections: []Section{
			{Name: "counts", Data: countsBytes(1, 20<<20)},
			{Name: "minutes/day-1", Epoch: "day-1", Data: sketches[:60<<20]},
			{Name: "hours/week-1", Epoch: "week-1", Data: sketches[60<<20:]},
		},
	}
}

// BenchmarkWrite: a 100 MiB checkpoint to a file, fsync and rename included.
func BenchmarkWrite(b *testing.B) {
	cp, keys := bench100MB(), newKeyring("day-1", "week-1")
	d := openDir(b, b.TempDir())
	var size int64
	b.SetBytes(100 << 20)
	b.ReportAllocs()
	for b.Loop() {
		f, err := d.Write(cp, keys.lookup)
		if err != nil {
			b.Fatal(err)
		}
		size = f.Size
		if err := d.Prune(1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}

// BenchmarkEncode: the CPU part of BenchmarkWrite (zstd, AES-GCM, CRC),
// without the file system.
func BenchmarkEncode(b *testing.B) {
	cp, keys := bench100MB(), newKeyring("day-1", "week-1")
	var e encoder
	b.SetBytes(100 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.encode(io.Discard, cp, 1, 0, keys.lookup); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad: LoadNewest of a 100 MiB checkpoint: checksum pass, then
// sections read, opened and inflated.
func BenchmarkLoad(b *testing.B) {
	cp, keys := bench100MB(), newKeyring("day-1", "week-1")
	d := openDir(b, b.TempDir())
	if _, err := d.Write(cp, keys.lookup); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(100 << 20)
	b.ReportAllocs()
	for b.Loop() {
		got, bad, err := d.LoadNewest(keys.lookup)
		if err != nil || len(bad) != 0 || len(got.Sections) != 3 {
			b.Fatal(got, bad, err)
		}
	}
}
