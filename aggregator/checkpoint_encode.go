package aggregator

// The encoding of a Snapshot into checkpoint sections; their layout is in
// checkpoint.go.

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Encode returns the checkpoint of the snapshot: its sections, each day's
// and each ISO week's sealed under that epoch (write it with Keys). It takes
// no lock of the Aggregator and may run on any goroutine, once.
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
	return cp, nil
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

// encodeDay returns the section of day d: its open partials, sealed
// minutes and complete hourly rollups.
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
		if !in(m.Start.Unix() / 60) {
			continue
		}
		if b, err = appendMinute(b, m, ids, rids); err != nil {
			return nil, err
		}
	}

	n = 0
	for _, hr := range sn.hours {
		if in(hr.n * 60) {
			n++
		}
	}
	b = appendU(b, uint64(n))
	for _, hr := range sn.hours {
		if !in(hr.n * 60) {
			continue
		}
		if b, err = appendHourSketches(appendV(b, hr.n), hr.h.total, hr.h.chans, ids); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// encodeWeek returns the section of ISO week w: the reach tier's open hour
// partials and hours.
func (sn *Snapshot) encodeWeek(w int64) ([]byte, error) {
	cal := sn.cal()
	in := func(h int64) bool { return cal.EpochOfMinute(keys.Reach, h*60) == w }
	ids, _ := sn.ids()
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
					if b, err = appendSet(appendU(b, uint64(ch)), &h.chans[ch]); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	n = 0
	for _, hr := range sn.reach {
		if in(hr.n) {
			n++
		}
	}
	b = appendU(b, uint64(n))
	for _, hr := range sn.reach {
		if !in(hr.n) {
			continue
		}
		if b, err = appendHourSketches(appendV(b, hr.n), hr.h.total, hr.h.chans, ids); err != nil {
			return nil, err
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
			if b, err = appendCounter(appendU(b, uint64(ch)), &p.chans[ch]); err != nil {
				return nil, err
			}
		}
	}
	if b, err = appendCounter(b, &p.total); err != nil {
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
	flows := slices.Sorted(maps.Keys(p.flows))
	b = appendU(b, uint64(len(flows)))
	for _, k := range flows {
		b = appendU(appendU(appendU(b, k>>32), uint64(uint32(k))), uint64(p.flows[k]))
	}
	zaps := slices.Sorted(maps.Keys(p.zaps))
	b = appendU(b, uint64(len(zaps)))
	for _, r := range zaps {
		b = appendU(appendU(b, uint64(r)), uint64(p.zaps[r]))
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

func appendCounter(b []byte, c *counter) ([]byte, error) {
	return appendSet(appendU(b, uint64(c.credits)), c)
}

// appendSet appends a counter's devices without its credits.
func appendSet(b []byte, c *counter) ([]byte, error) {
	if c.dense != nil {
		return appendSketch(append(b, 1), c.dense)
	}
	hs := c.set.appendTo(nil)
	slices.Sort(hs)
	b = appendU(append(b, 0), uint64(len(hs)))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b, nil
}

// appendHourSketches appends an hour's sketches: total, then per channel.
func appendHourSketches(b []byte, total *sketch.Sketch, chans map[string]*sketch.Sketch, ids map[string]uint64) ([]byte, error) {
	b, err := appendSketch(b, total)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(chans))
	b = appendU(b, uint64(len(names)))
	for _, name := range names {
		if b, err = appendSketch(appendU(b, ids[name]), chans[name]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendMinute(b []byte, m *Minute, ids, rids map[string]uint64) ([]byte, error) {
	b = appendEst(appendV(b, m.Start.Unix()/60), m.Total)
	b, err := appendSketch(b, m.total)
	if err != nil {
		return nil, err
	}
	b = appendU(b, uint64(len(m.Channels)))
	for i := range m.Channels {
		c := &m.Channels[i]
		b = appendEst(appendU(b, ids[c.Channel]), c.Audience)
		if b, err = appendSketch(b, c.sk); err != nil {
			return nil, err
		}
	}
	b = appendU(b, uint64(len(m.Cells)))
	for _, c := range m.Cells {
		b = appendU(appendU(appendU(b, ids[c.Channel]), rids[c.Region]), c.Audience.Value)
	}
	b = appendU(b, uint64(len(m.Flows)))
	for _, f := range m.Flows {
		b = appendU(appendU(appendU(b, ids[f.From]), ids[f.To]), f.Devices)
	}
	b = appendU(b, uint64(len(m.Zaps)))
	for _, z := range m.Zaps {
		b = appendU(appendU(b, rids[z.Region]), z.Count)
	}
	return b, nil
}
