package aggregator

import (
	"slices"
	"sync"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

// shard owns the state of the devices whose hash falls on it: their tuning
// table entries and its partial of every open minute. Everything in it is
// guarded by mu; the sealer takes a shard's partial of a minute out under the
// lock and merges it with the other shards' outside of it.
type shard struct {
	a  *Aggregator
	mu sync.Mutex // guards everything below

	// nextSeal is the first minute this shard has not handed to the sealer;
	// an event for an earlier minute is late.
	nextSeal int64
	open     []*partial // open minutes, ascending
	last     *partial   // the partial the previous event used (fast path)
	// hours are the open hours of the reach tier, ascending: an hour is
	// handed to the sealer with its last minute.
	hours []*hourPartial

	// Tuning table (Tuning model only): device hash → index into devs.
	index devIndex
	devs  []device
	free  []int32
	// overflow holds the minute accumulators of devices that watched more
	// than accSlots channels in it, by device hash.
	overflow map[uint64][]credit
	// sizes: see partial.sizes.
	sizes []uint16
	// lastPairs is the number of (cell, device) pairs of the last minute
	// handed to the sealer (Events), to size the next minute's table.
	lastPairs int
	// crediting is set while creditMinuteLocked or ingest (Tuning) runs:
	// flushLocked then leaves its credits in pending for
	// applyCreditsLocked, which runs before the lock is released.
	crediting bool
	pending   []pendingCredit
	// sink takes the loads of ingest's first pass (see ingest), so that
	// they are not optimized away.
	sink uint64

	// viewing counts devices currently on each (channel, region) cell, for
	// the "now" figures: key is cellKey(ch, region).
	// It counts with wrapping arithmetic (a decrement adds 2^32-1): every
	// net count is non-negative. Profiled: as a Go map, updating it on
	// every channel change took a fifth of end-to-end ingest.
	viewing viewCounts
}

func newShard(a *Aggregator) *shard {
	return &shard{a: a}
}

func cellKey(ch, region uint32) uint64 { return uint64(ch)<<32 | uint64(region) }

// partial is one shard's share of one open minute; the sealer turns its
// counters into the minute's sketches and counts. Shards own disjoint
// devices, so the shards' counters of one minute count disjoint devices.
// Its counters hold minute-tier hashes: device pseudonyms keyed under key,
// the key of the minute's day.
type partial struct {
	minute int64
	key    *sketch.Key
	// epoch is 1 + the minute-tier epoch of the minute (0: not yet
	// computed), to which a device's cached minute hash is compared.
	epoch int32
	hour  *hourPartial // the shard's partial of the minute's hour
	chans []counter    // by channel id
	total counter
	// cells counts devices per cellKey(ch, region). In the Events model a
	// device counts once per cell: pairs holds the (cell, device) pairs
	// seen, as one mixed 64-bit key each, in one table rather than a set
	// per cell (one cache miss per event instead of three).
	cells countMap
	pairs hashSet
	flows countMap     // cellKey(from, to) → devices (tuning)
	zaps  regionCounts // tune events by region id
	// sizes are the shard's channel audiences of the last minute it
	// handed to the sealer, capped at denseAbove, by channel id: what to
	// size a channel's set for when its first device comes (chanLocked).
	// Shared with other partials: read only.
	sizes []uint16
}

// partialLocked returns the partial of minute m (m >= nextSeal), creating it.
func (s *shard) partialLocked(m int64) *partial {
	if p := s.last; p != nil && p.minute == m {
		return p
	}
	i := 0
	for i < len(s.open) && s.open[i].minute < m {
		i++
	}
	if i < len(s.open) && s.open[i].minute == m {
		s.last = s.open[i]
		return s.last
	}
	p := &partial{
		minute: m,
		key:    s.a.keyOfMinute(keys.Minute, m),
		hour:   s.hourLocked(hourOf(m)),
		sizes:  s.sizes,
	}
	if s.a.cfg.Model == Events {
		// A minute's (cell, device) pairs number about the previous
		// minute's: size the table for them at once rather than
		// rehashing it ever larger as the minute fills.
		n := s.lastPairs
		if i > 0 {
			n = s.open[i-1].pairs.len()
		}
		p.pairs.reserve(n)
	}
	s.open = append(s.open, nil)
	copy(s.open[i+1:], s.open[i:])
	s.open[i] = p
	s.last = p
	return p
}

func (p *partial) chanLocked(ch uint32) *counter {
	c := growChans(&p.chans, ch)
	if c.set.slots == nil && c.regs == nil && int(ch) < len(p.sizes) {
		// The channel's first device this minute: make room for as
		// many as it had in the last minute sealed (up to denseAbove),
		// rather than rehashing the set ever larger as they come.
		c.set.reserve(int(p.sizes[ch]))
	}
	return c
}

func growChans(cs *[]counter, ch uint32) *counter {
	if int(ch) >= len(*cs) {
		chans := make([]counter, max(int(ch)+1, 2*len(*cs), 16))
		copy(chans, *cs)
		*cs = chans
	}
	return &(*cs)[ch]
}

// creditLocked counts the device of minute-tier hash h (its pseudonym
// hashed under p.key) on ch (in region) in this minute.
func (p *partial) creditLocked(a *Aggregator, h uint64, ch, region uint32) {
	p.chanLocked(ch).add(a.cfg.Precision, h)
	p.total.add(a.cfg.Precision, h)
	if region == 0 {
		return
	}
	k := cellKey(ch, region)
	// Tuning credits a device once per minute; Events may see it again.
	if a.cfg.Model == Tuning || p.pairs.add(h^(k*0x9E3779B97F4A7C15)) {
		p.cells.add(k, 1)
	}
}

// hourPartial is one shard's share of one open hour of the reach tier: the
// devices credited (tuning) or counted (events) in any of its minutes, per
// channel, as reach-tier hashes: pseudonyms keyed under key, the key of the
// hour's ISO week. A device is in a counter once however many minutes it is
// added in. There is no counter of all channels: the sealer makes the
// hour's total sketch as the union of its channels' (the same registers as
// counting every device again), which spares the per-event path one insert.
type hourPartial struct {
	hour  int64
	key   *sketch.Key
	chans []counter // by channel id; credits is 1 once a device is in
}

// hourLocked returns the shard's partial of hour h, creating it.
func (s *shard) hourLocked(h int64) *hourPartial {
	i := len(s.hours)
	for i > 0 && s.hours[i-1].hour > h {
		i--
	}
	if i > 0 && s.hours[i-1].hour == h {
		return s.hours[i-1]
	}
	hp := &hourPartial{hour: h, key: s.a.keyOfMinute(keys.Reach, h*60)}
	s.hours = slices.Insert(s.hours, i, hp)
	return hp
}

// addLocked adds the device of pseudonym pid to the hour on ch.
func (hp *hourPartial) addLocked(a *Aggregator, pid uint64, ch uint32) {
	growChans(&hp.chans, ch).mark(a.cfg.Precision, hp.key.HashUint64(pid))
}

// ingest applies items (all hashed onto this shard) and returns how many it
// accepted.
//
// It goes over the items twice. The first pass computes what each needs
// from its own fields (in the Events model, its hash under the minute's
// key) and loads, without using them, the table slots the second pass will
// probe: those loads do not depend on each other, so the processor has
// many cache misses in flight at once instead of one per event (the
// tables of a minute are megabytes, probed at random). The second pass
// applies the items in order, as before.
func (s *shard) ingest(items []item, rej *event.Rejections) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.a.cfg.Model == Events {
		s.prepareEventsLocked(items)
	} else {
		s.prepareTuningLocked(items)
		// Minutes an item completes are credited in batches too
		// (applyCreditsLocked), before the lock is released.
		s.crediting = true
		defer func() {
			s.applyCreditsLocked()
			s.crediting = false
		}()
	}
	accepted := 0
	var p *partial
	for i := range items {
		it := &items[i]
		m := it.m
		if m < s.nextSeal {
			// The sealer took this minute between the writer's pre-check
			// and now.
			s.a.stats.rejected[event.Late].Add(1)
			if rej != nil {
				rej.Count[event.Late]++
				if rej.First == nil {
					rej.First = &event.Error{Reason: event.Late, Detail: "minute is already sealed"}
				}
			}
			continue
		}
		accepted++
		// p is the partial of the item's minute once one is needed, kept
		// for the next items of that minute (partials are neither moved
		// nor removed while the lock is held).
		if it.kind == event.Tune {
			if p == nil || p.minute != m {
				p = s.partialLocked(m)
			}
			p.zaps.add(it.region, 1)
		}
		if s.a.cfg.Model == Tuning {
			s.applyLocked(it)
		} else if it.kind != event.Standby && it.ch != 0 {
			// The whole Events model: the device counts in its
			// event's (channel, minute).
			if p == nil || p.minute != m {
				p = s.partialLocked(m)
			}
			p.countLocked(s.a, it)
		}
	}
	return accepted
}

// prepareEventsLocked is ingest's first pass in the Events model, in
// loops whose iterations do not depend on each other: it sets each counted
// item's mh, touches its slot of pairs (or of an exact channel counter),
// then adds the item's (cell, device) pair (in item order, as the second
// pass would: the first of two equal pairs is the new one), and for a new
// pair computes hh and touches the cell's count and the exact channel and
// hour sets that countLocked will probe. It opens the partials the second
// pass would open, no others.
//
// The keyed hashes (mh, and hh of new pairs) are computed in batches
// (sketch.Key.HashUint64s) of up to len(hs) items under one key, gathered
// in hs with their indexes in at: several side by side cost about what
// one does.
func (s *shard) prepareEventsLocked(items []item) {
	var hs [64]uint64
	var at [64]int32
	var key *sketch.Key
	var pm *partial // the partial of the last item's minute
	n := 0
	for i := 0; ; i++ {
		var k *sketch.Key
		if i < len(items) {
			it := &items[i]
			m := it.m
			if m < s.nextSeal || it.kind == event.Standby || it.ch == 0 {
				continue
			}
			if pm == nil || pm.minute != m {
				pm = s.partialLocked(m)
			}
			k = pm.key
			it.pair = pairUnknown
			if it.region != 0 {
				it.pair = pairToAdd
			}
		}
		if n > 0 && (k != key || n == len(hs)) {
			key.HashUint64s(hs[:n], hs[:n])
			for j, h := range hs[:n] {
				items[at[j]].mh = h
			}
			n = 0
		}
		if i == len(items) {
			break
		}
		key, hs[n], at[n] = k, items[i].hash, int32(i)
		n++
	}
	var sink uint64
	prec := s.a.cfg.Precision
	p := s.last
	for i := range items {
		it := &items[i]
		if it.pair == pairNone {
			continue
		}
		if m := it.m; p == nil || p.minute != m {
			p = s.openLocked(m)
		}
		if it.pair == pairToAdd {
			sink += p.pairs.peek(pairKey(it.mh, it.ch, it.region))
		} else if int(it.ch) < len(p.chans) {
			sink += p.chans[it.ch].peek(prec, it.mh)
		}
	}
	for i := 0; ; i++ {
		var k *sketch.Key
		if i < len(items) {
			it := &items[i]
			if it.pair != pairToAdd {
				continue
			}
			if m := it.m; p == nil || p.minute != m {
				p = s.openLocked(m)
			}
			if !p.pairs.add(pairKey(it.mh, it.ch, it.region)) {
				it.pair = pairSeen
				continue
			}
			it.pair = pairNew
			k = p.hour.key
		}
		if n > 0 && (k != key || n == len(hs)) {
			key.HashUint64s(hs[:n], hs[:n])
			for j, h := range hs[:n] {
				items[at[j]].hh = h
			}
			n = 0
		}
		if i == len(items) {
			break
		}
		key, hs[n], at[n] = k, items[i].hash, int32(i)
		n++
	}
	for i := range items {
		it := &items[i]
		if it.pair != pairNew {
			continue
		}
		if m := it.m; p == nil || p.minute != m {
			p = s.openLocked(m)
		}
		sink += p.cells.peek(cellKey(it.ch, it.region)) + p.total.peek(prec, it.mh)
		if int(it.ch) < len(p.chans) {
			sink += p.chans[it.ch].peek(prec, it.mh)
		}
		if int(it.ch) < len(p.hour.chans) {
			sink += p.hour.chans[it.ch].peek(prec, it.hh)
		}
	}
	s.sink += sink
}

// pairKey is the key in partial.pairs of a device of minute-tier hash h in
// the cell (ch, region).
func pairKey(h uint64, ch, region uint32) uint64 {
	return h ^ (cellKey(ch, region) * 0x9E3779B97F4A7C15)
}

// item.pair: what ingest's first pass did about the item's (cell, device)
// pair (Events model).
const (
	pairNone    = iota // not counted (or not yet prepared)
	pairUnknown        // counted, with no region: no pair
	pairToAdd          // counted in a region; the pair is not added yet
	pairNew            // the pair was added: new in this minute
	pairSeen           // the pair was already there
)

// prepareTuningLocked is ingest's first pass in the Tuning model: it
// loads each item's slot of the device index, then finds each known
// device's entry (now in cache), sets the item's idx to it (-1 if
// unknown) and loads the entry.
func (s *shard) prepareTuningLocked(items []item) {
	var sink uint64
	for i := range items {
		sink += s.index.peek(items[i].hash)
	}
	for i := range items {
		it := &items[i]
		idx, ok := s.index.get(it.hash)
		if !ok {
			it.idx = -1
			continue
		}
		it.idx = idx
		d := &s.devs[idx]
		sink += uint64(d.last) + uint64(d.reachCh)
	}
	s.sink += sink
}

// openLocked returns the open partial of minute m, or nil.
func (s *shard) openLocked(m int64) *partial {
	for _, p := range s.open {
		if p.minute == m {
			return p
		}
	}
	return nil
}

// countLocked counts the device of item it (pseudonym it.hash, minute-tier
// hash it.mh) on its channel (in its region) in this minute and in its
// hour (Events model), doing only the work that can change something.
// Invariant: a (cell, device) pair is in pairs, or a device in an exact
// channel counter, only if the device is also in the channel's counter,
// the total and the hour partial (all three are added together the first
// time). So a device seen again in the same cell of the minute (a repeat
// heartbeat, a zap back) costs one keyed hash and one probe of pairs, and
// only counts credits, as add would: the channel's hour is skipped (its
// keyed hash too), and so are the total and the channel's registers. A
// new pair, or an event with no region, whose device an exact channel
// counter already holds (seen in another region) skips the total and the
// hour likewise; past denseAbove the counter cannot tell, and everything
// is added.
//
// After a restore onto more shards, pairs may be in a shard that does not
// hold the channel's counters: they are then in the writer's shard, and
// the sealer unions a channel's counters and hour partials across shards,
// so the skip changes no figure there either.
//
// ingest's first pass has added the pair (it.pair says whether it was
// new) and computed it.hh, the hour-tier hash, for a new pair.
func (p *partial) countLocked(a *Aggregator, it *item) {
	ch, h := it.ch, it.mh
	c := p.chanLocked(ch)
	if it.region != 0 {
		if it.pair == pairToAdd { // not prepared (no caller does this)
			it.pair = pairSeen
			if p.pairs.add(pairKey(h, ch, it.region)) {
				it.pair, it.hh = pairNew, p.hour.key.HashUint64(it.hash)
			}
		}
		if it.pair != pairNew {
			c.credits++
			p.total.credits++
			return
		}
		p.cells.add(cellKey(ch, it.region), 1)
	}
	if c.addKnown(a.cfg.Precision, h) {
		p.total.credits++
		return
	}
	p.total.add(a.cfg.Precision, h)
	hh := it.hh
	if it.pair != pairNew {
		hh = p.hour.key.HashUint64(it.hash)
	}
	growChans(&p.hour.chans, ch).mark(a.cfg.Precision, hh)
}

// takeLocked removes and returns the partial of minute m (nil if none), and
// the partials of the hours that end with m or before it, and marks m as
// handed over.
func (s *shard) takeLocked(m int64) (*partial, []*hourPartial) {
	var p *partial
	if len(s.open) > 0 && s.open[0].minute == m {
		p = s.open[0]
		s.open = s.open[1:]
		s.lastPairs = p.pairs.len()
		// A new slice: partials still open share the old one.
		sizes := make([]uint16, len(p.chans))
		for ch := range p.chans {
			c := &p.chans[ch]
			sizes[ch] = uint16(min(c.set.len(), denseAbove))
			if c.regs != nil {
				sizes[ch] = denseAbove
			}
		}
		s.sizes = sizes
	}
	if s.last == p {
		s.last = nil
	}
	s.nextSeal = m + 1
	n := 0
	for n < len(s.hours) && (s.hours[n].hour+1)*60 <= m+1 {
		n++
	}
	var hours []*hourPartial
	if n > 0 {
		hours = slices.Clone(s.hours[:n])
		s.hours = slices.Delete(s.hours, 0, n)
	}
	return p, hours
}

// take hands minute m of this shard to the sealer, with the hours it
// completes: in the Tuning model it first credits every device for m.
func (s *shard) take(m int64) (*partial, []*hourPartial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m < s.nextSeal {
		return nil, nil
	}
	if s.a.cfg.Model == Tuning {
		s.creditMinuteLocked(m)
	}
	return s.takeLocked(m)
}

// idleLocked reports whether the shard holds nothing that minutes up to m
// could need: no devices, no partial at or before m, and no hour partial
// that m would complete.
func (s *shard) idleLocked(m int64) bool {
	return s.index.n == 0 && (len(s.open) == 0 || s.open[0].minute > m) &&
		(len(s.hours) == 0 || (s.hours[0].hour+1)*60 > m+1)
}

// nextPartialMinute returns the first open minute, or -1.
func (s *shard) nextPartialMinuteLocked() int64 {
	if len(s.open) == 0 {
		return -1
	}
	return s.open[0].minute
}
