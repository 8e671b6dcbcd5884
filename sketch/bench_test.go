package sketch

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSketch returns a sealed sketch of n random hashes at precision p.
func benchSketch(b *testing.B, key *Key, p uint8, n int, seed uint64) *Sketch {
	b.Helper()
	s := mustNew(b, key, p)
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	for range n {
		s.AddHash(r.Uint64())
	}
	s.Estimate()
	return s
}

// BenchmarkKeyHash: a device id keyed under the pseudonym key, on the path
// this machine takes and on the portable one: a 16-byte id (two AES blocks
// with its length byte) and a 36-byte UUID (three).
func BenchmarkKeyHash(b *testing.B) {
	key := seqKey(b)
	ids := []struct {
		name string
		id   []byte
	}{
		{"16B", []byte("stb-000000012345")},
		{"36B", []byte("3f2b8c1e-5d4a-4e7b-9c2f-1a6d8e0b7c45")},
	}
	for _, portable := range []bool{false, true} {
		for _, c := range ids {
			name := c.name
			if portable {
				name += "-portable"
			}
			b.Run(name, func(b *testing.B) {
				if portable {
					forcePortable(b)
				}
				var sink uint64
				b.ReportAllocs()
				for b.Loop() {
					sink += key.Hash(c.id)
				}
				_ = sink
			})
		}
	}
}

// BenchmarkKeyHashUint64: a pseudonym keyed under an epoch key (one AES
// block).
func BenchmarkKeyHashUint64(b *testing.B) {
	key := seqKey(b)
	var sink uint64
	b.ReportAllocs()
	for b.Loop() {
		sink = key.HashUint64(sink)
	}
	_ = sink
}

// BenchmarkKeyHashUint64Portable: the same through crypto/aes.
func BenchmarkKeyHashUint64Portable(b *testing.B) {
	key := seqKey(b)
	forcePortable(b)
	var sink uint64
	b.ReportAllocs()
	for b.Loop() {
		sink = key.HashUint64(sink)
	}
	_ = sink
}

// BenchmarkKeyHashIDs: a frame's 256 device ids keyed under the pseudonym
// key one at a time (Hash) and in one batch (HashIDs), per id: 16-byte ids
// (two blocks each) and 36-byte UUIDs (three).
func BenchmarkKeyHashIDs(b *testing.B) {
	key := seqKey(b)
	for _, c := range []struct {
		name   string
		format string
	}{
		{"16B", "stb-%012d"},
		{"36B", "3f2b8c1e-5d4a-4e7b-9c2f-%012d"},
	} {
		ids := make([][]byte, 256)
		for i := range ids {
			ids[i] = fmt.Appendf(nil, c.format, i*7919)
		}
		dst := make([]uint64, len(ids))
		b.Run(c.name+"/single", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i, id := range ids {
					dst[i] = key.Hash(id)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/id")
		})
		b.Run(c.name+"/batch", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				key.HashIDs(dst, ids)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/id")
		})
	}
}

// BenchmarkKeyHashUint64s: 32 pseudonyms (a shard's share of a frame)
// keyed under an epoch key one at a time and in one batch, per value.
func BenchmarkKeyHashUint64s(b *testing.B) {
	key := seqKey(b)
	src := make([]uint64, 32)
	for i := range src {
		src[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	dst := make([]uint64, len(src))
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i, v := range src {
				dst[i] = key.HashUint64(v)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key.HashUint64s(dst, src)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
	})
}

// BenchmarkAdd: keyed hash and dense insert, the per-event cost.
func BenchmarkAdd(b *testing.B) {
	s := benchSketch(b, seqKey(b), DefaultPrecision, 100_000, 1)
	id := []byte("stb-000000012345")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id[15] = byte(i)
		id[14] = byte(i >> 8)
		s.Add(id)
		i++
	}
}

func BenchmarkAddHash(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	hashes := make([]uint64, 4096)
	for i := range hashes {
		hashes[i] = r.Uint64()
	}
	key := seqKey(b)
	// Sparse: 4096 devices cycling into a p = 18 sketch, which stays sparse;
	// the temporary set is compacted into the list every 2^18/100 inserts,
	// which allocates.
	b.Run("sparse", func(b *testing.B) {
		s := mustNew(b, key, MaxPrecision)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.AddHash(hashes[i&4095])
			i++
		}
		if isDense(b, s) {
			b.Fatal("sketch went dense")
		}
	})
	b.Run("dense", func(b *testing.B) {
		s := benchSketch(b, key, DefaultPrecision, 100_000, 3)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.AddHash(hashes[i&4095])
			i++
		}
	})
}

func BenchmarkEstimate(b *testing.B) {
	key := seqKey(b)
	for _, c := range []struct {
		name string
		n    int
	}{{"sparse", 1000}, {"dense", 100_000}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchSketch(b, key, DefaultPrecision, c.n, 4)
			b.ReportAllocs()
			for b.Loop() {
				s.Estimate()
			}
		})
	}
	// The first estimate of a fresh sparse sketch compacts it.
	b.Run("sparse-unsealed", func(b *testing.B) {
		r := rand.New(rand.NewPCG(5, 5))
		s := mustNew(b, key, DefaultPrecision)
		b.ReportAllocs()
		for b.Loop() {
			for range 10 {
				s.AddHash(r.Uint64())
			}
			s.Estimate()
			if s.sparseBound > 1<<DefaultPrecision/2 {
				b.StopTimer()
				s = mustNew(b, key, DefaultPrecision)
				b.StartTimer()
			}
		}
	})
}

func BenchmarkMerge(b *testing.B) {
	key := seqKey(b)
	// sparse: a 1000-device sketch into one that holds it already.
	b.Run("sparse", func(b *testing.B) {
		o := benchSketch(b, key, DefaultPrecision, 1000, 6)
		s := o.Clone()
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Merge(o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dense", func(b *testing.B) {
		o := benchSketch(b, key, DefaultPrecision, 100_000, 7)
		s := benchSketch(b, key, DefaultPrecision, 100_000, 8)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Merge(o); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendBinary(b *testing.B) {
	key := seqKey(b)
	for _, c := range []struct {
		name string
		n    int
	}{{"sparse", 1000}, {"dense", 100_000}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchSketch(b, key, DefaultPrecision, c.n, 9)
			buf, _ := s.AppendBinary(nil)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = s.AppendBinary(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	key := seqKey(b)
	for _, c := range []struct {
		name string
		n    int
	}{{"sparse", 1000}, {"dense", 100_000}} {
		b.Run(c.name, func(b *testing.B) {
			buf, _ := benchSketch(b, key, DefaultPrecision, c.n, 10).AppendBinary(nil)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(buf, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnion: a day of minute sketches (1440) merged and estimated, into
// a sketch from New and into the dense accumulator from NewUnion.
func BenchmarkUnion(b *testing.B) {
	key := seqKey(b)
	for _, c := range []struct {
		name      string
		perMinute int
	}{{"sparse-50", 50}, {"sparse-2000", 2000}, {"dense-20000", 20_000}} {
		day := make([]*Sketch, 1440)
		for i := range day {
			day[i] = benchSketch(b, key, DefaultPrecision, c.perMinute, uint64(i))
		}
		for _, ctor := range []struct {
			name string
			new  func(*Key, uint8) (*Sketch, error)
		}{{"New", New}, {"NewUnion", NewUnion}} {
			b.Run(c.name+"/"+ctor.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					u, _ := ctor.new(key, DefaultPrecision)
					for _, s := range day {
						if err := u.Merge(s); err != nil {
							b.Fatal(err)
						}
					}
					u.Estimate()
				}
			})
		}
	}
}
