package natsio

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
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

// benchConn connects a producer to url, and names the 16 subjects (a
// producer's partitions) the benchmarks publish to.
func benchConn(b *testing.B, url string) (*nats.Conn, [16]string) {
	b.Helper()
	prod, err := nats.Connect(url, nats.ReconnectBufSize(-1))
	if err != nil {
		b.Fatal(err)
	}
	var subjects [16]string
	for i := range subjects {
		subjects[i] = fmt.Sprintf("tv.events.p%d", i)
	}
	return prod, subjects
}

// benchProducer publishes b.N messages from msgs over TCP, partitioned over
// 16 subjects, keeping at most benchWindow events ahead of done().
func benchProducer(b *testing.B, url string, msgs [][]byte, perMsg int, done func() uint64) {
	b.Helper()
	prod, subjects := benchConn(b, url)
	defer prod.Close()
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

// benchIntake starts an embedded server and an intake on it into a new
// aggregator of model, with the sealer running (as in the service) if seal;
// all of it stops when b's function returns.
func benchIntake(b *testing.B, model aggregator.Model, seal bool) (*Server, *aggregator.Aggregator, *Intake) {
	b.Helper()
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	key, _ := sketch.NewKey()
	agg, err := aggregator.New(aggregator.Config{Model: model, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	if seal {
		ctx, cancel := context.WithCancel(context.Background())
		sealed := make(chan struct{})
		go func() { agg.Run(ctx, time.Second); close(sealed) }()
		b.Cleanup(func() { cancel(); <-sealed })
	}
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	in, err := StartIntake(IntakeConfig{Conn: nc, Agg: agg, Metrics: telemetry.New(agg), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = in.Stop(context.Background()) })
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	return srv, agg, in
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
			srv, agg, in := benchIntake(b, c.model, false)
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

// Sustained live ingest: BenchmarkEndToEnd replays one set of 262k events
// with fixed timestamps, so after its first pass every event repeats one
// already counted in its minute, and no minute is ever sealed.
// BenchmarkSustained is the live service's situation instead: the producer
// stamps every frame with the current time as it publishes it (patching the
// frame's base_ts), the aggregator's sealer runs, and the devices change
// from pass to pass: the pool of liveFrames frames (random devices among
// liveDevices, a random channel and each device's region, every event a
// tune) is published with its device ids tagged by one of liveGenerations
// generations, the next one each pass. That is ~12.6M distinct boxes, every
// one of them zapping at every event, and at 5M events/s each device-minute
// pair repeats ~20 times in a minute: a harsher stream than a real feed at
// that rate, whose boxes mostly send heartbeats on the channel they watch.
//
// Run it for 60 s per model (bench/RESULTS.md records it):
//
//	go test -run '^$' -bench 'Sustained' -benchtime 60s ./aggregator/natsio/
//
// Before the timer starts, one pass of every generation (16M events) warms
// the service up: every box is known, as in a service that has run a while,
// so the tuning table has its steady size rather than the growth of a new
// one's (measured apart: the warm-up's rate is the first seconds of a run
// without it).
//
// It reports the rate over the whole run and over its slowest 10-second
// window (min10s-events/s), and the CPU of the whole process (server,
// producer and intake) per event. It fails on any message dropped or event
// rejected.
const (
	liveFrames      = 8192
	liveDevices     = 1 << 22
	liveGenerations = 8
)

// liveFrame is a pre-encoded binary frame with where to patch it: the
// offset of its base_ts (a 6-byte uvarint for any time from 1971 to 2109)
// and the offset of the byte of every device id that carries its
// generation.
type liveFrame struct {
	msg    []byte
	baseTS int
	gens   []int
}

// liveMessages encodes the pool of BenchmarkSustained's frames.
func liveMessages(b *testing.B) []liveFrame {
	b.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Now().UnixMilli()
	var enc event.BatchEncoder
	var dec event.Decoder
	var evs []event.Event
	pool := make([]liveFrame, liveFrames)
	for i := range pool {
		enc.Reset()
		for j := range benchBatchEvents {
			d := rng.IntN(liveDevices)
			e := event.Event{
				// Byte 3 is the generation: '-' is 0.
				Device:  fmt.Appendf(nil, "stb-%08d", d),
				Channel: fmt.Appendf(nil, "ch-%03d", 1+rng.IntN(300)),
				Region:  fmt.Appendf(nil, "r-%02d", 1+d%40),
				TS:      start + int64(j)*4,
				Kind:    event.Tune,
			}
			if err := enc.Add(&e); err != nil {
				b.Fatal(err)
			}
		}
		f := liveFrame{msg: enc.AppendFrame(nil, false)}
		// base_ts follows the 6-byte header and the count's uvarint.
		_, n := binary.Uvarint(f.msg[6:])
		f.baseTS = 6 + n
		if ts, m := binary.Uvarint(f.msg[f.baseTS:]); ts != uint64(start) || m != liveTSBytes {
			b.Fatalf("frame %d: base_ts %d in %d bytes at %d, want %d in %d", i, ts, m, f.baseTS, start, liveTSBytes)
		}
		if evs = dec.Decode(evs[:0], f.msg, nil); len(evs) != benchBatchEvents {
			b.Fatalf("frame %d decodes to %d events", i, len(evs))
		}
		// Records are in event order: find each device after the last.
		at := f.baseTS
		for _, e := range evs {
			k := bytes.Index(f.msg[at:], e.Device)
			if k < 0 {
				b.Fatalf("frame %d: device not found after byte %d", i, at)
			}
			at += k
			f.gens = append(f.gens, at+3)
			at += len(e.Device)
		}
		pool[i] = f
	}
	return pool
}

// liveTSBytes is the length of a base_ts uvarint of a current time in ms.
const liveTSBytes = 6

// liveGeneration is the device-id byte of generation g.
func liveGeneration(g int) byte { return "-abcdefghijklmnopqrstuvwxyz"[g] }

func BenchmarkSustained(b *testing.B) {
	for _, model := range []aggregator.Model{aggregator.Events, aggregator.Tuning} {
		b.Run("binary/"+model.String(), func(b *testing.B) {
			pool := liveMessages(b)
			srv, agg, in := benchIntake(b, model, true)
			sustain(b, srv.ClientURL(), pool, agg)
			if n, _ := in.sub.Load().Dropped(); n > 0 {
				b.Fatalf("the intake dropped %d messages", n)
			}
			var rejected uint64
			for r := range event.NumReasons {
				rejected += agg.Rejected(r)
			}
			if rejected > 0 {
				b.Fatalf("the aggregator rejected %d events (late: %d)", rejected, agg.Rejected(event.Late))
			}
		})
	}
}

// sustain publishes b.N frames of pool, stamped with the time of their
// publication and tagged with their pass's generation, over TCP to 16
// subjects, keeping at most benchWindow events ahead of the aggregator.
func sustain(b *testing.B, url string, pool []liveFrame, agg *aggregator.Aggregator) {
	b.Helper()
	prod, subjects := benchConn(b, url)
	defer prod.Close()
	buf := make([]byte, 0, 16<<10)
	// publish publishes frames from up to to (frame i is pool[i%len(pool)]
	// in generation i/len(pool)), then waits for every event to be counted.
	publish := func(from, to int) {
		base := agg.Accepted() - uint64(from*benchBatchEvents)
		done := func() uint64 { return agg.Accepted() - base }
		for i := from; i < to; i++ {
			for uint64(i*benchBatchEvents)-done() > benchWindow {
				// Sleep rather than spin (see benchProducer).
				time.Sleep(50 * time.Microsecond)
			}
			f := &pool[i%len(pool)]
			buf = append(buf[:0], f.msg...)
			binary.PutUvarint(buf[f.baseTS:f.baseTS+liveTSBytes], uint64(time.Now().UnixMilli()))
			g := liveGeneration(i / len(pool) % liveGenerations)
			for _, at := range f.gens {
				buf[at] = g
			}
			if err := prod.Publish(subjects[i%len(subjects)], buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := prod.Flush(); err != nil {
			b.Fatal(err)
		}
		want := uint64(to * benchBatchEvents)
		deadline := time.Now().Add(60 * time.Second)
		for done() < want {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d events arrived within 60 s", done()-uint64(from*benchBatchEvents), want-uint64(from*benchBatchEvents))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	// Warm up, untimed: every box seen once, so that the tuning table
	// has its steady size (a service that has run a while), not the
	// growth of a new one's.
	warm := liveGenerations * len(pool)
	publish(0, warm)
	// Every second, the events ingested so far, for the slowest window.
	var samples []uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		base := agg.Accepted()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				samples = append(samples, agg.Accepted()-base)
			}
		}
	}()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.SetBytes(int64(len(pool[0].msg)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	publish(warm, warm+b.N)
	want := uint64(b.N * benchBatchEvents)
	elapsed := time.Since(start)
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	close(stop)
	<-sampled
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(want), "cpu-ns/event")
	if len(samples) >= 10 {
		slowest := samples[9]
		for k := 10; k < len(samples); k++ {
			slowest = min(slowest, samples[k]-samples[k-10])
		}
		b.ReportMetric(float64(slowest)/10, "min10s-events/s")
	}
	// The seconds' rates, in millions, with -test.v.
	if len(samples) == 0 {
		return
	}
	var rates []string
	for k := range samples {
		n := samples[k]
		if k > 0 {
			n -= samples[k-1]
		}
		rates = append(rates, fmt.Sprintf("%.1f", float64(n)/1e6))
	}
	b.Logf("millions of events ingested each second: %s", strings.Join(rates, " "))
}
