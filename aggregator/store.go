package aggregator

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// store keeps the minute tier: the sealed minutes for MinuteRetention, and
// per-hour rollups of their sketches (under the same day key) so that a
// reach over many hours of a day merges hours, not minutes; and the reach
// tier: per-hour sketches under the week key, for Retention. Sealed minutes,
// complete rollups and reach-tier hours are immutable: queries collect
// pointers to them under mu and merge after releasing it. Retention (expire)
// runs against the wall clock.
//
// Sealed sketches are kept packed: as their sketch encoding (sparse bytes,
// or zstd-compressed dense registers), next to the estimates they carry. A
// live library object of a dense sketch takes 16 KiB at p = 14 plus its
// overhead; one day of 500 channels' minute sketches was ~1.4 GiB live and
// ~0.45 GiB packed (DESIGN.md). Curves and the board read the estimates and
// never decode; reach decodes the packed sketches it merges, outside the
// lock. Only the rollup of the hour being sealed is live (put merges every
// sealed minute into it) until the hour completes.
type store struct {
	mu        sync.Mutex // guards everything below
	retention int64      // minutes
	minutes   map[int64]*Minute
	first     int64 // oldest minute kept (valid when any is sealed)
	newest    int64 // newest sealed minute; -1 before the first
	hours     map[int64]*hour
	// reach holds the reach tier's hours, by hour number.
	reach      map[int64]*reachHour
	firstHour  int64 // oldest reach hour kept (valid when any is stored)
	newestHour int64 // newest reach hour stored; -1 before the first
}

// packed is a sealed sketch kept compactly: its sketch.Sketch encoding,
// decoded (under the key of its epoch) only when a reach merges it.
type packed []byte

// pack returns the encoding of sk, a sketch nothing writes to any more,
// in a slice of exactly its size. nil packs to nil.
func pack(sk *sketch.Sketch) packed {
	if sk == nil {
		return nil
	}
	b, err := sk.AppendBinary(nil)
	if err != nil {
		panic("BUG: encode a sealed sketch: " + err.Error())
	}
	return bytes.Clone(b)
}

// unpack decodes p under key.
func (p packed) unpack(key *sketch.Key) (*sketch.Sketch, error) {
	return sketch.Decode(p, key)
}

// hourSketches are the packed sketches of an hour: of all channels and of
// each, under key.
type hourSketches struct {
	key   *sketch.Key
	total packed
	chans map[string]packed
}

func (h *hourSketches) bytes() int64 {
	n := int64(len(h.total))
	for _, p := range h.chans {
		n += int64(len(p))
	}
	return n
}

// hour is the union of the sketches of an hour's sealed minutes. put builds
// it (under store.mu) in live sketches; once the hour is complete they are
// packed and dropped, and queries read it, never changing again.
type hour struct {
	hourSketches // valid once complete
	live         *liveHour
	complete     bool
	// seg is the checkpoint segment file that holds the complete hour,
	// once one has been written (nil before).
	seg atomic.Pointer[ckpt.Segment]
}

// liveHour is the rollup of an hour that is still being sealed.
type liveHour struct {
	chans map[string]*sketch.Sketch
	total *sketch.Sketch
}

// reachHour is an hour of the reach tier: the devices of each channel, and
// of all, over the hour, under the week's key. Immutable.
type reachHour struct {
	hourSketches
	seg atomic.Pointer[ckpt.Segment] // as hour.seg
}

func (st *store) init(cfg Config) {
	st.retention = int64(cfg.MinuteRetention / 60e9)
	st.minutes = make(map[int64]*Minute)
	st.hours = make(map[int64]*hour)
	st.reach = make(map[int64]*reachHour)
	st.newest, st.newestHour = -1, -1
}

func hourOf(m int64) int64 { return m / 60 }

// put stores a sealed minute, whose live sketches (from the sealer) it
// merges into the hour's rollup and then packs. It packs before taking the
// lock: a dense sketch takes ~0.3 ms to compress.
func (st *store) put(sealed *Minute, a *Aggregator) {
	m := sealed.Start.Unix() / 60
	sealed.pack()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.newest < 0 {
		st.first = m
	}
	st.minutes[m] = sealed
	st.newest = m

	h := st.hours[hourOf(m)]
	if h == nil {
		// Under the minute's own key: an hour lies in one day.
		h = &hour{live: &liveHour{chans: make(map[string]*sketch.Sketch), total: a.newSketch(sealed.key)}}
		h.key = sealed.key
		st.hours[hourOf(m)] = h
		// Every earlier hour has all the minutes it will ever get.
		for n, old := range st.hours {
			if n < hourOf(m) && !old.complete {
				old.seal()
			}
		}
	}
	if err := h.add(a, sealed); err != nil {
		panic("BUG: a sealed minute's sketches share the hour's key and precision: " + err.Error())
	}
	sealed.dropLive()
	if m%60 == 59 {
		h.seal()
	}
}

// pack packs the minute's live sketches (it keeps them for put's rollup).
// It is idempotent, so a Minute stored twice (benchmarks repeat one) packs
// once.
func (m *Minute) pack() {
	if m.total != nil {
		m.key = m.total.Key()
		m.packedTotal = pack(m.total)
	}
	for i := range m.Channels {
		if c := &m.Channels[i]; c.sk != nil {
			c.packed = pack(c.sk)
		}
	}
}

// dropLive lets the live sketches go once packed.
func (m *Minute) dropLive() {
	m.total = nil
	for i := range m.Channels {
		m.Channels[i].sk = nil
	}
}

// putReach stores reach-tier hour n.
func (st *store) putReach(n int64, h *reachHour) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.newestHour < 0 {
		st.firstHour = n
	}
	st.reach[n] = h
	st.newestHour = max(st.newestHour, n)
}

// expire forgets the minutes before minute mh, the rollups of hours with no
// minute left, and the reach-tier hours before hour hh.
func (st *store) expire(mh, hh int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.newest >= 0 && st.first < mh {
		forgetBefore(st.minutes, st.first, mh)
		st.first = mh
		for n := range st.hours {
			if (n+1)*60 <= mh {
				delete(st.hours, n)
			}
		}
	}
	if st.newestHour >= 0 && st.firstHour < hh {
		forgetBefore(st.reach, st.firstHour, hh)
		st.firstHour = hh
	}
}

// forgetBefore deletes the keys of m in [first, to): first is the oldest
// key m can hold.
func forgetBefore[T any](m map[int64]T, first, to int64) {
	if to-first > int64(len(m)) {
		// A jump of the clock: cheaper to walk what is kept.
		for n := range m {
			if n < to {
				delete(m, n)
			}
		}
		return
	}
	for n := first; n < to; n++ {
		delete(m, n)
	}
}

// add merges a sealed minute into the hour's rollup: its live sketches
// (from the sealer), or else its packed ones (a restored minute, or one a
// benchmark stores again).
func (h *hour) add(a *Aggregator, sealed *Minute) error {
	merge := func(dst **sketch.Sketch, live *sketch.Sketch, p packed, what string) error {
		if *dst == nil {
			*dst = a.newSketch(h.key)
		}
		if live == nil && p != nil {
			var err error
			if live, err = p.unpack(sealed.key); err != nil {
				return fmt.Errorf("minute %s, %s: %w", rfc(sealed.Start), what, err)
			}
		}
		if live == nil {
			return nil
		}
		if err := (*dst).Merge(live); err != nil {
			return fmt.Errorf("minute %s, %s: %w", rfc(sealed.Start), what, err)
		}
		return nil
	}
	for i := range sealed.Channels {
		c := &sealed.Channels[i]
		sk := h.live.chans[c.Channel]
		err := merge(&sk, c.sk, c.packed, "channel "+c.Channel)
		h.live.chans[c.Channel] = sk
		if err != nil {
			return err
		}
	}
	return merge(&h.live.total, sealed.total, sealed.packedTotal, "total")
}

// seal completes the hour: its rollup is packed, and from then on shared
// with queries.
func (h *hour) seal() {
	h.complete = true
	h.total = pack(h.live.total)
	h.chans = make(map[string]packed, len(h.live.chans))
	for name, sk := range h.live.chans {
		h.chans[name] = pack(sk)
	}
	h.live = nil
}

func mustMerge(dst, src *sketch.Sketch) {
	if src == nil {
		return
	}
	if err := dst.Merge(src); err != nil {
		panic("BUG: sketches of one aggregator share key and precision: " + err.Error())
	}
}

// SketchBytes returns the approximate heap bytes held by the sealed minutes',
// the hourly rollups' and the reach tier's sketches, for the memory metric:
// the packed bytes, and the live rollup of the hour being sealed. Sizes of
// sealed minutes, complete rollups and reach hours (immutable) are summed
// outside the store lock.
func (a *Aggregator) SketchBytes() int64 {
	st := &a.store
	var mins []*Minute
	var hours []*hourSketches
	var n int64
	st.mu.Lock()
	for _, m := range st.minutes {
		mins = append(mins, m)
	}
	for _, h := range st.reach {
		hours = append(hours, &h.hourSketches)
	}
	for _, h := range st.hours {
		if h.complete {
			hours = append(hours, &h.hourSketches)
			continue
		}
		// Still merged into by put, under this lock.
		n += int64(h.live.total.SizeBytes())
		for _, sk := range h.live.chans {
			n += int64(sk.SizeBytes())
		}
	}
	st.mu.Unlock()
	for _, m := range mins {
		n += int64(len(m.packedTotal))
		for i := range m.Channels {
			n += int64(len(m.Channels[i].packed))
		}
	}
	for _, h := range hours {
		n += h.bytes()
	}
	return n
}
