package event_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// workload returns n events shaped like a producer's batch: devices out of
// 2M boxes, channels out of a 300-channel line-up with Zipf popularity (so a
// 256-event batch names about a hundred), 40 regions, a second of ts spread,
// mostly tunes.
func workload(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	zipf := rand.NewZipf(r, 1.1, 4, 299)
	evs := make([]event.Event, n)
	for i := range evs {
		kind := event.Tune
		switch x := r.IntN(100); {
		case x < 15:
			kind = event.Heartbeat
		case x < 20:
			kind = event.Standby
		}
		evs[i] = event.Event{
			Device:  fmt.Appendf(nil, "stb-%07d", r.IntN(2_000_000)),
			Channel: fmt.Appendf(nil, "ch%03d", zipf.Uint64()),
			Region:  fmt.Appendf(nil, "reg-%02d", r.IntN(40)),
			TS:      1764187200000 + int64(r.IntN(1000)),
			Kind:    kind,
		}
	}
	return evs
}

func frameOf(tb testing.TB, evs []event.Event, compress bool) []byte {
	tb.Helper()
	var enc event.BatchEncoder
	for i := range evs {
		if err := enc.Add(&evs[i]); err != nil {
			tb.Fatalf("Add(event %d): %v", i, err)
		}
	}
	return enc.AppendFrame(nil, compress)
}

func benchDecode(b *testing.B, msg []byte, want int) {
	var d event.Decoder
	var rej event.Rejections
	dst := d.Decode(nil, msg, &rej)
	if len(dst) != want || rej.Total() != 0 {
		b.Fatalf("decoded %d events, %d rejections (%v); want %d, 0", len(dst), rej.Total(), rej.First, want)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = d.Decode(dst[:0], msg, &rej)
	}
	b.ReportMetric(float64(b.N)*float64(want)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(want), "ns/event")
}

func BenchmarkDecodeBinary256(b *testing.B) {
	benchDecode(b, frameOf(b, workload(256, 1), false), 256)
}

func BenchmarkDecodeBinaryS2_256(b *testing.B) {
	benchDecode(b, frameOf(b, workload(256, 1), true), 256)
}

func BenchmarkDecodeJSONSingle(b *testing.B) {
	evs := workload(1, 1)
	benchDecode(b, event.AppendJSON(nil, &evs[0]), 1)
}

func BenchmarkDecodeJSONArray256(b *testing.B) {
	benchDecode(b, event.AppendJSONArray(nil, workload(256, 1)), 256)
}

// BenchmarkDecodeJSONArray256Stdlib is the reference the JSON scanner
// replaces: encoding/json into a struct of the same fields.
func BenchmarkDecodeJSONArray256Stdlib(b *testing.B) {
	msg := event.AppendJSONArray(nil, workload(256, 1))
	type jsonEvent struct {
		Device, Channel, Kind, Region string
		TS                            int64
	}
	var evs []jsonEvent
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		evs = evs[:0]
		if err := json.Unmarshal(msg, &evs); err != nil || len(evs) != 256 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*256/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/event")
}

func BenchmarkEncodeBinary256(b *testing.B) {
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("s2=%v", compress), func(b *testing.B) {
			evs := workload(256, 1)
			var enc event.BatchEncoder
			var frame []byte
			b.ReportAllocs()
			for b.Loop() {
				enc.Reset()
				for i := range evs {
					if err := enc.Add(&evs[i]); err != nil {
						b.Fatal(err)
					}
				}
				frame = enc.AppendFrame(frame[:0], compress)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportMetric(float64(b.N)*float64(len(evs))/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/event")
		})
	}
}

// BenchmarkEncodeIndexed256 is BenchmarkEncodeBinary256/s2=false by
// ChannelIndex and RegionIndex (by key) of each event and one
// AddIndexedEvents of the batch (a producer that keeps the indexes per
// batch saves most of the lookups too).
func BenchmarkEncodeIndexed256(b *testing.B) {
	evs := workload(256, 1)
	keys := make([][2]int, len(evs))
	for i := range evs {
		var ch, rg int
		fmt.Sscanf(string(evs[i].Channel), "ch%d", &ch)
		fmt.Sscanf(string(evs[i].Region), "reg-%d", &rg)
		keys[i] = [2]int{ch, rg}
	}
	var enc event.BatchEncoder
	var frame []byte
	batch := make([]event.IndexedEvent, len(evs))
	b.ReportAllocs()
	for b.Loop() {
		enc.Reset()
		for i := range evs {
			ev := &evs[i]
			ci, err := enc.ChannelIndex(ev.Channel, keys[i][0])
			if err != nil {
				b.Fatal(err)
			}
			ri, err := enc.RegionIndex(ev.Region, keys[i][1])
			if err != nil {
				b.Fatal(err)
			}
			batch[i] = event.IndexedEvent{TS: ev.TS, Device: ev.Device, Channel: int32(ci), Region: int32(ri), Kind: ev.Kind}
		}
		if _, err := enc.AddIndexedEvents(batch); err != nil {
			b.Fatal(err)
		}
		frame = enc.AppendFrame(frame[:0], false)
	}
	if want := frameOf(b, evs, false); !bytes.Equal(frame, want) {
		b.Fatal("AddIndexedEvents' frame differs from Add's")
	}
	b.SetBytes(int64(len(frame)))
	b.ReportMetric(float64(b.N)*float64(len(evs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/event")
}

func BenchmarkEncodeJSON(b *testing.B) {
	evs := workload(256, 1)
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = event.AppendJSON(buf[:0], &evs[i&255])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
