package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// mustNew returns New(key, p) or fails the test.
func mustNew(t testing.TB, key *Key, p uint8) *Sketch {
	t.Helper()
	s, err := New(key, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// addIDs adds n distinct 16-byte ids starting at first, through the keyed
// hash, as the aggregator does.
func addIDs(s *Sketch, first, n int) {
	var id [16]byte
	binary.LittleEndian.PutUint64(id[8:], 0x5eed)
	for i := first; i < first+n; i++ {
		binary.LittleEndian.PutUint64(id[:8], uint64(i))
		s.Add(id[:])
	}
}

// isDense asks the library's own encoding which representation s is in.
func isDense(t testing.TB, s *Sketch) bool {
	t.Helper()
	b, err := s.hll.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b[3] == 0
}

func encode(t testing.TB, s *Sketch) []byte {
	t.Helper()
	b, err := s.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewPrecision(t *testing.T) {
	key := seqKey(t)
	f := func(p uint8, ok bool) {
		t.Helper()
		for _, ctor := range []func(*Key, uint8) (*Sketch, error){New, NewUnion} {
			s, err := ctor(key, p)
			if ok {
				if err != nil || s.Precision() != p || s.Key() != key {
					t.Errorf("precision %d: got %v, %v", p, s, err)
				}
				if e := s.Estimate(); e != (Estimate{}) {
					t.Errorf("precision %d: empty sketch estimates %+v; want zeros", p, e)
				}
				continue
			}
			if !errors.Is(err, ErrPrecision) || s != nil {
				t.Errorf("precision %d: got %v, %v; want ErrPrecision", p, s, err)
			}
		}
	}
	f(0, false)
	f(3, false)
	f(MinPrecision, true)
	f(DefaultPrecision, true)
	f(MaxPrecision, true)
	f(19, false)
	f(255, false)

	if _, err := New(nil, DefaultPrecision); err == nil {
		t.Errorf("New(nil key) succeeded")
	}
}

func TestInterval(t *testing.T) {
	f := func(v uint64, sigma float64, lo, hi uint64) {
		t.Helper()
		got := interval(v, sigma)
		if want := (Estimate{v, lo, hi}); got != want {
			t.Errorf("interval(%d, %g) = %+v; want %+v", v, sigma, got, want)
		}
	}
	f(0, 0, 0, 0)
	f(7, 0, 7, 7)
	f(3, 0.1, 2, 4)           // near-exact sparse count: ±1, rounded outwards
	f(100, 10, 80, 120)       // 1.96σ = 19.6
	f(1, 5, 0, 11)            // clamped at 0
	f(1000, 8.125, 984, 1016) // dense p=14 at n=1000: σ = 0.8125%
	f(42, math.NaN(), 0, 42)

	// At the top of the range float64 rounding must not overflow High or
	// push the bounds across the value.
	e := interval(math.MaxUint64, 1e18)
	if e.High != math.MaxUint64 || e.Low >= e.Value || e.Low < math.MaxUint64/2 {
		t.Errorf("interval(MaxUint64, 1e18) = %+v", e)
	}
}

// TestRepresentationTracking checks the bookkeeping Estimate relies on to
// choose its interval against the library's own answer, through inserts,
// merges, clones and decodes on both sides of the sparse-to-dense switch.
func TestRepresentationTracking(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	key := randKey(t, r)
	check := func(what string, s *Sketch) {
		t.Helper()
		m := uint64(1) << s.p
		truth := isDense(t, s)
		if s.dense && !truth {
			t.Fatalf("%s: flagged dense but the library is sparse", what)
		}
		if !s.dense && s.sparseBound <= m && truth {
			t.Fatalf("%s: bound %d <= 2^%d says sparse but the library is dense", what, s.sparseBound, s.p)
		}
		if _, dense := s.estimate(); dense != isDense(t, s) {
			t.Fatalf("%s: Estimate assumed dense=%t; library says %t", what, dense, !dense)
		}
	}
	probed := 0
	for _, p := range []uint8{4, 6, 10, 14} {
		m := 1 << p
		for _, n := range []int{0, 1, m / 8, m / 4, m / 3, m / 2, m, 2 * m} {
			a := mustNew(t, key, p)
			for range n {
				a.AddHash(r.Uint64())
			}
			if !a.dense && a.sparseBound > uint64(m) && a.hll.Estimate() <= maxSparseEstimate(p) {
				probed++ // the gray zone: Estimate reads the library's flag
			}
			check("fresh", a)
			b := mustNew(t, key, p)
			for range n / 2 {
				b.AddHash(r.Uint64())
			}
			c := a.Clone()
			if err := c.Merge(b); err != nil {
				t.Fatal(err)
			}
			check("merged", c)
			d, err := Decode(encode(t, c), key)
			if err != nil {
				t.Fatal(err)
			}
			check("decoded", d)
			for range n / 3 {
				d.AddHash(r.Uint64())
			}
			check("decoded and grown", d)
			u, _ := NewUnion(key, p)
			if err := u.Merge(b); err != nil {
				t.Fatal(err)
			}
			check("union", u)
			if err := b.Merge(u); err != nil {
				t.Fatal(err)
			}
			check("merged with a union", b)
		}
	}
	if probed == 0 {
		t.Errorf("no case reached the gray zone between the bound and the sparse maximum")
	}
}

func TestMergeRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	key, other := randKey(t, r), randKey(t, r)
	s := mustNew(t, key, 14)
	addIDs(s, 0, 500)
	before := encode(t, s)
	f := func(o *Sketch, want error) {
		t.Helper()
		addIDs(o, 1000, 500)
		err := s.Merge(o)
		if !errors.Is(err, want) {
			t.Errorf("Merge(%d-bit, key %v) = %v; want %v", o.p, o.key.fp, err, want)
		}
		if after := encode(t, s); !bytes.Equal(after, before) {
			t.Errorf("a refused Merge changed the sketch")
		}
	}
	f(mustNew(t, key, 13), ErrPrecisionMismatch)
	f(mustNew(t, key, 15), ErrPrecisionMismatch)
	f(mustNew(t, other, 14), ErrKeyMismatch)
	u, _ := NewUnion(other, 14)
	f(u, ErrKeyMismatch)
	// Equal key material in another Key value is the same key.
	kb := key.Bytes()
	same, _ := KeyFromBytes(kb[:])
	if err := s.Merge(mustNew(t, same, 14)); err != nil {
		t.Errorf("Merge under an equal key: %v", err)
	}

	// nil and s itself change nothing.
	if err := s.Merge(nil); err != nil {
		t.Errorf("Merge(nil) = %v", err)
	}
	if err := s.Merge(s); err != nil {
		t.Errorf("Merge(s) = %v", err)
	}
	if after := encode(t, s); !bytes.Equal(after, before) {
		t.Errorf("Merge of nil, an empty sketch or s itself changed the sketch")
	}
}

// The merge of two sketches estimates exactly as the sketch of the union of
// their ids, in either order, in every combination of representations, and
// leaves its argument unchanged.
func TestMergeIsUnion(t *testing.T) {
	key := seqKey(t)
	tests := []struct {
		name          string
		p             uint8
		na, nb, share int
	}{
		{"sparse+sparse", 14, 300, 300, 100},
		{"sparse+sparse near the switch", 14, 5000, 5000, 1000},
		{"sparse+sparse becoming dense", 14, 6000, 6000, 0},
		{"sparse+dense", 14, 200, 50_000, 100},
		{"dense+dense", 14, 40_000, 60_000, 20_000},
		{"disjoint dense", 12, 30_000, 30_000, 0},
		{"p=4", 4, 10, 40, 5},
		{"p=18", 18, 2000, 300_000, 1000},
		{"empty", 14, 0, 100, 0},
		{"identical", 14, 1000, 1000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, key, tc.p)
			addIDs(a, 0, tc.na)
			b := mustNew(t, key, tc.p)
			addIDs(b, tc.na-tc.share, tc.nb)
			u := mustNew(t, key, tc.p)
			addIDs(u, 0, tc.na-tc.share+tc.nb)
			want := u.Estimate()

			bBefore := encode(t, b)
			ab := a.Clone()
			if err := ab.Merge(b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encode(t, b), bBefore) {
				t.Errorf("Merge changed its argument")
			}
			ba := b.Clone()
			if err := ba.Merge(a); err != nil {
				t.Fatal(err)
			}
			if got := ab.Estimate(); got != want {
				t.Errorf("a.Merge(b) = %+v; union = %+v", got, want)
			}
			if got := ba.Estimate(); got != want {
				t.Errorf("b.Merge(a) = %+v; union = %+v", got, want)
			}
			un, _ := NewUnion(key, tc.p)
			for _, s := range []*Sketch{a, b} {
				if err := un.Merge(s); err != nil {
					t.Fatal(err)
				}
			}
			if got := un.Estimate(); got.Value != want.Value && isDense(t, u) {
				t.Errorf("NewUnion of a and b = %d; dense union = %d", got.Value, want.Value)
			}
		})
	}
}

// TestAccuracy: estimates at p = 14 against exact counts, many seeded trials
// per audience size. Small audiences must be within ±1, large ones within the
// product's targets (mean relative error <= 1%, p99 <= 3%, from an RSE of
// 0.81%), and the ~95% intervals must cover the truth about 95% of the time,
// pooled separately over the sparse sizes (860 trials: 90% is 10 binomial
// standard errors below 95%) and the dense ones (90 trials: 85% is 4 below).
func TestAccuracy(t *testing.T) {
	sizes := []struct{ n, trials int }{
		{1, 200}, {10, 200}, {100, 200}, {999, 100}, {1000, 100},
		{5000, 60}, {20_000, 60}, {100_000, 24}, {1_000_000, 6},
	}
	var large []float64       // relative errors, n >= 1000
	var covered, total [2]int // [sparse, dense] sizes at p = 14
	wantCoverage := [2]float64{0.90, 0.85}
	var id [16]byte
	for _, sz := range sizes {
		trials := sz.trials
		if testing.Short() {
			if sz.n >= 1_000_000 {
				continue
			}
			trials = max(trials/4, 5)
		}
		var errs []float64
		sizeCovered := 0
		for trial := range trials {
			r := rand.New(rand.NewPCG(uint64(sz.n), uint64(trial)))
			key := randKey(t, r)
			s := mustNew(t, key, DefaultPrecision)
			for range sz.n {
				binary.LittleEndian.PutUint64(id[:8], r.Uint64())
				binary.LittleEndian.PutUint64(id[8:], r.Uint64())
				s.Add(id[:])
			}
			e := s.Estimate()
			n := uint64(sz.n)
			if !(e.Low <= e.Value && e.Value <= e.High) {
				t.Fatalf("n=%d: estimate %+v out of order", n, e)
			}
			if sz.n <= 1000 {
				if d := int64(e.Value) - int64(n); d < -1 || d > 1 {
					t.Errorf("n=%d trial %d: estimate %d; want within ±1", n, trial, e.Value)
				}
				if e.High-e.Low > 2 {
					t.Errorf("n=%d: interval [%d, %d] wider than ±1", n, e.Low, e.High)
				}
			}
			if e.Low <= n && n <= e.High {
				sizeCovered++
			}
			errs = append(errs, math.Abs(float64(e.Value)-float64(n))/float64(n))
		}
		regime := 0
		if sz.n > 10_000 {
			regime = 1
		}
		covered[regime] += sizeCovered
		total[regime] += trials
		mean, worst := meanOf(errs), slices.Max(errs)
		t.Logf("n=%7d trials=%3d mean rel err %.3f%% max %.3f%% coverage %.2f",
			sz.n, trials, 100*mean, 100*worst, float64(sizeCovered)/float64(trials))
		if sz.n < 1000 {
			continue
		}
		large = append(large, errs...)
		// With 20+ trials the mean of |N(0, 0.81%)| (0.65%) is > 3 standard
		// errors below 1%.
		if trials >= 20 && mean > 0.01 {
			t.Errorf("n=%d: mean relative error %.3f%%; want <= 1%%", sz.n, 100*mean)
		}
		if worst > 0.03 {
			t.Errorf("n=%d: worst relative error %.3f%%; want <= 3%%", sz.n, 100*worst)
		}
	}
	slices.Sort(large)
	p99 := large[int(math.Ceil(0.99*float64(len(large))))-1]
	if mean := meanOf(large); mean > 0.01 || p99 > 0.03 {
		t.Errorf("n >= 1000: mean relative error %.3f%%, p99 %.3f%%; want <= 1%%, <= 3%%", 100*mean, 100*p99)
	}
	for r, name := range []string{"sparse", "dense"} {
		if c := float64(covered[r]) / float64(total[r]); c < wantCoverage[r] {
			t.Errorf("%s sizes: 95%% intervals covered the truth in %.1f%% of %d trials; want >= %.0f%%",
				name, 100*c, total[r], 100*wantCoverage[r])
		}
	}
}

// TestDenseCoverage: intervals of dense sketches (the NewUnion accumulator
// is dense from the start, whatever its size), pooled over small sizes,
// where LogLog-Beta behaves like linear counting over the registers, and over
// large ones: 120 trials each, where a coverage of 90% is 2.5 binomial
// standard errors below 95%.
func TestDenseCoverage(t *testing.T) {
	trials := 40
	if testing.Short() {
		trials = 10
	}
	for _, pool := range [][]int{{5, 100, 1000}, {10_000, 40_000, 160_000}} {
		covered, total := 0, 0
		for _, n := range pool {
			for trial := range trials {
				r := rand.New(rand.NewPCG(uint64(n), 1000+uint64(trial)))
				s, _ := NewUnion(randKey(t, r), DefaultPrecision)
				for range n {
					s.AddHash(r.Uint64())
				}
				e := s.Estimate()
				if e.Low <= uint64(n) && uint64(n) <= e.High {
					covered++
				}
				total++
			}
		}
		if c := float64(covered) / float64(total); c < 0.90 {
			t.Errorf("sizes %v: dense 95%% intervals covered the truth in %.1f%% of %d trials; want >= 90%%", pool, 100*c, total)
		}
	}
}

func meanOf(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestCloneIsIndependent(t *testing.T) {
	key := seqKey(t)
	for _, n := range []int{100, 50_000} {
		s := mustNew(t, key, 14)
		addIDs(s, 0, n)
		c := s.Clone()
		addIDs(c, n, n)
		if got := s.Estimate().Value; got > uint64(n)*102/100 {
			t.Errorf("n=%d: adding to a clone changed the original to %d", n, got)
		}
		if got := c.Estimate().Value; got < uint64(2*n)*98/100 {
			t.Errorf("n=%d: clone estimates %d; want about %d", n, got, 2*n)
		}
	}
}

// A sealed sketch (estimated, encoded or decoded once, not modified again)
// may be read from many goroutines at once: the race detector checks that
// these reads do not write, in every representation and however it was
// sealed.
func TestSealedConcurrentReads(t *testing.T) {
	key := seqKey(t)
	var sealed []*Sketch
	for _, n := range []int{0, 100, 6000 /* gray zone */, 50_000} {
		build := func() *Sketch {
			s := mustNew(t, key, 14)
			addIDs(s, 0, n)
			return s
		}
		estimated := build()
		estimated.Estimate()
		encoded := build()
		_, _ = encoded.AppendBinary(nil)
		decoded, err := Decode(encode(t, build()), key)
		if err != nil {
			t.Fatal(err)
		}
		merged := build()
		_ = merged.Merge(build()) // Merge unseals; Estimate seals again
		merged.Estimate()
		sealed = append(sealed, estimated, encoded, decoded, merged)
	}
	// Deterministically first: reads leave the bookkeeping as it was.
	type books struct {
		bound          uint64
		dense, settled bool
	}
	for i, s := range sealed {
		before := books{s.sparseBound, s.dense, s.settled}
		s.Estimate()
		_, _ = s.AppendBinary(nil)
		_ = mustNew(t, key, 14).Merge(s)
		if after := (books{s.sparseBound, s.dense, s.settled}); after != before || !before.settled {
			t.Fatalf("sealed sketch %d: reads changed %+v to %+v", i, before, after)
		}
	}
	// Then the race detector, which also sees the library's state. The
	// goroutines start together and visit the sketches in different orders,
	// so that their accesses interleave: an encoder shared through a channel
	// (zstd's) would otherwise order them and hide a race.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			<-start
			for i := range 8 * len(sealed) {
				s := sealed[(i*(2*g+1)+g)%len(sealed)]
				want := s.Estimate()
				if _, err := s.AppendBinary(nil); err != nil {
					t.Error(err)
				}
				_ = s.SizeBytes()
				if got := s.Clone().Estimate(); got != want {
					t.Errorf("clone of a sealed sketch estimates %+v; want %+v", got, want)
				}
				acc := mustNew(t, key, 14)
				if err := acc.Merge(s); err != nil {
					t.Error(err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

// SizeBytes is within a factor of two of the heap that runtime.MemStats
// measures for many sketches, for every shape a sketch takes.
func TestSizeBytes(t *testing.T) {
	key := seqKey(t)
	for _, tc := range []struct {
		p              uint8
		n              int
		seal, encode   bool
		union, decoded bool
	}{
		{p: 14}, {p: 14, n: 1}, {p: 14, n: 10}, {p: 14, n: 100}, {p: 14, n: 100, seal: true},
		{p: 14, n: 1000}, {p: 14, n: 3000}, {p: 14, n: 3000, encode: true}, {p: 14, n: 6000},
		{p: 14, n: 20_000}, {p: 14, union: true}, {p: 14, n: 2000, decoded: true},
		{p: 14, n: 20_000, decoded: true}, {p: 10, n: 100}, {p: 18, n: 10_000},
	} {
		// Enough sketches that a few KiB of unrelated allocation is noise.
		count := max(10, 100_000/(tc.n+100))
		build := func() []*Sketch {
			made := make([]*Sketch, count)
			for i := range made {
				if tc.union {
					made[i], _ = NewUnion(key, tc.p)
				} else {
					made[i] = mustNew(t, key, tc.p)
				}
				for j := range tc.n {
					made[i].AddHash(splitmix(uint64(i*tc.n + j)))
				}
				if tc.seal {
					made[i].Estimate()
				}
				if tc.encode {
					_, _ = made[i].AppendBinary(nil)
				}
			}
			return made
		}
		var encoded [][]byte
		if tc.decoded {
			for _, s := range build() {
				encoded = append(encoded, encode(t, s))
			}
			// Warm the decoder: it allocates its buffers on first use.
			for range 4 {
				if _, err := Decode(encoded[0], key); err != nil {
					t.Fatal(err)
				}
			}
		}

		var before, after runtime.MemStats
		runtime.GC() // twice: the first moves sync.Pool contents to a victim cache
		runtime.GC()
		runtime.ReadMemStats(&before)
		var made []*Sketch
		if tc.decoded {
			for _, b := range encoded {
				d, err := Decode(b, key)
				if err != nil {
					t.Fatal(err)
				}
				made = append(made, d)
			}
		} else {
			made = build()
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(encoded)

		measured := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(count)
		reported := 0
		for _, s := range made {
			reported += s.SizeBytes()
		}
		ratio := float64(reported) / float64(count) / measured
		t.Logf("%+v: SizeBytes %d, measured %.0f, ratio %.2f", tc, reported/count, measured, ratio)
		if ratio < 0.5 || ratio > 2 {
			t.Errorf("%+v: SizeBytes %d per sketch, heap %.0f: ratio %.2f outside [0.5, 2]", tc, reported/count, measured, ratio)
		}
	}
}

// splitmix is SplitMix64's output function: distinct inputs give distinct,
// uniformly spread hashes, cheaper than a keyed hash under the race detector.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
