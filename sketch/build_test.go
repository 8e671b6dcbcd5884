package sketch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFromHashes checks that the bulk builder makes the very sketch that
// adding the hashes one by one makes: the same encoding and estimate, on
// both sides of the sparse-to-dense switch, with duplicates.
func TestFromHashes(t *testing.T) {
	key := testKey(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, p := range []uint8{4, 10, 14} {
		for _, n := range []int{1, 2, 100, 999, 3000, 6000, 12000, 40000} {
			t.Run(fmt.Sprintf("p%d-n%d", p, n), func(t *testing.T) {
				hashes := make([]uint64, n)
				for i := range hashes {
					hashes[i] = r.Uint64()
				}
				hashes = append(hashes, hashes[:n/3]...) // duplicates
				one, err := New(key, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hashes {
					one.AddHash(h)
				}
				bulk, err := FromHashes(key, p, hashes)
				if err != nil {
					t.Fatal(err)
				}
				want, got := one.Estimate(), bulk.Estimate()
				if got != want {
					t.Errorf("estimate %+v, one by one %+v", got, want)
				}
				wb, _ := one.AppendBinary(nil)
				gb, _ := bulk.AppendBinary(nil)
				if one.dense == bulk.dense && !bytes.Equal(wb, gb) {
					t.Errorf("encodings differ: %d vs %d bytes (dense %v)", len(gb), len(wb), bulk.dense)
				}
				// Still a working sketch: merge and add.
				if err := bulk.Merge(one); err != nil {
					t.Fatal(err)
				}
				bulk.AddHash(r.Uint64())
				if e := bulk.Estimate(); e.Value < want.Value {
					t.Errorf("after merge and add: %d < %d", e.Value, want.Value)
				}
			})
		}
	}
}

func testKey(tb testing.TB) *Key {
	tb.Helper()
	k, err := KeyFromBytes([]byte("build-test-key16"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func BenchmarkFromHashes(b *testing.B) {
	key := testKey(b)
	for _, n := range []int{1000, 8000} {
		hashes := make([]uint64, n)
		for i := range hashes {
			hashes[i] = rand.Uint64()
		}
		b.Run(fmt.Sprintf("bulk-%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FromHashes(key, 14, hashes); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("one-by-one-%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, _ := New(key, 14)
				for _, h := range hashes {
					s.AddHash(h)
				}
				s.Estimate()
			}
		})
	}
}

// TestSortKeys checks the radix sort against slices.Sort on both sides of
// radixAbove, with duplicates and extreme keys.
func TestSortKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 7, radixAbove - 1, radixAbove, 1000, 70000} {
		ks := make([]uint32, n)
		for i := range ks {
			switch i % 7 {
			case 0:
				ks[i] = 0
			case 1:
				ks[i] = ^uint32(0)
			case 2:
				ks[i] = ks[i/2] // a duplicate
			default:
				ks[i] = r.Uint32()
			}
		}
		want := slices.Clone(ks)
		slices.Sort(want)
		sortKeys(ks)
		if !slices.Equal(ks, want) {
			t.Errorf("n=%d: radix sort differs from slices.Sort", n)
		}
	}
}
