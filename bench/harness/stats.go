package harness

import (
	"fmt"
	"math"
	"slices"
)

// Spread is the spread of a figure over the repetitions of a scenario.
type Spread struct {
	Min, Median, Max float64
	N                int // repetitions that produced the figure
}

// SpreadOf returns the min, median and max of xs, ignoring NaNs. The
// median of an even count is the mean of the middle two. An empty or
// all-NaN xs gives NaNs and N = 0.
func SpreadOf(xs []float64) Spread {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Spread{Min: math.NaN(), Median: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Spread{Min: v[0], Median: med, Max: v[n-1], N: n}
}

// Format prints the spread as "median (min–max)" with f formatting each
// value; a single repetition prints its value alone.
func (s Spread) Format(f func(float64) string) string {
	switch {
	case s.N == 0:
		return "n/a"
	case s.N == 1 || s.Min == s.Max:
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least q·n values at or
// below it. It is NaN for an empty slice.
func Quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	r := int(math.Ceil(q * float64(n)))
	return sorted[min(max(r, 1), n)-1]
}

// ErrorStats summarises the errors of estimates against exact truths.
type ErrorStats struct {
	N int
	// Relative errors |est − truth| / truth, over truths > 0.
	MeanRel, P99Rel, MaxRel float64
	// Absolute errors |est − truth|.
	MeanAbs, P99Abs, MaxAbs float64
	// Covered is the fraction of truths inside their [low, high] interval.
	Covered float64
}

// Estimate is one estimate with its interval, and the exact truth.
type Estimate struct {
	Truth, Est, Low, High float64
}

// ErrorsOf summarises es. Relative errors skip truths of 0.
func ErrorsOf(es []Estimate) ErrorStats {
	if len(es) == 0 {
		return ErrorStats{MeanRel: math.NaN(), P99Rel: math.NaN(), MaxRel: math.NaN(),
			MeanAbs: math.NaN(), P99Abs: math.NaN(), MaxAbs: math.NaN(), Covered: math.NaN()}
	}
	var rel, abs []float64
	covered := 0
	for _, e := range es {
		a := math.Abs(e.Est - e.Truth)
		abs = append(abs, a)
		if e.Truth > 0 {
			rel = append(rel, a/e.Truth)
		}
		if e.Low <= e.Truth && e.Truth <= e.High {
			covered++
		}
	}
	slices.Sort(rel)
	slices.Sort(abs)
	s := ErrorStats{N: len(es), Covered: float64(covered) / float64(len(es))}
	s.MeanAbs, s.P99Abs, s.MaxAbs = mean(abs), Quantile(abs, 0.99), abs[len(abs)-1]
	s.MeanRel, s.P99Rel, s.MaxRel = math.NaN(), math.NaN(), math.NaN()
	if len(rel) > 0 {
		s.MeanRel, s.P99Rel, s.MaxRel = mean(rel), Quantile(rel, 0.99), rel[len(rel)-1]
	}
	return s
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// SizeBucket is a range [Lo, Hi) of audience sizes.
type SizeBucket struct {
	Name   string
	Lo, Hi float64
}

// SizeBuckets are the audience size buckets of accuracy reports: DESIGN.md
// promises ±1 up to 1000 and relative bounds above.
var SizeBuckets = []SizeBucket{
	{"1–9", 1, 10},
	{"10–99", 10, 100},
	{"100–999", 100, 1000},
	{"1k–9.9k", 1000, 10_000},
	{"10k–99k", 10_000, 100_000},
	{"≥ 100k", 100_000, math.Inf(1)},
}

// ByBucket splits es by the SizeBucket of their truth; truths of 0 are
// left out.
func ByBucket(es []Estimate) [][]Estimate {
	out := make([][]Estimate, len(SizeBuckets))
	for _, e := range es {
		for i, b := range SizeBuckets {
			if e.Truth >= b.Lo && e.Truth < b.Hi {
				out[i] = append(out[i], e)
				break
			}
		}
	}
	return out
}
