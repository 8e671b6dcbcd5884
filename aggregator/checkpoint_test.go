package aggregator

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/bench"
	"github.com/ratingsd/ratingsd/sketch"
)

var update = flag.Bool("update", false, "rewrite the golden checkpoint sections in testdata/checkpoint")

const goldenDir = "../testdata/checkpoint"

// streamFrames returns the committed stream's events re-framed in batches of
// 256 (so that a test can cut anywhere) and its truth.
func streamFrames(t testing.TB) ([][]byte, *bench.Truth) {
	t.Helper()
	const path = "../testdata/stream/prime-20k.tvs"
	truth, err := bench.LoadTruth(path + ".truth")
	if err != nil {
		t.Fatal(err)
	}
	st, err := bench.OpenStream(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var frames [][]byte
	var enc event.BatchEncoder
	var evs []event.Event
	for {
		evs, err = st.Next(evs[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
			if enc.Len() == 256 {
				frames = append(frames, enc.AppendFrame(nil, false))
				enc.Reset()
			}
		}
	}
	if enc.Len() > 0 {
		frames = append(frames, enc.AppendFrame(nil, false))
	}
	return frames, truth
}

// replay writes frames into a, sealing as the service's ticker would.
func replay(t testing.TB, a *Aggregator, frames [][]byte) {
	t.Helper()
	w := a.NewWriter()
	var dec event.Decoder
	var rej event.Rejections
	var batch []event.Event
	for i, f := range frames {
		batch = dec.Decode(batch[:0], f, &rej)
		w.Write(batch, &rej)
		if i%16 == 0 {
			a.Tick()
		}
	}
	if rej.Total() != 0 {
		t.Fatalf("%d events rejected: %v", rej.Total(), rej.First)
	}
}

// checkpointTrip snapshots a, encodes it, writes it through a real store
// directory, loads it back and restores it under cfg.
func checkpointTrip(t testing.TB, a *Aggregator, cfg Config) *Aggregator {
	t.Helper()
	sn := a.Snapshot(func() uint64 { return 42 })
	cp, err := sn.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ckpt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Write(cp, sn.Keys()); err != nil {
		t.Fatal(err)
	}
	loaded, bad, err := d.LoadNewest(a.cfg.Keys.Lookup)
	if err != nil || len(bad) > 0 {
		t.Fatalf("load: %v %v", err, bad)
	}
	if loaded.StreamSeq != 42 {
		t.Errorf("stream seq %d, want 42", loaded.StreamSeq)
	}
	b, err := Restore(cfg, loaded)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckpointRoundTrip replays the committed stream and checkpoints it at
// several points; each checkpoint is restored and fed the rest of the stream,
// and every sealed minute and reach answer must equal the original's. Restored
// into another shard count, the exact counts must still agree and estimates
// fall within their intervals (an events-model audience is exact or estimated
// depending on how its devices fell on shards).
func TestCheckpointRoundTrip(t *testing.T) {
	frames, truth := streamFrames(t)
	info := truth.Info()
	key, err := sketch.KeyFromBytes([]byte("truth-test-key16"))
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []Model{Tuning, Events} {
		t.Run(model.String(), func(t *testing.T) {
			cfg := Config{Model: model, Key: key, Shards: 8, Now: func() time.Time { return info.End }}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			type cut struct {
				at     int
				shards int // of the restored aggregator
				b      *Aggregator
			}
			n := len(frames)
			cuts := []cut{{at: n / 2, shards: 8}, {at: n * 8 / 10, shards: map[Model]int{Tuning: 2, Events: 16}[model]}}
			done := 0
			for i := range cuts {
				c := &cuts[i]
				replay(t, a, frames[done:c.at])
				done = c.at
				if a.SealedMinutes() == 0 || a.OpenMinutes() == 0 {
					t.Fatalf("cut at frame %d: %d sealed, %d open minutes; want both", c.at, a.SealedMinutes(), a.OpenMinutes())
				}
				cfg2 := cfg
				cfg2.Shards = c.shards
				if i == 0 { // through a real checkpoint directory once
					c.b = checkpointTrip(t, a, cfg2)
				} else if cp, err := a.Snapshot(nil).Encode(); err != nil {
					t.Fatal(err)
				} else if c.b, err = Restore(cfg2, cp); err != nil {
					t.Fatal(err)
				}
				if got, want := c.b.TuningTableSize(), a.TuningTableSize(); got != want {
					t.Errorf("cut at %d: tuning table: %d devices restored, want %d", c.at, got, want)
				}
				if got, want := c.b.Now(), a.Now(); !reflect.DeepEqual(got.Open, want.Open) || got.Sealed.Start != want.Sealed.Start {
					t.Errorf("cut at %d: board after restore differs:\n got %v\nwant %v", c.at, got, want)
				}
			}
			replay(t, a, frames[done:])
			a.SealThrough(info.End.UnixMilli())
			am := a.Minutes(info.Start, info.End)
			if len(am) < 55 {
				t.Fatalf("%d sealed minutes", len(am))
			}
			for _, c := range cuts {
				b := c.b
				replay(t, b, frames[c.at:])
				b.SealThrough(info.End.UnixMilli())
				if a.Accepted() != b.Accepted() || a.SealedMinutes() != b.SealedMinutes() {
					t.Errorf("cut at %d: accepted %d, %d sealed; restored %d, %d", c.at, a.Accepted(), a.SealedMinutes(), b.Accepted(), b.SealedMinutes())
				}
				bm := b.Minutes(info.Start, info.End)
				if len(am) != len(bm) {
					t.Fatalf("cut at %d: %d sealed minutes, restored %d", c.at, len(am), len(bm))
				}
				same := c.shards == cfg.Shards
				for i := range am {
					if diff := minuteDiff(am[i], bm[i], same || model == Tuning); diff != "" {
						t.Errorf("cut at %d, shards %d: minute %s: %s", c.at, c.shards, am[i].Start.Format("15:04"), diff)
					}
				}
				// Reach is a union of sealed sketches: the same when the
				// minutes' sketches are; within the interval otherwise.
				for _, w := range truth.ReachWindows() {
					for _, set := range append(truth.ReachSets(), nil) {
						ra, err1 := a.Reach(set, w.From, w.To)
						rb, err2 := b.Reach(set, w.From, w.To)
						if err1 != nil || err2 != nil {
							t.Fatalf("reach %v %s: %v %v", set, w.From, err1, err2)
						}
						if ra != rb && (same || rb.Value < ra.Low || rb.Value > ra.High) {
							t.Errorf("cut at %d, shards %d: reach %v %s..%s = %v, restored %v", c.at, c.shards, set, w.From.Format("15:04"), w.To.Format("15:04"), ra, rb)
						}
					}
				}
				// The reach tier's hours: the same devices, hashed alike.
				from, to := info.Start.Truncate(time.Hour), info.End.Truncate(time.Hour)
				for _, set := range append(truth.ReachSets(), nil, []string{"ch-001"}) {
					ra, rb := tierReach(t, a, set, from, to), tierReach(t, b, set, from, to)
					if ra.Value == 0 || ra.Estimate != rb.Estimate {
						t.Errorf("cut at %d: reach tier %v over [%s, %s): %v, restored %v", c.at, set, from.Format("15:04"), to.Format("15:04"), ra, rb)
					}
				}
			}
		})
	}
}

// tierReach is the reach of whole hours [from, to) counted by the reach
// tier, whatever the window.
func tierReach(t testing.TB, a *Aggregator, set []string, from, to time.Time) Reach {
	t.Helper()
	r, err := a.reachHours(set, from.Unix()/3600, to.Unix()/3600, 0, a.cal.Epoch(keys.Reach, from))
	if err != nil {
		t.Fatalf("reach tier %v [%s, %s): %v", set, from, to, err)
	}
	return r
}

// minuteDiff describes how two sealed minutes differ ("" if they do not).
// With exact false, the audiences need only agree within their intervals
// (an events-model audience is exact or estimated depending on how its
// devices fell on shards).
func minuteDiff(a, b *Minute, exact bool) string {
	if !exact {
		within := func(x, y sketch.Estimate) bool {
			return y.Value >= x.Low && y.Value <= x.High || x.Value >= y.Low && x.Value <= y.High
		}
		if !within(a.Total, b.Total) || len(a.Channels) != len(b.Channels) {
			return fmt.Sprintf("total %v, restored %v, %d channels, restored %d", a.Total, b.Total, len(a.Channels), len(b.Channels))
		}
		for _, c := range a.Channels {
			d, ok := b.Channel(c.Channel)
			if !ok || !within(c.Audience, d.Audience) {
				return fmt.Sprintf("channel %s %v, restored %v", c.Channel, c.Audience, d.Audience)
			}
		}
	} else {
		if a.Total != b.Total {
			return fmt.Sprintf("total %v, restored %v", a.Total, b.Total)
		}
		if !reflect.DeepEqual(strip(a.Channels), strip(b.Channels)) {
			return fmt.Sprintf("channels\n%v\nrestored\n%v", strip(a.Channels), strip(b.Channels))
		}
	}
	switch {
	case !a.Start.Equal(b.Start):
		return fmt.Sprintf("start %s, restored %s", a.Start, b.Start)
	case !reflect.DeepEqual(a.Cells(), b.Cells()):
		return fmt.Sprintf("cells %v, restored %v", a.Cells(), b.Cells())
	case !reflect.DeepEqual(a.Flows(), b.Flows()):
		return fmt.Sprintf("flows %v, restored %v", a.Flows(), b.Flows())
	case !reflect.DeepEqual(a.Zaps, b.Zaps):
		return fmt.Sprintf("zaps %v, restored %v", a.Zaps, b.Zaps)
	}
	return ""
}

func strip(cs []ChannelMinute) []ChannelMinute {
	out := make([]ChannelMinute, len(cs))
	for i, c := range cs {
		out[i] = ChannelMinute{Channel: c.Channel, Audience: c.Audience, Share: c.Share}
	}
	return out
}

// TestSnapshotUnderConcurrentWriters takes snapshots while writers and the
// sealer run (meant for -race). Each snapshot must be a cut: its accepted
// count lies between what writers had acknowledged before and after it, and
// equals the events its state holds (every event is a tune, counted once in
// the zaps of its minute, sealed or open).
func TestSnapshotUnderConcurrentWriters(t *testing.T) {
	for _, model := range []Model{Tuning, Events} {
		t.Run(model.String(), func(t *testing.T) {
			const writers, perWriter, devices = 4, 32_000, 4_000
			cfg := Config{Model: model, Key: benchKey(t), Shards: 8,
				Now: func() time.Time { return benchStart.Add(time.Hour) }}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			evs := synthetic(writers*perWriter, devices, 50, 20, 11)
			ctx, cancel := context.WithCancel(context.Background())
			var sealer sync.WaitGroup
			sealer.Go(func() {
				for ctx.Err() == nil {
					a.SealThrough(a.maxTS.Load() - 2*msPerMinute)
				}
			})
			var acked atomic.Uint64
			var ww sync.WaitGroup
			start := make(chan struct{})
			for w := range writers {
				ww.Go(func() {
					wr := a.NewWriter()
					<-start
					for i := w * 50; i < len(evs); i += writers * 50 {
						acked.Add(uint64(wr.Write(evs[i:min(i+50, len(evs))], nil)))
						runtime.Gosched() // let the snapshots in between batches
					}
				})
			}
			var done atomic.Bool
			go func() { ww.Wait(); done.Store(true) }()
			var snaps []*Snapshot
			var bounds [][2]uint64
			close(start)
			for !done.Load() && len(snaps) < 20 {
				if acked.Load() == 0 {
					runtime.Gosched() // snapshots of nothing prove nothing
					continue
				}
				before := acked.Load()
				sn := a.Snapshot(nil)
				bounds = append(bounds, [2]uint64{before, acked.Load() + writers*50})
				snaps = append(snaps, sn)
			}
			ww.Wait()
			cancel()
			sealer.Wait()
			for i, sn := range snaps {
				if sn.accepted < bounds[i][0] || sn.accepted > bounds[i][1] {
					t.Errorf("snapshot %d: %d accepted, writers had %d acknowledged before and at most %d after", i, sn.accepted, bounds[i][0], bounds[i][1])
				}
				cp, err := sn.Encode()
				if err != nil {
					t.Fatal(err)
				}
				b, err := Restore(cfg, cp)
				if err != nil {
					t.Fatal(err)
				}
				b.SealThrough(benchStart.Add(time.Hour).UnixMilli())
				var zaps uint64
				for _, m := range b.Minutes(benchStart, benchStart.Add(time.Hour)) {
					for _, z := range m.Zaps {
						zaps += z.Count
					}
				}
				if zaps != sn.accepted || b.Accepted() != sn.accepted {
					t.Errorf("snapshot %d: %d accepted, %d tune events in its state, Accepted() %d after restore", i, sn.accepted, zaps, b.Accepted())
				}
				t.Logf("snapshot %d: %d events, ingest held %s", i, sn.accepted, sn.Pause)
			}
			mid := 0
			for _, sn := range snaps {
				if sn.accepted > 0 && sn.accepted < a.Accepted() {
					mid++
				}
			}
			if mid == 0 {
				t.Errorf("none of %d snapshots fell during ingest: the test proved nothing", len(snaps))
			}
		})
	}
}

// goldenAggregator ingests a small fixed scenario that touches every part of
// the state: sealed minutes across an hour boundary (a complete hour and the
// incomplete one), open minutes, regions, a standby, flows, and a device
// that watched more channels in a minute than fit in its entry.
func goldenAggregator(t testing.TB, model Model) *Aggregator {
	t.Helper()
	key, err := sketch.KeyFromBytes([]byte("golden-key-00016"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 3, 14, 19, 58, 0, 0, time.UTC)
	a, err := New(Config{Model: model, Key: key, Shards: 2, Now: func() time.Time { return start.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int64 { return start.Add(d).UnixMilli() }
	var evs []event.Event
	add := func(dev, ch, region string, d time.Duration, kind event.Kind) {
		evs = append(evs, event.Event{Device: []byte(dev), Channel: []byte(ch), Region: []byte(region), TS: at(d), Kind: kind})
	}
	for i := range 40 {
		add(fmt.Sprintf("stb-%d", i), fmt.Sprintf("ch-%d", i%3), fmt.Sprintf("r-%d", i%2), time.Duration(i)*time.Second, event.Tune)
	}
	add("stb-1", "ch-2", "r-1", 90*time.Second, event.Tune)
	add("stb-2", "", "r-0", 150*time.Second, event.Standby)
	for i, ch := range []string{"a", "b", "c", "d", "e", "f"} { // six channels in 20:02
		add("stb-zapper", ch, "", 4*time.Minute+time.Duration(i*7)*time.Second, event.Tune)
	}
	for i := range 1100 { // a dense counter in the open minute
		add(fmt.Sprintf("big-%d", i), "ch-0", "r-0", 4*time.Minute+50*time.Second, event.Tune)
	}
	add("stb-3", "ch-0", "r-1", 5*time.Minute, event.Heartbeat)
	var rej event.Rejections
	a.NewWriter().Write(evs, &rej)
	if rej.Total() != 0 {
		t.Fatalf("rejected: %v", rej.First)
	}
	a.SealThrough(at(4 * time.Minute)) // 19:58 .. 20:01 sealed
	return a
}

// TestCheckpointGolden freezes the sections' bytes (testdata/checkpoint; go
// test -run TestCheckpointGolden -update rewrites them) and restores the
// golden files: old fixtures must keep decoding.
func TestCheckpointGolden(t *testing.T) {
	for _, model := range []Model{Tuning, Events} {
		t.Run(model.String(), func(t *testing.T) {
			a := goldenAggregator(t, model)
			cp, err := a.Snapshot(nil).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, s := range cp.Sections {
					if err := os.WriteFile(goldenPath(model, s.Name), s.Data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				for _, seg := range cp.Segments {
					if err := os.WriteFile(goldenPath(model, "segment-"+seg.Name), seg.Sections[0].Data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			golden := loadGolden(t, model)
			if len(cp.Sections) != len(golden.Sections) || len(cp.Segments) != len(golden.Segments) {
				t.Fatalf("%d sections and %d segments, golden %d and %d", len(cp.Sections), len(cp.Segments), len(golden.Sections), len(golden.Segments))
			}
			for i, s := range cp.Sections {
				if !bytes.Equal(s.Data, golden.Sections[i].Data) {
					t.Errorf("section %q: %d bytes differ from the golden %d (run with -update after a deliberate format change, and add a version)", s.Name, len(s.Data), len(golden.Sections[i].Data))
				}
				if want := golden.Sections[i]; s.Name != want.Name || s.Epoch != want.Epoch {
					t.Errorf("section %q sealed under %q, want %q under %q", s.Name, s.Epoch, want.Name, want.Epoch)
				}
			}
			for i, seg := range cp.Segments {
				want := golden.Segments[i]
				if seg.Name != want.Name || seg.Epoch != want.Epoch || len(seg.Sections) != 1 ||
					seg.Sections[0].Name != want.Sections[0].Name || seg.Sections[0].Epoch != want.Epoch {
					t.Errorf("segment %q of %q, want %q of %q", seg.Name, seg.Epoch, want.Name, want.Epoch)
					continue
				}
				if !bytes.Equal(seg.Sections[0].Data, want.Sections[0].Data) {
					t.Errorf("segment %q: %d bytes differ from the golden %d (run with -update after a deliberate format change, and add a version)", seg.Name, len(seg.Sections[0].Data), len(want.Sections[0].Data))
				}
			}
			b, err := Restore(a.cfg, golden)
			if err != nil {
				t.Fatal(err)
			}
			end := time.Date(2025, 3, 14, 20, 10, 0, 0, time.UTC)
			a.SealThrough(end.UnixMilli())
			b.SealThrough(end.UnixMilli())
			am, bm := a.Minutes(end.Add(-time.Hour), end), b.Minutes(end.Add(-time.Hour), end)
			if len(am) != len(bm) || len(am) < 6 {
				t.Fatalf("%d minutes, restored %d", len(am), len(bm))
			}
			for i := range am {
				if diff := minuteDiff(am[i], bm[i], true); diff != "" {
					t.Errorf("minute %s: %s", am[i].Start.Format("15:04"), diff)
				}
			}
			// The reach tier: hour 19 was restored sealed, hour 20 from
			// the restored partials.
			a.SealThrough(end.Add(time.Hour).UnixMilli())
			b.SealThrough(end.Add(time.Hour).UnixMilli())
			h19 := time.Date(2025, 3, 14, 19, 0, 0, 0, time.UTC)
			for _, set := range [][]string{nil, {"ch-0"}, {"ch-1", "f"}} {
				for _, w := range [][2]time.Time{{h19, h19.Add(time.Hour)}, {h19, h19.Add(2 * time.Hour)}} {
					ra, rb := tierReach(t, a, set, w[0], w[1]), tierReach(t, b, set, w[0], w[1])
					if ra.Value == 0 || ra.Estimate != rb.Estimate {
						t.Errorf("reach tier %v [%s, %s): %v, restored %v", set, w[0].Format("15:04"), w[1].Format("15:04"), ra, rb)
					}
				}
			}
			if model == Tuning {
				m := b.Minutes(end.Add(-8*time.Minute), end.Add(-7*time.Minute)) // 20:02
				if len(m) != 1 {
					t.Fatalf("20:02 not sealed after restore")
				}
				if c, _ := m[0].Channel("f"); c.Audience.Value != 1 || m[0].Total.Value != 1140 {
					t.Errorf("20:02: the zapper's longest channel f has %d, want 1; total %d, want 1140", c.Audience.Value, m[0].Total.Value)
				}
			}
		})
	}
}

func goldenPath(model Model, section string) string {
	return filepath.Join(goldenDir, model.String()+"-"+section+".bin")
}

// goldenSections are the sections of the golden checkpoints and the epochs
// they are sealed under: the scenario lies in one day and one ISO week.
var goldenSections = []ckpt.Section{
	{Name: "meta"}, {Name: "names"},
	{Name: "tuning", Epoch: "day-2025-03-14"},
	{Name: "day-2025-03-14", Epoch: "day-2025-03-14"},
	{Name: "week-2025-W11", Epoch: "week-2025-W11"},
}

// goldenSegments are the segments of the golden checkpoints: hour 19, the
// complete hour, of each tier. Their one section each is in the file
// <model>-segment-<name>.bin.
var goldenSegments = []ckpt.Segment{
	{Name: "minutes-2025-03-14T19", Epoch: "day-2025-03-14", Sections: []ckpt.Section{{Name: "minutes", Epoch: "day-2025-03-14"}}},
	{Name: "reach-2025-03-14T19", Epoch: "week-2025-W11", Sections: []ckpt.Section{{Name: "reach", Epoch: "week-2025-W11"}}},
}

func loadGolden(t testing.TB, model Model) *ckpt.Checkpoint {
	t.Helper()
	cp := &ckpt.Checkpoint{}
	for _, s := range goldenSections {
		data, err := os.ReadFile(goldenPath(model, s.Name))
		if err != nil {
			t.Fatal(err)
		}
		s.Data = data
		cp.Sections = append(cp.Sections, s)
	}
	for _, seg := range goldenSegments {
		data, err := os.ReadFile(goldenPath(model, "segment-"+seg.Name))
		if err != nil {
			t.Fatal(err)
		}
		sec := seg.Sections[0]
		sec.Data = data
		seg.Sections = []ckpt.Section{sec}
		cp.Segments = append(cp.Segments, seg)
	}
	return cp
}

// withSegment returns a copy of cp whose segment name holds data as its
// section (or is gone, if data is nil).
func withSegment(cp *ckpt.Checkpoint, name string, data []byte) *ckpt.Checkpoint {
	out := *cp
	out.Segments = nil
	for _, seg := range cp.Segments {
		if seg.Name == name {
			if data == nil {
				continue
			}
			sec := seg.Sections[0]
			sec.Data = data
			seg.Sections = []ckpt.Section{sec}
		}
		out.Segments = append(out.Segments, seg)
	}
	return &out
}

// withSection returns a copy of cp whose section name holds data (or is
// gone, if data is nil). A section that is not there is added at the end,
// sealed under epoch.
func withSection(cp *ckpt.Checkpoint, name string, data []byte, epoch ...string) *ckpt.Checkpoint {
	out := &ckpt.Checkpoint{Segments: cp.Segments}
	found := false
	for _, s := range cp.Sections {
		if s.Name == name {
			found = true
			if data == nil {
				continue
			}
			s.Data = data
		}
		out.Sections = append(out.Sections, s)
	}
	if !found {
		out.Sections = append(out.Sections, ckpt.Section{Name: name, Epoch: strings.Join(epoch, ""), Data: data})
	}
	return out
}

func sectionData(cp *ckpt.Checkpoint, name string) []byte {
	data, _ := cp.Section(name)
	return data
}

func TestRestoreErrors(t *testing.T) {
	golden := loadGolden(t, Tuning)
	a := goldenAggregator(t, Tuning)
	cfg := a.cfg
	f := func(name string, cfg Config, cp *ckpt.Checkpoint, want error, mention string) {
		t.Helper()
		_, err := Restore(cfg, cp)
		if !errors.Is(err, want) || !bytes.Contains([]byte(err.Error()), []byte(mention)) {
			t.Errorf("%s: error %v, want %v mentioning %q", name, err, want, mention)
		}
	}
	other := cfg
	other.Keys = nil
	other.Key, _ = sketch.KeyFromBytes([]byte("another-key-0016"))
	f("other key", other, golden, ErrCheckpointConfig, "written under pseudonym key")
	other = cfg
	other.Model = Events
	f("other model", other, golden, ErrCheckpointConfig, "tuning model")
	other = cfg
	other.Precision = 12
	f("other precision", other, golden, ErrCheckpointConfig, "precision 14")
	other = cfg
	other.MinDwell = 3 * time.Second
	f("other min dwell", other, golden, ErrCheckpointConfig, "min dwell 5000ms")
	other = cfg
	other.DayStart = 6 * time.Hour
	f("other day start", other, golden, ErrCheckpointConfig, "day start 0h, this configuration has 6h0m0s")
	f("nil", cfg, nil, ErrCheckpointCorrupt, "nil checkpoint")
	f("no names section", cfg, withSection(golden, "names", nil), ErrCheckpointCorrupt, `no section "names"`)
	f("unknown section", cfg, withSection(golden, "open", nil, "open"), ErrCheckpointCorrupt, `unknown section "open"`)
	f("out of order", cfg, withSection(golden, "day-2025-03-13", []byte{3, 0, 0}, "day-2025-03-13"), ErrCheckpointCorrupt, `section "day-2025-03-13" after "day-2025-03-14"`)
	f("day outside its day", cfg, withSection(golden, "day-2025-03-15", sectionData(golden, "day-2025-03-14"), "day-2025-03-15"), ErrCheckpointCorrupt, "day 2025-03-15")
	mismatch := *golden
	mismatch.Unreadable = []*ckpt.SectionError{{Name: "day-2025-03-13", Epoch: "day-2025-03-13", Err: ckpt.ErrKeyMismatch}}
	f("key mismatch", cfg, &mismatch, ErrCheckpointCorrupt, `"day-2025-03-13"`)
	gone := *golden
	gone.Unreadable = []*ckpt.SectionError{{Name: "sealed", Epoch: "k-x", Err: ckpt.ErrKeyGone}}
	f("old section gone", cfg, &gone, ErrCheckpointCorrupt, `section "sealed" sealed under epoch "k-x": epoch key gone, and is not a day, week or tuning section`)
	f("plain day", cfg, withSection(golden, "day-2025-03-15", []byte{3, 0, 0}, ""), ErrCheckpointCorrupt, `section "day-2025-03-15" is sealed under "", not its own epoch`)
	f("day under a week", cfg, withSection(golden, "day-2025-03-15", []byte{3, 0, 0}, "week-2025-W11"), ErrCheckpointCorrupt, `not its own epoch`)
	meta, _ := golden.Section("meta")
	f("version", cfg, withSection(golden, "meta", append([]byte{4}, meta[1:]...)), ErrCheckpointCorrupt, "version 4, this build reads 3")
	f("trailing", cfg, withSection(golden, "meta", append(bytes.Clone(meta), 0)), ErrCheckpointCorrupt, "1 bytes after the end")
	f("empty", cfg, withSection(golden, "names", []byte{}), ErrCheckpointCorrupt, "truncated")
	f("bad name", cfg, withSection(golden, "names", []byte{3, 1, 3, 'a', ' ', 'b', 0}), ErrCheckpointCorrupt, "is not 1..64 bytes")
	f("huge count", cfg, withSection(golden, "tuning", []byte{3, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}), ErrCheckpointCorrupt, "cannot fit")
	// A checkpoint of version 1 (one key for every sketch) is refused,
	// saying so.
	v1 := &ckpt.Checkpoint{}
	for _, name := range []string{"meta", "names", "tuning", "open", "sealed"} {
		data, err := os.ReadFile(filepath.Join(goldenDir, "v1", "tuning-"+name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		v1.Sections = append(v1.Sections, ckpt.Section{Name: name, Data: data})
	}
	f("version 1", cfg, v1, ErrCheckpointCorrupt, `section "meta" has version 1, written before key epochs`)
	// So is one of version 2 (every sealed minute in the checkpoint file).
	v2 := &ckpt.Checkpoint{}
	for _, s := range goldenSections {
		data, err := os.ReadFile(filepath.Join(goldenDir, "v2", "tuning-"+s.Name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		s.Data = data
		v2.Sections = append(v2.Sections, s)
	}
	f("version 2", cfg, v2, ErrCheckpointCorrupt, `section "meta" has version 2, written before sealed hours went to segment files`)
	// Segments: damaged, misnamed, misplaced, listed but not loaded.
	seg := func(i int) []byte { return golden.Segments[i].Sections[0].Data }
	f("segment trailing", cfg, withSegment(golden, goldenSegments[0].Name, append(bytes.Clone(seg(0)), 0)), ErrCheckpointCorrupt, "1 bytes after the end")
	renamed := withSegment(golden, "", nil)
	renamed.Segments[0].Name = "minutes-2025-03-14T18"
	f("segment of another hour", cfg, renamed, ErrCheckpointCorrupt, `in segment "minutes-2025-03-14T18"`)
	moved := withSegment(golden, "", nil)
	moved.Segments[0].Epoch = "week-2025-W11"
	f("segment of the other tier", cfg, moved, ErrCheckpointCorrupt, `segment "minutes-2025-03-14T19" of week-2025-W11 holds 1 sections, want one "reach"`)
	listed := withSegment(golden, "", nil)
	listed.Segments[1].Sections = nil
	f("segment listed, not loaded", cfg, listed, ErrCheckpointCorrupt, "not loaded")
	damaged := withSegment(golden, "", nil)
	damaged.Segments[0].Err = &ckpt.SectionError{Name: "minutes", Epoch: "day-2025-03-14", Err: ckpt.ErrKeyMismatch}
	f("segment key mismatch", cfg, damaged, ErrCheckpointCorrupt, "does not open")
	expired := withSegment(golden, "", nil)
	expired.Segments[1].Sections, expired.Segments[1].Err = nil, &ckpt.SectionError{Name: "reach", Epoch: "week-2025-W11", Err: ckpt.ErrKeyGone}
	if _, err := Restore(cfg, expired); err != nil {
		t.Errorf("a segment whose key is gone is left out as expired, yet: %v", err)
	}
	for i := range golden.Segments {
		for n := 0; n < len(seg(i)); n += max(1, len(seg(i))/512) {
			_, err := Restore(cfg, withSegment(golden, goldenSegments[i].Name, seg(i)[:n]))
			if !errors.Is(err, ErrCheckpointCorrupt) {
				t.Fatalf("segment %q cut to %d of %d bytes: error %v", goldenSegments[i].Name, n, len(seg(i)), err)
			}
		}
	}
	// Every truncation of every section is a clear error, never a panic.
	for _, s := range golden.Sections {
		for n := 0; n < len(s.Data); n += max(1, len(s.Data)/512) {
			_, err := Restore(cfg, withSection(golden, s.Name, s.Data[:n]))
			if !errors.Is(err, ErrCheckpointCorrupt) {
				t.Fatalf("section %q cut to %d of %d bytes: error %v", s.Name, n, len(s.Data), err)
			}
		}
	}
	// Without the tuning section (-persist-tuning=false) the table is empty.
	b, err := Restore(cfg, withSection(golden, "tuning", nil))
	if err != nil || b.TuningTableSize() != 0 {
		t.Errorf("without tuning: %v, %d devices", err, b.TuningTableSize())
	}
}

// FuzzRestore replaces one section of a golden checkpoint with arbitrary
// bytes: Restore must return nil or a documented error, never panic, and a
// restored aggregator must survive sealing.
func FuzzRestore(f *testing.F) {
	goldens := []*ckpt.Checkpoint{loadGolden(f, Tuning), loadGolden(f, Events)}
	for m, g := range goldens {
		for i, s := range g.Sections {
			f.Add(uint8(m), uint8(i), s.Data)
			f.Add(uint8(m), uint8(i), s.Data[:len(s.Data)/2])
		}
	}
	for _, bad := range [][]byte{{}, {1}, {2}, {3}, {0}, {3, 0xff}, {3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 0, 0}, {3, 0x80, 0x80, 0x01, 0}, bytes.Repeat([]byte{0x80}, 20)} {
		for i := range len(goldenSections) + len(goldenSegments) {
			f.Add(uint8(0), uint8(i), bad)
		}
	}
	for m, g := range goldens {
		for i, seg := range g.Segments {
			data := seg.Sections[0].Data
			f.Add(uint8(m), uint8(len(goldenSections)+i), data)
			f.Add(uint8(m), uint8(len(goldenSections)+i), data[:len(data)/2])
		}
	}
	f.Fuzz(func(t *testing.T, model, section uint8, data []byte) {
		m := Model(model % 2)
		key, _ := sketch.KeyFromBytes([]byte("golden-key-00016"))
		cfg := Config{Model: m, Key: key, Shards: 2, Now: func() time.Time { return time.Date(2025, 3, 14, 21, 0, 0, 0, time.UTC) }}
		var cp *ckpt.Checkpoint
		if i := int(section) % (len(goldenSections) + len(goldenSegments)); i < len(goldenSections) {
			s := goldenSections[i]
			cp = withSection(goldens[m], s.Name, data, s.Epoch)
		} else {
			cp = withSegment(goldens[m], goldenSegments[i-len(goldenSections)].Name, data)
		}
		a, err := Restore(cfg, cp)
		if err != nil {
			if !errors.Is(err, ErrCheckpointCorrupt) && !errors.Is(err, ErrCheckpointConfig) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		// A few minutes: a far-away watermark is sealed minute by minute,
		// which is the engine's business, not the decoder's.
		if m := a.firstOpen.Load(); m >= 0 {
			a.SealThrough((m + 3) * msPerMinute)
		}
		// Queries decode what was restored: an error, never a panic.
		h19 := time.Date(2025, 3, 14, 19, 0, 0, 0, time.UTC)
		for _, w := range [][2]time.Time{{h19, h19.Add(time.Hour)}, {h19.Add(58 * time.Minute), h19.Add(62 * time.Minute)}} {
			if _, err := a.Reach(nil, w[0], w[1]); err != nil && !errors.Is(err, ErrCheckpointCorrupt) && !errors.Is(err, ErrNoData) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrCrossEpoch) {
				t.Fatalf("reach after restore: undocumented error %v", err)
			}
		}
	})
}

// BenchmarkCheckpoint is a whole checkpoint of a national operator's state:
// 500 channels, 2M devices in the tuning table, and sealed minutes (one
// really sealed with every device credited, repeated through the store as
// in dayOfMinutes). After a first checkpoint, which writes the segments of
// the complete hours (first-ms), it reports per periodic checkpoint how long
// ingest is held (pause), the copy, the encoding (and the segments of hours
// completed since: none here) and the store's write (zstd, AES-GCM, fsync).
// Run with -benchtime 1x; RATINGS_BENCH_MINUTES sets the sealed minutes.
func BenchmarkCheckpoint(b *testing.B) {
	const devices = 2_000_000
	minutes := 60
	if s := os.Getenv("RATINGS_BENCH_MINUTES"); s != "" {
		fmt.Sscan(s, &minutes)
	}
	evs := oncePerDevice(devices)
	a := benchAggregator(b, Tuning, time.Duration(minutes+1)*time.Minute)
	a.NewWriter().Write(evs, nil)
	a.SealThrough(benchStart.Add(2 * time.Minute).UnixMilli()) // 20:00 and 20:01, every device credited
	tmpl := a.Latest()
	for m := 2; m < minutes; m++ {
		min := *tmpl
		min.Start = benchStart.Add(time.Duration(m) * time.Minute)
		a.store.put(&min, a)
	}
	// An open minute with every device credited, as just before a seal.
	w := a.NewWriter()
	for i := range evs {
		evs[i].TS = benchStart.Add(time.Duration(minutes)*time.Minute + time.Duration(i%50_000)*time.Millisecond).UnixMilli()
	}
	w.Write(evs[:devices/10], nil) // a tenth of the boxes zap in the open minute
	d, err := ckpt.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	// The first checkpoint writes the segments of the complete hours; the
	// periodic ones measured after it only list them.
	t0 := time.Now()
	sn := a.Snapshot(nil)
	if err := sn.WriteSegments(d); err != nil {
		b.Fatal(err)
	}
	cp, err := sn.Encode()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Write(cp, sn.Keys()); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)
	var pause, snap, encode, write time.Duration
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		sn := a.Snapshot(nil)
		t1 := time.Now()
		if err := sn.WriteSegments(d); err != nil {
			b.Fatal(err)
		}
		cp, err := sn.Encode()
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		f, err := d.Write(cp, sn.Keys())
		if err != nil {
			b.Fatal(err)
		}
		pause += sn.Pause
		snap += t1.Sub(t0)
		encode += t2.Sub(t1)
		write += time.Since(t2)
		size = f.Size
		if err := d.Prune(1); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(first.Seconds()*1e3, "first-ms")
	b.ReportMetric(float64(a.TuningTableSize()), "devices")
	b.ReportMetric(float64(len(a.Minutes(benchStart, benchStart.Add(48*time.Hour)))), "sealed-minutes")
	b.ReportMetric(pause.Seconds()*1e3/n, "pause-ms")
	b.ReportMetric(snap.Seconds()*1e3/n, "snapshot-ms")
	b.ReportMetric(encode.Seconds()*1e3/n, "encode-ms")
	b.ReportMetric(write.Seconds()*1e3/n, "write-ms")
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}
