package aggregator

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/ratingsd/ratingsd/aggregator/event"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Restore returns an Aggregator for cfg holding the state of cp, as if it had
// ingested what the checkpointed one had when its Snapshot was taken: the
// tuning table, the open minutes, the sealed minutes and hourly rollups, the
// watermark and the counters. The event-time clock resumes where it was at
// the snapshot (maxTS plus the idle time then), not where the wall clock is:
// replayed events are not late. cfg may differ from the writer's in Shards
// (state is re-sharded), Lateness, MaxChannels, MinuteRetention and OnSeal,
// but not in Key, Model, Precision, MinDwell or Inactivity
// (ErrCheckpointConfig). Every other problem wraps ErrCheckpointCorrupt;
// Restore never panics on any input.
func Restore(cfg Config, cp *ckpt.Checkpoint) (*Aggregator, error) {
	a, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if cp == nil {
		return nil, fmt.Errorf("restore: nil checkpoint: %w", ErrCheckpointCorrupt)
	}
	if len(cp.Unreadable) > 0 {
		return nil, fmt.Errorf("restore checkpoint %d: %w: %w", cp.Seq, ErrCheckpointCorrupt, cp.Unreadable[0])
	}
	section := func(name string, required bool) (*reader, error) {
		data, ok := cp.Section(name)
		if !ok {
			if !required {
				return nil, nil
			}
			return nil, fmt.Errorf("restore checkpoint %d: no section %q: %w", cp.Seq, name, ErrCheckpointCorrupt)
		}
		r := &reader{name: name, b: data}
		if v := r.u8(); r.err == nil && v != sectionVersion {
			return nil, fmt.Errorf("restore checkpoint %d: section %q has version %d, this build reads %d: %w", cp.Seq, name, v, sectionVersion, ErrCheckpointCorrupt)
		}
		return r, r.err
	}
	steps := []struct {
		name     string
		required bool
		decode   func(*reader, *restoreState) error
	}{
		{"meta", true, a.restoreMeta},
		{"names", true, a.restoreNames},
		{"tuning", false, a.restoreTuning},
		{"open", true, a.restoreOpen},
		{"sealed", true, a.restoreSealed},
	}
	var rs restoreState
	for _, s := range steps {
		r, err := section(s.name, s.required)
		if err == nil && r != nil {
			err = s.decode(r, &rs)
			if err == nil {
				err = r.err
			}
			if err == nil && r.off != len(r.b) {
				err = r.fail("%d bytes after the end", len(r.b)-r.off)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("restore checkpoint %d: %w", cp.Seq, err)
		}
	}
	return a, nil
}

// restoreState carries what one section tells the decoders of the next.
type restoreState struct {
	shards    int // of the writer
	firstOpen int64
	nch, nreg uint64 // ids 1..n are valid
}

func (a *Aggregator) restoreMeta(r *reader, rs *restoreState) error {
	model, prec, fp := Model(r.u8()), r.u8(), sketch.Fingerprint(r.u64())
	dwell, inact, shards := r.u(), r.u(), r.u()
	maxTS, idle, firstOpen := r.v(), r.u(), r.v()
	accepted, sealed, nr := r.u(), r.u(), r.u()
	if r.err != nil {
		return r.err
	}
	c := a.cfg
	switch {
	case fp != c.Key.Fingerprint():
		return fmt.Errorf("written under key %v, this configuration has key %v: %w", fp, c.Key.Fingerprint(), ErrCheckpointConfig)
	case model != c.Model:
		return fmt.Errorf("written by the %s model, this configuration runs %s: %w", model, c.Model, ErrCheckpointConfig)
	case prec != c.Precision:
		return fmt.Errorf("written at precision %d, this configuration has %d: %w", prec, c.Precision, ErrCheckpointConfig)
	case dwell != uint64(c.MinDwell.Milliseconds()):
		return fmt.Errorf("written with min dwell %dms, this configuration has %s: %w", dwell, c.MinDwell, ErrCheckpointConfig)
	case inact != uint64(c.Inactivity.Milliseconds()):
		return fmt.Errorf("written with inactivity %dms, this configuration has %s: %w", inact, c.Inactivity, ErrCheckpointConfig)
	case shards < 1 || shards > 1024 || shards&(shards-1) != 0:
		return r.fail("shards %d is not a power of two in 1..1024", shards)
	case maxTS < 0 || maxTS > 1<<50 || idle > 1<<62 || firstOpen < -1 || firstOpen > 1<<40:
		return r.fail("watermark maxTS %d, idle %dns, first open minute %d out of range", maxTS, idle, firstOpen)
	case nr > uint64(event.NumReasons):
		return r.fail("%d rejection reasons, this build knows %d", nr, event.NumReasons)
	}
	for i := range nr {
		a.stats.rejected[i].Store(r.u())
	}
	rs.shards, rs.firstOpen = int(shards), firstOpen
	a.maxTS.Store(maxTS)
	a.advancedAt.Store(a.cfg.Now().UnixNano() - int64(idle))
	a.firstOpen.Store(firstOpen)
	for _, s := range a.shards {
		s.nextSeal = max(firstOpen, 0)
	}
	a.stats.accepted.Store(accepted)
	a.stats.sealed.Store(sealed)
	return nil
}

func (a *Aggregator) restoreNames(r *reader, rs *restoreState) error {
	for _, n := range []*names{a.channels, a.regions} {
		count := r.count(2)
		for i := range count {
			name := r.bytes(int(r.u()))
			if r.err != nil {
				return r.err
			}
			if !event.ValidName(name) {
				return r.fail("name %d %q is not 1..64 bytes of [A-Za-z0-9._-]", i+1, clip(name))
			}
			n.mu.Lock()
			_, dup := n.ids[string(name)]
			n.mu.Unlock()
			if dup {
				return r.fail("name %q appears twice", name)
			}
			// Restored names may exceed a lowered MaxChannels: they are
			// kept, and new ones are refused.
			n.max = max(n.max, int(i)+1)
			n.intern(name)
		}
		n.max = max(n.max, a.cfg.MaxChannels)
	}
	rs.nch, rs.nreg = uint64(a.channels.len()), uint64(a.regions.len())
	return nil
}

func (a *Aggregator) restoreTuning(r *reader, rs *restoreState) error {
	base := r.v()
	n := r.count(16)
	if r.err != nil {
		return r.err
	}
	if a.cfg.Model != Tuning && n > 0 {
		return r.fail("%d tuning-table entries in the events model", n)
	}
	var acc []credit
	for range n {
		d := device{hash: r.u64(), live: true}
		d.since = base + r.v()
		d.last = d.since + int64(r.u())
		d.accMin = minuteOf(base) + r.v()
		d.ch, d.region, d.prev = r.id(rs.nch), r.id(rs.nreg), r.id(rs.nch)
		flags := r.u8()
		k := r.count(2)
		if r.err != nil {
			return r.err
		}
		if flags&^1 != 0 || d.accMin < rs.firstOpen || d.accMin > 1<<40 || d.since < 0 || d.last < d.since || d.last > 1<<50 {
			return r.fail("device entry: flags %#x, accMin %d (first open %d), since %d, last %d", flags, d.accMin, rs.firstOpen, d.since, d.last)
		}
		d.flowDone = flags&1 != 0
		acc = acc[:0]
		var total uint64
		for range k {
			cr := credit{ch: r.id(rs.nch), ms: uint32(min(r.u(), msPerMinute+1))}
			total += uint64(cr.ms)
			if r.err == nil && (cr.ch == 0 || total > msPerMinute || slices.ContainsFunc(acc, func(c credit) bool { return c.ch == cr.ch })) {
				return r.fail("device minute credits: channel %d, %d ms in all", cr.ch, total)
			}
			acc = append(acc, cr)
		}
		if r.err != nil {
			return r.err
		}
		s := a.shards[d.hash&a.mask]
		if _, dup := s.devIdx[d.hash]; dup {
			return r.fail("a device hash appears twice")
		}
		if len(acc) <= accSlots {
			d.accN = uint8(copy(d.acc[:], acc))
		} else {
			if s.overflow == nil {
				s.overflow = make(map[uint64][]credit)
			}
			s.overflow[d.hash] = slices.Clone(acc)
			d.accN = accOverflow
		}
		s.devIdx[d.hash] = int32(len(s.devs))
		s.devs = append(s.devs, d)
		if d.ch != 0 {
			s.view(d.ch, d.region, +1)
		}
	}
	return nil
}

func (a *Aggregator) restoreOpen(r *reader, rs *restoreState) error {
	n := r.count(8)
	prev := make(map[uint64]int64) // writer shard → its last partial's minute
	for range n {
		from, m := r.u(), r.v()
		if last, ok := prev[from]; r.err == nil && (from >= uint64(rs.shards) || m < rs.firstOpen || rs.firstOpen < 0 || m > 1<<40 || (ok && m <= last)) {
			return r.fail("partial of shard %d of %d, minute %d (first open %d)", from, rs.shards, m, rs.firstOpen)
		}
		prev[from] = m
		p := &partial{minute: m, zaps: make(map[uint32]uint32)}
		if a.cfg.Model == Tuning {
			p.flows = make(map[uint64]uint32)
		}
		k := r.count(3)
		last := uint32(0)
		for range k {
			ch := r.id(rs.nch)
			if r.err == nil && ch <= last {
				return r.fail("partial channels out of order: %d after %d", ch, last)
			}
			last = ch
			c := p.chanLocked(ch)
			if r.counter(a, c); r.err == nil && c.credits == 0 {
				return r.fail("channel %d counter with no credits", ch)
			}
		}
		r.counter(a, &p.total)
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
		if r.err != nil {
			return r.err
		}
		if err := a.placePartial(int(from), rs.shards, p); err != nil {
			return r.fail("%v", err)
		}
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
			if err := q.chanLocked(uint32(ch)).merge(s.a, &p.chans[ch]); err != nil {
				return err
			}
		}
	}
	if err := q.total.merge(s.a, &p.total); err != nil {
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

// merge adds the devices and credits of o to c.
func (c *counter) merge(a *Aggregator, o *counter) error {
	c.credits += o.credits
	if o.dense != nil {
		c.toDense(a)
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
			c.toDense(a)
		}
	}
	return nil
}

func (c *counter) toDense(a *Aggregator) {
	if c.dense != nil {
		return
	}
	c.dense = a.newUnion()
	for _, h := range c.set.slots {
		if h != 0 {
			c.dense.AddHash(h)
		}
	}
	c.set = hashSet{}
}

func (a *Aggregator) restoreSealed(r *reader, rs *restoreState) error {
	st := &a.store
	first, newest := r.v(), r.v()
	n := r.count(8)
	if r.err == nil && (newest < -1 || newest > 1<<40 || first > newest+1 || first < newest-1<<30 || (newest >= rs.firstOpen && rs.firstOpen >= 0) || (newest >= 0 && rs.firstOpen < 0) || (newest < 0 && n > 0)) {
		return r.fail("sealed minutes %d..%d, first open %d", first, newest, rs.firstOpen)
	}
	chNames, regNames := a.channels.all(), a.regions.all()
	prev := first - 1
	for range n {
		m := r.v()
		if r.err == nil && (m <= prev || m > newest) {
			return r.fail("sealed minute %d after %d, newest %d", m, prev, newest)
		}
		prev = m
		sealed := &Minute{Start: minuteTime(m)}
		sealed.Total = r.est()
		sealed.total = r.sketch(a)
		k := r.count(5)
		if r.err != nil {
			return r.err
		}
		sealed.byName = make(map[string]int, k)
		for i := range k {
			cm := ChannelMinute{Channel: chNames[r.id(rs.nch)], Audience: r.est(), sk: r.sketch(a)}
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
	st.first, st.newest = first, newest
	for range r.count(3) {
		n := r.v()
		h := &hour{chans: make(map[string]*sketch.Sketch), total: r.sketch(a), complete: true}
		for range r.count(3) {
			name := chNames[r.id(rs.nch)]
			sk := r.sketch(a)
			if r.err == nil && (name == "" || h.chans[name] != nil) {
				return r.fail("hour %d: channel %q twice or none", n, name)
			}
			h.chans[name] = sk
		}
		if r.err != nil {
			return r.err
		}
		if _, dup := st.hours[n]; dup || newest < 0 || n > hourOf(newest) || (n == hourOf(newest) && newest%60 != 59) {
			return r.fail("hour %d twice, or not complete at newest minute %d", n, newest)
		}
		st.hours[n] = h
	}
	// The hour of the newest minute, if incomplete, from its minutes, in
	// the order put merged them.
	if hn := hourOf(newest); newest >= 0 && st.hours[hn] == nil {
		h := &hour{chans: make(map[string]*sketch.Sketch), total: a.newSketch()}
		for m := max(hn*60, first); m <= newest; m++ {
			if sealed := st.minutes[m]; sealed != nil {
				h.add(a, sealed)
			}
		}
		st.hours[hn] = h
	}
	return nil
}

// reader decodes a section. The first problem sticks in err; every method
// returns a zero value after it, so decoders check err once per entry.
type reader struct {
	name string
	b    []byte
	off  int
	err  error
}

func (r *reader) fail(format string, args ...any) error {
	if r.err == nil {
		r.err = fmt.Errorf("section %q at byte %d: %s: %w", r.name, r.off, fmt.Sprintf(format, args...), ErrCheckpointCorrupt)
	}
	return r.err
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("truncated: %d bytes wanted, %d left", n, len(r.b)-r.off)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) u() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad or truncated varint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) v() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad or truncated varint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) u32() uint32 {
	v := r.u()
	if v > math.MaxUint32 {
		r.fail("count %d exceeds 32 bits", v)
		return 0
	}
	return uint32(v)
}

// count reads a number of entries of at least size bytes each, refusing
// one that the rest of the section cannot hold (so a corrupt count never
// makes a decoder allocate much).
func (r *reader) count(size int) uint64 {
	n := r.u()
	if left := uint64(len(r.b) - r.off); r.err == nil && n > left/uint64(size) {
		r.fail("%d entries cannot fit in the %d bytes left", n, left)
		return 0
	}
	return n
}

// id reads a channel or region id of at most limit (0 = none).
func (r *reader) id(limit uint64) uint32 {
	v := r.u()
	if r.err == nil && v > limit {
		r.fail("id %d beyond the %d names", v, limit)
		return 0
	}
	return uint32(v)
}

func (r *reader) est() sketch.Estimate {
	v, lo, hi := r.u(), r.u(), r.u()
	if r.err == nil && (lo > v || hi > math.MaxUint64-v) {
		r.fail("estimate %d -%d +%d", v, lo, hi)
		return sketch.Estimate{}
	}
	return sketch.Estimate{Value: v, Low: v - lo, High: v + hi}
}

func (r *reader) sketch(a *Aggregator) *sketch.Sketch {
	data := r.bytes(int(min(r.u(), math.MaxInt32)))
	if r.err != nil {
		return nil
	}
	sk, err := sketch.Decode(data, a.cfg.Key)
	if err == nil && sk.Precision() != a.cfg.Precision {
		err = fmt.Errorf("precision %d, want %d", sk.Precision(), a.cfg.Precision)
	}
	if err != nil {
		r.err = fmt.Errorf("section %q at byte %d: %w: %w", r.name, r.off, ErrCheckpointCorrupt, err)
		return nil
	}
	return sk
}

func (r *reader) counter(a *Aggregator, c *counter) {
	c.credits = r.u32()
	switch kind := r.u8(); {
	case r.err != nil:
	case kind == 1:
		c.dense = r.sketch(a)
	case kind == 0:
		n := r.count(8)
		if r.err == nil && (n > denseAbove || n > uint64(c.credits) || (a.cfg.Model == Tuning && n != uint64(c.credits))) {
			r.fail("exact counter of %d devices and %d credits", n, c.credits)
			return
		}
		for range n {
			if h := r.u64(); r.err == nil && (h == 0 || !c.set.add(h)) {
				r.fail("a device hash is 0 or appears twice in a counter")
				return
			}
		}
	default:
		r.fail("counter kind %d", kind)
	}
	if r.err == nil && c.credits == 0 && (c.dense != nil || c.set.len() > 0) {
		r.fail("counter of devices with no credits")
	}
}
