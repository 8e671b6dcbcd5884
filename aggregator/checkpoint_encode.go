package aggregator

// The encoding of a Snapshot into checkpoint sections; their layout is in
// checkpoint.go.

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Encode returns the checkpoint of the snapshot: its sections, each day's
// and each ISO week's sealed under that epoch, and its segments, one per
// complete hour of each tier (write it with Keys). A segment that a
// checkpoint of the Aggregator has written before (WriteSegments, or the
// checkpoint it was restored from) is only referenced; any other carries its
// content, which store.Dir.Write writes. It takes no lock of the Aggregator
// and may run on any goroutine, once, after WriteSegments if at all.
func (sn *Snapshot) Encode() (*ckpt.Checkpoint, error) {
	if sn.keyErr != nil {
		return nil, sn.keyErr
	}
	cp := &ckpt.Checkpoint{
		Created:   sn.Created,
		StreamSeq: sn.StreamSeq,
		Sections: []ckpt.Section{
			{Name: "meta", Data: sn.encodeMeta()},
			{Name: "names", Data: sn.encodeNames()},
			{Name: "tuning", Epoch: keys.ID(keys.Minute, sn.tuningDay), Data: sn.encodeTuning()},
		},
	}
	days, weeks := sn.epochs()
	for _, d := range days {
		data, err := sn.encodeDay(d)
		if err != nil {
			return nil, err
		}
		id := keys.ID(keys.Minute, d)
		cp.Sections = append(cp.Sections, ckpt.Section{Name: id, Epoch: id, Data: data})
	}
	for _, w := range weeks {
		data, err := sn.encodeWeek(w)
		if err != nil {
			return nil, err
		}
		id := keys.ID(keys.Reach, w)
		cp.Sections = append(cp.Sections, ckpt.Section{Name: id, Epoch: id, Data: data})
	}
	for _, hr := range sn.hours {
		seg, err := sn.hourSegment(hr)
		if err != nil {
			return nil, err
		}
		cp.Segments = append(cp.Segments, seg)
	}
	for _, hr := range sn.reach {
		seg, err := sn.reachSegment(hr)
		if err != nil {
			return nil, err
		}
		cp.Segments = append(cp.Segments, seg)
	}
	return cp, nil
}

// WriteSegments writes into d, one at a time, the segment of each complete
// hour of the snapshot that no checkpoint of the Aggregator has written yet,
// and remembers it in the Aggregator, so that this and every later Encode
// only references it. So a sealed hour is encoded and written once, and a
// checkpoint holds one hour's segment in memory at most. It takes no lock
// of the Aggregator; call it before Encode, on the checkpoint's goroutine.
func (sn *Snapshot) WriteSegments(d *ckpt.Dir) error {
	write := func(ref *atomic.Pointer[ckpt.Segment], seg ckpt.Segment, err error) error {
		if err != nil || seg.Size != 0 {
			return err
		}
		w, err := d.WriteSegment(&seg, sn.Keys())
		if err != nil {
			return err
		}
		ref.Store(&w)
		return nil
	}
	for _, hr := range sn.hours {
		seg, err := sn.hourSegment(hr)
		if err := write(&hr.h.seg, seg, err); err != nil {
			return err
		}
	}
	for _, hr := range sn.reach {
		seg, err := sn.reachSegment(hr)
		if err := write(&hr.h.seg, seg, err); err != nil {
			return err
		}
	}
	return nil
}

// segmentName names the segment of hour n of a tier: "minutes-" or
// "reach-", then the hour, UTC, as 2006-01-02T15.
func segmentName(t keys.Tier, n int64) string {
	prefix := "minutes-"
	if t == keys.Reach {
		prefix = "reach-"
	}
	return prefix + time.Unix(n*3600, 0).UTC().Format("2006-01-02T15")
}

// hourSegment returns the segment of a complete hour of the minute tier:
// its reference if written, else its content.
func (sn *Snapshot) hourSegment(hr hourRef) (ckpt.Segment, error) {
	id := keys.ID(keys.Minute, sn.cal().EpochOfMinute(keys.Minute, hr.n*60))
	if ref := hr.h.seg.Load(); ref != nil {
		return *ref, nil
	}
	data, err := sn.encodeHourSegment(hr)
	if err != nil {
		return ckpt.Segment{}, err
	}
	return ckpt.Segment{Name: segmentName(keys.Minute, hr.n), Epoch: id,
		Sections: []ckpt.Section{{Name: "minutes", Epoch: id, Data: data}}}, nil
}

// reachSegment is hourSegment for an hour of the reach tier.
func (sn *Snapshot) reachSegment(hr reachRef) (ckpt.Segment, error) {
	id := keys.ID(keys.Reach, sn.cal().EpochOfMinute(keys.Reach, hr.n*60))
	if ref := hr.h.seg.Load(); ref != nil {
		return *ref, nil
	}
	b := appendV([]byte{sectionVersion}, hr.n)
	names := segmentNames(hr.h.chans, nil)
	b = appendNames(b, names)
	b = appendHourSketches(b, &hr.h.hourSketches, names)
	return ckpt.Segment{Name: segmentName(keys.Reach, hr.n), Epoch: id,
		Sections: []ckpt.Section{{Name: "reach", Epoch: id, Data: b}}}, nil
}

// encodeHourSegment returns the section of a minute-tier hour segment.
func (sn *Snapshot) encodeHourSegment(hr hourRef) ([]byte, error) {
	var regions []string
	for _, m := range hr.minutes {
		m.cells.each(func(region, _ string, _ uint64) { regions = append(regions, region) })
		for _, z := range m.Zaps {
			regions = append(regions, z.Region)
		}
	}
	chans := segmentNames(hr.h.chans, hr.minutes)
	regs := localNames(regions)
	size := 64
	for _, m := range hr.minutes {
		size += len(m.packedTotal) + 16*(len(m.Channels)+m.cells.n+m.flows.n+len(m.Zaps))
		for i := range m.Channels {
			size += len(m.Channels[i].packed)
		}
	}
	b := make([]byte, 0, size+int(hr.h.bytes())+8*len(hr.h.chans))
	b = appendV(append(b, sectionVersion), hr.n)
	b = appendNames(appendNames(b, chans), regs)
	ids, rids := idsOf(chans), idsOf(regs)
	b = appendU(b, uint64(len(hr.minutes)))
	for _, m := range hr.minutes {
		b = appendMinute(b, m, ids, rids)
	}
	return appendHourSketches(b, &hr.h.hourSketches, chans), nil
}

// segmentNames returns the names a segment uses (its local ids are their
// positions plus one): the channels of an hour's sketches and of its
// minutes, sorted.
func segmentNames(chans map[string]packed, minutes []*Minute) []string {
	var all []string
	for name := range chans {
		all = append(all, name)
	}
	for _, m := range minutes {
		for _, c := range m.Channels {
			all = append(all, c.Channel)
		}
		m.cells.each(func(_, ch string, _ uint64) { all = append(all, ch) })
		m.flows.each(func(from, to string, _ uint64) { all = append(all, from, to) })
	}
	return localNames(all)
}

// localNames sorts and deduplicates names, without "".
func localNames(names []string) []string {
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > 0 && names[0] == "" {
		names = names[1:]
	}
	return names
}

func idsOf(names []string) map[string]uint64 {
	ids := make(map[string]uint64, len(names)+1)
	ids[""] = 0
	for i, name := range names {
		ids[name] = uint64(i + 1)
	}
	return ids
}

func appendNames(b []byte, names []string) []byte {
	b = appendU(b, uint64(len(names)))
	for _, name := range names {
		b = append(appendU(b, uint64(len(name))), name...)
	}
	return b
}

// epochs returns the days and the weeks the snapshot holds data of,
// ascending.
func (sn *Snapshot) epochs() (days, weeks []int64) {
	cal := sn.cal()
	day := func(m int64) { days = append(days, cal.EpochOfMinute(keys.Minute, m)) }
	week := func(m int64) { weeks = append(weeks, cal.EpochOfMinute(keys.Reach, m)) }
	for i := range sn.shards {
		for _, p := range sn.shards[i].open {
			day(p.minute)
		}
		for _, h := range sn.shards[i].hours {
			week(h.hour * 60)
		}
	}
	for _, m := range sn.minutes {
		day(m.Start.Unix() / 60)
	}
	for _, hr := range sn.hours {
		day(hr.n * 60)
	}
	for _, hr := range sn.reach {
		week(hr.n * 60)
	}
	slices.Sort(days)
	slices.Sort(weeks)
	return slices.Compact(days), slices.Compact(weeks)
}

func (sn *Snapshot) cal() keys.Calendar {
	c, _ := keys.NewCalendar(sn.cfg.DayStart) // validated by New
	return c
}

func appendV(b []byte, v int64) []byte  { return binary.AppendVarint(b, v) }
func appendU(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendEst(b []byte, e sketch.Estimate) []byte {
	return appendU(appendU(appendU(b, e.Value), e.Value-e.Low), e.High-e.Value)
}

// appendPacked appends a packed sketch: its length and its encoding.
func appendPacked(b []byte, p packed) []byte {
	return append(appendU(b, uint64(len(p))), p...)
}

func appendSketch(b []byte, sk *sketch.Sketch) ([]byte, error) {
	n := len(b)
	b = append(b, make([]byte, binary.MaxVarintLen64)...)
	out, err := sk.AppendBinary(b)
	if err != nil {
		return b[:n], fmt.Errorf("checkpoint: %w", err)
	}
	// Move the encoding right behind its length.
	size := len(out) - len(b)
	l := binary.PutUvarint(out[n:], uint64(size))
	copy(out[n+l:], out[len(b):])
	return out[:n+l+size], nil
}

func (sn *Snapshot) encodeMeta() []byte {
	b := []byte{sectionVersion, byte(sn.cfg.Model), sn.cfg.Precision}
	b = binary.BigEndian.AppendUint64(b, uint64(sn.cfg.Keys.Pseudonym().Fingerprint()))
	b = appendU(b, uint64(sn.cfg.DayStart/time.Hour))
	b = appendU(b, uint64(sn.cfg.MinDwell.Milliseconds()))
	b = appendU(b, uint64(sn.cfg.Inactivity.Milliseconds()))
	b = appendU(b, uint64(len(sn.shards)))
	b = appendV(b, sn.maxTS)
	b = appendU(b, uint64(sn.idle))
	b = appendV(b, sn.firstOpen)
	b = appendU(b, sn.accepted)
	b = appendU(b, sn.sealed)
	b = appendU(b, uint64(len(sn.rejected)))
	for _, n := range sn.rejected {
		b = appendU(b, n)
	}
	b = appendV(appendV(b, sn.first), sn.newest)
	return appendV(appendV(b, sn.firstHour), sn.newestHour)
}

func (sn *Snapshot) encodeNames() []byte {
	b := []byte{sectionVersion}
	for _, list := range [][]string{sn.chans, sn.regions} {
		b = appendU(b, uint64(len(list)-1))
		for _, name := range list[1:] {
			b = append(appendU(b, uint64(len(name))), name...)
		}
	}
	return b
}

func (sn *Snapshot) encodeTuning() []byte {
	n := 0
	for i := range sn.shards {
		for j := range sn.shards[i].devs {
			if sn.shards[i].devs[j].live {
				n++
			}
		}
	}
	base := sn.maxTS
	b := make([]byte, 0, 16+n*36)
	b = append(b, sectionVersion)
	b = appendV(b, base)
	b = appendU(b, uint64(n))
	for i := range sn.shards {
		c := &sn.shards[i]
		for j := range c.devs {
			d := &c.devs[j]
			if !d.live {
				continue
			}
			b = binary.BigEndian.AppendUint64(b, d.hash)
			b = appendV(b, d.since-base)
			b = appendU(b, uint64(d.last-d.since))
			b = appendV(b, d.accMin-minuteOf(base))
			b = appendU(appendU(appendU(b, uint64(d.ch)), uint64(d.region)), uint64(d.prev))
			var flags byte
			if d.flowDone {
				flags |= 1
			}
			b = append(b, flags)
			acc := d.acc[:0]
			if d.accN == accOverflow {
				acc = c.overflow[d.hash]
			} else {
				acc = d.acc[:d.accN]
			}
			b = appendU(b, uint64(len(acc)))
			for _, cr := range acc {
				b = appendU(appendU(b, uint64(cr.ch)), uint64(cr.ms))
			}
		}
	}
	return b
}

// encodeDay returns the section of day d: its open partials, and its sealed
// minutes of hours not yet complete (complete hours go to segments).
func (sn *Snapshot) encodeDay(d int64) ([]byte, error) {
	cal := sn.cal()
	in := func(m int64) bool { return cal.EpochOfMinute(keys.Minute, m) == d }
	ids, rids := sn.ids()
	b := []byte{sectionVersion}
	var err error

	n := 0
	for i := range sn.shards {
		for _, p := range sn.shards[i].open {
			if in(p.minute) {
				n++
			}
		}
	}
	b = appendU(b, uint64(n))
	for i := range sn.shards {
		for _, p := range sn.shards[i].open {
			if !in(p.minute) {
				continue
			}
			if b, err = appendPartial(appendV(appendU(b, uint64(i)), p.minute), p); err != nil {
				return nil, err
			}
		}
	}

	n = 0
	for _, m := range sn.minutes {
		if in(m.Start.Unix() / 60) {
			n++
		}
	}
	b = appendU(b, uint64(n))
	for _, m := range sn.minutes {
		if in(m.Start.Unix() / 60) {
			b = appendMinute(b, m, ids, rids)
		}
	}
	return b, nil
}

// encodeWeek returns the section of ISO week w: the reach tier's open hour
// partials (its hours go to segments).
func (sn *Snapshot) encodeWeek(w int64) ([]byte, error) {
	cal := sn.cal()
	in := func(h int64) bool { return cal.EpochOfMinute(keys.Reach, h*60) == w }
	b := []byte{sectionVersion}
	var err error
	n := 0
	for i := range sn.shards {
		for _, h := range sn.shards[i].hours {
			if in(h.hour) {
				n++
			}
		}
	}
	b = appendU(b, uint64(n))
	for i := range sn.shards {
		for _, h := range sn.shards[i].hours {
			if !in(h.hour) {
				continue
			}
			b = appendV(appendU(b, uint64(i)), h.hour)
			k := 0
			for ch := range h.chans {
				if h.chans[ch].credits > 0 {
					k++
				}
			}
			b = appendU(b, uint64(k))
			for ch := range h.chans {
				if h.chans[ch].credits > 0 {
					if b, err = appendSet(appendU(b, uint64(ch)), h.key, &h.chans[ch]); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return b, nil
}

// ids maps channel and region names to their ids in the names section.
func (sn *Snapshot) ids() (chans, regions map[string]uint64) {
	chans = make(map[string]uint64, len(sn.chans))
	for i, name := range sn.chans {
		chans[name] = uint64(i)
	}
	regions = make(map[string]uint64, len(sn.regions))
	for i, name := range sn.regions {
		regions[name] = uint64(i)
	}
	return chans, regions
}

func appendPartial(b []byte, p *partial) ([]byte, error) {
	var err error
	k := 0
	for ch := range p.chans {
		if p.chans[ch].credits > 0 {
			k++
		}
	}
	b = appendU(b, uint64(k))
	for ch := range p.chans {
		if p.chans[ch].credits > 0 {
			if b, err = appendCounter(appendU(b, uint64(ch)), p.key, &p.chans[ch]); err != nil {
				return nil, err
			}
		}
	}
	if b, err = appendCounter(b, p.key, &p.total); err != nil {
		return nil, err
	}
	var cells []uint64
	p.cells.each(func(k uint64, _ uint32) { cells = append(cells, k) })
	slices.Sort(cells)
	b = appendU(b, uint64(len(cells)))
	for _, k := range cells {
		b = appendU(appendU(appendU(b, k>>32), uint64(uint32(k))), uint64(p.cells.get(k)))
	}
	pairs := p.pairs.appendTo(nil)
	slices.Sort(pairs)
	b = appendU(b, uint64(len(pairs)))
	for _, h := range pairs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	type flow struct {
		k uint64
		n uint32
	}
	var flows []flow
	p.flows.each(func(k uint64, n uint32) { flows = append(flows, flow{k, n}) })
	slices.SortFunc(flows, func(x, y flow) int { return cmp.Compare(x.k, y.k) })
	b = appendU(b, uint64(len(flows)))
	for _, f := range flows {
		b = appendU(appendU(appendU(b, f.k>>32), uint64(uint32(f.k))), uint64(f.n))
	}
	nz := 0
	for _, n := range p.zaps {
		if n != 0 {
			nz++
		}
	}
	b = appendU(b, uint64(nz))
	for r, n := range p.zaps {
		if n != 0 {
			b = appendU(appendU(b, uint64(r)), uint64(n))
		}
	}
	return b, nil
}

// get returns k's count (0 if absent).
func (m *countMap) get(k uint64) uint32 {
	if len(m.keys) == 0 {
		return 0
	}
	mask := uint64(len(m.keys) - 1)
	for i := (k * 0x9E3779B97F4A7C15 >> 32) & mask; ; i = (i + 1) & mask {
		switch m.keys[i] {
		case k:
			return m.vals[i]
		case 0:
			return 0
		}
	}
}

func appendCounter(b []byte, key *sketch.Key, c *counter) ([]byte, error) {
	return appendSet(appendU(b, uint64(c.credits)), key, c)
}

// appendSet appends a counter's devices, hashed under key, without its
// credits.
func appendSet(b []byte, key *sketch.Key, c *counter) ([]byte, error) {
	if c.regs != nil {
		return appendSketch(append(b, 1), c.denseSketch(key))
	}
	hs := c.set.appendTo(nil)
	slices.Sort(hs)
	b = appendU(append(b, 0), uint64(len(hs)))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b, nil
}

// appendHourSketches appends an hour's packed sketches: total, then per
// channel (ids: positions in names, plus one).
func appendHourSketches(b []byte, h *hourSketches, names []string) []byte {
	b = appendPacked(b, h.total)
	b = appendU(b, uint64(len(h.chans)))
	for i, name := range names {
		if p, ok := h.chans[name]; ok {
			b = appendPacked(appendU(b, uint64(i+1)), p)
		}
	}
	return b
}

func appendMinute(b []byte, m *Minute, ids, rids map[string]uint64) []byte {
	b = appendEst(appendV(b, m.Start.Unix()/60), m.Total)
	b = appendPacked(b, m.packedTotal)
	b = appendU(b, uint64(len(m.Channels)))
	for i := range m.Channels {
		c := &m.Channels[i]
		b = appendEst(appendU(b, ids[c.Channel]), c.Audience)
		b = appendPacked(b, c.packed)
	}
	b = appendU(b, uint64(m.cells.n))
	m.cells.each(func(region, ch string, n uint64) {
		b = appendU(appendU(appendU(b, ids[ch]), rids[region]), n)
	})
	b = appendU(b, uint64(m.flows.n))
	m.flows.each(func(from, to string, n uint64) {
		b = appendU(appendU(appendU(b, ids[from]), ids[to]), n)
	})
	b = appendU(b, uint64(len(m.Zaps)))
	for _, z := range m.Zaps {
		b = appendU(appendU(b, rids[z.Region]), z.Count)
	}
	return b
}
