package bench

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// truthBuilder computes the exact truth of a stream by applying
// docs/semantics.md to its events, one at a time in arrival order, with a
// per-box tuning state like the aggregator's. Minute m is final once every
// event with ts < end(m) + min dwell has been observed: a segment still open
// then has lasted min dwell, so it qualifies (semantics.md, Segments). At
// that point a sweep over all boxes credits each to its channel, which costs
// O(boxes) per minute but needs no per-box history.
//
// Closed qualifying segments leave their overlap with not-yet-final minutes
// as contributions; minutes before those were credited while the segment
// was open.
type truthBuilder struct {
	cfg             *Config
	n, nch, nreg    int
	minDwell, inact int64
	start, first    int64 // Unix ms of Start and of its minute
	nMin            int
	nextFinal       int // the first minute not yet final

	boxes []tbox

	// Per not-yet-final minute, by minute % 4 (a minute becomes final less
	// than three minutes after it starts).
	contrib [4][]contrib
	seen    [4][]uint64 // box<<32 | channel<<16 | region: tunes and heartbeats
	keys    []uint64    // sort scratch

	aud     [2][]uint32
	evTotal []uint32
	cells   [2]sparse
	cellAt  [2]uint64 // the last cell's index
	zaps    []uint32
	flows   map[uint64]uint32 // minute<<32 | from<<16 | to
	reach   *reachCounter

	scratch []credit
	regTmp  []uint32 // [channel*nreg + region] of the minute being swept
	touched []int32

	events, tunes, heartbeats, standbys int64
}

// tbox is the truth's state of one box: 24 bytes, touched by each of its
// events and once a minute by the sweep. Times are ms from the first minute.
type tbox struct {
	segStart, last uint32 // the open segment's start; the last event as applied
	cur            uint16 // the open segment's channel (1-based), 0 = none
	region         uint16 // of the last event, 1-based; 0 = never seen
	state          uint16 // flow state: the last qualifying channel, 0 = off
	// The channel last credited (tuning) and seen (events), and the minute
	// (1-based) when: a box on the same channel as the minute before is
	// already in the reach of every window that did not just begin.
	credCh, credMin uint16
	seenCh, seenMin uint16
}

// contrib is a closed qualifying segment's overlap with a minute.
type contrib struct {
	dev     uint32
	ch      uint16
	overlap uint16 // ms
	end     uint16 // ms from the minute's start to the overlap's end
}

// credit sums a box's overlap with one channel in a minute.
type credit struct {
	ch       uint16
	sum, end int64
}

func newTruthBuilder(cfg *Config) *truthBuilder {
	n := cfg.Devices
	start := cfg.Start.UnixMilli()
	first := start - start%60000
	end := start + cfg.Duration.Milliseconds()
	b := &truthBuilder{
		cfg: cfg, n: n, nch: cfg.Channels, nreg: cfg.Regions,
		minDwell: cfg.MinDwell.Milliseconds(), inact: cfg.Inactivity.Milliseconds(),
		start: start, first: first,
		nMin:   int((end - first + 59999) / 60000),
		boxes:  make([]tbox, n),
		flows:  make(map[uint64]uint32),
		regTmp: make([]uint32, cfg.Channels*cfg.Regions),
	}
	b.aud[Tuning] = make([]uint32, b.nMin*b.nch)
	b.aud[Events] = make([]uint32, b.nMin*b.nch)
	b.evTotal = make([]uint32, b.nMin)
	b.zaps = make([]uint32, b.nMin*b.nreg)
	b.reach = newReachCounter(cfg, first, b.nMin)
	return b
}

func (b *truthBuilder) minuteOf(t int64) int { return int(t / 60000) }

// observe applies one event of box d: channel c (1-based, 0 for none) and
// region r (0-based).
func (b *truthBuilder) observe(d uint32, c, r uint16, ts int64, kind event.Kind) {
	b.events++
	m := b.minuteOf(ts - b.first)
	if m < b.nextFinal || m >= b.nMin || ts < b.start {
		panic(fmt.Sprintf("BUG: bench: truth observes ts %d outside its open minutes [%d, %d)", ts, b.nextFinal, b.nMin))
	}
	switch kind {
	case event.Tune:
		b.tunes++
		b.zaps[m*b.nreg+int(r)]++
	case event.Heartbeat:
		b.heartbeats++
	case event.Standby:
		b.standbys++
	}
	if kind != event.Standby {
		b.seen[m%4] = append(b.seen[m%4], uint64(d)<<32|uint64(c)<<16|uint64(r))
	}

	x := &b.boxes[d]
	t := ts - b.first
	if x.region != 0 {
		t = max(t, int64(x.last)) // a box's events apply in arrival order
	}
	if x.cur != 0 && t-int64(x.last) >= b.inact {
		e := int64(x.last) + b.inact
		b.closeSegment(d, x, e)
		b.toOff(x, e)
	}
	switch kind {
	case event.Tune, event.Heartbeat:
		if x.cur != c {
			if x.cur != 0 {
				b.closeSegment(d, x, t)
			}
			x.cur, x.segStart = c, uint32(t)
		}
	case event.Standby:
		if x.cur != 0 {
			b.closeSegment(d, x, t)
		}
		b.toOff(x, t)
	}
	x.last, x.region = uint32(t), r+1
}

// closeSegment ends x's open segment at e (ms from the first minute). A
// qualifying segment becomes x's flow state and leaves its overlap with the
// minutes not yet final.
func (b *truthBuilder) closeSegment(d uint32, x *tbox, e int64) {
	c, s := x.cur, int64(x.segStart)
	x.cur = 0
	if e-s < b.minDwell {
		return
	}
	if x.state != c {
		b.flow(x.state, c, s)
		x.state = c
	}
	for m := max(b.minuteOf(s), b.nextFinal); m < b.nMin; m++ {
		ms := int64(m) * 60000
		if ms >= e {
			break
		}
		if m > b.nextFinal+3 {
			panic("BUG: bench: truth contribution beyond its open minutes")
		}
		lo, hi := max(s, ms), min(e, ms+60000)
		b.contrib[m%4] = append(b.contrib[m%4], contrib{d, c, uint16(hi - lo), uint16(hi - ms)})
	}
}

func (b *truthBuilder) toOff(x *tbox, t int64) {
	if x.state != 0 {
		b.flow(x.state, 0, t)
		x.state = 0
	}
}

func (b *truthBuilder) flow(from, to uint16, t int64) {
	if m := b.minuteOf(t); m < b.nMin {
		b.flows[uint64(m)<<32|uint64(from)<<16|uint64(to)]++
	}
}

// advance finalises the minutes that no event at or after safe (Unix ms)
// can change.
func (b *truthBuilder) advance(safe int64) {
	for b.nextFinal < b.nMin && b.first+int64(b.nextFinal+1)*60000+b.minDwell <= safe {
		b.sweep()
	}
}

// sweep finalises minute nextFinal.
func (b *truthBuilder) sweep() {
	m := b.nextFinal
	b.nextFinal++ // closeSegment below must not add to m
	ms := int64(m) * 60000
	me := ms + 60000

	// The contributions grouped by box, each box's in the order they came.
	recs := b.contrib[m%4]
	keys := b.keys[:0]
	for i, r := range recs {
		keys = append(keys, uint64(r.dev)<<32|uint64(i))
	}
	slices.Sort(keys)
	i := 0
	for d := range uint32(b.n) {
		x := &b.boxes[d]
		sc := b.scratch[:0]
		for ; i < len(keys) && uint32(keys[i]>>32) == d; i++ {
			r := &recs[uint32(keys[i])]
			sc = addCredit(sc, r.ch, int64(r.overlap), int64(r.end))
		}
		if c := x.cur; c != 0 {
			s := int64(x.segStart)
			if e := int64(x.last) + b.inact; e < me {
				// The segment expires in this minute.
				if e-s >= b.minDwell && e > max(s, ms) {
					sc = addCredit(sc, c, e-max(s, ms), e-ms)
				}
				b.closeSegment(d, x, e)
				b.toOff(x, e)
			} else if s < me {
				// Still open at least min dwell after the minute's end: it qualifies.
				sc = addCredit(sc, c, me-max(s, ms), 60000)
			}
		}
		b.scratch = sc
		if len(sc) == 0 {
			continue
		}
		best := sc[0]
		for _, y := range sc[1:] {
			if y.sum > best.sum || y.sum == best.sum && y.end > best.end {
				best = y
			}
		}
		b.credit(Tuning, m, d, best.ch, x.region-1)
		x.credCh, x.credMin = best.ch, uint16(m+1)
	}
	b.contrib[m%4] = recs[:0]
	b.flushCells(Tuning, m)

	// Events model: distinct (box, channel) pairs of the minute.
	evs := b.seen[m%4]
	slices.Sort(evs)
	for j, e := range evs {
		d, c, r := uint32(e>>32), uint16(e>>16), uint16(e)
		if j > 0 && evs[j-1]>>16 == e>>16 {
			continue
		}
		if j == 0 || uint32(evs[j-1]>>32) != d {
			b.evTotal[m]++
		}
		x := &b.boxes[d]
		b.credit(Events, m, d, c, r)
		x.seenCh, x.seenMin = c, uint16(m+1)
	}
	b.seen[m%4] = evs[:0]
	b.keys = keys[:0]
	b.flushCells(Events, m)
	b.reach.minuteDone(m)
}

func addCredit(sc []credit, c uint16, overlap, end int64) []credit {
	for i := range sc {
		if sc[i].ch == c {
			sc[i].sum += overlap
			sc[i].end = max(sc[i].end, end)
			return sc
		}
	}
	return append(sc, credit{c, overlap, end})
}

// credit counts box d on channel c (1-based) in region r (0-based) at m.
func (b *truthBuilder) credit(model Model, m int, d uint32, c, r uint16) {
	b.aud[model][m*b.nch+int(c)-1]++
	k := (int(c)-1)*b.nreg + int(r)
	if b.regTmp[k] == 0 {
		b.touched = append(b.touched, int32(k))
	}
	b.regTmp[k]++
	x := &b.boxes[d]
	prevCh, prevMin := x.credCh, x.credMin
	if model == Events {
		prevCh, prevMin = x.seenCh, x.seenMin
	}
	// On the same channel the minute before: already counted in every
	// window that did not begin at m.
	b.reach.mark(model, d, int(c), m, prevCh == c && int(prevMin) == m)
}

func (b *truthBuilder) flushCells(model Model, m int) {
	slices.Sort(b.touched)
	base := uint64(m) * uint64(b.nch) * uint64(b.nreg)
	for _, k := range b.touched {
		b.cells[model].add(base+uint64(k), &b.cellAt[model], b.regTmp[k])
		b.regTmp[k] = 0
	}
	b.touched = b.touched[:0]
}

// finish finalises every minute once the stream has ended at end and
// returns the truth.
func (b *truthBuilder) finish(end int64) *Truth {
	for b.nextFinal < b.nMin {
		b.sweep()
	}
	// Segments still open end by inactivity, after the run: their own
	// start may still be a flow of the run.
	for d := range uint32(b.n) {
		if x := &b.boxes[d]; x.cur != 0 {
			e := int64(x.last) + b.inact
			b.closeSegment(d, x, e)
			b.toOff(x, e)
		}
	}
	cfg := b.cfg
	f := truthFile{
		Seed: cfg.Seed, Devices: cfg.Devices,
		Start: b.start, End: end, First: b.first, Minutes: b.nMin,
		MinDwell: b.minDwell, Inactivity: b.inact, Heartbeat: cfg.Heartbeat.Milliseconds(),
		Audience: b.aud, EventsTotal: b.evTotal, Regional: b.cells, Zaps: b.zaps,
		Events: b.events, Tunes: b.tunes, Heartbeats: b.heartbeats, Standbys: b.standbys,
	}
	for c := 1; c <= b.nch; c++ {
		f.Channels = append(f.Channels, ChannelName(c, b.nch))
	}
	for r := 1; r <= b.nreg; r++ {
		f.Regions = append(f.Regions, RegionName(r, b.nreg))
	}
	var at uint64
	s := uint64(b.nch + 1)
	for _, k := range slices.Sorted(maps.Keys(b.flows)) {
		minute, from, to := k>>32, k>>16&0xffff, k&0xffff
		f.Flows.add((minute*s+from)*s+to, &at, b.flows[k])
	}
	f.Windows, f.Sets, f.Reach = b.reach.windows, b.reach.named, b.reach.cells
	t, err := newTruth(f)
	if err != nil {
		panic("BUG: bench: the truth builder made an inconsistent truth: " + err.Error())
	}
	return t
}

// reachCounter counts distinct boxes per (model, window, channel set) with
// one bitset over boxes per set, kept for the window that is open in each
// slot (window length) and cleared when it closes.
type reachCounter struct {
	first  int64 // Unix ms of the truth's first minute
	n      int
	nch    int
	slots  []reachSlot
	setsOf [][]int // channel (1-based) → ids of the named sets that hold it
	named  [][]uint16

	windows []windowSpan
	known   map[windowSpan]bool
	cells   []reachCell
}

type reachSlot struct {
	from, to int           // the open window, minutes from the truth's first
	bits     [2][][]uint64 // [model][set]
	count    [2][]uint32
	next     func(m int) (from, to int)
}

func newReachCounter(cfg *Config, first int64, nMin int) *reachCounter {
	rc := &reachCounter{first: first, n: cfg.Devices, nch: cfg.Channels, known: make(map[windowSpan]bool)}
	rc.setsOf = make([][]int, cfg.Channels+1)
	for i, set := range cfg.ReachSets {
		var idx []uint16
		for _, name := range set {
			c, _ := channelIndex(name, cfg.Channels)
			idx = append(idx, uint16(c-1))
		}
		slices.Sort(idx)
		idx = slices.Compact(idx)
		rc.named = append(rc.named, idx)
		for _, c := range idx {
			rc.setsOf[c+1] = append(rc.setsOf[c+1], 1+cfg.Channels+i)
		}
	}
	firstMin := first / 60000
	spans := []func(m int) (int, int){func(int) (int, int) { return 0, nMin }}
	for _, l := range cfg.ReachSlots {
		l := int64(l.Minutes())
		spans = append(spans, func(m int) (int, int) {
			w := (firstMin + int64(m)) / l
			return int(max(w*l-firstMin, 0)), int(min((w+1)*l-firstMin, int64(nMin)))
		})
	}
	sets := 1 + cfg.Channels + len(cfg.ReachSets)
	for _, next := range spans {
		s := reachSlot{next: next}
		s.from, s.to = next(0)
		for model := range 2 {
			s.bits[model] = make([][]uint64, sets)
			s.count[model] = make([]uint32, sets)
		}
		rc.slots = append(rc.slots, s)
	}
	return rc
}

// mark counts box d on channel c at minute m in every open window; again
// means d was on c at m-1, so only windows that begin at m need it.
func (rc *reachCounter) mark(model Model, d uint32, c, m int, again bool) {
	for i := range rc.slots {
		s := &rc.slots[i]
		if again && s.from < m {
			continue
		}
		s.set(model, 0, d, rc.n)
		s.set(model, c, d, rc.n)
		for _, id := range rc.setsOf[c] {
			s.set(model, id, d, rc.n)
		}
	}
}

func (s *reachSlot) set(model Model, id int, d uint32, n int) {
	b := s.bits[model][id]
	if b == nil {
		b = make([]uint64, (n+63)/64)
		s.bits[model][id] = b
	}
	if w, bit := d/64, uint64(1)<<(d%64); b[w]&bit == 0 {
		b[w] |= bit
		s.count[model][id]++
	}
}

// minuteDone closes the windows that end with minute m.
func (rc *reachCounter) minuteDone(m int) {
	for i := range rc.slots {
		s := &rc.slots[i]
		if m+1 < s.to {
			continue
		}
		rc.close(s)
		s.from, s.to = s.next(m + 1)
	}
}

func (rc *reachCounter) close(s *reachSlot) {
	span := windowSpan{rc.first + int64(s.from)*60000, rc.first + int64(s.to)*60000}
	fresh := !rc.known[span]
	if fresh {
		rc.known[span] = true
		rc.windows = append(rc.windows, span)
	}
	for model := range 2 {
		for id, b := range s.bits[model] {
			if b == nil {
				continue
			}
			if fresh && s.count[model][id] > 0 {
				rc.cells = append(rc.cells, reachCell{
					Model: uint8(model), Window: uint32(len(rc.windows) - 1), Set: uint32(id), N: s.count[model][id],
				})
			}
			clear(b)
			s.count[model][id] = 0
		}
	}
}
