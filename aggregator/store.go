package aggregator

import (
	"sync"

	"github.com/ratingsd/ratingsd/sketch"
)

// store keeps the sealed minutes for MinuteRetention, and per-hour rollups of
// their sketches so that a reach over many hours merges hours, not minutes.
// Sealed minutes and complete hours are immutable: queries collect pointers
// to them under mu and merge after releasing it.
type store struct {
	mu        sync.Mutex // guards everything below
	retention int64      // minutes
	minutes   map[int64]*Minute
	first     int64 // oldest minute kept (valid when any is sealed)
	newest    int64 // newest sealed minute; -1 before the first
	hours     map[int64]*hour
}

// hour is the union of the sketches of an hour's sealed minutes. It is built
// by put (under store.mu) and read by queries only once complete, after which
// it never changes.
type hour struct {
	chans    map[string]*sketch.Sketch
	total    *sketch.Sketch
	complete bool
}

func (st *store) init(cfg Config) {
	st.retention = int64(cfg.MinuteRetention / 60e9)
	st.minutes = make(map[int64]*Minute)
	st.hours = make(map[int64]*hour)
	st.newest = -1
}

func hourOf(m int64) int64 { return m / 60 }

func (st *store) put(sealed *Minute, a *Aggregator) {
	m := sealed.Start.Unix() / 60
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.newest < 0 {
		st.first = m
	}
	st.minutes[m] = sealed
	st.newest = m

	h := st.hours[hourOf(m)]
	if h == nil {
		h = &hour{chans: make(map[string]*sketch.Sketch), total: a.newSketch()}
		st.hours[hourOf(m)] = h
		// Every earlier hour has all the minutes it will ever get.
		for n, old := range st.hours {
			if n < hourOf(m) && !old.complete {
				old.complete = true
				compact(old)
			}
		}
	}
	h.add(a, sealed)
	if m%60 == 59 {
		h.complete = true
		compact(h)
	}

	// Retention: forget minutes (and hours) older than the horizon.
	horizon := m - st.retention + 1
	if horizon-st.first > int64(len(st.minutes)) {
		// A jump of the watermark: cheaper to walk what is kept.
		for n := range st.minutes {
			if n < horizon {
				delete(st.minutes, n)
			}
		}
		st.first = horizon
	}
	for ; st.first < horizon; st.first++ {
		delete(st.minutes, st.first)
	}
	for n := range st.hours {
		if (n+1)*60 <= horizon {
			delete(st.hours, n)
		}
	}
}

// add merges a sealed minute's sketches into the hour's.
func (h *hour) add(a *Aggregator, sealed *Minute) {
	for _, c := range sealed.Channels {
		sk := h.chans[c.Channel]
		if sk == nil {
			sk = a.newSketch()
			h.chans[c.Channel] = sk
		}
		mustMerge(sk, c.sk)
	}
	mustMerge(h.total, sealed.total)
}

// compact estimates once so that the sketches' sparse state is compacted
// before they are shared with queries (Estimate mutates).
func compact(h *hour) {
	for _, sk := range h.chans {
		sk.Estimate()
	}
	h.total.Estimate()
}

func mustMerge(dst, src *sketch.Sketch) {
	if src == nil {
		return
	}
	if err := dst.Merge(src); err != nil {
		panic("BUG: sketches of one aggregator share key and precision: " + err.Error())
	}
}

// SketchBytes returns the approximate heap bytes held by the sealed minutes'
// and hourly rollups' sketches, for the memory metric. Sizes of sealed
// minutes and complete hours (immutable) are summed outside the store lock.
func (a *Aggregator) SketchBytes() int64 {
	st := &a.store
	var mins []*Minute
	var hours []*hour
	var n int64
	st.mu.Lock()
	for _, m := range st.minutes {
		mins = append(mins, m)
	}
	for _, h := range st.hours {
		if h.complete {
			hours = append(hours, h)
		} else {
			n += h.bytes() // still merged into by put, under this lock
		}
	}
	st.mu.Unlock()
	for _, m := range mins {
		n += int64(m.total.SizeBytes())
		for _, c := range m.Channels {
			n += int64(c.sk.SizeBytes())
		}
	}
	for _, h := range hours {
		n += h.bytes()
	}
	return n
}

func (h *hour) bytes() int64 {
	n := int64(h.total.SizeBytes())
	for _, sk := range h.chans {
		n += int64(sk.SizeBytes())
	}
	return n
}
