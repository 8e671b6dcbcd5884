package aggregator

import (
	"sync"

	"github.com/ratingsd/ratingsd/sketch"
)

// store keeps the minute tier: the sealed minutes for MinuteRetention, and
// per-hour rollups of their sketches (under the same day key) so that a
// reach over many hours of a day merges hours, not minutes; and the reach
// tier: per-hour sketches under the week key, for Retention. Sealed minutes,
// complete rollups and reach-tier hours are immutable: queries collect
// pointers to them under mu and merge after releasing it. Retention (expire)
// runs against the wall clock.
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

// hour is the union of the sketches of an hour's sealed minutes. It is built
// by put (under store.mu) and read by queries only once complete, after which
// it never changes.
type hour struct {
	chans    map[string]*sketch.Sketch
	total    *sketch.Sketch
	complete bool
}

// reachHour is an hour of the reach tier: the devices of each channel, and
// of all, over the hour, under the week's key. Immutable, and estimated
// once (compacted) before it is stored.
type reachHour struct {
	chans map[string]*sketch.Sketch
	total *sketch.Sketch
}

func (st *store) init(cfg Config) {
	st.retention = int64(cfg.MinuteRetention / 60e9)
	st.minutes = make(map[int64]*Minute)
	st.hours = make(map[int64]*hour)
	st.reach = make(map[int64]*reachHour)
	st.newest, st.newestHour = -1, -1
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
		// Under the minute's own key: an hour lies in one day.
		h = &hour{chans: make(map[string]*sketch.Sketch), total: a.newSketch(sealed.total.Key())}
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
		if mh-st.first > int64(len(st.minutes)) {
			// A jump of the clock: cheaper to walk what is kept.
			for n := range st.minutes {
				if n < mh {
					delete(st.minutes, n)
				}
			}
		} else {
			for n := st.first; n < mh; n++ {
				delete(st.minutes, n)
			}
		}
		st.first = mh
		for n := range st.hours {
			if (n+1)*60 <= mh {
				delete(st.hours, n)
			}
		}
	}
	if st.newestHour >= 0 && st.firstHour < hh {
		if hh-st.firstHour > int64(len(st.reach)) {
			for n := range st.reach {
				if n < hh {
					delete(st.reach, n)
				}
			}
		} else {
			for n := st.firstHour; n < hh; n++ {
				delete(st.reach, n)
			}
		}
		st.firstHour = hh
	}
}

// add merges a sealed minute's sketches into the hour's.
func (h *hour) add(a *Aggregator, sealed *Minute) {
	for _, c := range sealed.Channels {
		sk := h.chans[c.Channel]
		if sk == nil {
			sk = a.newSketch(sealed.total.Key())
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

// SketchBytes returns the approximate heap bytes held by the sealed minutes',
// the hourly rollups' and the reach tier's sketches, for the memory metric.
// Sizes of sealed minutes, complete rollups and reach hours (immutable) are
// summed outside the store lock.
func (a *Aggregator) SketchBytes() int64 {
	st := &a.store
	var mins []*Minute
	var hours []*hour
	var reach []*reachHour
	var n int64
	st.mu.Lock()
	for _, m := range st.minutes {
		mins = append(mins, m)
	}
	for _, h := range st.reach {
		reach = append(reach, h)
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
	for _, h := range reach {
		n += int64(h.total.SizeBytes())
		for _, sk := range h.chans {
			n += int64(sk.SizeBytes())
		}
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
