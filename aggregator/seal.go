package aggregator

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
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
	// Zaps are tune events per region ("" for events without one).
	Zaps []RegionCount

	// total is the live sketch of all channels from the sealer until
	// store.put packs it into packedTotal (store.go), under key.
	total       *sketch.Sketch
	packedTotal packed
	key         *sketch.Key
	// cells are the audiences per (region, channel) cell (Cells), flows
	// the devices per (from, to) flow (Flows).
	cells, flows rows
	// byName indexes Channels.
	byName map[string]int
}

// ChannelMinute is one channel's audience in a minute.
type ChannelMinute struct {
	Channel  string
	Audience sketch.Estimate // exact: Low == Value == High
	Share    float64         // Audience / Total, 0..1

	sk     *sketch.Sketch // live, until store.put packs it
	packed packed
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
// regardless of the watermark, then applies retention at the clock's now
// (which it does even when there is nothing to seal). Shutdown uses it with
// the watermark; tests use it to seal a replayed stream's last minutes.
func (a *Aggregator) SealThrough(ts int64) {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	defer func() { a.expireLocked(a.cfg.Now()) }()
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
		if !a.sealLocked(m) {
			return // no key for m: KeyError says why; the next Tick tries again
		}
	}
}

// KeyError returns why the last seal could not get the key of its minute's
// epochs (the key ring cannot write a key file, say), or nil once sealing
// works. Minutes wait, unsealed, until it does.
func (a *Aggregator) KeyError() error {
	if p := a.keyErr.Load(); p != nil {
		return *p
	}
	return nil
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

// sealLocked seals minute m: takes each shard's partial (and the hour
// partials m completes), merges them outside the shard locks, estimates
// once, stores and announces the Minute, and stores the reach-tier hours. It
// returns false, sealing nothing, if the keys of m's epochs cannot be had.
func (a *Aggregator) sealLocked(m int64) bool {
	// Crediting carries devices into m, which may open m's partials.
	if _, _, err := a.ensureKeys(m, m); err != nil {
		err = fmt.Errorf("seal minute %s: %w", minuteTime(m).Format(time.RFC3339), err)
		a.keyErr.Store(&err)
		return false
	}
	a.keyErr.Store(nil)
	// Shards credit their devices independently: on all cores at once.
	taken := make([]*partial, len(a.shards))
	takenHours := make([][]*hourPartial, len(a.shards))
	var wg sync.WaitGroup
	next := make(chan int, len(a.shards))
	for i := range a.shards {
		next <- i
	}
	close(next)
	for range min(runtime.GOMAXPROCS(0), len(a.shards)) {
		wg.Go(func() {
			for i := range next {
				taken[i], takenHours[i] = a.shards[i].take(m)
			}
		})
	}
	wg.Wait()
	parts := make([]*partial, 0, len(a.shards))
	for _, p := range taken {
		if p != nil {
			parts = append(parts, p)
		}
	}
	a.firstOpen.Store(m + 1)
	sealed := a.merge(m, parts)
	a.store.put(sealed, a)
	a.sealHours(slices.Concat(takenHours...))
	a.stats.sealed.Add(1)
	if a.cfg.OnSeal != nil {
		a.cfg.OnSeal(sealed)
	}
	return true
}

func (a *Aggregator) merge(m int64, parts []*partial) *Minute {
	chNames := a.channels.all()
	regNames := a.regions.all()
	key := a.keyOfMinute(keys.Minute, m)

	var cs []*counter
	sealed := &Minute{Start: time.UnixMilli(m * msPerMinute).UTC()}
	for _, p := range parts {
		cs = append(cs, &p.total)
	}
	sealed.Total, sealed.total = a.combine(key, cs, true)
	nch := 0
	for _, p := range parts {
		nch = max(nch, len(p.chans))
	}
	for ch := 1; ch < nch; ch++ {
		cs = cs[:0]
		for _, p := range parts {
			if ch < len(p.chans) && p.chans[ch].credits > 0 {
				cs = append(cs, &p.chans[ch])
			}
		}
		if len(cs) == 0 {
			continue
		}
		cm := ChannelMinute{Channel: chNames[ch]}
		cm.Audience, cm.sk = a.combine(key, cs, true)
		if sealed.Total.Value > 0 {
			cm.Share = float64(cm.Audience.Value) / float64(sealed.Total.Value)
		}
		sealed.Channels = append(sealed.Channels, cm)
	}
	// A cell's devices are in one shard (Events: by channel) or disjoint
	// across shards (Tuning: by device): counts add up.
	cells := make(map[uint64]uint64)
	flows := make(map[uint64]uint64)
	var zaps []uint64 // by region id
	for _, p := range parts {
		p.cells.each(func(k uint64, n uint32) { cells[k] += uint64(n) })
		p.flows.each(func(k uint64, n uint32) { flows[k] += uint64(n) })
		zaps = grownTo(zaps, len(p.zaps)-1)
		for r, n := range p.zaps {
			zaps[r] += uint64(n)
		}
	}
	slices.SortFunc(sealed.Channels, func(x, y ChannelMinute) int {
		return cmp.Or(cmp.Compare(y.Audience.Value, x.Audience.Value), strings.Compare(x.Channel, y.Channel))
	})
	sealed.byName = make(map[string]int, len(sealed.Channels))
	for i, c := range sealed.Channels {
		sealed.byName[c.Channel] = i
	}
	// Rows of cells are (region, channel), of flows (from, to): ids in
	// a cellKey, by the order the Cells and Flows doc comments give.
	type row struct {
		k uint64
		n uint64
	}
	var tmp []row
	for k, n := range cells {
		tmp = append(tmp, row{uint64(uint32(k))<<32 | k>>32, n})
	}
	slices.SortFunc(tmp, func(x, y row) int {
		return cmp.Or(strings.Compare(regNames[x.k>>32], regNames[y.k>>32]), cmp.Compare(y.n, x.n),
			strings.Compare(chNames[uint32(x.k)], chNames[uint32(y.k)]))
	})
	sealed.cells = rows{a: regNames, b: chNames}
	for _, r := range tmp {
		sealed.cells.add(uint32(r.k>>32), uint32(r.k), r.n)
	}
	sealed.cells.done()
	tmp = tmp[:0]
	for k, n := range flows {
		tmp = append(tmp, row{k, n})
	}
	slices.SortFunc(tmp, func(x, y row) int {
		return cmp.Or(cmp.Compare(y.n, x.n), strings.Compare(chNames[x.k>>32], chNames[y.k>>32]),
			strings.Compare(chNames[uint32(x.k)], chNames[uint32(y.k)]))
	})
	sealed.flows = rows{a: chNames, b: chNames}
	for _, r := range tmp {
		sealed.flows.add(uint32(r.k>>32), uint32(r.k), r.n)
	}
	sealed.flows.done()
	for r, n := range zaps {
		if n != 0 {
			sealed.Zaps = append(sealed.Zaps, RegionCount{Region: regNames[r], Count: n})
		}
	}
	slices.SortFunc(sealed.Zaps, func(x, y RegionCount) int { return strings.Compare(x.Region, y.Region) })
	return sealed
}

func exact(n uint64) sketch.Estimate { return sketch.Estimate{Value: n, Low: n, High: n} }

// combine merges the shards' counters of one audience, hashed under key,
// into its estimate and, if wanted or needed for the estimate, its sketch,
// compacted so that it can be shared with queries (the library's Estimate
// mutates). The audience is exact when it can be: in the Tuning model always
// (shards own disjoint devices, each credited once per minute, so credits
// add up); in the Events model while every counter still holds an exact set
// (a channel's counter is in one shard; the totals of several shards
// overlap and are deduplicated).
func (a *Aggregator) combine(key *sketch.Key, cs []*counter, wantSketch bool) (sketch.Estimate, *sketch.Sketch) {
	var credits, exactN uint64
	allExact := true
	for _, c := range cs {
		credits += uint64(c.credits)
		exactN += uint64(c.set.len())
		allExact = allExact && c.exact()
	}
	if a.cfg.Model == Events && allExact && len(cs) > 1 {
		var union hashSet
		for _, c := range cs {
			for _, h := range c.set.slots {
				if h != 0 {
					union.add(h)
				}
			}
		}
		exactN = uint64(union.len())
		cs = []*counter{{set: union}}
	}
	var est sketch.Estimate
	switch {
	case a.cfg.Model == Tuning:
		est = exact(credits)
	case allExact:
		est = exact(exactN)
	}
	if !wantSketch && (allExact || a.cfg.Model == Tuning) {
		return est, nil
	}
	sk := a.union(key, cs, allExact)
	if a.cfg.Model == Events && !allExact {
		// Only an estimate then. Otherwise the count is exact and the
		// sketch needs none: FromHashes returns it compacted, and dense
		// registers have nothing to compact (a dense estimate is 16,384
		// math.Pow calls, ~0.3 ms).
		est = sk.Estimate()
	}
	return est, sk
}

// union returns the sketch of the union of the counters cs, hashed under
// key; allExact says that none of them is dense. It is not yet estimated.
func (a *Aggregator) union(key *sketch.Key, cs []*counter, allExact bool) *sketch.Sketch {
	if allExact {
		var hs []uint64
		for _, c := range cs {
			hs = c.set.appendTo(hs)
		}
		sk, err := sketch.FromHashes(key, a.cfg.Precision, hs)
		if err != nil {
			panic("BUG: precision validated in Config: " + err.Error())
		}
		return sk
	}
	p := a.cfg.Precision
	regs := make([]uint8, 1<<p)
	for _, c := range cs {
		if c.regs != nil {
			for i, r := range c.regs {
				regs[i] = max(regs[i], r)
			}
			continue
		}
		for _, h := range c.set.slots {
			if h != 0 {
				i, r := sketch.Register(h, p)
				regs[i] = max(regs[i], r)
			}
		}
	}
	c := counter{regs: regs}
	return c.denseSketch(key)
}

func (a *Aggregator) newSketch(key *sketch.Key) *sketch.Sketch {
	sk, err := sketch.New(key, a.cfg.Precision)
	if err != nil {
		panic("BUG: precision validated in Config: " + err.Error())
	}
	return sk
}
