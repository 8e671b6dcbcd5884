package aggregator

import (
	"context"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/sketch"
)

// Minute is a sealed minute: final and immutable. Its audiences are exact
// counts (each shard keeps exact sets while a minute is open); its sketches,
// built when it was sealed, serve reach over many minutes.
type Minute struct {
	Start time.Time // UTC, on the minute
	// Channels with an audience, by descending audience (ties by name).
	Channels []ChannelMinute
	// Total is the audience of all channels together: devices credited
	// (Tuning) or distinct devices seen (Events).
	Total sketch.Estimate
	// Cells are audiences per (channel, region), for regions carried by
	// events.
	Cells []Cell
	// Flows between states (Tuning only); "" is off.
	Flows []Flow
	// Zaps are tune events per region ("" for events without one).
	Zaps []RegionCount

	total *sketch.Sketch
	// byName indexes Channels.
	byName map[string]int
}

// ChannelMinute is one channel's audience in a minute.
type ChannelMinute struct {
	Channel  string
	Audience sketch.Estimate // exact: Low == Value == High
	Share    float64         // Audience / Total, 0..1

	sk *sketch.Sketch
}

// Cell is the audience of a channel within a region.
type Cell struct {
	Channel, Region string
	Audience        sketch.Estimate
}

// Flow counts devices whose viewing state went From → To.
type Flow struct {
	From, To string
	Devices  uint64
}

// RegionCount is a count per region.
type RegionCount struct {
	Region string
	Count  uint64
}

// Channel returns the audience of channel in m, and whether it had one.
func (m *Minute) Channel(name string) (ChannelMinute, bool) {
	i, ok := m.byName[name]
	if !ok {
		return ChannelMinute{Channel: name}, false
	}
	return m.Channels[i], true
}

// Tick seals every minute the watermark has passed, as of the clock's now.
// The service calls it periodically (Run does); tests call it directly.
func (a *Aggregator) Tick() {
	a.SealThrough(a.Watermark())
}

// Run calls Tick every interval until ctx is done.
func (a *Aggregator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.Tick()
		}
	}
}

// SealThrough seals every open minute that ends at or before ts (Unix ms),
// regardless of the watermark. Shutdown uses it with the watermark; tests use
// it to seal a replayed stream's last minutes.
func (a *Aggregator) SealThrough(ts int64) {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	first := a.firstOpen.Load()
	if first < 0 {
		return
	}
	last := minuteOf(ts) - 1 // the last minute that ends at or before ts
	for m := first; m <= last; m++ {
		if to := a.skipIdleLocked(m, last); to > m {
			m = to - 1
			continue
		}
		a.sealLocked(m)
	}
}

// skipIdleLocked returns the minute to seal next: m, unless no shard holds
// anything for minutes m.. up to the first one that has something (or up to
// last): then the minute just before that one, which is sealed (empty) so that
// the newest sealed minute is real. It keeps a long idle gap (or a jump of the
// watermark) from sealing empty minutes one by one; skipped minutes are
// reported as empty.
func (a *Aggregator) skipIdleLocked(m, last int64) int64 {
	next := last + 1
	for _, s := range a.shards {
		s.mu.Lock()
		idle := s.idleLocked(m)
		if p := s.nextPartialMinuteLocked(); p >= 0 {
			next = min(next, p)
		}
		s.mu.Unlock()
		if !idle {
			return m
		}
	}
	to := next - 1
	if to <= m {
		return m
	}
	for _, s := range a.shards {
		s.mu.Lock()
		s.nextSeal = max(s.nextSeal, to)
		s.mu.Unlock()
	}
	a.firstOpen.Store(to)
	return to
}

// sealLocked seals minute m: takes each shard's partial, merges them outside
// the shard locks, estimates once, stores and announces the Minute.
func (a *Aggregator) sealLocked(m int64) {
	parts := make([]*partial, 0, len(a.shards))
	for _, s := range a.shards {
		if p := s.take(m); p != nil {
			parts = append(parts, p)
		}
	}
	a.firstOpen.Store(m + 1)
	min := a.merge(m, parts)
	a.store.put(min, a)
	a.stats.sealed.Add(1)
	if a.cfg.OnSeal != nil {
		a.cfg.OnSeal(min)
	}
}

func (a *Aggregator) merge(m int64, parts []*partial) *Minute {
	chNames := a.channels.all()
	regNames := a.regions.all()

	// Shards own disjoint devices: a minute's set is the concatenation of
	// the shards' sets, its exact audience the sum of their sizes.
	var keys []uint64
	gather := func(set func(*partial) *hashSet) []uint64 {
		keys = keys[:0]
		for _, p := range parts {
			if s := set(p); s != nil {
				keys = s.appendTo(keys)
			}
		}
		return keys
	}

	min := &Minute{Start: time.UnixMilli(m * msPerMinute).UTC()}
	total := gather(func(p *partial) *hashSet { return &p.total })
	min.Total = exact(uint64(len(total)))
	min.total = a.sketchOf(total)
	nch := 0
	for _, p := range parts {
		nch = max(nch, len(p.chans))
	}
	for ch := 1; ch < nch; ch++ {
		devs := gather(func(p *partial) *hashSet {
			if ch < len(p.chans) {
				return &p.chans[ch]
			}
			return nil
		})
		if len(devs) == 0 {
			continue
		}
		cm := ChannelMinute{Channel: chNames[ch], Audience: exact(uint64(len(devs))), sk: a.sketchOf(devs)}
		if min.Total.Value > 0 {
			cm.Share = float64(cm.Audience.Value) / float64(min.Total.Value)
		}
		min.Channels = append(min.Channels, cm)
	}
	cells := make(map[uint64]uint64)
	flows := make(map[uint64]uint64)
	zaps := make(map[uint32]uint64)
	for _, p := range parts {
		for k, c := range p.cells {
			cells[k] += uint64(c.len())
		}
		for k, n := range p.flows {
			flows[k] += uint64(n)
		}
		for r, n := range p.zaps {
			zaps[r] += uint64(n)
		}
	}
	sort.Slice(min.Channels, func(i, j int) bool {
		x, y := min.Channels[i], min.Channels[j]
		if x.Audience.Value != y.Audience.Value {
			return x.Audience.Value > y.Audience.Value
		}
		return x.Channel < y.Channel
	})
	min.byName = make(map[string]int, len(min.Channels))
	for i, c := range min.Channels {
		min.byName[c.Channel] = i
	}
	for k, n := range cells {
		min.Cells = append(min.Cells, Cell{Channel: chNames[k>>32], Region: regNames[uint32(k)], Audience: exact(n)})
	}
	sort.Slice(min.Cells, func(i, j int) bool {
		x, y := min.Cells[i], min.Cells[j]
		if x.Region != y.Region {
			return x.Region < y.Region
		}
		if x.Audience.Value != y.Audience.Value {
			return x.Audience.Value > y.Audience.Value
		}
		return x.Channel < y.Channel
	})
	for k, n := range flows {
		min.Flows = append(min.Flows, Flow{From: chNames[k>>32], To: chNames[uint32(k)], Devices: n})
	}
	sort.Slice(min.Flows, func(i, j int) bool {
		x, y := min.Flows[i], min.Flows[j]
		if x.Devices != y.Devices {
			return x.Devices > y.Devices
		}
		if x.From != y.From {
			return x.From < y.From
		}
		return x.To < y.To
	})
	for r, n := range zaps {
		min.Zaps = append(min.Zaps, RegionCount{Region: regNames[r], Count: n})
	}
	sort.Slice(min.Zaps, func(i, j int) bool { return min.Zaps[i].Region < min.Zaps[j].Region })
	return min
}

func exact(n uint64) sketch.Estimate { return sketch.Estimate{Value: n, Low: n, High: n} }

// sketchOf returns a sketch of the device hashes keys, compacted so that it
// can be shared with queries (the library's Estimate mutates).
func (a *Aggregator) sketchOf(keys []uint64) *sketch.Sketch {
	sk := a.newSketch()
	for _, h := range keys {
		sk.AddHash(h)
	}
	sk.Estimate()
	return sk
}

func (a *Aggregator) newSketch() *sketch.Sketch {
	sk, err := sketch.New(a.cfg.Key, a.cfg.Precision)
	if err != nil {
		panic("BUG: precision validated in Config: " + err.Error())
	}
	return sk
}
