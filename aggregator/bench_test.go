package aggregator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

var benchStart = time.Date(2025, 3, 14, 20, 0, 0, 0, time.UTC)

// synthetic returns n events of devices boxes over channels with Zipf-like
// popularity, spread over minutes minutes from benchStart, in time order.
func synthetic(n, devices, channels, minutes int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	zipf := rand.NewZipf(r, 1.1, 2, uint64(channels-1))
	chNames := make([][]byte, channels)
	for i := range chNames {
		chNames[i] = fmt.Appendf(nil, "ch-%03d", i)
	}
	regions := make([][]byte, 40)
	for i := range regions {
		regions[i] = fmt.Appendf(nil, "r-%02d", i)
	}
	evs := make([]event.Event, n)
	span := int64(minutes) * msPerMinute
	for i := range evs {
		d := r.IntN(devices)
		evs[i] = event.Event{
			Device:  fmt.Appendf(nil, "stb-%012d", d),
			Channel: chNames[zipf.Uint64()],
			Region:  regions[d%len(regions)],
			TS:      benchStart.UnixMilli() + int64(i)*span/int64(n),
			Kind:    event.Tune,
		}
	}
	return evs
}

func benchKey(tb testing.TB) *sketch.Key {
	k, err := sketch.KeyFromBytes([]byte("bench-key-000016"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// frameWriter ingests binary frames as the service's intake does: decoded
// by DecodeFrame, written by WriteFrame.
type frameWriter struct {
	w   *Writer
	dec event.Decoder
	f   event.Frame
}

func newFrameWriter(a *Aggregator) *frameWriter { return &frameWriter{w: a.NewWriter()} }

// write ingests the frame msg and returns the events accepted.
func (fw *frameWriter) write(msg []byte, rej *event.Rejections) int {
	fw.dec.DecodeFrame(&fw.f, msg, rej)
	return fw.w.WriteFrame(&fw.f, rej)
}

// benchAggregator returns an Aggregator of model under the bench key whose
// clock stands at benchStart + after. Its days start at 20:00 UTC, the time
// of benchStart, so that a day of minutes from benchStart is one key epoch.
func benchAggregator(tb testing.TB, model Model, after time.Duration) *Aggregator {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Model, cfg.Key = model, benchKey(tb)
	cfg.DayStart = 20 * time.Hour
	cfg.Now = func() time.Time { return benchStart.Add(after) }
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// oncePerDevice returns one event per device for n devices, in the first
// minute from benchStart, over 500 channels.
func oncePerDevice(n int) []event.Event {
	evs := synthetic(n, n, 500, 1, 4)
	for i := range evs {
		evs[i].Device = fmt.Appendf(evs[i].Device[:0], "stb-%012d", i)
	}
	return evs
}

// frames encodes evs as binary batch frames of size events each.
func frames(tb testing.TB, evs []event.Event, size int) [][]byte {
	var out [][]byte
	var enc event.BatchEncoder
	for i := range evs {
		if err := enc.Add(&evs[i]); err != nil {
			tb.Fatal(err)
		}
		if enc.Len() == size || i == len(evs)-1 {
			out = append(out, enc.AppendFrame(nil, false))
			enc.Reset()
		}
	}
	return out
}

// BenchmarkIngest is the in-process pipeline on one goroutine: decode a
// binary batch, hash every device with the secret key, insert into the
// minute's sketches (events model) or the tuning table (tuning model).
func BenchmarkIngest(b *testing.B) {
	evs := synthetic(1<<20, 200_000, 300, 10, 1)
	fs := frames(b, evs, 256)
	for _, model := range []Model{Events, Tuning} {
		b.Run(model.String(), func(b *testing.B) {
			a := benchAggregator(b, model, time.Hour)
			w := newFrameWriter(a)
			var rej event.Rejections
			// Warm up: every device and channel seen once.
			for _, f := range fs {
				w.write(f, &rej)
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; b.Loop(); i++ {
				n += w.write(fs[i%len(fs)], &rej)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if rej.Total() != 0 {
				b.Fatalf("rejections: %+v %v", rej.Count, rej.First)
			}
		})
	}
}

// BenchmarkIngestLive is BenchmarkIngest as a live stream sees it: each
// pass over the 1M events (about 100k a minute over 200k boxes) is moved
// 10 minutes later than the one before, so every minute is new when its
// events come (the tables of a minute grow as it fills, and most events
// are a device's first in its minute), while the devices of the tuning
// table stay known. Between passes, with the timer stopped, the clock
// moves on, the previous pass's minutes are sealed and the frames are
// made again. BenchmarkIngest replays the frames into the same minutes,
// where after the warm-up every event repeats one already counted.
func BenchmarkIngestLive(b *testing.B) {
	evs := synthetic(1<<20, 200_000, 300, 10, 1)
	const span = 10 * msPerMinute
	for _, model := range []Model{Events, Tuning} {
		b.Run(model.String(), func(b *testing.B) {
			var now atomic.Int64
			cfg := DefaultConfig()
			cfg.Model, cfg.Key, cfg.DayStart = model, benchKey(b), 20*time.Hour
			cfg.Now = func() time.Time { return time.UnixMilli(now.Load()) }
			a, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			var rej event.Rejections
			moved := slices.Clone(evs)
			var fs [][]byte
			pass := 0
			nextPass := func() {
				shift := int64(pass) * span
				for i := range moved {
					moved[i].TS = evs[i].TS + shift
				}
				fs = frames(b, moved, 256)
				now.Store(benchStart.UnixMilli() + shift + span)
				a.SealThrough(benchStart.UnixMilli() + shift)
				pass++
			}
			fw := newFrameWriter(a)
			ingest := func(f []byte) int { return fw.write(f, &rej) }
			nextPass() // warm-up: devices and channels known
			for _, f := range fs {
				ingest(f)
			}
			nextPass()
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := range b.N {
				if i > 0 && i%len(fs) == 0 {
					b.StopTimer()
					nextPass()
					b.StartTimer()
				}
				n += ingest(fs[i%len(fs)])
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if rej.Total() != 0 {
				b.Fatalf("rejections: %+v %v", rej.Count, rej.First)
			}
		})
	}
}

// BenchmarkIngestParallel is the same pipeline with one writer per core.
func BenchmarkIngestParallel(b *testing.B) {
	evs := synthetic(1<<20, 200_000, 300, 10, 1)
	fs := frames(b, evs, 256)
	for _, model := range []Model{Events, Tuning} {
		b.Run(model.String(), func(b *testing.B) {
			a := benchAggregator(b, model, time.Hour)
			w := newFrameWriter(a)
			for _, f := range fs {
				w.write(f, nil)
			}
			var mu sync.Mutex
			total := 0
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := newFrameWriter(a)
				n, i := 0, rand.IntN(len(fs))
				for pb.Next() {
					n += w.write(fs[i%len(fs)], nil)
					i++
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkWriteJSON is the JSON single-event path: one object per message.
func BenchmarkWriteJSON(b *testing.B) {
	evs := synthetic(1<<16, 200_000, 300, 10, 2)
	msgs := make([][]byte, len(evs))
	for i := range evs {
		msgs[i] = event.AppendJSON(nil, &evs[i])
	}
	a := benchAggregator(b, Tuning, time.Hour)
	w := a.NewWriter()
	var dec event.Decoder
	batch := make([]event.Event, 0, 1)
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		batch = dec.Decode(batch[:0], msgs[i%len(msgs)], nil)
		n += w.Write(batch, nil)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// dayOfMinutes returns an aggregator holding 24 h of sealed minutes: ten
// minutes really ingested (channels Zipf-distributed over 500k boxes, the
// biggest dense, the long tail sparse), then replayed as every minute of the
// day through the store, so hourly rollups are built as in service.
func dayOfMinutes(tb testing.TB, channels int) *Aggregator {
	a := benchAggregator(tb, Events, 48*time.Hour)
	evs := synthetic(2_000_000, 500_000, channels, 10, 3)
	a.NewWriter().Write(evs, nil)
	a.SealThrough(benchStart.Add(10 * time.Minute).UnixMilli())
	tmpl := a.Minutes(benchStart, benchStart.Add(10*time.Minute))
	if len(tmpl) != 10 {
		tb.Fatalf("template minutes: %d", len(tmpl))
	}
	for m := 10; m < 24*60; m++ {
		min := *tmpl[m%10]
		min.Start = benchStart.Add(time.Duration(m) * time.Minute)
		a.store.put(&min, a)
	}
	return a
}

// weekOfHours returns an aggregator whose reach tier holds every hour of
// the ISO week of benchStart: one hour really sealed (ten minutes of
// channels Zipf-distributed over 500k boxes), repeated through the store.
func weekOfHours(tb testing.TB, channels int) (*Aggregator, time.Time) {
	a := benchAggregator(tb, Events, 48*time.Hour)
	a.NewWriter().Write(synthetic(2_000_000, 500_000, channels, 10, 3), nil)
	a.SealThrough(benchStart.Add(time.Hour).UnixMilli())
	h := benchStart.Unix() / 3600
	tmpl := a.store.reach[h]
	if tmpl == nil {
		tb.Fatal("no reach-tier hour sealed")
	}
	week, _ := a.cal.Span(keys.Reach, a.cal.Epoch(keys.Reach, benchStart))
	for n := week.Unix() / 3600; n < week.Unix()/3600+7*24; n++ {
		a.store.putReach(n, tmpl)
	}
	return a, week
}

// BenchmarkQuery24h measures the queries over a day of sealed minutes (the
// minute tier), and a week of the reach tier.
func BenchmarkQuery24h(b *testing.B) {
	a := dayOfMinutes(b, 500)
	from, to := benchStart, benchStart.Add(24*time.Hour)
	b.Run("audience-curve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Audience("ch-000", from, to); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reach-one-channel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Reach([]string{"ch-000"}, from, to); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reach-all-channels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Reach(nil, from, to); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reach-ten-channels-unaligned", func(b *testing.B) {
		chans := make([]string, 10)
		for i := range chans {
			chans[i] = fmt.Sprintf("ch-%03d", i)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Reach(chans, from.Add(30*time.Minute), to.Add(-30*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Now()
		}
	})
	w, week := weekOfHours(b, 500)
	for _, c := range []struct {
		name  string
		chans []string
	}{{"reach-tier-7d-one-channel", []string{"ch-000"}}, {"reach-tier-7d-all-channels", nil}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := w.Reach(c.chans, week, week.Add(7*24*time.Hour))
				if err != nil || r.Tier != keys.Reach {
					b.Fatal(r, err)
				}
			}
		})
	}
}

// BenchmarkSealMinute is the sealer's work for one minute of a large live
// audience: every device carried forward and credited (tuning), the
// minute's sketches built from the shards' counters, stored and rolled up.
// A sealed minute must be published within 1 s of the watermark passing it.
func BenchmarkSealMinute(b *testing.B) {
	for _, devices := range []int{200_000, 2_000_000} {
		b.Run(fmt.Sprintf("tuning-%dk-devices", devices/1000), func(b *testing.B) {
			evs := oncePerDevice(devices)
			// The clock follows the minutes sealed, and every 3 h (with the
			// timer stopped) each box reports its channel again, so that
			// however many minutes a run seals, none is silent for the 4 h
			// after which it would be taken to have stopped watching.
			var now atomic.Int64
			cfg := DefaultConfig()
			cfg.Model, cfg.Key, cfg.DayStart = Tuning, benchKey(b), 20*time.Hour
			cfg.Now = func() time.Time { return time.UnixMilli(now.Load()) }
			a, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			w := a.NewWriter()
			m := benchStart.Add(time.Minute)
			report := func() {
				for i := range evs {
					evs[i].TS = m.UnixMilli() - msPerMinute + int64(i%50_000)
				}
				now.Store(m.UnixMilli())
				if n := w.Write(evs, nil); n != len(evs) {
					b.Fatalf("%d of %d reports accepted", n, len(evs))
				}
			}
			report()
			a.SealThrough(m.UnixMilli())
			b.ReportAllocs()
			for i := 1; b.Loop(); i++ {
				m = m.Add(time.Minute)
				if i%180 == 0 {
					b.StopTimer()
					report()
					b.StartTimer()
				}
				now.Store(m.UnixMilli())
				a.SealThrough(m.UnixMilli())
			}
			if got := a.Latest().Total.Value; got != uint64(devices) {
				b.Fatalf("total %d, want %d", got, devices)
			}
		})
	}
}

// BenchmarkSealHour is the sealer's extra work at the end of an hour: the
// shards' partials of the reach tier's hour merged into one hour of sketches
// and estimated once, for a large live audience carried forward through the
// hour (tuning: every device on one channel).
func BenchmarkSealHour(b *testing.B) {
	for _, devices := range []int{200_000, 2_000_000} {
		b.Run(fmt.Sprintf("tuning-%dk-devices", devices/1000), func(b *testing.B) {
			a := benchAggregator(b, Tuning, time.Hour)
			a.NewWriter().Write(oncePerDevice(devices), nil)
			a.SealThrough(benchStart.Add(2 * time.Minute).UnixMilli())
			var hps []*hourPartial
			for _, s := range a.shards {
				hps = append(hps, s.hours...)
			}
			b.ReportAllocs()
			for b.Loop() {
				clones := make([]*hourPartial, len(hps))
				for i, h := range hps {
					clones[i] = h.clone()
				}
				a.sealHours(clones)
			}
			if n := a.store.newestHour; n != benchStart.Unix()/3600 {
				b.Fatalf("newest reach hour %d", n)
			}
		})
	}
}
