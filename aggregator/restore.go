package aggregator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Restore returns an Aggregator for cfg holding the state of cp, as if it had
// ingested what the checkpointed one had when its Snapshot was taken: the
// tuning table, the open minutes and hours, the sealed minutes, hourly
// rollups and reach-tier hours, the watermark and the counters. The
// event-time clock resumes where it was at the snapshot (maxTS plus the idle
// time then), not where the wall clock is: replayed events are not late.
// cfg may differ from the writer's in Shards (state is re-sharded),
// Lateness, MaxChannels, the retentions and OnSeal, but not in the pseudonym
// key, Model, Precision, DayStart, MinDwell or Inactivity
// (ErrCheckpointConfig).
//
// A section of a day or an ISO week whose key cfg.Keys no longer holds (or
// that the store could not open because its key is gone) has expired or
// been shredded: it is left out, and so is the tuning section then. What is
// past retention by the clock is dropped, and the keys of epochs wholly past
// it are forgotten, before Restore returns. Every other problem wraps
// ErrCheckpointCorrupt (a checkpoint of section version 1, written before
// key epochs, is refused so); Restore never panics on any input.
func Restore(cfg Config, cp *ckpt.Checkpoint) (*Aggregator, error) {
	a, err := newAggregator(cfg)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if cp == nil {
		return nil, fmt.Errorf("restore: nil checkpoint: %w", ErrCheckpointCorrupt)
	}
	if err := a.restore(cp); err != nil {
		return nil, fmt.Errorf("restore checkpoint %d: %w", cp.Seq, err)
	}
	a.sealMu.Lock()
	a.expireLocked(a.cfg.Now())
	a.sealMu.Unlock()
	return a, nil
}

func (a *Aggregator) restore(cp *ckpt.Checkpoint) error {
	section := func(name string, data []byte) (*reader, error) {
		r := &reader{name: name, b: data}
		switch v := r.u8(); {
		case r.err != nil:
			return nil, r.err
		case v == 1:
			return nil, fmt.Errorf("section %q has version 1, written before key epochs (one key for every sketch); this build reads version %d only: start without it: %w", name, sectionVersion, ErrCheckpointCorrupt)
		case v == 2:
			return nil, fmt.Errorf("section %q has version 2, written before sealed hours went to segment files; this build reads version %d only: start without it: %w", name, sectionVersion, ErrCheckpointCorrupt)
		case v != sectionVersion:
			return nil, fmt.Errorf("section %q has version %d, this build reads %d: %w", name, v, sectionVersion, ErrCheckpointCorrupt)
		}
		return r, nil
	}
	decode := func(name string, data []byte, f func(*reader) error) error {
		r, err := section(name, data)
		if err == nil {
			err = f(r)
		}
		if err == nil {
			err = r.err
		}
		if err == nil && r.off != len(r.b) {
			err = r.fail("%d bytes after the end", len(r.b)-r.off)
		}
		return err
	}
	var rs restoreState
	for _, s := range []struct {
		name string
		f    func(*reader, *restoreState) error
	}{{"meta", a.restoreMeta}, {"names", a.restoreNames}, {"tuning", a.restoreTuning}} {
		if s.name == "names" { // after meta, whose version is said first
			if err := checkEpochs(cp); err != nil {
				return err
			}
		}
		data, ok := cp.Section(s.name)
		if !ok {
			if s.name == "tuning" {
				continue
			}
			return fmt.Errorf("no section %q: %w", s.name, ErrCheckpointCorrupt)
		}
		if err := decode(s.name, data, func(r *reader) error { return s.f(r, &rs) }); err != nil {
			return err
		}
	}
	// The segments first: their hours are older than the minutes and the
	// open state of the day and week sections.
	if err := a.restoreSegments(cp, &rs, decode); err != nil {
		return err
	}
	last := [2]int64{-1, -1}
	for _, s := range cp.Sections {
		if s.Name == "meta" || s.Name == "names" || s.Name == "tuning" {
			continue
		}
		t, n, err := keys.ParseID(s.Name)
		if err != nil {
			return fmt.Errorf("unknown section %q: %w", s.Name, ErrCheckpointCorrupt)
		}
		if n <= last[t] {
			return fmt.Errorf("section %q after %q: %w", s.Name, keys.ID(t, last[t]), ErrCheckpointCorrupt)
		}
		last[t] = n
		key, ok := a.epochKey(t, n)
		if !ok {
			continue // its key is gone: expired or shredded
		}
		err = decode(s.Name, s.Data, func(r *reader) error {
			if t == keys.Minute {
				return a.restoreDay(r, &rs, n, key)
			}
			return a.restoreWeek(r, &rs, n, key)
		})
		if err != nil {
			return err
		}
	}
	return a.restoreRollup()
}

// restoreSegments restores the complete hours of cp's segments, in order:
// a tier's hours ascending. A segment whose epoch key is gone has expired
// and is left out; any other problem is damage.
func (a *Aggregator) restoreSegments(cp *ckpt.Checkpoint, rs *restoreState, decode func(string, []byte, func(*reader) error) error) error {
	for i := range cp.Segments {
		seg := &cp.Segments[i]
		t, n, err := keys.ParseID(seg.Epoch)
		if err != nil {
			return fmt.Errorf("segment %q of epoch %q: %w", seg.Name, seg.Epoch, ErrCheckpointCorrupt)
		}
		want := "minutes"
		if t == keys.Reach {
			want = "reach"
		}
		key, ok := a.epochKey(t, n)
		switch {
		case seg.Err != nil && errors.Is(seg.Err, ckpt.ErrKeyGone) || !ok:
			continue // expired or shredded
		case seg.Err != nil:
			return fmt.Errorf("segment %q: %w: %w", seg.Name, ErrCheckpointCorrupt, seg.Err)
		case len(seg.Sections) != 1 || seg.Sections[0].Name != want || seg.Sections[0].Epoch != seg.Epoch:
			return fmt.Errorf("segment %q of %s holds %d sections, want one %q sealed under its epoch (a segment listed, not loaded?): %w", seg.Name, seg.Epoch, len(seg.Sections), want, ErrCheckpointCorrupt)
		}
		var ref *ckpt.Segment
		if seg.Size != 0 {
			ref = &ckpt.Segment{Name: seg.Name, Epoch: seg.Epoch, Size: seg.Size, CRC: seg.CRC}
		}
		err = decode("segment "+seg.Name, seg.Sections[0].Data, func(r *reader) error {
			return a.restoreSegment(r, rs, seg.Name, t, n, key, ref)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkEpochs checks the epochs of cp's sealed sections. A section
// whose own epoch's key is gone has expired: it will be left out. Any other
// unreadable section is damage, and so is a section sealed under another
// epoch than its own.
func checkEpochs(cp *ckpt.Checkpoint) error {
	for _, u := range cp.Unreadable {
		if !errors.Is(u.Err, ckpt.ErrKeyGone) {
			return fmt.Errorf("%w: %w", ErrCheckpointCorrupt, u)
		}
		if !ownEpoch(u.Name, u.Epoch) {
			return fmt.Errorf("%w: %w, and is not a day, week or tuning section sealed under its own epoch", ErrCheckpointCorrupt, u)
		}
	}
	for _, s := range cp.Sections {
		_, _, err := keys.ParseID(s.Name)
		if (s.Name == "tuning" || err == nil) && !ownEpoch(s.Name, s.Epoch) {
			return fmt.Errorf("section %q is sealed under %q, not its own epoch: %w", s.Name, s.Epoch, ErrCheckpointCorrupt)
		}
	}
	return nil
}

// ownEpoch reports whether a section called name is one sealed under a key
// epoch, and epoch is the one it belongs under: a day or week section under
// itself, the tuning section under a day.
func ownEpoch(name, epoch string) bool {
	if name == "tuning" {
		t, _, err := keys.ParseID(epoch)
		return err == nil && t == keys.Minute
	}
	_, _, err := keys.ParseID(name)
	return err == nil && epoch == name
}

// epochKey returns the key of epoch n of tier t if the Keys still hold it,
// and caches it.
func (a *Aggregator) epochKey(t keys.Tier, n int64) (*sketch.Key, bool) {
	if _, ok := a.cfg.Keys.Lookup(keys.ID(t, n)); !ok {
		return nil, false
	}
	if err := a.cacheKey(t, n); err != nil {
		return nil, false
	}
	return a.cachedKey(t, n), true
}

// restoreState carries what one section tells the decoders of the next.
type restoreState struct {
	shards    int // of the writer
	firstOpen int64
	nch, nreg uint64 // ids 1..n are valid
	// The bounds of the store, from meta.
	first, newest, firstHour, newestHour int64
	// The last sealed minute and reach hour decoded, for their order.
	lastMinute, lastHour int64
}

func (a *Aggregator) restoreMeta(r *reader, rs *restoreState) error {
	model, prec, fp, dayStart := Model(r.u8()), r.u8(), sketch.Fingerprint(r.u64()), r.u()
	dwell, inact, shards := r.u(), r.u(), r.u()
	maxTS, idle, firstOpen := r.v(), r.u(), r.v()
	accepted, sealed, nr := r.u(), r.u(), r.u()
	if r.err != nil {
		return r.err
	}
	c := a.cfg
	switch {
	case fp != a.pseudonym.Fingerprint():
		// A checkpoint of a version that hashed devices with SipHash-2-4
		// has another fingerprint for the same key file, too: its
		// pseudonyms cannot be mixed with these.
		return fmt.Errorf("written under pseudonym key %v, this configuration has key %v (or written by a version that hashed devices with SipHash-2-4): %w", fp, a.pseudonym.Fingerprint(), ErrCheckpointConfig)
	case dayStart != uint64(c.DayStart/time.Hour):
		return fmt.Errorf("written with day start %dh, this configuration has %s: its days hold other hours: %w", dayStart, c.DayStart, ErrCheckpointConfig)
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
	first, newest, firstHour, newestHour := r.v(), r.v(), r.v(), r.v()
	if r.err != nil {
		return r.err
	}
	switch {
	case newest < -1 || newest > 1<<40 || first < 0 || first > 1<<40 || (newest >= firstOpen && firstOpen >= 0) || (newest >= 0 && firstOpen < 0):
		return r.fail("sealed minutes %d..%d, first open %d", first, newest, firstOpen)
	case newestHour < -1 || newestHour > 1<<34 || firstHour < 0 || firstHour > 1<<34 || (firstOpen >= 0 && newestHour >= hourOf(firstOpen)+1) || (newestHour >= 0 && firstOpen < 0):
		return r.fail("reach hours %d..%d, first open minute %d", firstHour, newestHour, firstOpen)
	}
	rs.first, rs.newest, rs.firstHour, rs.newestHour = first, newest, firstHour, newestHour
	rs.lastMinute, rs.lastHour = -1, -1
	a.store.first, a.store.newest = first, newest
	a.store.firstHour, a.store.newestHour = firstHour, newestHour
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
		if _, dup := s.index.get(d.hash); dup {
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
		s.index.put(d.hash, s.appendDeviceLocked(d))
		if d.ch != 0 {
			s.view(d.ch, d.region, +1)
		}
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

// packed reads a packed sealed sketch hashed under key. Only its header is
// checked here (decoding every sealed sketch would cost seconds at 48 h of
// minutes): the sections are checksummed and authenticated, and a payload
// that does not decode later is a query's error, never a panic.
func (r *reader) packed(a *Aggregator, key *sketch.Key) packed {
	data := r.bytes(int(min(r.u(), math.MaxInt32)))
	if r.err != nil {
		return nil
	}
	p, err := sketch.CheckHeader(data, key)
	if err == nil && p != a.cfg.Precision {
		err = fmt.Errorf("precision %d, want %d", p, a.cfg.Precision)
	}
	if err != nil {
		r.err = fmt.Errorf("section %q at byte %d: %w: %w", r.name, r.off, ErrCheckpointCorrupt, err)
		return nil
	}
	return slices.Clone(data)
}

// sketch reads a sketch hashed under key.
func (r *reader) sketch(a *Aggregator, key *sketch.Key) *sketch.Sketch {
	data := r.bytes(int(min(r.u(), math.MaxInt32)))
	if r.err != nil {
		return nil
	}
	sk, err := sketch.Decode(data, key)
	if err == nil && sk.Precision() != a.cfg.Precision {
		err = fmt.Errorf("precision %d, want %d", sk.Precision(), a.cfg.Precision)
	}
	if err != nil {
		r.err = fmt.Errorf("section %q at byte %d: %w: %w", r.name, r.off, ErrCheckpointCorrupt, err)
		return nil
	}
	return sk
}

// counter reads a minute partial's counter under key.
func (r *reader) counter(a *Aggregator, key *sketch.Key, c *counter) {
	c.credits = r.u32()
	if r.err != nil {
		return
	}
	r.set(a, key, c, func(n uint64) bool {
		return n <= uint64(c.credits) && (a.cfg.Model != Tuning || n == uint64(c.credits))
	})
	if r.err == nil && c.credits == 0 && (c.regs != nil || c.set.len() > 0) {
		r.fail("counter of devices with no credits")
	}
}

// set reads the devices of a counter under key: exact hashes (a number of
// them that ok accepts) or a dense sketch.
func (r *reader) set(a *Aggregator, key *sketch.Key, c *counter, ok func(n uint64) bool) {
	switch kind := r.u8(); {
	case r.err != nil:
	case kind == 1:
		if sk := r.sketch(a, key); r.err == nil {
			c.regs = make([]uint8, 1<<a.cfg.Precision)
			if err := sk.MaxRegisters(c.regs); err != nil {
				r.fail("counter sketch: %v", err)
			}
		}
	case kind == 0:
		n := r.count(8)
		if r.err == nil && (n > denseAbove || !ok(n)) {
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
}
