package aggregator

import (
	"context"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/sketch"
)

// Minute is a sealed minute: final and immutable. Estimates were computed
// once, when it was sealed.
type Minute struct {
	Start time.Time // UTC, on the minute
	// Channels with an audience, by descending audience (ties by name).
	Channels []ChannelMinute
	// Total is the audience of all channels together: devices credited
	// (Tuning, exact) or distinct devices seen (Events, estimated).
	Total sketch.Estimate
	// Cells are audiences per (channel, region), for regions carried by
	// events. Tuning: exact counts; Events: estimates.
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
	Audience sketch.Estimate // Tuning: exact (Low == Value == High)
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
	tuning := a.cfg.Model == Tuning
	chNames := a.channels.all()
	regNames := a.regions.all()

	var chans []chanPart
	total := a.newSketch()
	var devices uint64
	cells := make(map[uint64]*cellPart)
	flows := make(map[uint64]uint64)
	zaps := make(map[uint32]uint64)
	for _, p := range parts {
		if len(p.chans) > len(chans) {
			chans = append(chans, make([]chanPart, len(p.chans)-len(chans))...)
		}
		for ch, c := range p.chans {
			if c.sk == nil {
				continue
			}
			dst := &chans[ch]
			if dst.sk == nil {
				dst.sk = c.sk // adopt the first shard's sketch
			} else if err := dst.sk.Merge(c.sk); err != nil {
				panic("BUG: sketches of one aggregator share key and precision: " + err.Error())
			}
			dst.count += c.count
		}
		if err := total.Merge(p.total); err != nil {
			panic("BUG: " + err.Error())
		}
		devices += uint64(p.devices)
		for k, c := range p.cells {
			dst := cells[k]
			if dst == nil {
				cells[k] = c
				continue
			}
			dst.count += c.count
			if c.sk != nil {
				if err := dst.sk.Merge(c.sk); err != nil {
					panic("BUG: " + err.Error())
				}
			}
		}
		for k, n := range p.flows {
			flows[k] += uint64(n)
		}
		for r, n := range p.zaps {
			zaps[r] += uint64(n)
		}
	}

	min := &Minute{Start: time.UnixMilli(m * msPerMinute).UTC(), total: total}
	if tuning {
		min.Total = exact(devices)
		total.Estimate() // compact the sparse state once, before the sketch is shared
	} else {
		min.Total = total.Estimate()
	}
	for ch, c := range chans {
		if c.sk == nil {
			continue
		}
		cm := ChannelMinute{Channel: chNames[ch], sk: c.sk}
		if tuning {
			cm.Audience = exact(uint64(c.count))
			c.sk.Estimate() // compact the sparse state once, before the sketch is shared
		} else {
			cm.Audience = c.sk.Estimate()
		}
		if min.Total.Value > 0 {
			cm.Share = float64(cm.Audience.Value) / float64(min.Total.Value)
		}
		min.Channels = append(min.Channels, cm)
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
	for k, c := range cells {
		cell := Cell{Channel: chNames[k>>32], Region: regNames[uint32(k)]}
		if c.sk != nil {
			cell.Audience = c.sk.Estimate()
		} else {
			cell.Audience = exact(uint64(c.count))
		}
		min.Cells = append(min.Cells, cell)
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

func (a *Aggregator) newSketch() *sketch.Sketch {
	sk, err := sketch.New(a.cfg.Key, a.cfg.Precision)
	if err != nil {
		panic("BUG: precision validated in Config: " + err.Error())
	}
	return sk
}
