package aggregator

import (
	"fmt"
	"sync/atomic"

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
	ch     uint32
	region uint32
	kind   event.Kind
}

// Writer ingests events into an Aggregator. It holds the scratch space of the
// per-event path (per-shard buckets, a name cache) so that ingesting does not
// allocate in steady state. A Writer is not safe for concurrent use; make one
// per ingesting goroutine with NewWriter.
type Writer struct {
	a        *Aggregator
	buckets  [][]item
	channels map[string]uint32 // unlocked cache in front of a.channels
	regions  map[string]uint32
	// The keys of the epochs of both tiers that meet the minutes
	// [keyFrom, keyTo] are in the Aggregator's key cache (epochs.go).
	keyFrom, keyTo int64
}

// NewWriter returns a Writer for a.
func (a *Aggregator) NewWriter() *Writer {
	return &Writer{
		a:        a,
		buckets:  make([][]item, len(a.shards)),
		channels: make(map[string]uint32),
		regions:  make(map[string]uint32),
		keyFrom:  1,
	}
}

// Write ingests evs, which must have passed event validation (the event
// Decoder returns only such events). Rejected events are counted in rej by
// reason; the others are accepted. It returns the number accepted.
func (w *Writer) Write(evs []event.Event, rej *event.Rejections) int {
	a := w.a
	if len(evs) == 0 {
		return 0
	}
	wall := a.cfg.Now()
	maxAhead := wall.UnixMilli() + a.cfg.MaxClockSkew.Milliseconds()
	if a.firstOpen.Load() < 0 {
		a.start(evs, maxAhead) // takes sealMu: before the gate (lock order)
	}
	a.gate.RLock()
	defer a.gate.RUnlock()
	firstOpen := a.firstOpen.Load()
	horizon, _ := a.horizons(wall)
	oldest := max(firstOpen-int64(a.cfg.MinuteRetention/60e9), horizon)

	var batchMax int64
	for i := range evs {
		e := &evs[i]
		if e.TS > maxAhead {
			w.reject(rej, event.Future, e, "ts is %d ms ahead of the clock, beyond the allowed skew", e.TS-wall.UnixMilli())
			continue
		}
		m := minuteOf(e.TS)
		if m < firstOpen || m < horizon {
			if m < oldest {
				w.reject(rej, event.TooOld, e, "minute is older than the %s retention", a.cfg.MinuteRetention)
			} else {
				w.reject(rej, event.Late, e, "minute is already sealed")
			}
			continue
		}
		if m > w.keyTo || firstOpen < w.keyFrom {
			from, to, err := a.ensureKeys(firstOpen, m)
			if err != nil {
				// The key of an epoch that is gone, or that cannot be
				// made: nothing of this minute can be kept.
				w.reject(rej, event.TooOld, e, "minute cannot be kept: %v", err)
				continue
			}
			w.keyFrom, w.keyTo = from, to
		}
		ch, ok := w.intern(w.channels, a.channels, e.Channel)
		if !ok {
			w.reject(rej, event.ChannelLimit, e, "channel %q would exceed the limit of %d channels", clip(e.Channel), a.cfg.MaxChannels)
			continue
		}
		region, ok := w.intern(w.regions, a.regions, e.Region)
		if !ok {
			w.reject(rej, event.ChannelLimit, e, "region %q would exceed the limit of %d regions", clip(e.Region), a.cfg.MaxChannels)
			continue
		}
		h := a.pseudonym.Hash(e.Device)
		s := a.shardOf(h, ch)
		w.buckets[s] = append(w.buckets[s], item{hash: h, ts: e.TS, ch: ch, region: region, kind: e.Kind})
		batchMax = max(batchMax, e.TS)
	}

	accepted := 0
	for i, b := range w.buckets {
		if len(b) == 0 {
			continue
		}
		accepted += a.shards[i].ingest(b, rej)
		w.buckets[i] = b[:0]
	}
	a.stats.accepted.Add(uint64(accepted))
	if batchMax > 0 {
		a.advance(batchMax, wall.UnixNano())
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
func (w *Writer) reject(rej *event.Rejections, r event.Reason, _ *event.Event, format string, args ...any) {
	w.a.stats.rejected[r].Add(1)
	if rej == nil {
		return
	}
	rej.Count[r]++
	if rej.First == nil {
		rej.First = &event.Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
	}
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// start opens the first minute: the one the watermark would be in at the
// oldest event of the first batch. Later events before it are late.
func (a *Aggregator) start(evs []event.Event, maxAhead int64) {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	if a.firstOpen.Load() >= 0 {
		return
	}
	var first int64
	for i := range evs {
		if ts := evs[i].TS; ts <= maxAhead && (first == 0 || ts < first) {
			first = ts
		}
	}
	if first == 0 {
		return // only future events: nothing to open yet
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
	rejected [event.NumReasons]atomic.Uint64
	sealed   atomic.Uint64
}

// Accepted returns the number of events accepted so far.
func (a *Aggregator) Accepted() uint64 { return a.stats.accepted.Load() }

// Rejected returns the number of events rejected by the aggregator for r
// (decoder rejections are counted by the decoder's caller).
func (a *Aggregator) Rejected(r event.Reason) uint64 { return a.stats.rejected[r].Load() }

// SealedMinutes returns the number of minutes sealed so far.
func (a *Aggregator) SealedMinutes() uint64 { return a.stats.sealed.Load() }
