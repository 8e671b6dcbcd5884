package aggregator

import (
	"fmt"
	"slices"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Restore of the sections of key epochs (checkpoint.go has their layout):
// a day's open partials, sealed minutes and hourly rollups, and an ISO
// week's reach-tier hour partials and hours.

// restoreDay decodes the section of day d, whose key is key.
func (a *Aggregator) restoreDay(r *reader, rs *restoreState, d int64, key *sketch.Key) error {
	start, end := a.cal.SpanMinutes(keys.Minute, d)
	prev := make(map[uint64]int64) // writer shard → its last partial's minute
	for range r.count(8) {
		from, m := r.u(), r.v()
		if last, ok := prev[from]; r.err == nil && (from >= uint64(rs.shards) || m < rs.firstOpen || rs.firstOpen < 0 || m < start || m >= end || (ok && m <= last)) {
			return r.fail("partial of shard %d of %d, minute %d (first open %d, day %s)", from, rs.shards, m, rs.firstOpen, keys.Label(keys.Minute, d))
		}
		prev[from] = m
		p := &partial{minute: m, key: key}
		if err := a.readPartial(r, rs, p); err != nil {
			return err
		}
		// The partial's hour needs the key of its week.
		if _, _, err := a.ensureKeys(m, m); err != nil {
			return err
		}
		if err := a.placePartial(int(from), rs.shards, p); err != nil {
			return r.fail("%v", err)
		}
	}

	for range r.count(8) {
		if _, err := a.readMinute(r, rs, key, d, start, end, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// readMinute reads a sealed minute of day d ([start, end) in minutes)
// under key and stores it, unless it is before the first minute kept (a
// segment may hold minutes that retention dropped since). chNames and
// regNames map the ids it reads to names; nil means the names section's.
func (a *Aggregator) readMinute(r *reader, rs *restoreState, key *sketch.Key, d, start, end int64, chNames, regNames []string) (*Minute, error) {
	if chNames == nil {
		chNames, regNames = a.channels.all(), a.regions.all()
	}
	nch, nreg := uint64(len(chNames)-1), uint64(len(regNames)-1)
	m := r.v()
	if r.err == nil && (m <= rs.lastMinute || m > rs.newest || m < start || m >= end) {
		return nil, r.fail("sealed minute %d after %d, kept %d..%d, day %s", m, rs.lastMinute, rs.first, rs.newest, keys.Label(keys.Minute, d))
	}
	rs.lastMinute = m
	sealed := &Minute{Start: minuteTime(m), key: key}
	sealed.Total = r.est()
	sealed.packedTotal = r.packed(a, key)
	k := r.count(5)
	if r.err != nil {
		return nil, r.err
	}
	sealed.byName = make(map[string]int, k)
	for i := range k {
		cm := ChannelMinute{Channel: chNames[r.id(nch)], Audience: r.est(), packed: r.packed(a, key)}
		if _, dup := sealed.byName[cm.Channel]; r.err == nil && (dup || cm.Channel == "") {
			return nil, r.fail("minute %d: channel %q twice or none", m, cm.Channel)
		}
		if sealed.Total.Value > 0 {
			cm.Share = float64(cm.Audience.Value) / float64(sealed.Total.Value)
		}
		sealed.byName[cm.Channel] = int(i)
		sealed.Channels = append(sealed.Channels, cm)
	}
	sealed.cells = rows{a: regNames, b: chNames}
	for range r.count(3) {
		ch, region, n := r.id(nch), r.id(nreg), r.u()
		sealed.cells.add(uint32(region), uint32(ch), n)
	}
	sealed.cells.done()
	sealed.flows = rows{a: chNames, b: chNames}
	for range r.count(3) {
		from, to, n := r.id(nch), r.id(nch), r.u()
		sealed.flows.add(uint32(from), uint32(to), n)
	}
	sealed.flows.done()
	for range r.count(2) {
		sealed.Zaps = append(sealed.Zaps, RegionCount{Region: regNames[r.id(nreg)], Count: r.u()})
	}
	if r.err != nil {
		return nil, r.err
	}
	if m >= rs.first {
		a.store.minutes[m] = sealed
	}
	return sealed, nil
}

// readPartial reads the rest of an open minute's partial into p.
func (a *Aggregator) readPartial(r *reader, rs *restoreState, p *partial) error {
	last := uint32(0)
	for range r.count(3) {
		ch := r.id(rs.nch)
		if r.err == nil && ch <= last {
			return r.fail("partial channels out of order: %d after %d", ch, last)
		}
		last = ch
		c := p.chanLocked(ch)
		if r.counter(a, p.key, c); r.err == nil && c.credits == 0 {
			return r.fail("channel %d counter with no credits", ch)
		}
	}
	r.counter(a, p.key, &p.total)
	for range r.count(3) {
		ch, region, c := r.id(rs.nch), r.id(rs.nreg), r.u32()
		k := cellKey(ch, region)
		if r.err == nil && (ch == 0 || region == 0 || p.cells.get(k) != 0 || c == 0) {
			return r.fail("region cell %d/%d: count %d", ch, region, c)
		}
		p.cells.add(k, c)
	}
	for range r.count(8) {
		if h := r.u64(); r.err == nil && (h == 0 || !p.pairs.add(h)) {
			return r.fail("a (cell, device) pair is 0 or appears twice")
		}
	}
	nf := r.count(3)
	if r.err == nil && nf > 0 && a.cfg.Model != Tuning {
		return r.fail("%d flows in the events model", nf)
	}
	for range nf {
		k := cellKey(r.id(rs.nch), r.id(rs.nch))
		if n := r.u32(); r.err == nil {
			if k == 0 {
				return r.fail("a flow from off to off")
			}
			p.flows.add(k, n)
		}
	}
	for range r.count(2) {
		region := r.id(rs.nreg)
		p.zaps.add(region, r.u32())
	}
	return r.err
}

// readHourSketches reads an hour's packed sketches under key: total, then
// per channel, whose ids are positions in names plus one.
func (a *Aggregator) readHourSketches(r *reader, key *sketch.Key, names []string) hourSketches {
	h := hourSketches{key: key, total: r.packed(a, key), chans: make(map[string]packed)}
	for range r.count(3) {
		i := r.id(uint64(len(names)))
		p := r.packed(a, key)
		if r.err != nil {
			break
		}
		if i == 0 || h.chans[names[i-1]] != nil {
			r.fail("hour: channel %d twice or none", i)
			break
		}
		h.chans[names[i-1]] = p
	}
	return h
}

// restoreWeek decodes the section of ISO week w, whose key is key.
func (a *Aggregator) restoreWeek(r *reader, rs *restoreState, w int64, key *sketch.Key) error {
	start, end := a.cal.SpanMinutes(keys.Reach, w)
	prev := make(map[uint64]int64) // writer shard → its last hour partial
	for range r.count(4) {
		from, n := r.u(), r.v()
		if last, ok := prev[from]; r.err == nil && (from >= uint64(rs.shards) || rs.firstOpen < 0 || n < hourOf(rs.firstOpen) || n*60 < start || n*60 >= end || (ok && n <= last)) {
			return r.fail("hour partial of shard %d of %d, hour %d (first open minute %d, week %s)", from, rs.shards, n, rs.firstOpen, keys.Label(keys.Reach, w))
		}
		prev[from] = n
		hp := &hourPartial{hour: n, key: key}
		last := uint32(0)
		for range r.count(2) {
			ch := r.id(rs.nch)
			if r.err == nil && ch <= last {
				return r.fail("hour partial channels out of order: %d after %d", ch, last)
			}
			last = ch
			c := growChans(&hp.chans, ch)
			if r.hourSet(a, key, c); r.err == nil && c.credits == 0 {
				return r.fail("hour partial channel %d with no devices", ch)
			}
		}
		if r.err != nil {
			return r.err
		}
		if err := a.shards[from&a.mask].mergeHour(hp); err != nil {
			return r.fail("%v", err)
		}
	}

	return nil
}

// hourSet reads the devices of an hour partial's counter.
func (r *reader) hourSet(a *Aggregator, key *sketch.Key, c *counter) {
	r.set(a, key, c, func(uint64) bool { return true })
	if c.regs != nil || c.set.len() > 0 {
		c.credits = 1
	}
}

// mergeHour puts the hour partial hp (of a writer's shard) into s, merged
// with the partial of its hour already there (the devices of both).
func (s *shard) mergeHour(hp *hourPartial) error {
	q := s.hourLocked(hp.hour)
	if q.key != hp.key {
		return fmt.Errorf("hour %d under two keys", hp.hour)
	}
	for ch := range hp.chans {
		if hp.chans[ch].credits > 0 {
			c := growChans(&q.chans, uint32(ch))
			if err := c.merge(s.a, q.key, &hp.chans[ch]); err != nil {
				return err
			}
			c.credits = 1
		}
	}
	return nil
}

// restoreRollup rebuilds the hourly rollup of the newest sealed minute's
// hour, if it is incomplete, from its minutes, in the order put merged
// them. A packed sketch that does not decode is damage.
func (a *Aggregator) restoreRollup() error {
	st := &a.store
	hn := hourOf(st.newest)
	if st.newest < 0 || st.hours[hn] != nil {
		return nil
	}
	var h *hour
	for m := max(hn*60, st.first); m <= st.newest; m++ {
		sealed := st.minutes[m]
		if sealed == nil {
			continue
		}
		if h == nil {
			h = &hour{live: &liveHour{chans: make(map[string]*sketch.Sketch), total: a.newSketch(sealed.key)}}
			h.key = sealed.key
		}
		if err := h.add(a, sealed); err != nil {
			return fmt.Errorf("rebuild the rollup of hour %s: %w: %w", rfc(minuteTime(hn*60)), ErrCheckpointCorrupt, err)
		}
	}
	if h != nil {
		st.hours[hn] = h
	}
	return nil
}

// placePartial puts the partial p of the writer's shard from (of shards)
// into this aggregator's shards. With the same shard count it goes back where
// it was. Otherwise it goes to shard from&mask, merged with what is there:
// in the Tuning model any shard can hold any devices' credits of an open
// minute (each device is credited once per minute, so shards' counts add
// up); in the Events model a channel's counters may then be in two shards,
// which the sealer deduplicates like the totals, and when there are more
// shards than before the (cell, device) pairs are copied to every shard
// that now receives some of the writer shard's channels, so that a device
// seen in a cell before the checkpoint is not counted in it again.
func (a *Aggregator) placePartial(from, shards int, p *partial) error {
	to := a.shards[uint64(from)&a.mask]
	if err := to.mergePartial(p); err != nil {
		return err
	}
	if a.cfg.Model == Events && len(a.shards) > shards {
		for j := from + shards; j < len(a.shards); j += shards {
			q := &partial{minute: p.minute, pairs: hashSet{slots: slices.Clone(p.pairs.slots), n: p.pairs.n}}
			if err := a.shards[j].mergePartial(q); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *shard) mergePartial(p *partial) error {
	i, found := slices.BinarySearchFunc(s.open, p.minute, func(q *partial, m int64) int {
		return int(q.minute - m)
	})
	if !found {
		if p.key == nil {
			p.key = s.a.keyOfMinute(keys.Minute, p.minute)
		}
		p.hour = s.hourLocked(hourOf(p.minute))
		s.open = slices.Insert(s.open, i, p)
		return nil
	}
	q := s.open[i]
	for ch := range p.chans {
		if p.chans[ch].credits > 0 {
			if err := q.chanLocked(uint32(ch)).merge(s.a, q.key, &p.chans[ch]); err != nil {
				return err
			}
		}
	}
	if err := q.total.merge(s.a, q.key, &p.total); err != nil {
		return err
	}
	p.cells.each(func(k uint64, n uint32) { q.cells.add(k, n) })
	for _, h := range p.pairs.slots {
		if h != 0 {
			q.pairs.add(h)
		}
	}
	p.flows.each(func(k uint64, n uint32) { q.flows.add(k, n) })
	for r, n := range p.zaps {
		if n != 0 {
			q.zaps.add(uint32(r), n)
		}
	}
	return nil
}

// merge adds the devices and credits of o to c, both hashed under key.
func (c *counter) merge(a *Aggregator, key *sketch.Key, o *counter) error {
	c.credits += o.credits
	p := a.cfg.Precision
	if o.regs != nil {
		c.toDense(p)
		for i, r := range o.regs {
			c.regs[i] = max(c.regs[i], r)
		}
	}
	for _, h := range o.set.slots {
		if h != 0 {
			c.insert(p, h)
		}
	}
	return nil
}

// restoreSegment decodes the section of a segment: a complete hour of the
// minute tier (its minutes and rollup) or of the reach tier, named name,
// sealed under epoch t, n with key, and remembers ref as the segment that
// holds it (nil: not written, as in a checkpoint encoded in memory).
func (a *Aggregator) restoreSegment(r *reader, rs *restoreState, name string, t keys.Tier, e int64, key *sketch.Key, ref *ckpt.Segment) error {
	start, end := a.cal.SpanMinutes(t, e)
	n := r.v()
	if r.err != nil {
		return r.err
	}
	if n*60 < start || n*60 >= end || segmentName(t, n) != name {
		return r.fail("hour %d in segment %q of %s", n, name, keys.ID(t, e))
	}
	if t == keys.Reach {
		names := r.segmentNames(a.channels)
		h := &reachHour{hourSketches: a.readHourSketches(r, key, names)}
		switch {
		case r.err != nil:
			return r.err
		case n <= rs.lastHour || n > rs.newestHour:
			return r.fail("reach hour %d after %d, newest %d", n, rs.lastHour, rs.newestHour)
		}
		rs.lastHour = n
		if n < rs.firstHour {
			return nil // past retention since the segment was written
		}
		h.seg.Store(ref)
		a.store.reach[n] = h
		return nil
	}
	chans := r.segmentNames(a.channels)
	regs := r.segmentNames(a.regions)
	chNames, regNames := append([]string{""}, chans...), append([]string{""}, regs...)
	for range r.count(8) {
		m, err := a.readMinute(r, rs, key, e, start, end, chNames, regNames)
		if err != nil {
			return err
		}
		if hourOf(m.Start.Unix()/60) != n {
			return r.fail("minute %s in the segment of hour %d", rfc(m.Start), n)
		}
	}
	h := &hour{hourSketches: a.readHourSketches(r, key, chans), complete: true}
	complete := n < hourOf(rs.newest) || (n == hourOf(rs.newest) && rs.newest%60 == 59)
	switch {
	case r.err != nil:
		return r.err
	case a.store.hours[n] != nil || rs.newest < 0 || !complete:
		return r.fail("hourly rollup %d twice, or not complete at newest minute %d", n, rs.newest)
	}
	if (n+1)*60 > rs.first {
		h.seg.Store(ref)
		a.store.hours[n] = h
	}
	return nil
}

// segmentNames reads the names a segment uses; each must be one of known's
// (the names section's).
func (r *reader) segmentNames(known *names) []string {
	n := r.count(2)
	out := make([]string, 0, n)
	for range n {
		name := r.bytes(int(min(r.u(), 1<<16)))
		if r.err != nil {
			return nil
		}
		if _, ok := known.lookup(string(name)); !ok || len(name) == 0 {
			r.fail("name %q is not in the names section", clip(name))
			return nil
		}
		if len(out) > 0 && out[len(out)-1] >= string(name) {
			r.fail("names out of order at %q", clip(name))
			return nil
		}
		out = append(out, string(name))
	}
	return out
}
