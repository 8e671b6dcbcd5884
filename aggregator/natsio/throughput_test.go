package natsio

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
	"github.com/ratingsd/ratingsd/sketch"
)

// End-to-end throughput through core NATS on this machine: a producer on a
// TCP connection to the embedded server publishes, the intake (on the
// in-process connection, GOMAXPROCS workers) decodes and ingests into a real
// aggregator. The producer keeps at most a window of events in flight, so
// the figure is the sustained rate with no message dropped; the benchmark
// fails if the subscription dropped any. The Ceiling benchmarks run the same
// producer against a subscriber that only decodes (binary) or only counts
// (JSON, what `nats bench` measures), the reference the targets are set
// against. bench/RESULTS.md records the figures, measured with
//
//	go test -run '^$' -bench 'EndToEnd/binary|Ceiling/binary' -benchtime 4s -count 2 ./aggregator/natsio/
//	go test -run '^$' -bench 'EndToEnd/json-single|Ceiling/json-single' -benchtime 3s -count 2 ./aggregator/natsio/

const (
	benchDevices     = 1 << 20
	benchBatchEvents = 256
	benchFrames      = 1024
	// benchWindow bounds the events published but not yet ingested.
	benchWindow = 1 << 20
)

// benchMessages returns pre-encoded messages: binary frames of
// benchBatchEvents events (optionally S2), or one JSON event each.
func benchMessages(b *testing.B, format telemetry.Format) (msgs [][]byte, perMsg int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UnixMilli()
	mk := func() event.Event {
		return event.Event{
			Device:  fmt.Appendf(nil, "stb-%08d", rng.IntN(benchDevices)),
			Channel: fmt.Appendf(nil, "ch-%03d", 1+rng.IntN(300)),
			Region:  fmt.Appendf(nil, "r-%02d", 1+rng.IntN(40)),
			TS:      now - int64(rng.IntN(20_000)),
			Kind:    event.Tune,
		}
	}
	if format == telemetry.JSON {
		for range benchFrames * benchBatchEvents {
			e := mk()
			msgs = append(msgs, event.AppendJSON(nil, &e))
		}
		return msgs, 1
	}
	var enc event.BatchEncoder
	for range benchFrames {
		enc.Reset()
		for range benchBatchEvents {
			e := mk()
			if err := enc.Add(&e); err != nil {
				b.Fatal(err)
			}
		}
		msgs = append(msgs, enc.AppendFrame(nil, format == telemetry.BinaryS2))
	}
	return msgs, benchBatchEvents
}

// benchProducer publishes b.N messages from msgs over TCP, partitioned over
// 16 subjects, keeping at most benchWindow events ahead of done().
func benchProducer(b *testing.B, url string, msgs [][]byte, perMsg int, done func() uint64) {
	b.Helper()
	prod, err := nats.Connect(url, nats.ReconnectBufSize(-1))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	var subjects [16]string
	for i := range subjects {
		subjects[i] = fmt.Sprintf("tv.events.p%d", i)
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for uint64(i*perMsg)-done() > benchWindow {
			// Sleep rather than spin: on two cores a spinning producer
			// takes a core from the workers.
			time.Sleep(50 * time.Microsecond)
		}
		if err := prod.Publish(subjects[i%len(subjects)], msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := prod.Flush(); err != nil {
		b.Fatal(err)
	}
	want := uint64(b.N * perMsg)
	deadline := time.Now().Add(60 * time.Second)
	for done() < want {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d events arrived within 60 s", done(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
}

func BenchmarkEndToEnd(b *testing.B) {
	cases := []struct {
		name   string
		format telemetry.Format
		model  aggregator.Model
	}{
		{"binary/tuning", telemetry.Binary, aggregator.Tuning},
		{"binary/events", telemetry.Binary, aggregator.Events},
		{"binary-s2/tuning", telemetry.BinaryS2, aggregator.Tuning},
		{"json-single/tuning", telemetry.JSON, aggregator.Tuning},
		{"json-single/events", telemetry.JSON, aggregator.Events},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			msgs, perMsg := benchMessages(b, c.format)
			srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1", Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			key, _ := sketch.NewKey()
			agg, err := aggregator.New(aggregator.Config{Model: c.model, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			metrics := telemetry.New(agg)
			nc, err := srv.Connect()
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			in, err := StartIntake(IntakeConfig{Conn: nc, Agg: agg, Metrics: metrics, Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer in.Stop(b.Context())
			if err := nc.Flush(); err != nil {
				b.Fatal(err)
			}
			benchProducer(b, srv.ClientURL(), msgs, perMsg, agg.Accepted)
			if n, _ := in.sub.Load().Dropped(); n > 0 {
				b.Fatalf("the intake dropped %d messages", n)
			}
		})
	}
}

func BenchmarkCeiling(b *testing.B) {
	cases := []struct {
		name   string
		format telemetry.Format
		decode bool
	}{
		{"binary/decode", telemetry.Binary, true},
		{"json-single/count", telemetry.JSON, false},
		{"json-single/decode", telemetry.JSON, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			msgs, perMsg := benchMessages(b, c.format)
			srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1", Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			// The subscriber of the DESIGN.md NATS facts: TCP, one
			// goroutine.
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			var n atomic.Uint64
			var dec event.Decoder
			var evs []event.Event
			sub, err := nc.Subscribe("tv.events.>", func(m *nats.Msg) {
				if c.decode {
					evs = dec.Decode(evs[:0], m.Data, nil)
					n.Add(uint64(len(evs)))
					return
				}
				n.Add(uint64(perMsg))
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := sub.SetPendingLimits(DefaultPendingMessages, DefaultPendingBytes); err != nil {
				b.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				b.Fatal(err)
			}
			benchProducer(b, srv.ClientURL(), msgs, perMsg, n.Load)
			if d, _ := sub.Dropped(); d > 0 {
				b.Fatalf("the subscriber dropped %d messages", d)
			}
		})
	}
}
