package aggregator

import (
	"sync"

	"github.com/ratingsd/ratingsd/aggregator/event"
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
type partial struct {
	minute int64
	chans  []counter // by channel id
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

func (p *partial) chanLocked(ch uint32) *counter {
	if int(ch) >= len(p.chans) {
		chans := make([]counter, max(int(ch)+1, 2*len(p.chans), 16))
		copy(chans, p.chans)
		p.chans = chans
	}
	return &p.chans[ch]
}

// creditLocked counts device h on ch (in region) in this minute.
func (p *partial) creditLocked(a *Aggregator, h uint64, ch, region uint32) {
	p.chanLocked(ch).add(a, h)
	p.total.add(a, h)
	if region == 0 {
		return
	}
	k := cellKey(ch, region)
	// Tuning credits a device once per minute; Events may see it again.
	if a.cfg.Model == Tuning || p.pairs.add(h^(k*0x9E3779B97F4A7C15)) {
		p.cells.add(k, 1)
	}
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
	s.partialLocked(m).creditLocked(s.a, it.hash, it.ch, it.region)
}

// takeLocked removes and returns the partial of minute m (nil if none) and
// marks m as handed over.
func (s *shard) takeLocked(m int64) *partial {
	var p *partial
	if len(s.open) > 0 && s.open[0].minute == m {
		p = s.open[0]
		s.open = s.open[1:]
	}
	if s.last == p {
		s.last = nil
	}
	s.nextSeal = m + 1
	return p
}

// take hands minute m of this shard to the sealer: in the Tuning model it first
// credits every device for m.
func (s *shard) take(m int64) *partial {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m < s.nextSeal {
		return nil
	}
	if s.a.cfg.Model == Tuning {
		s.creditMinuteLocked(m)
	}
	return s.takeLocked(m)
}

// idleLocked reports whether the shard holds nothing that minutes up to m
// could need: no devices and no partial at or before m.
func (s *shard) idleLocked(m int64) bool {
	return len(s.devIdx) == 0 && (len(s.open) == 0 || s.open[0].minute > m)
}

// nextPartialMinute returns the first open minute, or -1.
func (s *shard) nextPartialMinuteLocked() int64 {
	if len(s.open) == 0 {
		return -1
	}
	return s.open[0].minute
}
