package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// benchGens keeps each benchmark's generator across its runs of growing
// b.N, so that no run pays for simulating a fresh epoch it does not use.
var benchGens = map[string]*Generator{}

// benchGenerator returns the benchmark's generator of cfg (kept across
// its runs, so that they go on through the day) and a function that makes
// a new one, untimed, when the day ends. It resets the timer and reports
// allocations.
func benchGenerator(b *testing.B, cfg Config) (*Generator, func() *Generator) {
	newGen := func() *Generator {
		b.StopTimer()
		defer b.StartTimer()
		g, err := NewGenerator(cfg)
		if err != nil {
			b.Fatal(err)
		}
		benchGens[b.Name()] = g
		return g
	}
	b.ReportAllocs()
	g := benchGens[b.Name()]
	if g == nil {
		g = newGen()
	}
	b.ResetTimer()
	return g, newGen
}

// benchGenerate runs b.N events of a day of cfg's population through
// encode; one op is one event. The generator is created (untimed) once and
// again when its day ends.
func benchGenerate(b *testing.B, cfg Config, encode func(*Generator, []event.Event)) {
	ctx := context.Background()
	var batch []event.Event
	g, newGen := benchGenerator(b, cfg)
	start := time.Now()
	for n := 0; n < b.N; {
		if !g.Next(ctx, &batch) {
			g = newGen()
			continue
		}
		encode(g, batch)
		n += len(batch)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds()/1e6, "Mevents/s")
}

// BenchmarkGenerate measures the producer's whole job: simulate a day of
// the default population (200 000 boxes) and encode binary batch frames of
// 256 events, by Generator.NextFrame. One op is one event.
func BenchmarkGenerate(b *testing.B) {
	ctx := context.Background()
	cfg := Config{Seed: 1, Duration: 24 * time.Hour}
	var enc event.BatchEncoder
	frame := make([]byte, 0, 64<<10)
	g, newGen := benchGenerator(b, cfg)
	start := time.Now()
	for n := 0; n < b.N; {
		if !g.NextFrame(ctx, &enc) {
			if err := g.Err(); err != nil {
				b.Fatal(err)
			}
			g = newGen()
			continue
		}
		n += enc.Len()
		frame = enc.AppendFrame(frame[:0], false)
		enc.Reset()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds()/1e6, "Mevents/s")
}

// BenchmarkGenerateEncode is BenchmarkGenerate by Next and Generator.Encode
// (BatchEncoder.AddKeyed of each event.Event).
func BenchmarkGenerateEncode(b *testing.B) {
	var enc event.BatchEncoder
	frame := make([]byte, 0, 64<<10)
	benchGenerate(b, Config{Seed: 1, Duration: 24 * time.Hour}, func(g *Generator, _ []event.Event) {
		if err := g.Encode(&enc); err != nil {
			b.Fatal(err)
		}
		frame = enc.AppendFrame(frame[:0], false)
		enc.Reset()
	})
}

// BenchmarkGenerateAdd is BenchmarkGenerate with BatchEncoder.Add, as a
// producer that knows its events only as event.Event encodes them.
func BenchmarkGenerateAdd(b *testing.B) {
	var enc event.BatchEncoder
	frame := make([]byte, 0, 64<<10)
	benchGenerate(b, Config{Seed: 1, Duration: 24 * time.Hour}, func(_ *Generator, batch []event.Event) {
		for i := range batch {
			if err := enc.Add(&batch[i]); err != nil {
				b.Fatal(err)
			}
		}
		frame = enc.AppendFrame(frame[:0], false)
		enc.Reset()
	})
}

// BenchmarkGenerateOnly is the simulation alone.
func BenchmarkGenerateOnly(b *testing.B) {
	benchGenerate(b, Config{Seed: 1, Duration: 24 * time.Hour}, func(*Generator, []event.Event) {})
}

// BenchmarkGenerateTruth is the simulation with the exact truth.
func BenchmarkGenerateTruth(b *testing.B) {
	benchGenerate(b, Config{Seed: 1, Duration: 24 * time.Hour, Truth: true}, func(*Generator, []event.Event) {})
}

// BenchmarkEncodeOnly is the binary encoding of BenchmarkGenerate alone
// (aggregator/event's BatchEncoder), for the breakdown in bench/RESULTS.md.
func BenchmarkEncodeOnly(b *testing.B) {
	evs, _ := generate(b, Config{Seed: 1, Devices: 200_000, Duration: 10 * time.Minute})
	var enc event.BatchEncoder
	frame := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		for j := 0; j < 256 && i < b.N; i, j = i+1, j+1 {
			if err := enc.Add(&evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
		}
		frame = enc.AppendFrame(frame[:0], false)
		enc.Reset()
	}
}
