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
	// sink takes the loads of ingest's first passes (see
	// ingestEventsLocked), so that they are not optimized away.
	sink uint64
	// Scratch of ingestEventsLocked: the minute-tier hashes of the items
	// it counts, the indexes of its fresh items and their hour-tier hashes.
	mh, hh []uint64
	pk     []uint64 // the items' pair keys (pairKeys)
	fresh  []int32
	runs   []minuteRun

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
func (s *shard) ingest(items []item, rej *event.Rejections) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.a.cfg.Model == Events {
		return s.ingestEventsLocked(items, rej)
	}
	return s.ingestTuningLocked(items, rej)
}

// rejectLateLocked counts an item whose minute the sealer took between the
// writer's pre-check and the shard's lock.
func (s *shard) rejectLateLocked(rej *event.Rejections) {
	s.a.stats.rejected[event.Late].Add(1)
	if rej != nil {
		rej.Count[event.Late]++
		if rej.First == nil {
			rej.First = &event.Error{Reason: event.Late, Detail: "minute is already sealed"}
		}
	}
}

// ingestTuningLocked is ingest in the Tuning model. A first pass loads
// each item's slots of the device index and its entry, without using them
// (prepareTuningLocked): those loads do not depend on each other, so the
// processor has many cache misses in flight at once instead of one per
// event. The items are then applied in order.
func (s *shard) ingestTuningLocked(items []item, rej *event.Rejections) int {
	s.prepareTuningLocked(items)
	// Minutes an item completes are credited in batches too
	// (applyCreditsLocked), before the lock is released.
	s.crediting = true
	defer func() {
		s.applyCreditsLocked()
		s.crediting = false
	}()
	accepted := 0
	var p *partial
	for i := range items {
		it := &items[i]
		m := it.m
		if m < s.nextSeal {
			s.rejectLateLocked(rej)
			continue
		}
		accepted++
		if it.kind == event.Tune {
			// p is kept for the next items of its minute (partials are
			// neither moved nor removed while the lock is held).
			if p == nil || p.minute != m {
				p = s.partialLocked(m)
			}
			p.zaps.add(it.region, 1)
		}
		s.applyLocked(it)
	}
	return accepted
}

// ingestEventsLocked is ingest in the Events model: every tune, heartbeat
// and zap counts its device in its (channel, minute), its region cell and
// its hour. It works in passes whose iterations do not depend on each
// other, so that the processor overlaps their cache misses (a minute's
// tables are megabytes, probed at random) and the keyed hashes run side by
// side (sketch.Key.HashUint64s, 8 at a time):
//
//  1. late items are rejected, tunes counted by region, and the items to
//     count kept in order at the front of items, their pseudonyms in
//     s.mh, then hashed there in place under their minute's key;
//  2. the items' pair keys are computed (pairKeys), and the pair-table
//     slots pass 3 probes loaded, without using them (peekPairs);
//  3. each (cell, device) pair is added to the minute's pairs: a pair
//     already there (a repeat heartbeat, a zap back) only counts a credit;
//     the others are kept in s.fresh;
//  4. the fresh items' pseudonyms are hashed under their hour's key, and
//     their counters' slots loaded (peekFresh);
//  5. the fresh items are counted (partial.countFreshLocked).
//
// An item with no region has no pair: pass 3 adds it to its channel's
// counter instead, and it is fresh if the counter cannot tell that it held
// the device already.
//
// Invariant: a (cell, device) pair is in pairs only if the device is also
// in the channel's counter, the total and the hour partial (all are added
// together the first time), so a pair seen again changes no sketch.
// Likewise an exact channel counter that already holds the device of an
// item (with no region, or of a new pair: seen in another region) skips the
// total and the hour; past denseAbove the counter cannot tell, and
// everything is added. After a restore onto more shards, pairs may be in a
// shard that does not hold the channel's counters: they are then in the
// writer's shard, and the sealer unions a channel's counters and hour
// partials across shards, so the skip changes no figure there either.
func (s *shard) ingestEventsLocked(items []item, rej *event.Rejections) int {
	items, accepted := s.keepLocked(items, rej)
	if len(items) == 0 {
		return accepted
	}
	// The passes' inner loops take one minute's run of items (see
	// minuteRun) and call nothing, so that the compiler keeps their
	// variables in registers: a call anywhere in a loop makes it spill
	// them on every iteration.
	mh := s.mh
	pk := pairKeys(s.pk, items, mh)
	s.pk = pk
	var sink uint64
	from := 0
	for _, r := range s.runs {
		sink += peekPairs(pk[from:r.end], r.p.pairs.slots)
		from = r.end
	}
	s.sink += sink
	fresh := s.fresh[:0]
	from = 0
	for _, r := range s.runs {
		fresh = s.addPairsLocked(fresh, items, mh, pk, from, r)
		from = r.end
	}
	s.fresh = fresh
	if len(fresh) > 0 {
		s.countFreshLocked(items, mh, fresh)
	}
	return accepted
}

// minuteRun is a run of consecutive items to count of one minute (of
// partial p), up to index end (excluded) of the kept items: ingest's
// passes take a run at a time, with its partial at hand.
type minuteRun struct {
	p   *partial
	end int
}

// keepLocked is pass 1 of ingestEventsLocked: it returns the items to count
// (at the front of items) with their minute-tier hashes in s.mh and their
// minute's runs in s.runs, and the number of items accepted.
func (s *shard) keepLocked(items []item, rej *event.Rejections) (_ []item, accepted int) {
	mh := s.mh[:0]
	if cap(mh) < len(items) {
		mh = make([]uint64, 0, len(items))
	}
	mh = mh[:len(items)]
	runs := s.runs[:0]
	var p *partial
	i, kept := 0, 0
	for {
		if p != nil {
			i, kept = keepRun(items, mh, i, kept, p)
		}
		if i == len(items) {
			break
		}
		// An item keepRun cannot take: late, of another minute, a standby,
		// or a tune whose region is new to the minute's zaps.
		it := &items[i]
		i++
		m := it.m
		if m < s.nextSeal {
			s.rejectLateLocked(rej)
			continue
		}
		counted := it.kind != event.Standby && it.ch != 0
		if !counted {
			accepted++ // the kept are counted at the end
			if it.kind != event.Tune {
				continue
			}
		}
		if p == nil || p.minute != m {
			if p != nil {
				runs = append(runs, minuteRun{p, kept})
			}
			p = s.partialLocked(m)
		}
		if it.kind == event.Tune {
			p.zaps.add(it.region, 1)
		}
		if counted {
			items[kept] = *it
			mh[kept] = it.hash
			kept++
		}
	}
	if p != nil {
		runs = append(runs, minuteRun{p, kept})
	}
	accepted += kept
	from := 0
	for _, r := range runs {
		r.p.key.HashUint64s(mh[from:r.end], mh[from:r.end])
		from = r.end
	}
	s.mh, s.runs = mh[:kept], runs
	return items[:kept], accepted
}

// keepRun is keepLocked's inner loop: from items[i], while they are tunes
// or heartbeats of p's minute (not late: p is open) whose region p.zaps
// counts already, it counts tunes in p.zaps and keeps the items at
// items[kept], their pseudonyms at mh[kept]. It returns the next i and
// kept.
func keepRun(items []item, mh []uint64, i, kept int, p *partial) (int, int) {
	m, zaps := p.minute, p.zaps
	for ; i < len(items); i++ {
		it := &items[i]
		if it.m != m || it.ch == 0 || it.kind == event.Standby {
			break
		}
		if it.kind == event.Tune {
			if int(it.region) >= len(zaps) {
				break
			}
			zaps[it.region]++
		}
		if kept != i {
			items[kept] = *it
		}
		mh[kept] = it.hash
		kept++
	}
	return i, kept
}

// peekPairs is pass 2 of ingestEventsLocked over one minute's run: it
// loads the slots of slots (the minute's pairs table) where the probes for
// the keys pk start, without using them.
func peekPairs(pk, slots []uint64) (sink uint64) {
	if len(slots) == 0 {
		return 0
	}
	// As few instructions an item as can be: the more loads the
	// processor's window holds at once, the more of their cache misses
	// overlap (with the key computed here too, the loop was 25
	// instructions an item, and a fifth of ingest's time waited in it).
	mask := uint64(len(slots) - 1)
	for _, k := range pk {
		sink += slots[(k>>16)&mask]
	}
	return sink
}

// pairKeys returns, in dst (reused), the key in partial.pairs of each
// item's (cell, device) pair as hashSet.add stores it (never 0), or 0 for
// an item with no region (no pair). mh holds the items' minute-tier hashes.
func pairKeys(dst []uint64, items []item, mh []uint64) []uint64 {
	if cap(dst) < len(items) {
		dst = make([]uint64, len(items))
	}
	dst = dst[:len(items)]
	mh = mh[:len(items)]
	for i := range items {
		it := &items[i]
		k := pairKey(mh[i], it.ch, it.region)
		if k == 0 {
			k = 1
		}
		if it.region == 0 {
			k = 0
		}
		dst[i] = k
	}
	return dst
}

// addPairsLocked is pass 3 of ingestEventsLocked over run r, the items from
// index from: it adds each item's (cell, device) pair, or with no region
// its device to its channel's counter, counts a credit for those already
// there and appends the indexes of the others to fresh.
func (s *shard) addPairsLocked(fresh []int32, items []item, mh, pk []uint64, from int, r minuteRun) []int32 {
	p, prec := r.p, s.a.cfg.Precision
	// pairRun writes fresh indexes in place: room for every item.
	fresh = slices.Grow(fresh, r.end-from)
	for i := from; i < r.end; i++ {
		var nf int
		i, nf = pairRun(items[:r.end], pk, i, p, fresh[len(fresh):cap(fresh)])
		fresh = fresh[:len(fresh)+nf]
		if i == r.end {
			break
		}
		// An item pairRun cannot take: it has no region, or its channel
		// has no counter yet, or the pairs table must grow.
		it := &items[i]
		if it.region == 0 {
			// No pair: the channel's counter tells whether the device is
			// new (pass 5 counts it in the total and the hour).
			if p.chanLocked(it.ch).addKnown(prec, mh[i]) {
				p.total.credits++
				continue
			}
		} else if !p.pairs.add(pk[i]) {
			// A pair already there that pairRun did not take: its channel
			// has no counter in this shard (restored pairs: see
			// ingestEventsLocked), or the table was at its growth point.
			p.chanLocked(it.ch).credits++
			p.total.credits++
			continue
		}
		fresh = append(fresh, int32(i))
	}
	return fresh
}

// pairRun is addPairsLocked's inner loop: from items[i], while the items
// have a region, their channels a counter, and the pairs table room
// without growing, it adds their (cell, device) pairs to p.pairs: for a
// pair already there it counts a credit, and it writes the index of each
// new one to fresh, which has room for all. It returns the index of the
// first item it did not take and the number of fresh indexes written.
func pairRun(items []item, pk []uint64, i int, p *partial, fresh []int32) (int, int) {
	slots, chans := p.pairs.slots, p.chans
	if len(slots) == 0 {
		return i, 0
	}
	// At most room pairs can be added before the table must grow (as
	// hashSet.add grows it): fresh is cut to that.
	room := max(len(slots)/2-1-p.pairs.n, 0)
	fresh = fresh[:min(len(fresh), room)]
	pk = pk[:len(items)]
	mask := uint64(len(slots) - 1)
	i0, nf := i, 0
	for ; i < len(items); i++ {
		it, k := &items[i], pk[i]
		if k == 0 || int(it.ch) >= len(chans) || nf >= len(fresh) {
			break // no region, or see above
		}
		j := (k >> 16) & mask
		for slots[j] != k && slots[j] != 0 {
			j = (j + 1) & mask
		}
		if slots[j] == 0 {
			slots[j] = k
			fresh[nf] = int32(i)
			nf++
			continue
		}
		chans[it.ch].credits++
	}
	p.pairs.n += nf
	p.total.credits += uint32(i - i0 - nf)
	return i, nf
}

// countFreshLocked is passes 4 and 5 of ingestEventsLocked: it counts
// items[fresh[j]], whose minute-tier hashes are in mh, in their cell,
// channel, total and hour. fresh is ascending, as the runs of s.runs.
func (s *shard) countFreshLocked(items []item, mh []uint64, fresh []int32) {
	hh := s.hh[:0]
	if cap(hh) < len(fresh) {
		hh = make([]uint64, 0, len(fresh))
	}
	hh = hh[:len(fresh)]
	for j, i := range fresh {
		hh[j] = items[i].hash
	}
	s.hh = hh
	prec := s.a.cfg.Precision
	from := 0
	for _, r := range s.runs {
		// fresh[from:to] are the items of run r.
		to := from
		for to < len(fresh) && int(fresh[to]) < r.end {
			to++
		}
		if to == from {
			continue
		}
		f, h := fresh[from:to], hh[from:to]
		r.p.hour.key.HashUint64s(h, h)
		s.sink += peekFresh(items, mh, f, h, r.p, prec)
		r.p.countFreshLocked(items, mh, f, h, prec)
		from = to
	}
}

// peekFresh loads the slots that countFreshLocked will probe first for the
// items of fresh (of p's minute; their hour-tier hashes in hh), without
// using them.
func peekFresh(items []item, mh []uint64, fresh []int32, hh []uint64, p *partial, prec uint8) (sink uint64) {
	hh = hh[:len(fresh)]
	for j, i := range fresh {
		it := &items[i]
		sink += p.total.peek(prec, mh[i])
		if it.region != 0 {
			sink += p.cells.peek(cellKey(it.ch, it.region))
			if int(it.ch) < len(p.chans) {
				sink += p.chans[it.ch].peek(prec, mh[i])
			}
		}
		if int(it.ch) < len(p.hour.chans) {
			sink += p.hour.chans[it.ch].peek(prec, hh[j])
		}
	}
	return sink
}

// countFreshLocked counts the items of fresh (of p's minute; their
// hour-tier hashes in hh) in their cell, channel, total and hour.
func (p *partial) countFreshLocked(items []item, mh []uint64, fresh []int32, hh []uint64, prec uint8) {
	hh = hh[:len(fresh)]
	for j, i := range fresh {
		it := &items[i]
		if it.region != 0 {
			p.cells.add(cellKey(it.ch, it.region), 1)
			if p.chanLocked(it.ch).addKnown(prec, mh[i]) {
				p.total.credits++
				continue
			}
		}
		p.total.add(prec, mh[i])
		growChans(&p.hour.chans, it.ch).mark(prec, hh[j])
	}
}

// pairKey is the key in partial.pairs of a device of minute-tier hash h in
// the cell (ch, region).
func pairKey(h uint64, ch, region uint32) uint64 {
	return h ^ (cellKey(ch, region) * 0x9E3779B97F4A7C15)
}

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
