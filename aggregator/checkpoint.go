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
// partials of minutes and hours (their sets are slices; dense counters are
// cloned), the watermark atoms and counters, and the stream position (pos is
// called there, so the position and the state agree). It then releases the
// gate, collects pointers to the sealed minutes, complete rollups and
// reach-tier hours under the store lock (they are immutable), notes the keys
// of their epochs, and releases sealMu. WriteSegments and Encode run with no
// lock.
//
// # Sections and segments, version 3
//
// Each section starts with its own version byte (3), so one section can
// change without the others; versions 1 (before key epochs: one key for
// every sketch) and 2 (every sealed minute in every checkpoint) are refused.
// u is an unsigned varint, v a zigzag varint (encoding/binary), h8 8 bytes
// big-endian, est an estimate as u value, u value-low, u high-value, sk a
// sketch as u length and its sketch.Sketch encoding (sketch/doc: format 1),
// names a list u n, n × (u len, name) whose ids are 1..n. Names in the
// checkpoint file are channel or region ids of the "names" section (0 =
// none / off); a segment carries its own names (a subset of them).
//
// A complete hour of either tier never changes, so it is not in the
// checkpoint file: it is a segment (store.Segment), written once
// (WriteSegments, or store.Dir.Write) and listed by every checkpoint until
// it expires. The checkpoint file holds the open state.
//
//	meta (plain)                        names (plain)
//	1   version 3                       1   version 3
//	1   model (0 tuning, 1 events)      names channels
//	1   precision                       names regions
//	h8  pseudonym key fingerprint
//	u   day start, hours                tuning (sealed: day of the first open
//	u   min dwell, ms                   minute), one entry per device
//	u   inactivity, ms                  1   version 3
//	u   shards of the writer            v   base time, Unix ms
//	v   maxTS, Unix ms (0: none)        u   devices n, then n ×
//	u   idle: ns since maxTS advanced   h8    device pseudonym (never an id)
//	v   first open minute (-1: none)    v     since − base, ms
//	u   events accepted                 u     last − since, ms
//	u   minutes sealed                  v     accMin − base minute
//	u   reasons r, r × u rejected       u u u channel, region, prev (flows)
//	v   first minute kept               1     flags: bit 0 = flow done
//	v   newest sealed minute (-1: none) u     credits k, k × (u channel, u ms)
//	v   first reach hour kept
//	v   newest reach hour (-1: none)
//
//	day-YYYY-MM-DD (sealed under it)    week-YYYY-Www (sealed under it)
//	1   version 3                       1   version 3
//	u   open partials n ×               u   open hour partials n ×
//	u     shard (of meta's shards)      u     shard (of meta's shards)
//	v     minute                        v     hour (Unix hours)
//	u     channels k × (u ch, counter)  u     channels k × (u ch, set)
//	      total counter
//	u     cells k × (u ch, u region, u n)
//	u     pairs k × h8 (events model)
//	u     flows k × (u from, u to, u n)
//	u     zaps k × (u region, u n)
//	u   sealed minutes of hours not complete yet n × minute
//
//	segment minutes-YYYY-MM-DDTHH       segment reach-YYYY-MM-DDTHH
//	(one section "minutes", sealed      (one section "reach", sealed under
//	under the hour's day)               the hour's ISO week)
//	1   version 3                       1   version 3
//	v   hour (Unix hours)               v   hour (Unix hours)
//	names channels, names regions       names channels
//	u   minutes n × minute              sk total, u channels k × (u ch, sk)
//	sk  rollup total, u channels k × (u ch, sk)
//
//	minute:  v minute, est total, sk total, u channels k × (u ch, est, sk),
//	         u cells k × (u ch, u region, u count), u flows k × (u from,
//	         u to, u devices), u zaps k × (u region, u count)
//	counter: u credits, 1 kind, then kind 0: u n, n × h8 hashes; kind 1: sk
//	set:     1 kind, then kind 0: u n, n × h8 hashes; kind 1: sk
//
// A day section holds what its day's key hashed and is not yet in a
// segment: the open minutes of the day and the sealed minutes of its hour
// being sealed; a week section the reach tier's open hours of the week. Each
// section and segment is sealed under its own epoch (keys.ID), so the store
// derives its AES key from that epoch's key (Snapshot.Keys): once the key
// is forgotten, the section is unreadable in every checkpoint and segment
// that holds it, and Restore leaves it out as expired (the store deletes
// such segments). A segment's section names its hour, and Restore checks it
// against the segment's name and epoch. The tuning section holds pseudonyms
// and is sealed under the day of the first open minute. The incomplete
// current hourly rollup is not stored: Restore rebuilds it from its
// minutes, merged in the order the sealer merged them. The "now" counts per
// cell are not stored either: they are the devices of the tuning table on
// each cell. A checkpoint without a "tuning" section (the service's
// -persist-tuning=false) restores with an empty tuning table. Sealed
// sketches are stored as they are kept in memory (packed: store.go), so
// writing a segment copies bytes and encodes nothing.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Restore errors; each is wrapped with the values that caused it.
var (
	// ErrCheckpointConfig: the checkpoint was written under another
	// pseudonym key, model, precision, day start, min dwell or inactivity
	// than the Config's.
	ErrCheckpointConfig = errors.New("checkpoint does not match the configuration")
	// ErrCheckpointCorrupt: a section is missing, unreadable, truncated or
	// not well formed.
	ErrCheckpointCorrupt = errors.New("corrupt checkpoint section")
)

const sectionVersion = 3

// CheckpointKeys returns the store.KeyLookup of the checkpoints of an
// Aggregator configured with Key (and no Keys): the keys that
// keys.Derived(key) computes. For tests.
func CheckpointKeys(key *sketch.Key) ckpt.KeyLookup { return keys.Derived(key).Lookup }

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
	reach     []reachRef
	first     int64 // oldest sealed minute kept
	newest    int64 // newest sealed minute; -1 before the first
	// firstHour and newestHour bound the reach tier likewise.
	firstHour, newestHour int64
	// tuningDay is the day epoch the tuning section is sealed under.
	tuningDay int64
	// keys are those of every epoch a section is sealed under, by id.
	keys   map[string]*sketch.Key
	keyErr error // why the tuning section's key could not be had
}

type shardCopy struct {
	devs     []device
	overflow map[uint64][]credit
	open     []*partial
	hours    []*hourPartial
}

// hourRef is a complete hour of the minute tier: its rollup and its sealed
// minutes, which go into one segment.
type hourRef struct {
	n       int64
	h       *hour
	minutes []*Minute
}

type reachRef struct {
	n int64
	h *reachHour
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
		for _, h := range s.hours {
			c.hours = append(c.hours, h.clone())
		}
		s.mu.Unlock()
	}
	sn.Pause = time.Since(start)
	a.gate.Unlock()

	st := &a.store
	st.mu.Lock()
	sn.first, sn.newest = st.first, st.newest
	sn.firstHour, sn.newestHour = st.firstHour, st.newestHour
	for n, h := range st.hours {
		if h.complete {
			sn.hours = append(sn.hours, hourRef{n: n, h: h})
		}
	}
	sort.Slice(sn.hours, func(i, j int) bool { return sn.hours[i].n < sn.hours[j].n })
	if st.newest >= 0 {
		hr := 0
		for m := st.first; m <= st.newest; m++ {
			sealed := st.minutes[m]
			if sealed == nil {
				continue
			}
			for hr < len(sn.hours) && sn.hours[hr].n < hourOf(m) {
				hr++
			}
			if hr < len(sn.hours) && sn.hours[hr].n == hourOf(m) {
				sn.hours[hr].minutes = append(sn.hours[hr].minutes, sealed)
			} else {
				sn.minutes = append(sn.minutes, sealed)
			}
		}
	}
	for n, h := range st.reach {
		sn.reach = append(sn.reach, reachRef{n, h})
	}
	st.mu.Unlock()
	sort.Slice(sn.reach, func(i, j int) bool { return sn.reach[i].n < sn.reach[j].n })
	sn.collectKeys(a)
	return sn
}

// collectKeys records the key of every epoch the snapshot holds data of,
// and of the day its tuning section is sealed under (still under sealMu, so
// none of them has been forgotten).
func (sn *Snapshot) collectKeys(a *Aggregator) {
	sn.keys = make(map[string]*sketch.Key)
	add := func(t keys.Tier, m int64, k *sketch.Key) {
		sn.keys[keys.ID(t, a.cal.EpochOfMinute(t, m))] = k
	}
	for i := range sn.shards {
		for _, p := range sn.shards[i].open {
			add(keys.Minute, p.minute, p.key)
		}
		for _, h := range sn.shards[i].hours {
			add(keys.Reach, h.hour*60, h.key)
		}
	}
	for _, m := range sn.minutes {
		add(keys.Minute, m.Start.Unix()/60, m.key)
	}
	for _, hr := range sn.hours {
		add(keys.Minute, hr.n*60, hr.h.key)
	}
	for _, hr := range sn.reach {
		add(keys.Reach, hr.n*60, hr.h.key)
	}
	m := sn.firstOpen
	if m < 0 {
		m = minuteOf(sn.Created.UnixMilli())
	}
	sn.tuningDay = a.cal.EpochOfMinute(keys.Minute, m)
	id := keys.ID(keys.Minute, sn.tuningDay)
	if sn.keys[id] == nil {
		if err := a.cacheKey(keys.Minute, sn.tuningDay); err != nil {
			sn.keyErr = fmt.Errorf("checkpoint: tuning section: %w", err)
			return
		}
		sn.keys[id] = a.cachedKey(keys.Minute, sn.tuningDay)
	}
}

// Keys returns the store.KeyLookup for writing the checkpoint of the
// snapshot: the keys of its sections' epochs as they were when it was
// taken, so that an epoch forgotten meanwhile does not fail the write (its
// section is then unreadable as soon as the file is written).
func (sn *Snapshot) Keys() ckpt.KeyLookup {
	return func(id string) ([]byte, bool) {
		k := sn.keys[id]
		if k == nil {
			return nil, false
		}
		b := k.Bytes()
		return b[:], true
	}
}

func (h *hourPartial) clone() *hourPartial {
	q := &hourPartial{hour: h.hour, key: h.key, chans: make([]counter, len(h.chans))}
	for i := range h.chans {
		if h.chans[i].credits > 0 {
			q.chans[i] = h.chans[i].clone()
		}
	}
	return q
}

func (p *partial) clone() *partial {
	q := &partial{
		minute: p.minute,
		key:    p.key,
		chans:  make([]counter, len(p.chans)),
		total:  p.total.clone(),
		cells:  p.cells.clone(),
		pairs:  hashSet{slots: slices.Clone(p.pairs.slots), n: p.pairs.n},
		flows:  p.flows.clone(),
		zaps:   slices.Clone(p.zaps),
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
	d.regs = slices.Clone(c.regs)
	return d
}
