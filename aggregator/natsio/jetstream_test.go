package natsio

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// TestJetStreamSnapshotPosition takes checkpoint snapshots while the
// intake ingests one event per message: in every snapshot the position
// (the intake's Sequence, which the service records) must be that of the
// last message whose events the snapshot holds, i.e. equal to the events
// accepted. A position stored after the events (outside the ingest gate)
// trails them by one message now and then, and a restart would replay
// that message.
func TestJetStreamSnapshotPosition(t *testing.T) {
	const messages = 20000
	f := newFixture(t, aggregator.Events, true)
	j, err := StartJetStream(t.Context(), JetStreamConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Stream: "TV", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Stop(t.Context())
	// Published on core NATS, which the stream captures: as fast as the
	// server stores them, so that the intake is busy while the snapshots
	// are taken.
	for i := range messages {
		b := frame(t, false, ev(fmt.Sprintf("stb-%d", i), "npo1", t0.Add(time.Second)))
		if err := f.prod.Publish(fmt.Sprintf("tv.events.p%d", i%4), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.prod.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var snapshots, mismatches atomic.Int64
	var first string
	for f.agg.Accepted() < messages || j.Sequence() < messages {
		f.agg.Snapshot(func() uint64 {
			seq, acc := j.Sequence(), f.agg.Accepted()
			snapshots.Add(1)
			if seq != acc && mismatches.Add(1) == 1 {
				first = fmt.Sprintf("position %d with %d events (one per message)", seq, acc)
			}
			return seq
		})
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d of %d events, position %d", f.agg.Accepted(), messages, j.Sequence())
		}
	}
	if n := mismatches.Load(); n > 0 {
		t.Fatalf("%d of %d snapshots disagree with their position, first: %s", n, snapshots.Load(), first)
	}
	if snapshots.Load() < 10 {
		t.Fatalf("only %d snapshots during the ingest of %d messages: the test checked nothing", snapshots.Load(), messages)
	}
	t.Logf("%d snapshots, all at the position of their state", snapshots.Load())
}
