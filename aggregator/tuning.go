package aggregator

import (
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
)

// device is a tuning-table entry: a pseudonymous device's current channel and
// since when, and what it watched so far in the one minute it has not yet been
// credited for. It never holds anything older: earlier minutes are credited
// (into the minute's sketch and counts) and forgotten.
type device struct {
	hash   uint64
	since  int64  // start of the current segment (Unix ms)
	last   int64  // last event (Unix ms), for inactivity
	accMin int64  // every minute before it is credited; acc is for accMin
	ch     uint32 // current channel; 0 = off (standby, or not yet tuned)
	region uint32
	prev   uint32 // previous qualifying state's channel (0 = off), for flows
	acc    [accSlots]credit
	accN   uint8
	// flowDone: the current segment has qualified and its flow is counted.
	flowDone bool
	live     bool
	// The device is in the shard's partial of hour reachHour (hours since
	// 1970) on channel reachCh: adding it there again would change
	// nothing, so a device carried forward on one channel costs the reach
	// tier one hash per hour, not one per minute. Not checkpointed: a
	// restored device is added again, which is harmless.
	reachHour int32
	reachCh   uint32
	// mh is the device's minute-tier hash under the key of the day
	// mhEpoch-1 (0: none yet): a device credited every minute is hashed
	// once a day, not once a minute. Not checkpointed.
	mh      uint64
	mhEpoch int32
}

// accSlots is how many channels of a minute a device holds inline; more
// go to the shard's overflow map.
const accSlots = 4

type credit struct {
	ch uint32
	ms uint32
}

// applyLocked applies one event of the Tuning model (docs/semantics.md).
func (s *shard) applyLocked(it *item) {
	// A device known when ingest began is still there (devices are
	// deleted only by the sealer); one that was not may have been added
	// by an earlier item.
	idx, known := it.idx, it.idx >= 0
	if !known {
		idx, known = s.index.get(it.hash)
	}
	if !known {
		if it.kind == event.Standby {
			return // an unknown box going off changes nothing
		}
		idx = s.newDeviceLocked(it.hash, it.ts)
	}
	d := &s.devs[idx]
	t := max(it.ts, d.last)
	if d.ch != 0 && t-d.last >= s.a.cfg.Inactivity.Milliseconds() {
		s.expireLocked(d)
	}
	d.last = t
	if it.region != d.region {
		if d.ch != 0 {
			s.view(d.ch, d.region, -1)
			s.view(d.ch, it.region, +1)
		}
		d.region = it.region
	}
	switch it.kind {
	case event.Tune, event.Heartbeat:
		if it.ch == d.ch {
			return // same channel: activity only
		}
		if d.ch != 0 {
			s.endSegmentLocked(d, t)
		}
		s.setChannelLocked(d, it.ch)
		d.since = t
		d.flowDone = false
	case event.Standby:
		if d.ch != 0 {
			s.endSegmentLocked(d, t)
			s.setChannelLocked(d, 0)
		}
		s.toStateLocked(d, 0, minuteOf(t))
	}
}

func (s *shard) newDeviceLocked(h uint64, ts int64) int32 {
	var idx int32
	if n := len(s.free); n > 0 {
		idx = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		idx = s.appendDeviceLocked(device{})
	}
	s.devs[idx] = device{hash: h, last: ts, accMin: max(minuteOf(ts), s.nextSeal), live: true}
	s.index.put(h, idx)
	return idx
}

// appendDeviceLocked appends d to devs and returns its index. devs grows
// by hand rather than by append, to advise huge pages for a new array
// before it is touched (adviseHuge).
func (s *shard) appendDeviceLocked(d device) int32 {
	if len(s.devs) == cap(s.devs) {
		devs := make([]device, len(s.devs), max(2*cap(s.devs), 64))
		adviseHuge(devs[:cap(devs)])
		copy(devs, s.devs)
		s.devs = devs
	}
	s.devs = append(s.devs, d)
	return int32(len(s.devs) - 1)
}

func (s *shard) deleteLocked(idx int32) {
	d := &s.devs[idx]
	s.index.del(d.hash)
	*d = device{}
	s.free = append(s.free, idx)
}

func (s *shard) setChannelLocked(d *device, ch uint32) {
	if d.ch != 0 {
		s.view(d.ch, d.region, -1)
	}
	if ch != 0 {
		s.view(ch, d.region, +1)
	}
	d.ch = ch
}

func (s *shard) view(ch, region uint32, delta int32) {
	s.viewing.add(ch, region, uint32(delta))
}

// expireLocked ends the segment of a device silent for Inactivity.
func (s *shard) expireLocked(d *device) {
	end := d.last + s.a.cfg.Inactivity.Milliseconds()
	s.endSegmentLocked(d, end)
	s.setChannelLocked(d, 0)
	s.toStateLocked(d, 0, minuteOf(end))
}

// endSegmentLocked ends d's current segment at end: if it qualifies (lasted
// MinDwell), its flow is counted and its time is added to the minutes it
// covers that are not yet credited.
func (s *shard) endSegmentLocked(d *device, end int64) {
	if end-d.since < s.a.cfg.MinDwell.Milliseconds() {
		return // zapping: credited nowhere
	}
	s.qualifyLocked(d)
	s.addTimeLocked(d, d.since, end)
}

// qualifyLocked counts the flow into d's current segment once.
func (s *shard) qualifyLocked(d *device) {
	if d.flowDone {
		return
	}
	d.flowDone = true
	s.toStateLocked(d, d.ch, minuteOf(d.since))
}

// toStateLocked records that d's qualifying state became ch in minute m.
func (s *shard) toStateLocked(d *device, ch uint32, m int64) {
	if d.prev == ch {
		return
	}
	m = max(m, s.nextSeal)
	s.partialLocked(m).flows.add(cellKey(d.prev, ch), 1)
	d.prev = ch
}

// addTimeLocked adds [from, to) on d's current channel to every minute it
// covers that is not yet credited, crediting completed minutes on the way.
func (s *shard) addTimeLocked(d *device, from, to int64) {
	for m := max(minuteOf(from), d.accMin); m*msPerMinute < to; m++ {
		lo := max(from, m*msPerMinute)
		hi := min(to, (m+1)*msPerMinute)
		if hi <= lo {
			continue
		}
		if m > d.accMin {
			s.flushLocked(d)
			d.accMin = m
		}
		s.addCreditLocked(d, d.ch, uint32(hi-lo))
	}
}

// accOverflow in device.accN says the device's accumulator has more
// channels than fit inline and lives in shard.overflow.
const accOverflow = 0xFF

// addCreditLocked adds ms on ch to d's accumulator. The entry added to last
// is kept last, so ties go to the later channel. The first accSlots channels
// live in the device; a device that watches more in one minute (rare: each
// took at least MinDwell) moves its accumulator to the shard's overflow map
// until the minute is credited.
func (s *shard) addCreditLocked(d *device, ch, ms uint32) {
	if d.accN == accOverflow {
		s.overflow[d.hash] = addCredit(s.overflow[d.hash], ch, ms)
		return
	}
	acc := addCredit(d.acc[:d.accN], ch, ms)
	if len(acc) <= accSlots {
		d.accN = uint8(len(acc))
		return
	}
	if s.overflow == nil {
		s.overflow = make(map[uint64][]credit)
	}
	s.overflow[d.hash] = acc // a copy: it outgrew d.acc's capacity
	d.accN = accOverflow
}

func addCredit(acc []credit, ch, ms uint32) []credit {
	for i, c := range acc {
		if c.ch == ch {
			c.ms += ms
			copy(acc[i:], acc[i+1:])
			acc[len(acc)-1] = c
			return acc
		}
	}
	return append(acc, credit{ch, ms})
}

// flushLocked credits d for minute accMin to the channel it watched longest
// there, if any, and clears the accumulator.
func (s *shard) flushLocked(d *device) {
	acc := d.acc[:0]
	switch {
	case d.accN == accOverflow:
		acc = s.overflow[d.hash]
		delete(s.overflow, d.hash)
	default:
		acc = d.acc[:d.accN]
	}
	d.accN = 0
	if len(acc) == 0 {
		return
	}
	best := acc[0]
	for _, c := range acc[1:] {
		if c.ms >= best.ms {
			best = c
		}
	}
	p := s.partialLocked(d.accMin)
	if p.epoch == 0 {
		p.epoch = int32(s.a.cal.EpochOfMinute(keys.Minute, p.minute)) + 1
	}
	if d.mhEpoch != p.epoch {
		d.mh, d.mhEpoch = p.key.HashUint64(d.hash), p.epoch
	}
	if s.crediting {
		s.pending = append(s.pending, pendingCredit{p: p, h: d.mh, ch: best.ch, region: d.region})
		if len(s.pending) >= creditBatch {
			s.applyCreditsLocked()
		}
	} else {
		p.creditLocked(s.a, d.mh, best.ch, d.region)
	}
	if h := int32(hourOf(d.accMin)); d.reachHour != h || d.reachCh != best.ch {
		p.hour.addLocked(s.a, d.hash, best.ch)
		d.reachHour, d.reachCh = h, best.ch
	}
}

// creditMinuteLocked credits every device for minute m before the minute is
// handed to the sealer: open segments carry forward into m (and qualify, as
// Lateness >= MinDwell), silent devices expire, devices with nothing left to
// credit and no channel are forgotten.
func (s *shard) creditMinuteLocked(m int64) {
	start, end := m*msPerMinute, (m+1)*msPerMinute
	inactivity := s.a.cfg.Inactivity.Milliseconds()
	s.crediting = true
	defer func() {
		s.applyCreditsLocked()
		s.crediting = false
	}()
	for i := range s.devs {
		d := &s.devs[i]
		if !d.live || d.accMin > m {
			continue
		}
		if d.ch != 0 && d.last+inactivity < end {
			s.expireLocked(d)
		}
		if d.ch != 0 && d.since < end {
			s.qualifyLocked(d)
			s.addTimeLocked(d, max(d.since, start), end)
		}
		s.flushLocked(d)
		d.accMin = m + 1
		if d.ch == 0 {
			s.deleteLocked(int32(i))
		}
	}
}

// creditBatch is how many credits flushLocked gathers (while crediting)
// before it applies them.
const creditBatch = 256

// pendingCredit is a credit of creditMinuteLocked not yet applied: the
// device of minute-tier hash h on ch in region, in partial p.
type pendingCredit struct {
	p          *partial
	h          uint64
	ch, region uint32
}

// applyCreditsLocked applies the pending credits, in two passes as ingest
// does (shard.ingest): the first loads the slots of the counters each
// credit will probe (its channel's set or registers, the total's, its
// region cell's), with no dependence between iterations, so that their
// cache misses overlap; the second credits. A minute's credits are
// counted in sets, registers and counts, which the order of adding does
// not change.
func (s *shard) applyCreditsLocked() {
	prec := s.a.cfg.Precision
	var sink uint64
	for i := range s.pending {
		c := &s.pending[i]
		if int(c.ch) < len(c.p.chans) {
			sink += c.p.chans[c.ch].peek(prec, c.h)
		}
		sink += c.p.total.peek(prec, c.h)
		if c.region != 0 {
			sink += c.p.cells.peek(cellKey(c.ch, c.region))
		}
	}
	for i := range s.pending {
		c := &s.pending[i]
		c.p.creditLocked(s.a, c.h, c.ch, c.region)
	}
	s.sink += sink
	clear(s.pending) // no partial kept alive
	s.pending = s.pending[:0]
}
