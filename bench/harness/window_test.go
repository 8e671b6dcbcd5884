package harness

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

// TestWindowStartRepeats: streams generated for windows that windowStart
// gives at different times are the same frames but for their timestamps,
// so two runs of the suite measure the same workload; a window shifted by
// part of the ad-break cycle is not (the test can tell them apart).
func TestWindowStartRepeats(t *testing.T) {
	digest := func(start time.Time) (events int, sum [32]byte) {
		t.Helper()
		g, err := bench.NewGenerator(bench.Config{Seed: 1, Devices: 20_000, Channels: 300, Start: start, Zone: primeTime(start), Duration: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		var enc event.BatchEncoder
		var dec event.Decoder
		var frame []byte
		var evs []event.Event
		for g.NextFrame(context.Background(), &enc) {
			frame = enc.AppendFrame(frame[:0], false)
			enc.Reset()
			evs = dec.Decode(evs[:0], frame, nil)
			for _, e := range evs {
				// Everything but the time, which is the event's offset
				// into the window.
				h.Write(e.Device)
				h.Write(e.Channel)
				h.Write(e.Region)
				h.Write(binary.AppendVarint([]byte{byte(e.Kind)}, e.TS-start.UnixMilli()))
			}
			events += len(evs)
		}
		if err := g.Err(); err != nil {
			t.Fatal(err)
		}
		copy(sum[:], h.Sum(nil))
		return events, sum
	}
	start := windowStart(10 * time.Minute)
	if end := start.Add(10 * time.Minute); time.Since(end) < 2*time.Minute || time.Since(end) > 17*time.Minute {
		t.Errorf("window ends %s before now, want 2–17 min", time.Since(end).Round(time.Second))
	}
	n0, d0 := digest(start)
	n1, d1 := digest(start.Add(-bench.DefaultBehaviour().BreakEvery))
	if n0 == 0 || n0 != n1 || d0 != d1 {
		t.Errorf("windows a break cycle apart: %d and %d events, streams equal: %v", n0, n1, d0 == d1)
	}
	if n2, d2 := digest(start.Add(-7 * time.Minute)); d2 == d0 {
		t.Errorf("a window 7 minutes off the cycle gave the same stream (%d events): the test cannot tell", n2)
	}
}
