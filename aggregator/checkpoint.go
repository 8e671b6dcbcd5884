package aggregator

// Checkpoints: the engine's half of Durability (DESIGN.md). Snapshot copies
// the state at a consistent cut, Encode turns the copy into the sections of a
// store.Checkpoint, Restore rebuilds an Aggregator from one.
//
// The cut. Every Writer.Write holds a.gate shared for its whole call;
// Snapshot takes sealMu (no minute is half sealed) and then the gate
// exclusively, so the copy holds exactly the events of the Writes that
// returned before it, whatever the number of writers and shards. Under the
// gate it only copies: the tuning tables (one memmove per shard), the open
// partials (their sets are slices; dense counters are cloned), the
// watermark atoms and counters, and the stream position (pos is called
// there, so the position and the state agree). It then releases the gate,
// collects pointers to the sealed minutes and complete hours under the store
// lock (they are immutable), and releases sealMu. Encode runs with no lock.
//
// # Sections, version 1
//
// Each section starts with its own version byte (1), so one section can
// change without the others. u is an unsigned varint, v a zigzag varint
// (encoding/binary), h8 8 bytes big-endian, est an estimate as u value,
// u value-low, u high-value, sk a sketch as u length and its sketch.Sketch
// encoding (sketch/doc: format 1). Names are channel or region ids of the
// "names" section (0 = none / off).
//
//	meta (plain)                        names (plain)
//	1   version 1                       1   version 1
//	1   model (0 tuning, 1 events)      u   channels n, then n × (u len, name): ids 1..n
//	1   precision                       u   regions n, then n × (u len, name): ids 1..n
//	h8  key fingerprint
//	u   min dwell, ms                   tuning (sealed), one entry per device
//	u   inactivity, ms                  1   version 1
//	u   shards of the writer            v   base time, Unix ms
//	v   maxTS, Unix ms (0: none)        u   devices n, then n ×
//	u   idle: ns since maxTS advanced   h8    keyed device hash (never an id)
//	v   first open minute (-1: none)    v     since − base, ms
//	u   events accepted                 u     last − since, ms
//	u   minutes sealed                  v     accMin − base minute
//	u   reasons r, r × u rejected       u u u channel, region, prev (flows)
//	                                    1     flags: bit 0 = flow done
//	                                    u     credits k, k × (u channel, u ms)
//
//	open (sealed): open partials        sealed (sealed): minutes and complete hours
//	1   version 1                       1   version 1
//	u   partials n, then n ×            v   first kept minute   v newest (-1: none)
//	u     shard (of meta's shards)      u   minutes n, then n × (v minute, est total, sk
//	v     minute                              total, u channels k × (u ch, est, sk),
//	u     channels k × (u ch, counter)        u cells k × (u ch, u region, u count),
//	      total counter                       u flows k × (u from, u to, u devices),
//	u     cells k × (u ch, u region, u n)     u zaps k × (u region, u count))
//	u     pairs k × h8 (events model)   u   hours n, then n × (v hour, sk total,
//	u     flows k × (u from, u to, u n)       u channels k × (u ch, sk))
//	u     zaps k × (u region, u n)
//	counter: u credits, 1 kind, then kind 0: u n, n × h8 hashes; kind 1: sk
//
// The tuning, open and sealed sections hold keyed device hashes or sketches,
// so they are sealed under the key epoch KeyEpoch(cfg.Key): the store
// derives their AES key from the bytes KeyLookup returns for that id, which
// must be the sketch key's own bytes (CheckpointKeys). The incomplete
// current hour is not stored: Restore rebuilds it from its minutes, merged in
// the order the sealer merged them. The "now" counts per cell are not stored
// either: they are the devices of the tuning table on each cell. A checkpoint
// without a "tuning" section (the service's -persist-tuning=false) restores
// with an empty tuning table.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Restore errors; each is wrapped with the values that caused it.
var (
	// ErrCheckpointConfig: the checkpoint was written under another key,
	// model, precision, min dwell or inactivity than the Config's.
	ErrCheckpointConfig = errors.New("checkpoint does not match the configuration")
	// ErrCheckpointCorrupt: a section is missing, unreadable, truncated or
	// not well formed.
	ErrCheckpointCorrupt = errors.New("corrupt checkpoint section")
)

const sectionVersion = 1

// KeyEpoch is the key epoch id under which the checkpoint sections of key's
// state are sealed: "k-" and the key's fingerprint, never key material.
func KeyEpoch(key *sketch.Key) string { return "k-" + key.Fingerprint().String() }

// CheckpointKeys returns the store.KeyLookup for the sections of key's
// state: the key's 16 bytes for KeyEpoch(key), nothing for any other epoch.
// The store derives a fresh AES key per section from them (HKDF).
func CheckpointKeys(key *sketch.Key) ckpt.KeyLookup {
	epoch := KeyEpoch(key)
	return func(id string) ([]byte, bool) {
		if id != epoch {
			return nil, false
		}
		b := key.Bytes()
		return b[:], true
	}
}

// Snapshot is a consistent copy of an Aggregator's state, taken by
// (*Aggregator).Snapshot and turned into checkpoint sections by Encode. It
// shares only immutable sealed minutes with the Aggregator.
type Snapshot struct {
	Created   time.Time
	StreamSeq uint64
	// Pause is how long ingest was held for the copy.
	Pause time.Duration

	cfg       Config
	maxTS     int64
	idle      int64 // ns
	firstOpen int64
	accepted  uint64
	sealed    uint64
	rejected  [event.NumReasons]uint64
	chans     []string
	regions   []string
	shards    []shardCopy
	minutes   []*Minute
	hours     []hourRef
	first     int64 // oldest sealed minute kept
	newest    int64 // newest sealed minute; -1 before the first
}

type shardCopy struct {
	devs     []device
	overflow map[uint64][]credit
	open     []*partial
}

type hourRef struct {
	n int64
	h *hour
}

// Snapshot copies the state at a consistent cut: exactly the events of the
// Writes that returned before it (see the comment at the top of
// checkpoint.go). pos, if not nil, is called while ingest is held and returns
// the stream position those events end at (the JetStream sequence of the
// last message whose events were written); it must be quick and must not
// call the Aggregator. Ingest waits for the copy only (Snapshot.Pause), not
// for Encode.
func (a *Aggregator) Snapshot(pos func() uint64) *Snapshot {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	a.gate.Lock()
	start := time.Now()
	wall := a.cfg.Now()
	sn := &Snapshot{
		Created:   wall,
		cfg:       a.cfg,
		maxTS:     a.maxTS.Load(),
		idle:      max(wall.UnixNano()-a.advancedAt.Load(), 0),
		firstOpen: a.firstOpen.Load(),
		accepted:  a.stats.accepted.Load(),
		sealed:    a.stats.sealed.Load(),
		chans:     a.channels.all(),
		regions:   a.regions.all(),
		shards:    make([]shardCopy, len(a.shards)),
	}
	if sn.maxTS == 0 {
		sn.idle = 0
	}
	for r := range sn.rejected {
		sn.rejected[r] = a.stats.rejected[r].Load()
	}
	if pos != nil {
		sn.StreamSeq = pos()
	}
	for i, s := range a.shards {
		s.mu.Lock()
		c := &sn.shards[i]
		c.devs = slices.Clone(s.devs)
		c.overflow = make(map[uint64][]credit, len(s.overflow))
		for h, acc := range s.overflow {
			c.overflow[h] = slices.Clone(acc)
		}
		for _, p := range s.open {
			c.open = append(c.open, p.clone())
		}
		s.mu.Unlock()
	}
	sn.Pause = time.Since(start)
	a.gate.Unlock()

	st := &a.store
	st.mu.Lock()
	sn.first, sn.newest = st.first, st.newest
	if st.newest >= 0 {
		for m := st.first; m <= st.newest; m++ {
			if sealed := st.minutes[m]; sealed != nil {
				sn.minutes = append(sn.minutes, sealed)
			}
		}
	}
	for n, h := range st.hours {
		if h.complete {
			sn.hours = append(sn.hours, hourRef{n, h})
		}
	}
	st.mu.Unlock()
	sort.Slice(sn.hours, func(i, j int) bool { return sn.hours[i].n < sn.hours[j].n })
	return sn
}

func (p *partial) clone() *partial {
	q := &partial{
		minute: p.minute,
		chans:  make([]counter, len(p.chans)),
		total:  p.total.clone(),
		cells:  countMap{keys: slices.Clone(p.cells.keys), vals: slices.Clone(p.cells.vals), n: p.cells.n},
		pairs:  hashSet{slots: slices.Clone(p.pairs.slots), n: p.pairs.n},
		flows:  maps.Clone(p.flows),
		zaps:   maps.Clone(p.zaps),
	}
	for i := range p.chans {
		if p.chans[i].credits > 0 {
			q.chans[i] = p.chans[i].clone()
		}
	}
	return q
}

func (c *counter) clone() counter {
	d := counter{set: hashSet{slots: slices.Clone(c.set.slots), n: c.set.n}, credits: c.credits}
	if c.dense != nil {
		d.dense = c.dense.Clone()
	}
	return d
}

// Encode returns the checkpoint of the snapshot: its sections, the sealed
// ones under KeyEpoch of the Config's key. It takes no lock of the
// Aggregator and may run on any goroutine, once.
func (sn *Snapshot) Encode() (*ckpt.Checkpoint, error) {
	epoch := KeyEpoch(sn.cfg.Key)
	open, err := sn.encodeOpen()
	if err != nil {
		return nil, err
	}
	sealed, err := sn.encodeSealed()
	if err != nil {
		return nil, err
	}
	return &ckpt.Checkpoint{
		Created:   sn.Created,
		StreamSeq: sn.StreamSeq,
		Sections: []ckpt.Section{
			{Name: "meta", Data: sn.encodeMeta()},
			{Name: "names", Data: sn.encodeNames()},
			{Name: "tuning", Epoch: epoch, Data: sn.encodeTuning()},
			{Name: "open", Epoch: epoch, Data: open},
			{Name: "sealed", Epoch: epoch, Data: sealed},
		},
	}, nil
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
	b = binary.BigEndian.AppendUint64(b, uint64(sn.cfg.Key.Fingerprint()))
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
	return b
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

func (sn *Snapshot) encodeOpen() ([]byte, error) {
	n := 0
	for i := range sn.shards {
		n += len(sn.shards[i].open)
	}
	b := appendU([]byte{sectionVersion}, uint64(n))
	var err error
	for i := range sn.shards {
		for _, p := range sn.shards[i].open {
			b = appendV(appendU(b, uint64(i)), p.minute)
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

func appendCounter(b []byte, c *counter) ([]byte, error) {
	b = appendU(b, uint64(c.credits))
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

func (sn *Snapshot) encodeSealed() ([]byte, error) {
	ids := make(map[string]uint64, len(sn.chans))
	for i, name := range sn.chans {
		ids[name] = uint64(i)
	}
	rids := make(map[string]uint64, len(sn.regions))
	for i, name := range sn.regions {
		rids[name] = uint64(i)
	}
	b := appendV(appendV([]byte{sectionVersion}, sn.first), sn.newest)
	b = appendU(b, uint64(len(sn.minutes)))
	var err error
	for _, m := range sn.minutes {
		b = appendEst(appendV(b, m.Start.Unix()/60), m.Total)
		if b, err = appendSketch(b, m.total); err != nil {
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
	}
	b = appendU(b, uint64(len(sn.hours)))
	for _, hr := range sn.hours {
		if b, err = appendSketch(appendV(b, hr.n), hr.h.total); err != nil {
			return nil, err
		}
		names := slices.Sorted(maps.Keys(hr.h.chans))
		b = appendU(b, uint64(len(names)))
		for _, name := range names {
			if b, err = appendSketch(appendU(b, ids[name]), hr.h.chans[name]); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}
