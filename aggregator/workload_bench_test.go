//go:build unix

package aggregator_test

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
	"github.com/ratingsd/ratingsd/sketch"
)

// BenchmarkIngestWorkload is the whole per-event cost of a live stream on
// one goroutine, on the generator's workload rather than uniform random
// events: 1M boxes, 300 channels, 10 minutes of prime time (a state report
// from every box that is on, then sessions, zapping and ad breaks: about
// two events per box in ten minutes), decoded from binary frames of 256
// events, written, and sealed as the watermark (10 s lateness) passes each
// minute, as the service's sealer would on the other core. Each pass over
// the frames moves event time 10 minutes on, so the boxes stay known and
// every minute is new. One op is one frame; seal-% is the share of the time
// spent sealing (in the tuning model, crediting every box every minute);
// cpu-ns/event is the process's CPU time per event, GC included.
func BenchmarkIngestWorkload(b *testing.B) {
	const span = 10 * time.Minute
	gen, err := bench.NewGenerator(bench.Config{Seed: 1, Devices: 1_000_000, Channels: 300, Duration: span})
	if err != nil {
		b.Fatal(err)
	}
	var enc event.BatchEncoder
	var frames [][]byte
	var evs []event.Event
	for gen.Next(b.Context(), &evs) {
		if err := gen.Encode(&enc); err != nil {
			b.Fatal(err)
		}
		frames = append(frames, enc.AppendFrame(nil, false))
		enc.Reset()
	}
	start := gen.Config().Start
	for _, model := range []aggregator.Model{aggregator.Events, aggregator.Tuning} {
		b.Run(model.String(), func(b *testing.B) {
			var now atomic.Int64
			now.Store(start.UnixMilli())
			key, err := sketch.KeyFromBytes([]byte("bench-key-000016"))
			if err != nil {
				b.Fatal(err)
			}
			cfg := aggregator.DefaultConfig()
			cfg.Model, cfg.Key, cfg.Lateness = model, key, 10*time.Second
			cfg.Now = func() time.Time { return time.UnixMilli(now.Load()) }
			a, err := aggregator.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			w := a.NewWriter()
			var dec event.Decoder
			var rej event.Rejections
			var f event.Frame
			var shift, sealedTo int64
			var sealing time.Duration
			n := 0
			ingest := func(msg []byte) {
				dec.DecodeFrame(&f, msg, &rej)
				var newest int64
				for i := range f.Events {
					f.Events[i].TS += shift
					newest = max(newest, f.Events[i].TS)
				}
				now.Store(newest + 1000)
				n += w.WriteFrame(&f, &rej)
				if wm := newest - cfg.Lateness.Milliseconds(); wm/60_000 > sealedTo {
					t := time.Now()
					a.SealThrough(wm)
					sealing += time.Since(t)
					sealedTo = wm / 60_000
				}
			}
			for _, f := range frames { // warm-up: the boxes known
				ingest(f)
			}
			shift += span.Milliseconds()
			n, sealing = 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := range b.N {
				if i > 0 && i%len(frames) == 0 {
					shift += span.Milliseconds()
				}
				ingest(frames[i%len(frames)])
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/event")
			b.ReportMetric(100*sealing.Seconds()/b.Elapsed().Seconds(), "seal-%")
			if rej.Total() != 0 {
				b.Fatalf("rejections: %+v %v", rej.Count, rej.First)
			}
		})
	}
}

// cpuTime returns the CPU time (user and system, ns) the process has used:
// on a shared machine, where wall time also counts the time others ran,
// cpu-ns/event is the steadier figure.
func cpuTime(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
