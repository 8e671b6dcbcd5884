package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

func TestSameSeedSameBytes(t *testing.T) {
	cfg := Config{Seed: 42, Devices: 3000, Channels: 60, Duration: 40 * time.Minute, Truth: true,
		Heartbeat: time.Minute, Duplicates: 0.02, Jitter: 3 * time.Second, ReachSets: [][]string{{"ch-001", "ch-002"}}}
	encode := func(cfg Config) (stream, truth []byte) {
		evs, tr := generate(t, cfg)
		var enc event.BatchEncoder
		for i := range evs {
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
			if enc.Len() == 500 {
				stream = enc.AppendFrame(stream, false)
				enc.Reset()
			}
		}
		stream = enc.AppendFrame(stream, false)
		var buf bytes.Buffer
		if _, err := tr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return stream, buf.Bytes()
	}
	s1, t1 := encode(cfg)
	s2, t2 := encode(cfg)
	if !bytes.Equal(s1, s2) {
		t.Error("same seed and parameters: the events differ")
	}
	if !bytes.Equal(t1, t2) {
		t.Error("same seed and parameters: the truth files differ")
	}
	cfg.Seed++
	s3, t3 := encode(cfg)
	if bytes.Equal(s1, s3) || bytes.Equal(t1, t3) {
		t.Error("another seed gave the same events or truth")
	}
}

func TestNextBatches(t *testing.T) {
	cfg := Config{Seed: 5, Devices: 5000, Duration: 20 * time.Minute, BatchEvents: 100}
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var batch []event.Event
	var n int64
	last := int64(math.MinInt64)
	start := cfg.withDefaults().Start.UnixMilli()
	end := start + cfg.Duration.Milliseconds()
	for g.Next(context.Background(), &batch) {
		if len(batch) == 0 || len(batch) > 100 {
			t.Fatalf("batch of %d events, want 1..100", len(batch))
		}
		for _, e := range batch {
			if e.TS < last {
				t.Fatalf("ts %d after %d: not in order", e.TS, last)
			}
			if e.TS < start || e.TS >= end {
				t.Fatalf("ts %d outside the run [%d, %d)", e.TS, start, end)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid event: %v", err)
			}
			last = e.TS
		}
		n += int64(len(batch))
	}
	if n != g.Events() || n < 5000 {
		t.Errorf("%d events seen, Events() = %d", n, g.Events())
	}
	if g.Next(context.Background(), &batch) || len(batch) != 0 {
		t.Error("Next after the end returned events")
	}
	if g.Truth() != nil {
		t.Error("Truth() without Config.Truth is not nil")
	}
}

func TestJitterKeepsEachBoxInOrder(t *testing.T) {
	evs, _ := generate(t, Config{Seed: 9, Devices: 2000, Duration: 30 * time.Minute, Jitter: 10 * time.Second})
	last := map[string]int64{}
	late := 0
	var maxTS int64
	for _, e := range evs {
		if e.TS < last[string(e.Device)] {
			t.Fatalf("a box's ts went back from %d to %d", last[string(e.Device)], e.TS)
		}
		last[string(e.Device)] = e.TS
		if e.TS < maxTS {
			late++
			if maxTS-e.TS > 10000 {
				t.Fatalf("ts %d is %d ms behind the stream, more than the jitter", e.TS, maxTS-e.TS)
			}
		}
		maxTS = max(maxTS, e.TS)
	}
	if late < len(evs)/10 {
		t.Errorf("only %d of %d events arrive after a later one", late, len(evs))
	}
}

func TestNextAllocatesNothing(t *testing.T) {
	g, err := NewGenerator(Config{Seed: 1, Devices: 20000, Duration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var batch []event.Event
	ctx := context.Background()
	for range 2000 { // warm up: the queue's buckets grow to their working size
		g.Next(ctx, &batch)
	}
	allocs := testing.AllocsPerRun(200, func() { g.Next(ctx, &batch) })
	if allocs > 0.1 {
		t.Errorf("Next allocates %.2f times per batch of %d events", allocs, len(batch))
	}
}

func TestPace(t *testing.T) {
	// 600× wall-clock speed: 30 s of event time take 50 ms.
	g, err := NewGenerator(Config{Seed: 3, Devices: 2000, Duration: 30 * time.Second, Pace: 600})
	if err != nil {
		t.Fatal(err)
	}
	start := g.Config().Start.UnixMilli()
	wall0 := time.Now()
	var batch []event.Event
	n := 0
	for g.Next(context.Background(), &batch) {
		due := wall0.Add(time.Duration(float64(batch[len(batch)-1].TS-start)/600) * time.Millisecond)
		if time.Now().Before(due.Add(-2 * time.Millisecond)) {
			t.Fatalf("an event of ts +%d ms was handed over %s early", batch[len(batch)-1].TS-start, time.Until(due))
		}
		n++
	}
	if el := time.Since(wall0); el < 45*time.Millisecond {
		t.Errorf("30 s at pace 600 took %s, want ≥ 50 ms", el)
	}
	if n < 10 {
		t.Errorf("%d batches: a paced generator should hand over events as they fall due", n)
	}

	g, _ = NewGenerator(Config{Seed: 3, Devices: 100, Duration: time.Hour, Pace: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for g.Next(ctx, &batch) {
	}
	if !errors.Is(g.Err(), context.DeadlineExceeded) {
		t.Errorf("Err() after the context ended = %v, want deadline exceeded", g.Err())
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		_, err := NewGenerator(cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewGenerator: %v, want an error with %q", err, want)
		}
	}
	f(Config{Devices: -1}, "devices -1")
	f(Config{Devices: MaxDevices + 1}, "devices 100000000")
	f(Config{Duration: 31 * 24 * time.Hour}, "duration 744h0m0s")
	f(Config{MinDwell: 2 * time.Minute}, "min-dwell 2m0s")
	f(Config{Inactivity: time.Second}, "inactivity 1s is outside")
	f(Config{Heartbeat: time.Millisecond}, "heartbeat 1ms")
	f(Config{Duplicates: 0.9}, "duplicates 0.9")
	f(Config{Jitter: time.Minute}, "jitter 1m0s")
	f(Config{Pace: -1}, "pace -1")
	f(Config{ReachSlots: []time.Duration{90 * time.Second}}, "reach-slots: 1m30s")
	f(Config{Channels: 5, ReachSets: [][]string{{"ch-006"}}}, `"ch-006" is not a channel`)
	f(Config{ReachSets: [][]string{{}}}, "reach-set 0 is empty")
	b := DefaultBehaviour()
	b.StandbyShare = 1.5
	f(Config{Behaviour: &b}, "standby-share 1.5")
	b = DefaultBehaviour()
	b.OnShare[4] = 0
	f(Config{Behaviour: &b}, "on-share at 04:00")
	b = DefaultBehaviour()
	b.BreakLength = b.BreakEvery
	f(Config{Behaviour: &b}, "break-length 15m0s")
}

// dayTruth is a seeded day of 6000 boxes, shared by the shape tests.
func dayTruth(t *testing.T) ([]event.Event, *Truth) {
	t.Helper()
	return generate(t, Config{Seed: 2025, Devices: 6000, Truth: true,
		Start: time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), Duration: 24 * time.Hour})
}

// TestWorkloadShape checks the published shape of TV viewing (docs/workload.md)
// with bounds wide enough for a seeded 6000-box day.
func TestWorkloadShape(t *testing.T) {
	evs, tr := dayTruth(t)
	at := func(hh, mm int) time.Time { return time.Date(2025, 3, 14, hh, mm, 0, 0, time.UTC) }

	// Daily curve: prime-time peak against the 04:00 trough.
	peak, trough := 0, 0
	for m := range 60 {
		peak += tr.Total(Tuning, at(20, 30).Add(time.Duration(m)*time.Minute))
		trough += tr.Total(Tuning, at(4, 0).Add(time.Duration(m)*time.Minute))
	}
	peakShare := float64(peak) / 60 / 6000
	if peakShare < 0.40 || peakShare > 0.65 {
		t.Errorf("boxes on at 20:30-21:30: %.2f, want 0.40..0.65", peakShare)
	}
	if ratio := float64(peak) / float64(max(trough, 1)); ratio < 5 {
		t.Errorf("prime time / 04:00 audience = %.1f, want ≥ 5", ratio)
	}

	// Popularity: the top channel's share in prime time, and totals add up.
	var top, all, sum int
	for m := at(20, 0); m.Before(at(22, 0)); m = m.Add(time.Minute) {
		top += tr.Audience(Tuning, "ch-001", m)
		all += tr.Total(Tuning, m)
		for _, c := range tr.Channels() {
			sum += tr.Audience(Tuning, c, m)
		}
		if e := tr.Total(Events, m); e > tr.Total(Tuning, m)+tr.Zaps("", m) {
			t.Errorf("events-model total %d at %s exceeds the boxes that could send", e, m.Format("15:04"))
		}
	}
	if sum != all {
		t.Errorf("tuning totals 20:00-22:00 add up to %d, the sum over channels is %d", all, sum)
	}
	if share := float64(top) / float64(all); share < 0.20 || share > 0.30 {
		t.Errorf("ch-001 share 20:00-22:00 = %.3f, want 0.20..0.30", share)
	}

	// Zapping: bursts of short dwells, most of them ±1, and spikes at
	// programme boundaries.
	type prev struct {
		ts int64
		ch string
	}
	last := map[string]prev{}
	var tunes, quick, linear int
	for _, e := range evs {
		if e.Kind != event.Tune {
			continue
		}
		tunes++
		if p, ok := last[string(e.Device)]; ok && e.TS-p.ts < 10000 {
			quick++
			if d := channelNum(string(e.Channel)) - channelNum(p.ch); d == 1 || d == -1 || d == 299 || d == -299 {
				linear++
			}
		}
		last[string(e.Device)] = prev{e.TS, string(e.Channel)}
	}
	if f := float64(quick) / float64(tunes); f < 0.3 {
		t.Errorf("%.2f of tunes come within 10 s of the box's previous one, want ≥ 0.3 (zapping bursts)", f)
	}
	if f := float64(linear) / float64(quick); f < 0.4 || f > 0.8 {
		t.Errorf("%.2f of quick zaps are ±1, want 0.4..0.8", f)
	}
	boundary, mid := 0, 0
	for h := 18; h < 23; h++ {
		boundary += tr.Zaps("", at(h, 0)) + tr.Zaps("", at(h, 1))
		mid += tr.Zaps("", at(h, 8)) + tr.Zaps("", at(h, 9))
	}
	if float64(boundary) < 1.5*float64(mid) {
		t.Errorf("zaps at hh:00-hh:02 = %d, at hh:08-hh:10 = %d: no spike at programme boundaries", boundary, mid)
	}
	if info := tr.Info(); info.Standbys == 0 || info.Standbys > info.Tunes/3 {
		t.Errorf("%d standbys for %d tunes", info.Standbys, info.Tunes)
	}
}

// TestStateReport checks that the stream opens with a tune from every box
// that is on at Start, about the expected share of the population.
func TestStateReport(t *testing.T) {
	cfg := Config{Seed: 8, Devices: 20000, Duration: time.Minute}
	evs, _ := generate(t, cfg)
	start := cfg.withDefaults().Start.UnixMilli()
	n := 0
	for _, e := range evs {
		if e.TS != start {
			break
		}
		if e.Kind != event.Tune {
			t.Fatalf("a %s in the state report", e.Kind)
		}
		n++
	}
	// At 19:30 the on-share is 0.495 of the 92% active boxes.
	b := DefaultBehaviour()
	p := (1 - b.DormantShare) * (b.OnShare[19] + b.OnShare[20]) / 2
	want := p * 20000
	if sd := math.Sqrt(20000 * p * (1 - p)); math.Abs(float64(n)-want) > 4*sd {
		t.Errorf("state report of %d boxes, want %.0f ± %.0f (4σ)", n, want, 4*sd)
	}
}

func TestNames(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(DeviceName(0), "stb-00000000")
	f(DeviceName(12345), "stb-00012345")
	f(DeviceName(MaxDevices), "stb-99999999")
	// Every digit position at its carries (putDevice computes the digits
	// in lanes of one word).
	for _, d := range []int{1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 10001, 99999, 100000, 1234567, 9999999,
		10000000, 12345678, 87654321, 90909090, 99990000, 99999998} {
		f(DeviceName(d), fmt.Sprintf("stb-%08d", d))
	}
	f(ChannelName(7, 300), "ch-007")
	f(ChannelName(7, 1200), "ch-0007")
	f(RegionName(7, 40), "r-07")
	f(RegionName(7, 400), "r-007")
}

// TestEncodeMatchesAdd checks that Generator.Encode writes the frames that
// BatchEncoder.Add of each event writes, with heartbeats, duplicates and
// jitter, and more regions and channels than one frame names.
func TestEncodeMatchesAdd(t *testing.T) {
	cfg := Config{Seed: 3, Devices: 4000, Channels: 900, Regions: 150, Duration: 30 * time.Minute,
		Heartbeat: time.Minute, Duplicates: 0.05, Jitter: 2 * time.Second, BatchEvents: 700}
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var keyed, plain event.BatchEncoder
	var batch []event.Event
	var n int
	for b := 0; g.Next(context.Background(), &batch); b++ {
		if err := g.Encode(&keyed); err != nil {
			t.Fatalf("batch %d: Encode: %v", b, err)
		}
		for i := range batch {
			if err := plain.Add(&batch[i]); err != nil {
				t.Fatalf("batch %d: Add: %v", b, err)
			}
		}
		if got, want := keyed.AppendFrame(nil, false), plain.AppendFrame(nil, false); !bytes.Equal(got, want) {
			t.Fatalf("batch %d: Encode's frame differs from Add's", b)
		}
		if b%3 != 0 { // frames of one and several batches
			keyed.Reset()
			plain.Reset()
		}
		n += len(batch)
	}
	if n < 10000 {
		t.Fatalf("only %d events: the test covers too little", n)
	}
}

// TestRatesNext checks the search of rates.next against a scan of every
// minute, on rates with zeros, steps and a long tail.
func TestRatesNext(t *testing.T) {
	r := rng{s: 9}
	rate := make([]float64, 1500)
	for k := range rate {
		switch {
		case k%97 < 10:
			rate[k] = 0
		case k < 700:
			rate[k] = 0.001 + r.float()*0.05
		default:
			rate[k] = r.float() * 3
		}
	}
	rs := newRates(rate)
	scan := func(u, x float64) (float64, bool) {
		k := int(u)
		target := rs.cum[k] + rs.rate[k]*(u-float64(k)) + x
		for j := k; j < len(rate); j++ {
			if rs.cum[j+1] >= target {
				return float64(j) + (target-rs.cum[j])/rs.rate[j], true
			}
		}
		return 0, false
	}
	for i := range 200_000 {
		u := r.float() * 1500
		x := r.exp() * []float64{0.01, 1, 30}[i%3]
		got, ok := rs.next(u, x)
		want, wantOK := scan(u, x)
		if got != want || ok != wantOK {
			t.Fatalf("next(%v, %v) = %v, %v; a scan gives %v, %v", u, x, got, ok, want, wantOK)
		}
	}
}

// TestNextFrameMatchesNext checks that NextFrame gives the events of Next,
// batch by batch: its frames decode to Next's events and are byte for byte
// the frames BatchEncoder.Add of them makes, and Events and the truth agree.
// Over both models' feeds (no heartbeats; heartbeats with duplicates and
// jitter), a few seeds, more channels and regions than a frame names, and
// frames of one and of several calls.
func TestNextFrameMatchesNext(t *testing.T) {
	feeds := map[string]Config{
		"tuning": {Devices: 6000, Duration: 40 * time.Minute, Truth: true},
		"events": {Devices: 4000, Channels: 900, Regions: 150, Duration: 30 * time.Minute, Truth: true,
			Heartbeat: time.Minute, Duplicates: 0.05, Jitter: 2 * time.Second, BatchEvents: 700},
	}
	for name, cfg := range feeds {
		for _, seed := range []uint64{1, 2, 77} {
			cfg.Seed = seed
			byNext, err := NewGenerator(cfg)
			if err != nil {
				t.Fatal(err)
			}
			byFrame, _ := NewGenerator(cfg)
			ctx := context.Background()
			var plain, fused event.BatchEncoder
			var d event.Decoder
			var rej event.Rejections
			var batch, decoded []event.Event
			var pending []event.Event // Next's events in the frame
			frames := 0
			check := func(b int) {
				t.Helper()
				got := fused.AppendFrame(nil, false)
				if want := plain.AppendFrame(nil, false); !bytes.Equal(got, want) {
					t.Fatalf("%s seed %d batch %d: NextFrame's frame differs from Add's of Next's events", name, seed, b)
				}
				decoded = d.Decode(decoded[:0], got, &rej)
				if rej.Total() != 0 || len(decoded) != len(pending) {
					t.Fatalf("%s seed %d batch %d: %d events decoded, %d rejected (%v); want %d",
						name, seed, b, len(decoded), rej.Total(), rej.First, len(pending))
				}
				for i, e := range decoded {
					w := pending[i]
					if !bytes.Equal(e.Device, w.Device) || !bytes.Equal(e.Channel, w.Channel) ||
						!bytes.Equal(e.Region, w.Region) || e.TS != w.TS || e.Kind != w.Kind {
						t.Fatalf("%s seed %d batch %d event %d: NextFrame's %s %s %s %d %s, Next's %s %s %s %d %s", name, seed, b, i,
							e.Device, e.Channel, e.Region, e.TS, e.Kind, w.Device, w.Channel, w.Region, w.TS, w.Kind)
					}
				}
				plain.Reset()
				fused.Reset()
				pending = pending[:0]
				frames++
			}
			b := 0
			for ; byNext.Next(ctx, &batch); b++ {
				if !byFrame.NextFrame(ctx, &fused) {
					t.Fatalf("%s seed %d batch %d: NextFrame ended (%v), Next did not", name, seed, b, byFrame.Err())
				}
				for i := range batch {
					if err := plain.Add(&batch[i]); err != nil {
						t.Fatalf("%s seed %d batch %d: Add: %v", name, seed, b, err)
					}
					e := batch[i]
					e.Device = bytes.Clone(e.Device)
					pending = append(pending, e)
				}
				if byFrame.Events() != byNext.Events() || !byFrame.Now().Equal(byNext.Now()) {
					t.Fatalf("%s seed %d batch %d: Events, Now %d, %s; Next's %d, %s", name, seed, b,
						byFrame.Events(), byFrame.Now(), byNext.Events(), byNext.Now())
				}
				if b%4 != 3 { // else the next call adds to the same frame
					check(b)
				}
			}
			if len(pending) > 0 {
				check(b)
			}
			if byFrame.NextFrame(ctx, &fused) || fused.Len() != 0 || byFrame.Err() != nil {
				t.Fatalf("%s seed %d: NextFrame after the end added %d events (err %v)", name, seed, fused.Len(), byFrame.Err())
			}
			if n := byNext.Events(); n < 20000 || frames < 10 {
				t.Fatalf("%s seed %d: only %d events in %d frames: the test covers too little", name, seed, n, frames)
			}
			var tNext, tFrame bytes.Buffer
			if _, err := byNext.Truth().WriteTo(&tNext); err != nil {
				t.Fatal(err)
			}
			if _, err := byFrame.Truth().WriteTo(&tFrame); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tNext.Bytes(), tFrame.Bytes()) {
				t.Errorf("%s seed %d: NextFrame's truth differs from Next's", name, seed)
			}
		}
	}
}

// TestNextFrameFullEncoder checks that NextFrame takes no event when enc
// has no room for a batch, and says why.
func TestNextFrameFullEncoder(t *testing.T) {
	g, err := NewGenerator(Config{Seed: 4, Devices: 1000, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var enc event.BatchEncoder
	ev := event.Event{Device: []byte("stb-x"), Channel: []byte("ch-001"), TS: 1}
	for range event.DefaultMaxBatchEvents - g.Config().BatchEvents + 1 {
		if err := enc.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if g.NextFrame(context.Background(), &enc) || g.Events() != 0 {
		t.Fatalf("NextFrame into a frame of %d events took %d events", enc.Len(), g.Events())
	}
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "no room for a batch of 256") {
		t.Errorf("Err() = %v, want no room for a batch", err)
	}
}

// TestNextFrameForeignNames checks NextFrame into a frame whose
// dictionaries hold names it did not add, so that it cannot number the
// names new to the frame itself: the frame is still the one Add of Next's
// events makes after the same names.
func TestNextFrameForeignNames(t *testing.T) {
	cfg := Config{Seed: 5, Devices: 3000, Duration: 10 * time.Minute}
	byNext, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byFrame, _ := NewGenerator(cfg)
	ctx := context.Background()
	var batch []event.Event
	f := func(what string, names func(*event.BatchEncoder)) {
		t.Helper()
		var plain, fused event.BatchEncoder
		names(&plain)
		names(&fused)
		if !byNext.Next(ctx, &batch) || !byFrame.NextFrame(ctx, &fused) {
			t.Fatalf("%s: the day ended (%v)", what, byFrame.Err())
		}
		for i := range batch {
			if err := plain.Add(&batch[i]); err != nil {
				t.Fatalf("%s: Add: %v", what, err)
			}
		}
		if got, want := fused.AppendFrame(nil, false), plain.AppendFrame(nil, false); !bytes.Equal(got, want) {
			t.Errorf("%s: NextFrame's frame differs from Add's\ngot  %x\nwant %x", what, got, want)
		}
	}
	f("none", func(*event.BatchEncoder) {})
	f("a foreign channel", func(e *event.BatchEncoder) { e.ChannelIndex([]byte("zz-top"), -1) })
	f("a foreign region", func(e *event.BatchEncoder) { e.RegionIndex([]byte("zz-top"), -1) })
	f("one of its channels", func(e *event.BatchEncoder) { e.ChannelIndex([]byte(ChannelName(7, 300)), 7) })
	f("one of its channels under another key", func(e *event.BatchEncoder) { e.ChannelIndex([]byte(ChannelName(7, 300)), 9) })
	f("one of its regions", func(e *event.BatchEncoder) { e.RegionIndex([]byte(RegionName(3, 40)), -1) })
	f("none again", func(*event.BatchEncoder) {})
}

func TestNextFrameAllocatesNothing(t *testing.T) {
	g, err := NewGenerator(Config{Seed: 1, Devices: 20000, Duration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var enc event.BatchEncoder
	var frame []byte
	ctx := context.Background()
	next := func() {
		if !g.NextFrame(ctx, &enc) {
			t.Fatalf("NextFrame: %v", g.Err())
		}
		frame = enc.AppendFrame(frame[:0], false)
		enc.Reset()
	}
	for range 2000 { // warm up: the buffers grow to their working size
		next()
	}
	if allocs := testing.AllocsPerRun(200, next); allocs > 0.1 {
		t.Errorf("NextFrame allocates %.2f times per batch", allocs)
	}
}
