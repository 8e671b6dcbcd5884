package aggregator

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

const msPerMinute = 60_000

// minuteOf returns the Unix minute number of a Unix-ms time (ts > 0).
func minuteOf(ts int64) int64 { return ts / msPerMinute }

// item is an event after hashing and interning: all the per-event path
// keeps. hash is the device's pseudonym (the pseudonym key's hash of its
// identifier).
type item struct {
	hash   uint64
	ts     int64
	m      int64 // minuteOf(ts)
	ch     uint32
	region uint32
	// idx is the device's tuning-table index when shard.ingest began, or
	// -1 (Tuning).
	idx  int32
	kind event.Kind
}

// Writer ingests events into an Aggregator. It holds the scratch space of the
// per-event path (per-shard buckets, a name cache) so that ingesting does not
// allocate in steady state. A Writer is not safe for concurrent use; make one
// per ingesting goroutine with NewWriter.
type Writer struct {
	a *Aggregator
	// buckets[s] holds the events staged for shard s.
	buckets  []bucket
	frameIDs []uint32          // WriteFrame: the ids of the frame's names
	channels map[string]uint32 // unlocked cache in front of a.channels
	regions  map[string]uint32
	names    *nameCache // in front of channels and regions
	// The devices of the events of a Write and their pseudonyms, hashed
	// in one batch (sketch.Key.HashIDs) before they are staged. devices
	// is cleared after each write, so it keeps no message alive.
	devices [][]byte
	hashes  []uint64
	// The keys of the epochs of both tiers that meet the minutes
	// [keyFrom, keyTo] are in the Aggregator's key cache (epochs.go).
	keyFrom, keyTo int64
}

// NewWriter returns a Writer for a.
func (a *Aggregator) NewWriter() *Writer {
	return &Writer{
		a:        a,
		buckets:  make([]bucket, len(a.shards)),
		channels: make(map[string]uint32),
		regions:  make(map[string]uint32),
		names:    new(nameCache),
		keyFrom:  1,
	}
}

// Write ingests evs, which must have passed event validation (the event
// Decoder returns only such events). Rejected events are counted in rej by
// reason; the others are accepted. It returns the number accepted.
func (w *Writer) Write(evs []event.Event, rej *event.Rejections) int {
	return w.write(evs, rej, 0, false)
}

// WriteAt is Write for a stream consumer: it also records pos, the stream
// position the events end at (the JetStream sequence of their message),
// while it holds the ingest gate, so that Snapshot sees the events and the
// position together or neither: the position a checkpoint records then
// never trails (or leads) its state, and a restart that resumes after it
// replays no message whose events the checkpoint holds. With no events it
// records pos alone (a message whose events were all rejected by the
// decoder, or the position a consumer starts at).
func (w *Writer) WriteAt(evs []event.Event, rej *event.Rejections, pos uint64) int {
	return w.write(evs, rej, pos, true)
}

// StreamPosition returns the position recorded by the last WriteAt that
// returned (0 before any). It only loads a word, without a lock: a
// Snapshot's pos function may call it, and then gets the position of
// exactly the events the snapshot holds.
func (a *Aggregator) StreamPosition() uint64 { return a.stats.streamPos.Load() }

func (w *Writer) write(evs []event.Event, rej *event.Rejections, pos uint64, at bool) int {
	if len(evs) == 0 {
		return w.writeNone(pos, at)
	}
	a := w.a
	c := w.begin(func(maxAhead int64) int64 {
		return earliest(evs, func(e *event.Event) int64 { return e.TS }, maxAhead)
	})
	defer a.gate.RUnlock()
	devs := w.devices[:0]
	for i := range evs {
		devs = append(devs, evs[i].Device)
	}
	hs := w.pseudonyms(devs)
	clear(devs) // keeps no message alive
	w.devices = devs
	for i := range evs {
		e := &evs[i]
		m := minuteOf(e.TS)
		if !c.admits(e.TS, m) && !w.admit(&c, rej, e.TS) {
			continue
		}
		ch, ok := w.internCached(w.channels, a.channels, e.Channel, 0)
		if !ok {
			w.rejectName(rej, "channel", e.Channel)
			continue
		}
		region, ok := w.internCached(w.regions, a.regions, e.Region, 1)
		if !ok {
			w.rejectName(rej, "region", e.Region)
			continue
		}
		h := hs[i]
		*w.stage(a.shardOf(h, ch)) = item{hash: h, ts: e.TS, m: m, ch: ch, region: region, kind: e.Kind}
		c.latest = max(c.latest, e.TS)
	}
	return w.commit(&c, rej, pos, at)
}

// WriteFrame is Write of a decoded binary frame (event.Decoder.DecodeFrame):
// it resolves each of the frame's names once, when an event first uses
// it, rather than once per event. It ingests exactly what Write of the
// frame's events would. f must be as DecodeFrame makes it: its events valid
// and their indexes within its dictionaries.
func (w *Writer) WriteFrame(f *event.Frame, rej *event.Rejections) int {
	return w.writeFrame(f, rej, 0, false)
}

// WriteFrameAt is WriteAt of a decoded binary frame (see WriteFrame).
func (w *Writer) WriteFrameAt(f *event.Frame, rej *event.Rejections, pos uint64) int {
	return w.writeFrame(f, rej, pos, true)
}

// The ids of a frame's names in Writer.frameIDs before they are resolved,
// and of one over the limit of names.
const (
	idUnresolved = ^uint32(0)
	idOverLimit  = ^uint32(1)
)

func (w *Writer) writeFrame(f *event.Frame, rej *event.Rejections, pos uint64, at bool) int {
	evs := f.Events
	if len(evs) == 0 {
		return w.writeNone(pos, at)
	}
	a := w.a
	c := w.begin(func(maxAhead int64) int64 {
		return earliest(evs, func(e *event.FrameEvent) int64 { return e.TS }, maxAhead)
	})
	defer a.gate.RUnlock()
	// The ids of the frame's channels, then its regions.
	// (Every entry is set below.)
	ids := slices.Grow(w.frameIDs[:0], len(f.Channels)+len(f.Regions))[:len(f.Channels)+len(f.Regions)]
	w.frameIDs = ids
	chIDs, regIDs := ids[:len(f.Channels)], ids[len(f.Channels):]
	// The names this Writer knows already, resolved up front from its
	// caches (which register nothing); the others when an event first
	// uses them, in the loop below (a name whose events are all rejected
	// is never registered).
	for i, name := range f.Channels {
		chIDs[i] = w.known(w.channels, name, 0)
	}
	for i, name := range f.Regions {
		regIDs[i] = w.known(w.regions, name, 1)
	}
	g := stager{
		evs: evs, hs: w.pseudonyms(f.Devices[:len(evs)]),
		chIDs: chIDs, regIDs: regIDs,
		buckets: w.buckets,
	}
	g.setWindow(&c)
	if a.cfg.Model == Tuning {
		g.hMask = a.mask
	} else {
		g.chMask = a.mask
	}
	for i := 0; ; i++ {
		if i = g.run(i); i == len(evs) {
			break
		}
		// An event run cannot take: one to admit or reject, a name to
		// resolve, or a full bucket.
		e := &evs[i]
		m := minuteOf(e.TS)
		if !c.admits(e.TS, m) {
			if !w.admit(&c, rej, e.TS) {
				continue
			}
			g.setWindow(&c)
		}
		ch := chIDs[e.Channel]
		if ch == idUnresolved {
			ch = w.frameID(w.channels, a.channels, f.Channels[e.Channel], 0)
			chIDs[e.Channel] = ch
		}
		if ch == idOverLimit {
			w.rejectName(rej, "channel", f.Channels[e.Channel])
			continue
		}
		region := regIDs[e.Region]
		if region == idUnresolved {
			region = w.frameID(w.regions, a.regions, f.Regions[e.Region], 1)
			regIDs[e.Region] = region
		}
		if region == idOverLimit {
			w.rejectName(rej, "region", f.Regions[e.Region])
			continue
		}
		h := g.hs[i]
		*w.stage(a.shardOf(h, ch)) = item{hash: h, ts: e.TS, m: m, ch: ch, region: region, kind: e.Kind}
		g.latest = max(g.latest, e.TS)
	}
	c.latest = max(c.latest, g.latest)
	return w.commit(&c, rej, pos, at)
}

// stager is what writeFrame's inner loop, run, needs at hand.
type stager struct {
	evs           []event.FrameEvent
	hs            []uint64 // the pseudonyms of evs' devices
	chIDs, regIDs []uint32 // Writer.frameIDs
	buckets       []bucket // Writer.buckets
	// An event's shard is (ch & chMask) | (pseudonym & hMask): one of the
	// two masks is 0 (Aggregator.shardOf).
	chMask, hMask uint64
	// The event times window.admits admits: [from, to].
	from, to int64
	latest   int64 // the latest event time staged
}

// setWindow sets the event times g admits to those c admits at once.
func (g *stager) setWindow(c *window) {
	g.from, g.to = math.MinInt64, c.maxAhead
	if c.floor > math.MinInt64/msPerMinute {
		g.from = c.floor * msPerMinute
	}
	switch {
	case c.keyTo < c.floor:
		g.to = math.MinInt64 // no keys at hand: nothing at once
	case c.keyTo < math.MaxInt64/msPerMinute-1:
		g.to = min(g.to, (c.keyTo+1)*msPerMinute-1)
	}
}

// bucket is a Writer's staged items for one shard: items[:n]. Its items'
// length is their capacity (Writer.stage).
type bucket struct {
	items []item
	n     int
}

// run is writeFrame's inner loop: from evs[i], while the events are
// admitted at once (window.admits), their names resolved and their
// shard's bucket has room, it stages them. It returns the index of the
// first event it did not take. It calls nothing, so that the compiler
// keeps its variables in registers (a call anywhere in the loop makes it
// spill them on every event).
func (g *stager) run(i int) int {
	evs, hs := g.evs, g.hs[:len(g.evs)]
	chIDs, regIDs := g.chIDs, g.regIDs
	buckets := g.buckets
	chMask, hMask := g.chMask, g.hMask
	from, to := g.from, g.to
	latest := g.latest
	for ; i < len(evs); i++ {
		e := &evs[i]
		ts := e.TS
		if ts < from || ts > to || int(e.Channel) >= len(chIDs) || int(e.Region) >= len(regIDs) {
			break
		}
		ch, region := chIDs[e.Channel], regIDs[e.Region]
		if ch >= idOverLimit || region >= idOverLimit {
			break
		}
		h := hs[i]
		b := &buckets[uint64(ch)&chMask|h&hMask]
		n := b.n
		if n >= len(b.items) {
			break
		}
		// Field by field: a composite literal is built on the stack and
		// copied with loads that stall on store forwarding.
		it := &b.items[n]
		it.hash, it.ts, it.m, it.ch, it.region, it.idx, it.kind = h, ts, minuteOf(ts), ch, region, 0, e.Kind
		b.n = n + 1
		latest = max(latest, ts)
	}
	g.latest = latest
	return i
}

// stage returns the next free item of shard s's bucket, growing the
// bucket if it is full.
func (w *Writer) stage(s uint64) *item {
	b := &w.buckets[s]
	if b.n == len(b.items) {
		items := make([]item, max(2*len(b.items), 64))
		copy(items, b.items)
		b.items = items
	}
	b.n++
	return &b.items[b.n-1]
}

// pseudonyms returns the pseudonyms of devs in w.hashes: one batch of
// keyed hashes, several side by side, rather than one dependent chain of
// AES rounds per event. Rejected events' devices are hashed too, which
// changes nothing.
func (w *Writer) pseudonyms(devs [][]byte) []uint64 {
	if cap(w.hashes) < len(devs) {
		w.hashes = make([]uint64, len(devs))
	}
	hs := w.hashes[:len(devs)]
	w.a.pseudonym.HashIDs(hs, devs)
	return hs
}

// frameID returns the id of a frame's name, or idOverLimit.
func (w *Writer) frameID(cache map[string]uint32, n *names, name []byte, which int) uint32 {
	id, ok := w.internCached(cache, n, name, which)
	if !ok {
		return idOverLimit
	}
	return id
}

// writeNone is a write of no events: WriteAt records pos alone.
func (w *Writer) writeNone(pos uint64, at bool) int {
	if at {
		w.a.gate.RLock()
		w.a.stats.streamPos.Store(pos)
		w.a.gate.RUnlock()
	}
	return 0
}

// window is what one write admits, fixed when it takes the ingest gate,
// and the latest event time it staged.
type window struct {
	wall                time.Time
	maxAhead, firstOpen int64
	horizon, oldest     int64
	floor               int64 // the earliest minute admitted: max(firstOpen, horizon)
	keyTo               int64 // the last minute whose keys are at hand (Writer.keyedTo)
	latest              int64
}

// earliest returns the earliest time ts gives of an event of evs that is
// not after maxAhead, or 0 if there is none.
func earliest[E any](evs []E, ts func(*E) int64, maxAhead int64) (first int64) {
	for i := range evs {
		if t := ts(&evs[i]); t <= maxAhead && (first == 0 || t < first) {
			first = t
		}
	}
	return first
}

// begin starts a write at the clock's time: if no minute is open yet, it
// opens the first, the one of first(maxAhead), the write's earliest event
// that is not in the future (0 if none). It takes the ingest gate, shared
// (the caller releases it), and returns the write's window.
func (w *Writer) begin(first func(maxAhead int64) int64) window {
	a := w.a
	wall := a.cfg.Now()
	maxAhead := wall.UnixMilli() + a.cfg.MaxClockSkew.Milliseconds()
	if a.firstOpen.Load() < 0 {
		a.start(first(maxAhead)) // takes sealMu: before the gate (lock order)
	}
	a.gate.RLock()
	firstOpen := a.firstOpen.Load()
	horizon, _ := a.horizons(wall)
	return window{
		wall:      wall,
		maxAhead:  maxAhead,
		firstOpen: firstOpen,
		horizon:   horizon,
		oldest:    max(firstOpen-int64(a.cfg.MinuteRetention/60e9), horizon),
		floor:     max(firstOpen, horizon),
		keyTo:     w.keyedTo(firstOpen),
	}
}

// admits reports whether an event at ts, in minute m, may be staged at
// once: not in the future, not in a sealed minute, and with its minute's
// keys at hand. Inlined: three compares for the usual event.
func (c *window) admits(ts, m int64) bool {
	return ts <= c.maxAhead && m >= c.floor && m <= c.keyTo
}

// admit is for an event at ts that c does not admit at once: it counts
// its rejection in rej and returns false, or it makes its minute's keys
// at hand and returns true.
func (w *Writer) admit(c *window, rej *event.Rejections, ts int64) bool {
	if ts > c.maxAhead {
		w.reject(rej, event.Future, "ts is %d ms ahead of the clock, beyond the allowed skew", ts-c.wall.UnixMilli())
		return false
	}
	m := minuteOf(ts)
	if m < c.floor {
		if m < c.oldest {
			w.reject(rej, event.TooOld, "minute is older than the %s retention", w.a.cfg.MinuteRetention)
		} else {
			w.reject(rej, event.Late, "minute is already sealed")
		}
		return false
	}
	from, to, err := w.a.ensureKeys(c.firstOpen, m)
	if err != nil {
		// The key of an epoch that is gone, or that cannot be made:
		// nothing of this minute can be kept.
		w.reject(rej, event.TooOld, "minute cannot be kept: %v", err)
		return false
	}
	w.keyFrom, w.keyTo = from, to
	c.keyTo = w.keyedTo(c.firstOpen)
	return true
}

// keyedTo returns the last minute whose keys are at hand for a write whose
// earliest open minute is firstOpen, or MinInt64 if firstOpen's are not.
func (w *Writer) keyedTo(firstOpen int64) int64 {
	if firstOpen < w.keyFrom {
		return math.MinInt64
	}
	return w.keyTo
}

// commit ingests the staged events, shard by shard, and returns how many
// were accepted. The caller holds the gate.
func (w *Writer) commit(c *window, rej *event.Rejections, pos uint64, at bool) int {
	a := w.a
	accepted := 0
	for i := range w.buckets {
		b := &w.buckets[i]
		if b.n == 0 {
			continue
		}
		accepted += a.shards[i].ingest(b.items[:b.n], rej)
		b.n = 0
	}
	a.stats.accepted.Add(uint64(accepted))
	if c.latest > 0 {
		a.advance(c.latest, c.wall.UnixNano())
	}
	if at {
		a.stats.streamPos.Store(pos) // before the gate is released
	}
	return accepted
}

// shardOf picks the shard of an event. The Tuning model shards by device:
// a device's tuning-table entry lives in one shard. The Events model has no
// per-device state and shards by channel, so that each channel's (and region
// cell's) counter of a minute exists once rather than once per shard: an
// eighth of the memory to keep in cache on the per-event path.
func (a *Aggregator) shardOf(h uint64, ch uint32) uint64 {
	if a.cfg.Model == Events {
		return uint64(ch) & a.mask
	}
	return h & a.mask
}

// nameCache is a small direct-mapped cache, per Writer, of the ids of
// names of up to 16 bytes, in front of the Writer's maps: a name is looked
// up by its first and last 8 bytes (which overlap, so together they are
// the whole name) with one multiply and compared as two words and a
// length, instead of a string hash and a map probe per event (profiled:
// 10% of ingest). Ids never change once given, so entries stay valid; a
// collision or a longer name goes through the maps as before.
type nameCache [2][nameCacheSize]nameEntry // channels, regions

// nameCacheBits sizes the nameCache; a collision costs a map lookup.
const (
	nameCacheBits = 9
	nameCacheSize = 1 << nameCacheBits
)

type nameEntry struct {
	w0, w1 uint64
	n, id  uint32 // n = 0: empty
}

// nameWords returns two words that determine a name of 1..16 bytes given
// its length: its first and last 8 bytes, or for a shorter name its first
// and last 4 (or its first, middle and last byte), overlapping. (A loop
// over the bytes of a short name, as line-ups have, cost 60 instructions.)
func nameWords(name []byte) (w0, w1 uint64) {
	switch n := len(name); {
	case n >= 8:
		return binary.LittleEndian.Uint64(name), binary.LittleEndian.Uint64(name[n-8:])
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(name)) | uint64(binary.LittleEndian.Uint32(name[n-4:]))<<32, 0
	case n > 0:
		return uint64(name[0]) | uint64(name[n/2])<<8 | uint64(name[n-1])<<16, 0
	}
	return 0, 0
}

// known returns the id of name if this Writer's caches have it (cache is
// w.channels or w.regions, which 0 or 1 in w.names), or idUnresolved. It
// registers nothing.
func (w *Writer) known(cache map[string]uint32, name []byte, which int) uint32 {
	if len(name) == 0 {
		return 0
	}
	if len(name) > 16 {
		if id, ok := cache[string(name)]; ok {
			return id
		}
		return idUnresolved
	}
	w0, w1 := nameWords(name)
	e := &w.names[which][nameSlot(name, w0, w1)]
	if e.w0 == w0 && e.w1 == w1 && e.n == uint32(len(name)) {
		return e.id
	}
	id, ok := cache[string(name)]
	if !ok {
		return idUnresolved
	}
	*e = nameEntry{w0: w0, w1: w1, n: uint32(len(name)), id: id}
	return id
}

// nameSlot returns the nameCache slot of name, whose nameWords are w0, w1.
func nameSlot(name []byte, w0, w1 uint64) uint64 {
	return (w0 ^ bits.RotateLeft64(w1, 29) ^ uint64(len(name))) * 0x9E3779B97F4A7C15 >> (64 - nameCacheBits)
}

// internCached is intern behind the nameCache (which is 0 for channels,
// 1 for regions).
func (w *Writer) internCached(cache map[string]uint32, n *names, name []byte, which int) (uint32, bool) {
	if len(name) == 0 {
		return 0, true
	}
	if len(name) > 16 {
		return w.intern(cache, n, name)
	}
	w0, w1 := nameWords(name)
	e := &w.names[which][nameSlot(name, w0, w1)]
	if e.w0 == w0 && e.w1 == w1 && e.n == uint32(len(name)) {
		return e.id, true
	}
	id, ok := w.intern(cache, n, name)
	if ok {
		*e = nameEntry{w0: w0, w1: w1, n: uint32(len(name)), id: id}
	}
	return id, ok
}

func (w *Writer) intern(cache map[string]uint32, n *names, name []byte) (uint32, bool) {
	if len(name) == 0 {
		return 0, true
	}
	if id, ok := cache[string(name)]; ok {
		return id, true
	}
	id, ok := n.intern(name)
	if ok {
		cache[string(name)] = id
	}
	return id, ok
}

// reject counts a rejected event. The detail never names the device.
func (w *Writer) reject(rej *event.Rejections, r event.Reason, format string, args ...any) {
	w.a.stats.rejected[r].Add(1)
	if rej == nil {
		return
	}
	rej.Count[r]++
	if rej.First == nil {
		rej.First = &event.Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
	}
}

// rejectName counts an event whose channel or region (what) would take the
// Aggregator past its limit of names.
func (w *Writer) rejectName(rej *event.Rejections, what string, name []byte) {
	w.reject(rej, event.ChannelLimit, "%s %q would exceed the limit of %d %ss", what, clip(name), w.a.cfg.MaxChannels, what)
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// start opens the first minute: the one the watermark would be in at
// first, the oldest event of the first batch that is not in the future (0
// if there is none: nothing opens). Later events before it are late.
func (a *Aggregator) start(first int64) {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	if a.firstOpen.Load() >= 0 || first == 0 {
		return
	}
	m := minuteOf(first - a.cfg.Lateness.Milliseconds())
	for _, s := range a.shards {
		s.mu.Lock()
		s.nextSeal = m
		s.mu.Unlock()
	}
	a.firstOpen.Store(m)
}

// advance moves maxTS forward to ts, noting the wall time (ns) it moved at.
func (a *Aggregator) advance(ts, wallNS int64) {
	for {
		cur := a.maxTS.Load()
		if ts <= cur {
			return
		}
		if a.maxTS.CompareAndSwap(cur, ts) {
			a.advancedAt.Store(wallNS)
			return
		}
	}
}

// Watermark returns the current watermark in Unix ms (0 before the first
// event): the event-time clock minus Lateness.
func (a *Aggregator) Watermark() int64 {
	return a.watermarkAt(a.cfg.Now().UnixNano())
}

func (a *Aggregator) watermarkAt(wallNS int64) int64 {
	maxTS := a.maxTS.Load()
	if maxTS == 0 {
		return 0
	}
	idle := (wallNS - a.advancedAt.Load()) / 1e6
	return maxTS + max(idle, 0) - a.cfg.Lateness.Milliseconds()
}

// Stats are the aggregator's running counters.
type Stats struct {
	accepted atomic.Uint64
	// streamPos is the position recorded by WriteAt, changed only under
	// the ingest gate held shared.
	streamPos atomic.Uint64
	rejected  [event.NumReasons]atomic.Uint64
	sealed    atomic.Uint64
}

// Accepted returns the number of events accepted so far.
func (a *Aggregator) Accepted() uint64 { return a.stats.accepted.Load() }

// Rejected returns the number of events rejected by the aggregator for r
// (decoder rejections are counted by the decoder's caller).
func (a *Aggregator) Rejected(r event.Reason) uint64 { return a.stats.rejected[r].Load() }

// SealedMinutes returns the number of minutes sealed so far.
func (a *Aggregator) SealedMinutes() uint64 { return a.stats.sealed.Load() }
