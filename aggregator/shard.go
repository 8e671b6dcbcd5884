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
	devIdx map[uint64]int32
	devs   []device
	free   []int32
	// overflow holds the minute accumulators of devices that watched more
	// than accSlots channels in it, by device hash.
	overflow map[uint64][]credit
	// viewing counts devices currently on each (channel, region) cell, for
	// the "now" figures: key is cellKey(ch, region).
	// It is a countMap with wrapping arithmetic (a decrement adds 2^32-1):
	// every net count is non-negative. Profiled: as a Go map, updating it
	// on every channel change took a fifth of end-to-end ingest.
	viewing countMap
}

func newShard(a *Aggregator) *shard {
	s := &shard{a: a}
	if a.cfg.Model == Tuning {
		s.devIdx = make(map[uint64]int32)
	}
	return s
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
	hour   *hourPartial // the shard's partial of the minute's hour
	chans  []counter    // by channel id
	total  counter
	// cells counts devices per cellKey(ch, region). In the Events model a
	// device counts once per cell: pairs holds the (cell, device) pairs
	// seen, as one mixed 64-bit key each, in one table rather than a set
	// per cell (one cache miss per event instead of three).
	cells countMap
	pairs hashSet
	flows map[uint64]uint32 // cellKey(from, to) → devices (tuning)
	zaps  map[uint32]uint32 // region → tune events
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
		zaps:   make(map[uint32]uint32),
	}
	if s.a.cfg.Model == Tuning {
		p.flows = make(map[uint64]uint32)
	}
	s.open = append(s.open, nil)
	copy(s.open[i+1:], s.open[i:])
	s.open[i] = p
	s.last = p
	return p
}

func (p *partial) chanLocked(ch uint32) *counter { return growChans(&p.chans, ch) }

func growChans(cs *[]counter, ch uint32) *counter {
	if int(ch) >= len(*cs) {
		chans := make([]counter, max(int(ch)+1, 2*len(*cs), 16))
		copy(chans, *cs)
		*cs = chans
	}
	return &(*cs)[ch]
}

// creditLocked counts the device of pseudonym pid on ch (in region) in this
// minute, under the day's key.
func (p *partial) creditLocked(a *Aggregator, pid uint64, ch, region uint32) {
	h := p.key.HashUint64(pid)
	p.chanLocked(ch).add(a, p.key, h)
	p.total.add(a, p.key, h)
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
	growChans(&hp.chans, ch).mark(a, hp.key, hp.key.HashUint64(pid))
}

// ingest applies items (all hashed onto this shard) and returns how many it
// accepted.
func (s *shard) ingest(items []item, rej *event.Rejections) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepted := 0
	for i := range items {
		it := &items[i]
		m := minuteOf(it.ts)
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
		if it.kind == event.Tune {
			s.partialLocked(m).zaps[it.region]++
		}
		if s.a.cfg.Model == Events {
			s.countEventLocked(it, m)
		} else {
			s.applyLocked(it)
		}
	}
	return accepted
}

// countEventLocked is the whole Events model: the device counts in its
// event's (channel, minute).
func (s *shard) countEventLocked(it *item, m int64) {
	if it.kind == event.Standby || it.ch == 0 {
		return
	}
	p := s.partialLocked(m)
	p.creditLocked(s.a, it.hash, it.ch, it.region)
	p.hour.addLocked(s.a, it.hash, it.ch)
}

// takeLocked removes and returns the partial of minute m (nil if none), and
// the partials of the hours that end with m or before it, and marks m as
// handed over.
func (s *shard) takeLocked(m int64) (*partial, []*hourPartial) {
	var p *partial
	if len(s.open) > 0 && s.open[0].minute == m {
		p = s.open[0]
		s.open = s.open[1:]
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
	return len(s.devIdx) == 0 && (len(s.open) == 0 || s.open[0].minute > m) &&
		(len(s.hours) == 0 || (s.hours[0].hour+1)*60 > m+1)
}

// nextPartialMinute returns the first open minute, or -1.
func (s *shard) nextPartialMinuteLocked() int64 {
	if len(s.open) == 0 {
		return -1
	}
	return s.open[0].minute
}
