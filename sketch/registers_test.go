package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestFromRegisters checks that registers kept with Register make the very
// sketch that adding the hashes to NewUnion makes (same encoding and
// estimate), and that MaxRegisters of a sketch, sparse or dense, gives back
// the registers of the union.
func TestFromRegisters(t *testing.T) {
	key := testKey(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, p := range []uint8{4, 10, 14} {
		for _, n := range []int{0, 1, 100, 3000, 40000} {
			t.Run(fmt.Sprintf("p%d-n%d", p, n), func(t *testing.T) {
				union, err := NewUnion(key, p)
				if err != nil {
					t.Fatal(err)
				}
				regs := make([]uint8, 1<<p)
				for range n {
					h := r.Uint64()
					union.AddHash(h)
					i, v := Register(h, p)
					regs[i] = max(regs[i], v)
				}
				sk, err := FromRegisters(key, p, regs)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := sk.Estimate(), union.Estimate(); got != want {
					t.Errorf("estimate %+v, added to NewUnion %+v", got, want)
				}
				wb, _ := union.AppendBinary(nil)
				gb, _ := sk.AppendBinary(nil)
				if !bytes.Equal(wb, gb) {
					t.Errorf("encodings differ: %d vs %d bytes", len(gb), len(wb))
				}

				// MaxRegisters of a sparse sketch of other hashes and of
				// the dense one: the registers of the union of all.
				sparse, err := New(key, p)
				if err != nil {
					t.Fatal(err)
				}
				for range 50 {
					h := r.Uint64()
					sparse.AddHash(h)
					union.AddHash(h)
				}
				got := make([]uint8, 1<<p)
				for _, s := range []*Sketch{sparse, sk} {
					if err := s.MaxRegisters(got); err != nil {
						t.Fatal(err)
					}
				}
				back, err := FromRegisters(key, p, got)
				if err != nil {
					t.Fatal(err)
				}
				if g, w := back.Estimate(), union.Estimate(); g != w {
					t.Errorf("after MaxRegisters: estimate %+v, union %+v", g, w)
				}
			})
		}
	}
}

// TestRegistersRefuse checks the errors for registers of the wrong size.
func TestRegistersRefuse(t *testing.T) {
	key := testKey(t)
	if _, err := FromRegisters(key, 10, make([]uint8, 1<<11)); err == nil {
		t.Error("FromRegisters took 2048 registers for precision 10")
	}
	if _, err := FromRegisters(key, 3, make([]uint8, 8)); !errors.Is(err, ErrPrecision) {
		t.Errorf("FromRegisters at precision 3: %v, want ErrPrecision", err)
	}
	sk, _ := New(key, 10)
	if err := sk.MaxRegisters(make([]uint8, 1<<12)); !errors.Is(err, ErrPrecisionMismatch) {
		t.Errorf("MaxRegisters into 4096 registers at precision 10: %v, want ErrPrecisionMismatch", err)
	}
}

// BenchmarkRegister is the dense insert of a caller that keeps its own
// registers, against AddHash into a dense sketch (BenchmarkAddHash).
func BenchmarkRegister(b *testing.B) {
	regs := make([]uint8, 1<<14)
	r := rand.New(rand.NewPCG(1, 2))
	hs := make([]uint64, 1<<16)
	for i := range hs {
		hs[i] = r.Uint64()
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h := hs[i&(len(hs)-1)]
		j, v := Register(h, 14)
		regs[j] = max(regs[j], v)
	}
}
