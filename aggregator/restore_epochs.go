package aggregator

import (
	"fmt"
	"slices"

	"github.com/ratingsd/ratingsd/aggregator/keys"
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
		p := &partial{minute: m, key: key, zaps: make(map[uint32]uint32)}
		if a.cfg.Model == Tuning {
			p.flows = make(map[uint64]uint32)
		}
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

	st := &a.store
	chNames, regNames := a.channels.all(), a.regions.all()
	for range r.count(8) {
		m := r.v()
		if r.err == nil && (m <= rs.lastMinute || m < rs.first || m > rs.newest || m < start || m >= end) {
			return r.fail("sealed minute %d after %d, kept %d..%d, day %s", m, rs.lastMinute, rs.first, rs.newest, keys.Label(keys.Minute, d))
		}
		rs.lastMinute = m
		sealed := &Minute{Start: minuteTime(m)}
		sealed.Total = r.est()
		sealed.total = r.sketch(a, key)
		k := r.count(5)
		if r.err != nil {
			return r.err
		}
		sealed.byName = make(map[string]int, k)
		for i := range k {
			cm := ChannelMinute{Channel: chNames[r.id(rs.nch)], Audience: r.est(), sk: r.sketch(a, key)}
			if _, dup := sealed.byName[cm.Channel]; r.err == nil && (dup || cm.Channel == "") {
				return r.fail("minute %d: channel %q twice or none", m, cm.Channel)
			}
			if sealed.Total.Value > 0 {
				cm.Share = float64(cm.Audience.Value) / float64(sealed.Total.Value)
			}
			sealed.byName[cm.Channel] = int(i)
			sealed.Channels = append(sealed.Channels, cm)
		}
		for range r.count(3) {
			sealed.Cells = append(sealed.Cells, Cell{Channel: chNames[r.id(rs.nch)], Region: regNames[r.id(rs.nreg)], Audience: exact(r.u())})
		}
		for range r.count(3) {
			sealed.Flows = append(sealed.Flows, Flow{From: chNames[r.id(rs.nch)], To: chNames[r.id(rs.nch)], Devices: r.u()})
		}
		for range r.count(2) {
			sealed.Zaps = append(sealed.Zaps, RegionCount{Region: regNames[r.id(rs.nreg)], Count: r.u()})
		}
		if r.err != nil {
			return r.err
		}
		st.minutes[m] = sealed
	}

	for range r.count(3) {
		n := r.v()
		total, chans := a.readHourSketches(r, rs, key)
		if r.err != nil {
			return r.err
		}
		complete := n < hourOf(rs.newest) || (n == hourOf(rs.newest) && rs.newest%60 == 59)
		if _, dup := st.hours[n]; dup || rs.newest < 0 || !complete || n*60 < start || (n+1)*60 > end {
			return r.fail("hourly rollup %d twice, outside day %s, or not complete at newest minute %d", n, keys.Label(keys.Minute, d), rs.newest)
		}
		st.hours[n] = &hour{chans: chans, total: total, complete: true}
	}
	return nil
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
		p.flows[k] += r.u32()
	}
	for range r.count(2) {
		region := r.id(rs.nreg)
		p.zaps[region] += r.u32()
	}
	return r.err
}

// readHourSketches reads an hour's sketches under key: total, then per
// channel.
func (a *Aggregator) readHourSketches(r *reader, rs *restoreState, key *sketch.Key) (*sketch.Sketch, map[string]*sketch.Sketch) {
	chNames := a.channels.all()
	total := r.sketch(a, key)
	chans := make(map[string]*sketch.Sketch)
	for range r.count(3) {
		name := chNames[r.id(rs.nch)]
		sk := r.sketch(a, key)
		if r.err == nil && (name == "" || chans[name] != nil) {
			r.fail("hour: channel %q twice or none", name)
		}
		chans[name] = sk
	}
	return total, chans
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

	st := &a.store
	for range r.count(3) {
		n := r.v()
		if r.err == nil && (n <= rs.lastHour || n < rs.firstHour || n > rs.newestHour || n*60 < start || n*60 >= end) {
			return r.fail("reach hour %d after %d, kept %d..%d, week %s", n, rs.lastHour, rs.firstHour, rs.newestHour, keys.Label(keys.Reach, w))
		}
		rs.lastHour = n
		total, chans := a.readHourSketches(r, rs, key)
		if r.err != nil {
			return r.err
		}
		st.reach[n] = &reachHour{chans: chans, total: total}
	}
	return nil
}

// hourSet reads the devices of an hour partial's counter.
func (r *reader) hourSet(a *Aggregator, key *sketch.Key, c *counter) {
	r.set(a, key, c, func(uint64) bool { return true })
	if c.dense != nil || c.set.len() > 0 {
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
// them.
func (a *Aggregator) restoreRollup() {
	st := &a.store
	hn := hourOf(st.newest)
	if st.newest < 0 || st.hours[hn] != nil {
		return
	}
	var h *hour
	for m := max(hn*60, st.first); m <= st.newest; m++ {
		sealed := st.minutes[m]
		if sealed == nil {
			continue
		}
		if h == nil {
			h = &hour{chans: make(map[string]*sketch.Sketch), total: a.newSketch(sealed.total.Key())}
		}
		h.add(a, sealed)
	}
	if h != nil {
		st.hours[hn] = h
	}
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
		if p.zaps == nil {
			p.zaps = make(map[uint32]uint32)
		}
		if s.a.cfg.Model == Tuning && p.flows == nil {
			p.flows = make(map[uint64]uint32)
		}
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
	for k, n := range p.flows {
		q.flows[k] += n
	}
	for r, n := range p.zaps {
		q.zaps[r] += n
	}
	return nil
}

// merge adds the devices and credits of o to c, both hashed under key.
func (c *counter) merge(a *Aggregator, key *sketch.Key, o *counter) error {
	c.credits += o.credits
	if o.dense != nil {
		c.toDense(a, key)
		if err := c.dense.Merge(o.dense); err != nil {
			return err
		}
	}
	for _, h := range o.set.slots {
		switch {
		case h == 0:
		case c.dense != nil:
			c.dense.AddHash(h)
		case c.set.add(h) && c.set.len() > denseAbove:
			c.toDense(a, key)
		}
	}
	return nil
}
