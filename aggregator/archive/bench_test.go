package archive

import (
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// benchAppend appends the minutes of a realistic day of 500 channels, over
// and over (a replay: last write wins), to one day's log.
func benchAppend(b *testing.B, noSync bool) {
	day := realisticDay(day0, 500, 1)
	a, err := Open(b.TempDir(), Config{Now: func() time.Time { return day0.Add(48 * time.Hour) }, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := a.Append(day[i%len(day)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAppend: one minute of 500 channels, written and fsynced.
func BenchmarkAppend(b *testing.B) { benchAppend(b, false) }

// BenchmarkAppendNoSync: the same without the fsync: the CPU cost.
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, true) }

// BenchmarkCompact: a day of 500 channels folded into its day file.
func BenchmarkCompact(b *testing.B) {
	var mins []Minute
	for _, m := range realisticDay(day0, 500, 1) {
		mins = append(mins, FromSealed(m))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeDay(dayOf(day0), mins); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRangeDay: reading a compacted day of 500 channels back.
func BenchmarkRangeDay(b *testing.B) {
	dir := b.TempDir()
	a, err := Open(dir, Config{Now: func() time.Time { return day0.Add(48 * time.Hour) }, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	for _, m := range realisticDay(day0, 500, 1) {
		if err := a.Append(m); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Append(&aggregator.Minute{Start: day0.Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := a.Range(day0, day0.Add(24*time.Hour), func(m *Minute) error { n += len(m.Channels); return nil }); err != nil || n == 0 {
			b.Fatal(n, err)
		}
	}
}
