package harness

import (
	"math"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	f := func(xs []float64, want Spread) {
		t.Helper()
		got := SpreadOf(xs)
		same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
		if !same(got.Min, want.Min) || !same(got.Median, want.Median) || !same(got.Max, want.Max) || got.N != want.N {
			t.Errorf("SpreadOf(%v) = %+v, want %+v", xs, got, want)
		}
	}
	nan := math.NaN()
	f(nil, Spread{nan, nan, nan, 0})
	f([]float64{nan}, Spread{nan, nan, nan, 0})
	f([]float64{3}, Spread{3, 3, 3, 1})
	f([]float64{3, 1, 2}, Spread{1, 2, 3, 3})
	f([]float64{4, 1, 2, 3}, Spread{1, 2.5, 4, 4})
	f([]float64{5, nan, 1}, Spread{1, 3, 5, 2})
}

func TestSpreadFormat(t *testing.T) {
	f := func(s Spread, want string) {
		t.Helper()
		if got := s.Format(secs); got != want {
			t.Errorf("%+v.Format = %q, want %q", s, got, want)
		}
	}
	f(Spread{N: 0}, "n/a")
	f(Spread{1, 1, 1, 1}, "1.00")
	f(Spread{1, 2, 3, 3}, "2.00 (1.00–3.00)")
	f(Spread{2, 2, 2, 3}, "2.00")
}

func TestQuantile(t *testing.T) {
	f := func(sorted []float64, q, want float64) {
		t.Helper()
		if got := Quantile(sorted, q); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("Quantile(%v, %g) = %g, want %g", sorted, q, got, want)
		}
	}
	f(nil, 0.5, math.NaN())
	f([]float64{7}, 0.99, 7)
	f([]float64{1, 2, 3, 4}, 0.5, 2)
	f([]float64{1, 2, 3, 4}, 0.51, 3)
	f([]float64{1, 2, 3, 4}, 0, 1)
	f([]float64{1, 2, 3, 4}, 1, 4)
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	f(hundred, 0.99, 99)
}

func TestErrorsOf(t *testing.T) {
	s := ErrorsOf([]Estimate{
		{Truth: 100, Est: 101, Low: 99, High: 103},   // 1%, covered
		{Truth: 1000, Est: 970, Low: 980, High: 990}, // 3%, not covered
		{Truth: 0, Est: 1, Low: 0, High: 2},          // no relative error; covered
	})
	if s.N != 3 {
		t.Errorf("N = %d, want 3", s.N)
	}
	if math.Abs(s.MeanRel-0.02) > 1e-12 || s.MaxRel != 0.03 || s.P99Rel != 0.03 {
		t.Errorf("relative errors mean %g p99 %g max %g, want 0.02, 0.03, 0.03", s.MeanRel, s.P99Rel, s.MaxRel)
	}
	if s.MaxAbs != 30 || math.Abs(s.MeanAbs-32.0/3) > 1e-12 {
		t.Errorf("absolute errors mean %g max %g, want 10.67, 30", s.MeanAbs, s.MaxAbs)
	}
	if math.Abs(s.Covered-2.0/3) > 1e-12 {
		t.Errorf("covered %g, want 2/3", s.Covered)
	}
	if e := ErrorsOf(nil); !math.IsNaN(e.MeanRel) || e.N != 0 {
		t.Errorf("ErrorsOf(nil) = %+v, want NaNs", e)
	}
}

func TestByBucket(t *testing.T) {
	got := ByBucket([]Estimate{{Truth: 0}, {Truth: 1}, {Truth: 9}, {Truth: 10}, {Truth: 999}, {Truth: 1000}, {Truth: 5e6}})
	want := []int{2, 1, 1, 1, 0, 1}
	for i, b := range got {
		if len(b) != want[i] {
			t.Errorf("bucket %s holds %d estimates, want %d", SizeBuckets[i].Name, len(b), want[i])
		}
	}
}
