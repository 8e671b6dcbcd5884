package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// The action a box takes at its next turn (box.at).
const (
	actDone   uint8 = iota // dormant: nothing more in this run
	actReport              // the state report at Start: tune to the current channel
	actStart               // a viewing session starts (the box is off until then)
	actZap                 // the next zap of a burst
	actSwitch              // a viewing stint ends: a burst or a direct jump
	actLeave               // the viewer leaves at a programme boundary or ad break: a burst
	actReturn              // back to the channel left at an ad break
	actEnd                 // the session ends: standby, or silence
)

// box is the state of one set-top box: 20 bytes.
type box struct {
	at      uint32 // its next action or heartbeat, ms from Start; noAction = none
	sessEnd uint32 // when the current session ends, ms from Start
	retAt   uint32 // when to return home, ms from Start
	ch      uint16 // current or last channel, 1-based; 0 before the first
	home    uint16 // the channel to return to after an ad break, 0 = none
	act     uint8  // what the box does at its next turn
	burst   uint8  // zaps left in the current burst
}

// Generator simulates a population of set-top boxes and yields their events
// in batches, in order of event time (see Config.Jitter for the exception).
// It is not safe for concurrent use.
type Generator struct {
	cfg       Config
	b         *Behaviour
	startMs   int64  // Unix ms of Start
	endOff    uint32 // Duration in ms: turns at or after it are dropped
	gridStart int64  // Unix ms of the UTC minute that holds Start
	localOff  int64  // ms to add to UTC for the population's local time
	rng       rng
	seedHash  uint64

	chNames  [][]byte // 1-based: chNames[c] is channel c
	regNames [][]byte
	devBuf   []byte // device names of the current batch

	// Per box: 20 bytes, 8 more with heartbeats, 4 more with jitter. One
	// struct rather than an array per field, so that the epoch's scan
	// streams through one array. (The scan over a separate array of next
	// turns read a fifth of the bytes, but then each turn missed the cache
	// on its box, which cost more in the evening than the scan saved.)
	boxes   []box
	blockAt []uint32 // per block of 1<<blockShift boxes: at most its earliest turn (box.at)
	nextAct []uint32 // with heartbeats: when the box's action is due
	hbAt    []uint32 // with heartbeats: when its next heartbeat is due
	lastTS  []uint32 // with jitter: its last emitted ts, ms from Start

	recs         []rec          // the events of the current epoch, sorted by time
	tmp          []rec          // radix sort scratch
	pos          int            // next record of recs to emit
	epoch        uint32         // start of the next epoch to simulate, ms from Start
	sec          int64          // second of the last emitted record; -1 = none yet
	secEnd       uint32         // the end of second sec, ms from Start
	from         uint32         // start of the epoch being simulated, ms from Start
	counts       [2][1025]int32 // the radix sort's counts of the epoch's records (radixPass)
	starts, ends rates
	primeAt      []uint8  // per minute of the run grid: 1 in prime time
	pop          [2]alias // channel popularity off and in prime time
	breakPhase   []int64  // per channel (0-based): Unix ms of a break start, mod BreakEvery; -1 = no ads
	breakLen     []int64

	// The Behaviour as thresholds and milliseconds.
	pShort, pStandby, pResume, pStartBurst, pLinear, pUp chance
	pWatchShort, pSwitchBurst, pBoundary, pBreakLeave    chance
	pBreakReturn, pDup                                   chance
	burstRate                                            float64 // -ln(1 - 1/BurstMean)
	kLong                                                float64 // rate factor of long sessions
	zapMs, watchShortMs, watchLongMs, reactMs            float64
	breakEvery, hbMs, jitterMs                           int64

	batch []event.Event
	keys  []nameKeys // per event of batch: its channel and region
	// NextFrame's dictionary indexes: stamp<<32 | the index in enc's
	// dictionary of channel c (chIdx[c]) or region r (regIdx[r]), valid if
	// stamp is the call's.
	chIdx, regIdx []uint64
	stamp         uint32
	// With own, NextFrame numbers the names new to the frame itself (enc's
	// dictionaries were empty), and gives them to enc at the end: the
	// chNew channels it gave indexes 0, 1, … are newChs[:chNew], the
	// regNew regions newRegs[:regNew]. (Counts, not slices: the store of a
	// slice's pointer has a write barrier.)
	own             bool
	chNew, regNew   int
	newChs, newRegs []uint16
	ievs            []event.IndexedEvent // NextFrame's batch; event n's device is devBuf's name n
	truth           *truthBuilder
	result          *Truth
	done            bool
	err             error
	events          int64
	wall0           time.Time
}

// rec is an event as simulated, before it becomes an event.Event: 12
// bytes (with a field each, 16 moved a third more through the cache), which
// the epoch's sort moves twice and the batches read once.
type rec struct {
	t    uint32 // true time, ms from Start: the stream's order
	dk   uint32 // box | kind<<27 | 1<<29 with a duplicate
	ch   uint16
	back uint16 // t - the event time: 0, or up to Config.Jitter (< 2^16 ms)
}

const (
	recBoxBits = 27 // MaxDevices < 1<<27
	recDup     = 1 << 29
	// Compile-time checks: the box and back fields hold their ranges.
	_ = uint32(1<<recBoxBits - 1 - MaxDevices)
	_ = uint16(MaxJitter / time.Millisecond)
)

// box, kind, n and ts unpack r: its box, kind, events (1, or 2 with a
// duplicate) and event time in ms from Start.
func (r rec) box() uint32      { return r.dk & (1<<recBoxBits - 1) }
func (r rec) kind() event.Kind { return event.Kind(r.dk >> recBoxBits & 3) }
func (r rec) n() int           { return 1 + int(r.dk/recDup&1) }
func (r rec) ts() uint32       { return r.t - uint32(r.back) }

// noAction marks a box with nothing more to do in the run.
const noAction = math.MaxUint32

// epochMs is the span of event time simulated at once: long enough that
// the scan of all boxes costs little per event (~6 ns at 200k boxes), short
// enough that its records stay within a few MB, and under 2^20 ms for the
// radix sort.
const epochMs = 5 * 60000

// blockShift sets the epoch scan's blocks of boxes: 16 boxes, 320 bytes.
const blockShift = 4

// NewGenerator returns a Generator of the population cfg describes, with
// every box in its state at cfg.Start.
func NewGenerator(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	b := cfg.Behaviour
	n, nch := cfg.Devices, cfg.Channels
	g := &Generator{
		cfg:      cfg,
		b:        b,
		startMs:  cfg.Start.UnixMilli(),
		endOff:   uint32(cfg.Duration.Milliseconds()),
		rng:      rng{s: cfg.Seed},
		seedHash: mix64(cfg.Seed ^ 0x5eed),
		boxes:    make([]box, n),
		blockAt:  make([]uint32, (n+1<<blockShift-1)>>blockShift), // 0: scan every block first
		sec:      -1,
		batch:    make([]event.Event, 0, cfg.BatchEvents),
		keys:     make([]nameKeys, cfg.BatchEvents),
		devBuf:   make([]byte, cfg.BatchEvents*deviceLen),
		ievs:     make([]event.IndexedEvent, cfg.BatchEvents),

		pShort:       newChance(b.ShortSessionShare),
		pStandby:     newChance(b.StandbyShare),
		pResume:      newChance(b.ResumeShare),
		pStartBurst:  newChance(b.StartBurstShare),
		pLinear:      newChance(b.LinearShare),
		pUp:          newChance(b.UpShare),
		pWatchShort:  newChance(b.WatchShortShare),
		pSwitchBurst: newChance(b.SwitchBurstShare),
		pBoundary:    newChance(b.BoundaryLeave),
		pBreakLeave:  newChance(b.BreakLeave),
		pBreakReturn: newChance(b.BreakReturn),
		pDup:         newChance(cfg.Duplicates),
		zapMs:        float64(b.ZapDwellMean.Milliseconds()),
		watchShortMs: float64(b.WatchShortMean.Milliseconds()),
		watchLongMs:  float64(b.WatchLongMean.Milliseconds()),
		reactMs:      float64(b.ReactionMean.Milliseconds()),
		breakEvery:   b.BreakEvery.Milliseconds(),
		hbMs:         cfg.Heartbeat.Milliseconds(),
		jitterMs:     cfg.Jitter.Milliseconds(),
	}
	if b.BurstMean > 1 {
		g.burstRate = -math.Log(1 - 1/b.BurstMean)
	}
	g.kLong = (1 - b.ShortSessionShare) / (1 - b.ShortSessionShare/4)
	_, offSec := cfg.Start.In(cfg.Zone).Zone()
	g.localOff = int64(offSec) * 1000
	g.gridStart = g.startMs - g.startMs%60000

	for i := range g.ievs {
		g.ievs[i].Device = g.devBuf[i*deviceLen : (i+1)*deviceLen : (i+1)*deviceLen]
		copy(g.ievs[i].Device, "stb-")
	}
	g.chNames = make([][]byte, nch+1)
	for c := 1; c <= nch; c++ {
		g.chNames[c] = []byte(ChannelName(c, nch))
	}
	g.regNames = make([][]byte, cfg.Regions)
	g.chIdx, g.regIdx = make([]uint64, nch+1), make([]uint64, cfg.Regions)
	g.newChs, g.newRegs = make([]uint16, nch+1), make([]uint16, cfg.Regions)
	for r := range cfg.Regions {
		g.regNames[r] = []byte(RegionName(r+1, cfg.Regions))
	}
	if g.hbMs > 0 {
		g.nextAct, g.hbAt = make([]uint32, n), make([]uint32, n)
	}
	if g.jitterMs > 0 {
		g.lastTS = make([]uint32, n)
	}

	gridMinutes := int((g.startMs+int64(g.endOff)-g.gridStart)/60000) + 2
	localMinute := int(((g.gridStart+g.localOff)/60000)%1440+1440) % 1440
	start, end := b.sessionRates(localMinute, gridMinutes)
	g.primeAt = make([]uint8, gridMinutes)
	for k := range g.primeAt {
		if b.prime((localMinute + k) % 1440) {
			g.primeAt[k] = 1
		}
	}
	g.starts, g.ends = newRates(start), newRates(end)
	off, prime := b.popularity(nch)
	g.pop = [2]alias{newAlias(off), newAlias(prime)}
	g.breakPhase, g.breakLen = make([]int64, nch), make([]int64, nch)
	pCommercial := newChance(b.CommercialShare)
	for c := range nch {
		h := mix64(g.seedHash ^ uint64(c+1)<<20)
		g.breakPhase[c] = -1
		if uint64(pCommercial) > h>>11 {
			g.breakPhase[c] = int64(mix64(h) % uint64(g.breakEvery))
			g.breakLen[c] = int64(float64(b.BreakLength.Milliseconds()) * (0.6 + 0.8*float64(mix64(h^1)>>11)*0x1p-53))
		}
	}
	if cfg.Truth {
		g.truth = newTruthBuilder(&cfg)
	}

	// Every box's state at Start: dormant, in a session (it reports its
	// channel at Start), or off until its next session starts.
	for i := range g.boxes {
		g.boxes[i].at = noAction
	}
	pDormant := newChance(b.DormantShare)
	p0, _ := b.onShareAt(g.localMinuteOfDay(g.startMs))
	pOn := newChance(p0)
	for d := range uint32(n) {
		switch {
		case g.rng.hit(pDormant):
			g.boxes[d].act = actDone
		case g.rng.hit(pOn):
			x := &g.boxes[d]
			x.ch = g.jump(0, g.startMs)
			x.sessEnd = g.drawSessionEnd(0)
			x.act, x.at = actReport, 0
		default:
			g.scheduleStart(d, 0)
		}
	}
	return g, nil
}

// Config returns the Generator's configuration with defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// Events returns the number of events generated so far.
func (g *Generator) Events() int64 { return g.events }

// Now returns the event time the Generator has reached: events of later
// batches are at or after it (less Config.Jitter).
func (g *Generator) Now() time.Time {
	return time.UnixMilli(g.startMs + max(g.sec, 0)*1000).UTC()
}

// End returns the end of the simulated time, Start + Duration.
func (g *Generator) End() time.Time { return time.UnixMilli(g.startMs + int64(g.endOff)).UTC() }

// Truth returns the exact ground truth of the generated events once Next has
// returned false, if Config.Truth is set; else nil.
func (g *Generator) Truth() *Truth { return g.result }

// Err returns the context's error if Next or NextFrame stopped early
// because ctx ended, or why NextFrame refused its encoder.
func (g *Generator) Err() error { return g.err }

// Next sets *batch to the next events, at most Config.BatchEvents, and
// reports whether there were any. The events and their byte slices belong to
// the Generator and stay valid until the next call of Next. With
// Config.Pace, Next waits until the wall clock reaches its events' time and
// returns early, with what is due, rather than wait for a full batch; it
// returns false if ctx ends while it waits (Err then says why).
func (g *Generator) Next(ctx context.Context, batch *[]event.Event) bool {
	g.batch = g.batch[:0]
	*batch = g.batch
	if !g.begin(ctx) {
		return false
	}
	limit := g.cfg.BatchEvents - 2 // a record is an event and perhaps its duplicate
	for len(g.batch) <= limit {
		if g.pos == len(g.recs) {
			if !g.more() {
				break
			}
			continue
		}
		r := &g.recs[g.pos]
		if sec := int64(r.t / 1000); sec != g.sec {
			if due, ok := g.second(ctx, sec, len(g.batch)); !ok {
				return false
			} else if !due {
				break
			}
		}
		g.emit(r)
		g.pos++
	}
	*batch = g.batch
	return len(g.batch) > 0
}

// NextFrame adds the events Next would return next to enc, and reports
// whether there were any: the frame enc then makes is the one enc.Add of
// each of Next's events makes, byte for byte. It writes the batch from the
// simulation's state, without the event.Event values, by one call of
// BatchEncoder.AddIndexedEvents: the fastest way to binary frames. The
// caller makes the frame (enc.AppendFrame) and resets enc as it likes;
// events of several calls may share a frame. NextFrame returns false,
// before it has taken any event, if enc has no room for a whole batch
// (Err then says so), and as Next does at the end and when ctx ends.
func (g *Generator) NextFrame(ctx context.Context, enc *event.BatchEncoder) bool {
	g.batch = g.batch[:0] // Encode has no batch to add
	if enc.Len()+g.cfg.BatchEvents > event.DefaultMaxBatchEvents {
		g.err = fmt.Errorf("bench: a frame of %d events has no room for a batch of %d (max %d)",
			enc.Len(), g.cfg.BatchEvents, event.DefaultMaxBatchEvents)
		return false
	}
	if !g.begin(ctx) {
		return false
	}
	// The dictionary indexes found in this call are valid in it (the
	// caller may reset enc between calls).
	g.stamp++
	if g.stamp == 0 {
		clear(g.chIdx)
		clear(g.regIdx)
		g.stamp = 1
	}
	// With enc's dictionaries empty, the indexes enc gives names are
	// known (0, 1, … in order of first use): fill numbers the names new to
	// the frame itself, with no call in its loop, and giveNames hands them
	// to enc at the end. Else fill asks enc for each, a call per name new
	// to the frame (0.4 an event) and a return from its loop.
	chs, regs := enc.Dictionaries()
	g.own, g.chNew, g.regNew = chs == 0 && regs == 0, 0, 0
	n, ok := 0, true
	limit := g.cfg.BatchEvents - 2 // a record is an event and perhaps its duplicate
	for n <= limit {
		if g.pos == len(g.recs) {
			if !g.more() {
				break
			}
			continue
		}
		if sec := int64(g.recs[g.pos].t / 1000); sec != g.sec {
			due, live := g.second(ctx, sec, n)
			if !live {
				ok = false
			}
			if !due {
				break
			}
		}
		from := g.pos
		m, err := g.fill(enc, n)
		if g.truth != nil {
			g.observe(from, g.pos)
		}
		if n = m; err != nil {
			g.err, ok = err, false
			break
		}
	}
	if err := g.giveNames(enc); err != nil {
		g.err, ok, n = err, false, 0
	}
	g.events += int64(n)
	if k, err := enc.AddIndexedEvents(g.ievs[:n]); err != nil && ok {
		g.err, ok = fmt.Errorf("bench: encode event %d of the batch: %w", k, err), false
	}
	return ok && n > 0
}

// fill writes the events of the records from g.pos of the second g.sec to
// NextFrame's batch, which holds n events, while it has room for a record
// (two events), and returns the batch's events. Their channels and
// regions are indexes in enc's dictionaries: from chIdx and regIdx, else
// numbered by fill (own) or found by enc.
func (g *Generator) fill(enc *event.BatchEncoder, n int) (int, error) {
	for {
		var miss bool
		if n, miss = g.fillKnown(n); !miss {
			return n, nil
		}
		// A name new to the frame: the channel's first, as Add finds them.
		r := &g.recs[g.pos]
		if uint32(g.chIdx[r.ch]>>32) != g.stamp {
			if err := g.channelIndex(enc, r.ch); err != nil {
				return n, err
			}
		}
		if reg := g.region(r.box()); uint32(g.regIdx[reg]>>32) != g.stamp {
			if err := g.regionIndex(enc, uint16(reg)); err != nil {
				return n, err
			}
		}
	}
}

// fillKnown is fill up to the first record with a name new to the frame,
// unless NextFrame numbers new names itself (own), which it reports. It
// calls nothing: with a call in it, even one not taken, the compiler keeps
// the loop's state on the stack. (The loop that called enc for new names
// and stored each event's device, whose write barrier is a call, took 176
// instructions an event; this one takes 129.) What it reads of g, its
// bounds too, it reads through g, not from locals: with the loop's dozen
// other values, the compiler spilled and reloaded the locals at every turn.
func (g *Generator) fillKnown(n int) (int, bool) {
	pos := g.pos
	for ; pos < len(g.recs) && n+2 <= g.cfg.BatchEvents; pos++ {
		r := g.recs[pos] // a copy: through a pointer, the compiler read each field again after each store (9 instructions an event)
		if r.t >= g.secEnd {
			break
		}
		ci := g.chIdx[r.ch]
		if uint32(ci>>32) != g.stamp {
			if !g.own {
				g.pos = pos
				return n, true
			}
			ci = uint64(g.stamp)<<32 | uint64(g.chNew)
			g.chIdx[r.ch], g.newChs[g.chNew] = ci, r.ch
			g.chNew++
		}
		d := r.box()
		reg := g.region(d)
		ri := g.regIdx[reg]
		if uint32(ri>>32) != g.stamp {
			if !g.own {
				g.pos = pos
				return n, true
			}
			ri = uint64(g.stamp)<<32 | uint64(g.regNew)
			g.regIdx[reg], g.newRegs[g.regNew] = ri, uint16(reg)
			g.regNew++
		}
		// Emit's work, for enc. The batch's event n has device devBuf's
		// name n, which starts with "stb-" already: the loop stores no
		// pointer, so it has no write barrier (a call). The fields are
		// stored in place: a local event appended as a whole was read
		// back, 16 bytes at a time, from the narrower stores that had
		// just made it, and each such read waited for them to reach the
		// cache (a third of the loop's time).
		ev := &g.ievs[n]
		ev.TS, ev.Kind, ev.Channel, ev.Region = g.startMs+int64(r.ts()), r.kind(), int32(uint32(ci)), int32(uint32(ri))
		digits := deviceDigits(d)
		binary.LittleEndian.PutUint64(ev.Device[4:deviceLen], digits)
		n++
		if r.dk&recDup != 0 {
			dup := &g.ievs[n]
			dup.TS, dup.Kind, dup.Channel, dup.Region = ev.TS, ev.Kind, ev.Channel, ev.Region
			binary.LittleEndian.PutUint64(dup.Device[4:deviceLen], digits)
			n++
		}
	}
	g.pos = pos
	return n, false
}

// observe tells the truth the events of records from..to of the epoch.
func (g *Generator) observe(from, to int) {
	for _, r := range g.recs[from:to] {
		ts := g.startMs + int64(r.ts())
		for range r.n() {
			g.truth.observe(r.box(), r.ch, uint16(g.region(r.box())), ts, r.kind())
		}
	}
}

// begin starts a call of Next or NextFrame: it reports whether there may
// be events.
func (g *Generator) begin(ctx context.Context) bool {
	if g.done {
		return false
	}
	if err := ctx.Err(); err != nil {
		g.err = err
		return false
	}
	if g.cfg.Pace > 0 && g.wall0.IsZero() {
		g.wall0 = time.Now()
	}
	return true
}

// more simulates the next epoch, or finishes the run and returns false.
func (g *Generator) more() bool {
	if g.epoch >= g.endOff {
		g.finish()
		return false
	}
	g.simulate()
	return true
}

// second enters second sec of the stream, which n events of the batch
// precede. It reports whether its events are due (with Config.Pace, the
// batch ends with what is due now), after waiting for them if n is 0, and
// false for ok if ctx ended while it waited.
func (g *Generator) second(ctx context.Context, sec int64, n int) (due, ok bool) {
	if g.cfg.Pace > 0 {
		wait := time.Until(g.wall0.Add(time.Duration(float64(sec*1000)/g.cfg.Pace) * time.Millisecond))
		if wait > 0 && n > 0 {
			return false, true // hand over what is due now
		}
		if wait > 0 && !sleep(ctx, wait) {
			g.err = ctx.Err()
			return false, false
		}
	}
	if g.truth != nil {
		// Every event still to come has ts ≥ this.
		g.truth.advance(g.startMs + sec*1000 - g.jitterMs)
	}
	g.sec, g.secEnd = sec, uint32(min((sec+1)*1000, math.MaxUint32))
	return true, true
}

// giveNames gives enc the names that NextFrame numbered itself (own), in
// the order it numbered them, by BatchEncoder.AddChannels and AddRegions:
// a call a name (ChannelIndex) cost 52 instructions an event.
func (g *Generator) giveNames(enc *event.BatchEncoder) error {
	chs, regs := g.newChs[:g.chNew], g.newRegs[:g.regNew]
	if k, err := enc.AddChannels(chs, g.chNames); err != nil {
		return fmt.Errorf("bench: channel %d: %w", chs[k], err)
	}
	if k, err := enc.AddRegions(regs, g.regNames); err != nil {
		return fmt.Errorf("bench: region %d: %w", regs[k], err)
	}
	// Distinct names into empty dictionaries, so enc's indexes are the
	// ones NextFrame gave.
	if c, r := enc.Dictionaries(); g.own && (c != len(chs) || r != len(regs)) {
		panic(fmt.Sprintf("BUG: bench: a frame whose dictionaries were empty has %d channels and %d regions, not %d and %d",
			c, r, len(chs), len(regs)))
	}
	return nil
}

// channelIndex sets NextFrame's entry of channel c in chIdx.
func (g *Generator) channelIndex(enc *event.BatchEncoder, c uint16) error {
	i, err := enc.ChannelIndex(g.chNames[c], int(c))
	if err != nil {
		return fmt.Errorf("bench: channel %d: %w", c, err)
	}
	g.chIdx[c] = uint64(g.stamp)<<32 | uint64(i)
	return nil
}

// regionIndex sets NextFrame's entry of region r in regIdx.
func (g *Generator) regionIndex(enc *event.BatchEncoder, r uint16) error {
	i, err := enc.RegionIndex(g.regNames[r], int(r))
	if err != nil {
		return fmt.Errorf("bench: region %d: %w", r, err)
	}
	g.regIdx[r] = uint64(g.stamp)<<32 | uint64(i)
	return nil
}

// nameKeys are the channel (1-based) and region (0-based) of an event of
// the batch, by number.
type nameKeys struct{ ch, reg uint16 }

// Encode adds the events of the batch that Next returned last to enc. It
// writes the frame that enc.Add of each event writes, faster: it tells enc
// the channel and region of each event by number (BatchEncoder.AddKeyed),
// which spares enc looking up two names per event. NextFrame is faster
// still.
func (g *Generator) Encode(enc *event.BatchEncoder) error {
	for i := range g.batch {
		k := g.keys[i]
		if err := enc.AddKeyed(&g.batch[i], int(k.ch), int(k.reg)); err != nil {
			return fmt.Errorf("bench: encode event %d of the batch: %w", i, err)
		}
	}
	return nil
}

// simulate runs every box through the next epoch, recording its events,
// and sorts them by time. Boxes are visited in index order, so the state
// arrays stream through the cache; a queue ordered by time visited them at
// random and waited on memory for most of each event.
func (g *Generator) simulate() {
	from := g.epoch
	to := uint32(min(uint64(from)+epochMs, uint64(g.endOff)))
	g.epoch, g.from = to, from
	g.recs, g.pos = g.recs[:0], 0
	clear(g.counts[0][:])
	clear(g.counts[1][:])
	// Blocks whose earliest turn is past the epoch are skipped without
	// reading their boxes (most of them at night). A box's turn changes
	// only when it takes one, in its block's scan, which then records the
	// block's new earliest; the order of the turns is the same.
	boxes := g.boxes
	for b, first := range g.blockAt {
		if first >= to {
			continue
		}
		lo := b << blockShift
		hi := min(lo+1<<blockShift, len(boxes))
		first = noAction
		for d := lo; d < hi; d++ {
			at := boxes[d].at
			for ; at < to; at = boxes[d].at {
				g.step(at, uint32(d))
			}
			first = min(first, at)
		}
		g.blockAt[b] = first
	}
	// A stable two-pass radix sort on the millisecond within the epoch (10
	// bits a pass): records of one millisecond keep the order of their
	// boxes, which is deterministic. record counts the keys of both passes,
	// which saves two of the sort's four reads of the records.
	n := len(g.recs)
	if cap(g.tmp) < n {
		g.tmp = make([]rec, n, n+n/4)
	}
	g.tmp = g.tmp[:n]
	radixPass(g.tmp, g.recs, from, 0, &g.counts[0])
	radixPass(g.recs, g.tmp, from, 10, &g.counts[1])
}

// radixPass stably sorts src into dst by 10 bits, from bit shift, of the
// records' time since base; c[k+1] counts the records of key k.
func radixPass(dst, src []rec, base uint32, shift uint, c *[1025]int32) {
	for i := 1; i < len(c); i++ {
		c[i] += c[i-1]
	}
	for i := range src {
		k := (src[i].t - base) >> shift & 1023
		dst[c[k]] = src[i]
		c[k]++
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *Generator) finish() {
	g.done = true
	if g.truth != nil {
		g.result = g.truth.finish(g.startMs + int64(g.endOff))
		g.truth = nil
	}
}

// schedule makes at (at least a second after now) the time of box d's next
// action a, and the box's next turn that or its heartbeat if that comes first.
func (g *Generator) schedule(d, now, at uint32, a uint8) {
	at = max(at, now+1000)
	g.boxes[d].act = a
	q := at
	if g.hbMs > 0 {
		g.nextAct[d] = at
		// A heartbeat less than a second before the action is left out:
		// the action's own event is the activity.
		if a != actStart && g.hbAt[d]+1000 <= at {
			q = g.hbAt[d]
		}
	}
	if q >= g.endOff {
		q = noAction
	}
	g.boxes[d].at = q
}

// record adds an event of box d at t to the epoch.
func (g *Generator) record(d, t uint32, kind event.Kind, c uint16) {
	ts := t
	if g.jitterMs > 0 && t > 0 {
		ts = max(t-uint32(min(g.rng.below(uint64(g.jitterMs)), uint64(t))), g.lastTS[d])
		g.lastTS[d] = ts
	}
	if g.hbMs > 0 {
		g.hbAt[d] = t + uint32(g.hbMs)
	}
	dk := d | uint32(kind)<<recBoxBits
	if g.pDup > 0 && g.rng.hit(g.pDup) {
		dk |= recDup
	}
	g.recs = append(g.recs, rec{t: t, dk: dk, ch: c, back: uint16(t - ts)})
	g.counts[0][(t-g.from)&1023+1]++
	g.counts[1][(t-g.from)>>10&1023+1]++
}

// emit appends r's event (and its duplicate) to the batch.
func (g *Generator) emit(r *rec) {
	i := len(g.batch) * deviceLen
	dev := g.devBuf[i : i+deviceLen : i+deviceLen]
	d, kind, k := r.box(), r.kind(), r.n()
	putDevice(dev, d)
	reg := g.region(d)
	n := len(g.batch)
	g.batch = g.batch[:n+k] // Next leaves room for both
	ev := &g.batch[n]
	ev.Device, ev.Channel, ev.Region = dev, g.chNames[r.ch], g.regNames[reg]
	ev.TS, ev.Kind = g.startMs+int64(r.ts()), kind
	g.keys[n] = nameKeys{r.ch, uint16(reg)}
	if k == 2 {
		g.batch[n+1] = *ev
		g.keys[n+1] = g.keys[n]
	}
	g.events += int64(k)
	if g.truth != nil {
		for range k {
			g.truth.observe(d, r.ch, uint16(reg), ev.TS, kind)
		}
	}
}
