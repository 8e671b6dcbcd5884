package aggregator

import (
	"fmt"
	"slices"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

// Reach is an estimate of the distinct devices over a window, and which tier
// of sketches, under which key epoch, counted them (docs/semantics.md, Reach
// tiers).
type Reach struct {
	sketch.Estimate
	// Tier is keys.Minute (minute resolution, within one day) or
	// keys.Reach (whole hours within one ISO week).
	Tier keys.Tier
	// Epoch is the label of the key epoch: a day ("2025-03-14") or an ISO
	// week ("2025-W11").
	Epoch string
	// From and To bound what the tier holds of the window: minutes (or
	// hours) before the first one kept, or after the newest one sealed,
	// are not in it.
	From, To time.Time
}

// Reach estimates the distinct devices on any of channels (all channels when
// empty) during [from, to), from rounded down and to up to whole minutes. A
// window within one day whose minutes are all within the minute retention is
// counted from the minute tier (complete hourly rollups for the whole hours
// in it, minutes for the rest); a window of whole hours within one ISO week
// whose hours are within the retention, from the reach tier. Any other
// window is an error: ErrCrossEpoch if it spans two key epochs of the tier
// it would need (devices cannot be counted across two keys), ErrExpired if
// part of it is past retention. Past retention is never counted as zero.
func (a *Aggregator) Reach(channels []string, from, to time.Time) (Reach, error) {
	for _, ch := range channels {
		if _, ok := a.channels.lookup(ch); !ok {
			return Reach{}, fmt.Errorf("%w: %q", ErrUnknownChannel, ch)
		}
	}
	if err := checkRange(from, to); err != nil {
		return Reach{}, err
	}
	lo := floorDiv(from.UnixMilli(), msPerMinute)
	hi := -floorDiv(-to.UnixMilli(), msPerMinute)
	mh, hh := a.horizons(a.cfg.Now())
	day := a.cal.EpochOfMinute(keys.Minute, lo)
	sameDay := day == a.cal.EpochOfMinute(keys.Minute, hi-1)
	if sameDay && lo >= mh {
		return a.reachMinutes(channels, lo, hi, mh, day)
	}
	whole := lo%60 == 0 && hi%60 == 0
	week := a.cal.EpochOfMinute(keys.Reach, lo)
	sameWeek := week == a.cal.EpochOfMinute(keys.Reach, hi-1)
	// Past retention is said first: no other window would bring it back.
	switch {
	case whole && sameWeek && lo/60 >= hh:
		return a.reachHours(channels, lo/60, hi/60, hh, week)
	case whole && lo/60 < hh:
		return Reach{}, fmt.Errorf("%w: [%s, %s) starts before %s: the reach tier keeps whole hours for the %s retention (and minutes are kept %s)",
			ErrExpired, rfc(from), rfc(to), rfc(minuteTime(hh*60)), a.cfg.Retention, a.cfg.MinuteRetention)
	case whole || lo >= mh:
		return Reach{}, a.crossEpoch(from, to, lo, hi, whole)
	}
	edge := "starts"
	if hi <= mh {
		edge = "ends"
	}
	return Reach{}, fmt.Errorf("%w: the window %s before %s, the oldest minute kept: minutes are kept for the %s minute retention; the reach tier counts whole hours, such as [%s, %s), for %s",
		ErrExpired, edge, rfc(minuteTime(mh)), a.cfg.MinuteRetention, rfc(minuteTime(lo/60*60)), rfc(minuteTime(-floorDiv(-hi, 60)*60)), a.cfg.Retention)
}

// crossEpoch explains why [from, to), minutes [lo, hi), has no tier: whole
// hours across two ISO weeks, or another window across two days.
func (a *Aggregator) crossEpoch(from, to time.Time, lo, hi int64, whole bool) error {
	tier := keys.Minute
	if whole {
		tier = keys.Reach
	}
	_, end := a.cal.Span(tier, a.cal.EpochOfMinute(tier, lo))
	split := fmt.Sprintf("ask for [%s, %s) and [%s, %s) separately", rfc(from), rfc(end), rfc(end), rfc(to))
	if whole {
		return fmt.Errorf("%w: [%s, %s) spans the ISO week boundary at %s, where the reach tier's key changes: it counts distinct devices at hour resolution within one week, and no count spans two keys; %s",
			ErrCrossEpoch, rfc(from), rfc(to), rfc(end), split)
	}
	hlo, hhi := lo/60*60, -floorDiv(-hi, 60)*60
	ask := split
	if a.cal.EpochOfMinute(keys.Reach, hlo) == a.cal.EpochOfMinute(keys.Reach, hhi-1) {
		ask = fmt.Sprintf("ask within one day, or for whole hours, such as [%s, %s), which the reach tier counts at hour resolution within one ISO week", rfc(minuteTime(hlo)), rfc(minuteTime(hhi)))
	}
	return fmt.Errorf("%w: [%s, %s) spans the day boundary at %s, where the minute tier's key changes: it counts distinct devices at minute resolution within one day; %s",
		ErrCrossEpoch, rfc(from), rfc(to), rfc(end), ask)
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// reachMinutes counts minutes [lo, hi) of one day from the minute tier: the
// complete hourly rollups of the whole hours in it, the minutes of the rest.
func (a *Aggregator) reachMinutes(channels []string, lo, hi, horizon, day int64) (Reach, error) {
	var parts []packed
	var key *sketch.Key
	collect := func(k *sketch.Key, total packed, chans func(string) packed) {
		key = k
		if len(channels) == 0 {
			parts = append(parts, total)
			return
		}
		for _, ch := range channels {
			if p := chans(ch); p != nil {
				parts = append(parts, p)
			}
		}
	}
	st := &a.store
	st.mu.Lock()
	lo, hi, err := st.keptLocked(lo, hi, horizon)
	if err != nil {
		st.mu.Unlock()
		return Reach{}, err
	}
	for m := lo; m < hi; {
		if m%60 == 0 && m+60 <= hi {
			if h := st.hours[hourOf(m)]; h != nil && h.complete {
				collect(h.key, h.total, func(ch string) packed { return h.chans[ch] })
				m += 60
				continue
			}
		}
		if sealed := st.minutes[m]; sealed != nil {
			collect(sealed.key, sealed.packedTotal, func(ch string) packed {
				if cm, ok := sealed.Channel(ch); ok {
					return cm.packed
				}
				return nil
			})
		}
		m++
	}
	st.mu.Unlock()
	e, err := a.unionEstimate(key, parts)
	if err != nil {
		return Reach{}, fmt.Errorf("reach of the minute tier on %s: %w", keys.Label(keys.Minute, day), err)
	}
	return Reach{Estimate: e, Tier: keys.Minute, Epoch: keys.Label(keys.Minute, day),
		From: minuteTime(lo), To: minuteTime(hi)}, nil
}

// reachHours counts hours [lo, hi) of one ISO week from the reach tier.
func (a *Aggregator) reachHours(channels []string, lo, hi, horizon, week int64) (Reach, error) {
	var parts []packed
	var key *sketch.Key
	st := &a.store
	st.mu.Lock()
	lo, hi, err := st.keptHoursLocked(lo, hi, horizon)
	if err != nil {
		st.mu.Unlock()
		return Reach{}, err
	}
	for n := lo; n < hi; n++ {
		h := st.reach[n]
		switch {
		case h == nil:
		case len(channels) == 0:
			key = h.key
			parts = append(parts, h.total)
		default:
			key = h.key
			for _, ch := range channels {
				if p := h.chans[ch]; p != nil {
					parts = append(parts, p)
				}
			}
		}
	}
	st.mu.Unlock()
	e, err := a.unionEstimate(key, parts)
	if err != nil {
		return Reach{}, fmt.Errorf("reach of the reach tier in %s: %w", keys.Label(keys.Reach, week), err)
	}
	return Reach{Estimate: e, Tier: keys.Reach, Epoch: keys.Label(keys.Reach, week),
		From: minuteTime(lo * 60), To: minuteTime(hi * 60)}, nil
}

// unionEstimate decodes and merges parts, packed sketches of one key epoch
// (under key), outside any lock: they are immutable (sealed minutes,
// complete rollups, reach hours). A part that does not decode (a damaged
// restored sketch) is an error wrapping ErrCheckpointCorrupt, never a
// panic.
func (a *Aggregator) unionEstimate(key *sketch.Key, parts []packed) (sketch.Estimate, error) {
	if len(parts) == 0 {
		return sketch.Estimate{}, nil
	}
	u := a.newSketch(key)
	for _, p := range parts {
		sk, err := p.unpack(key)
		if err == nil && sk.Precision() != a.cfg.Precision {
			err = fmt.Errorf("stored sketch of precision %d, want %d", sk.Precision(), a.cfg.Precision)
		}
		if err == nil {
			err = u.Merge(sk)
		}
		if err != nil {
			// Only a restored sketch can be damaged: its header was
			// checked at restore, its payload is checked here.
			return sketch.Estimate{}, fmt.Errorf("a restored sketch is damaged: %w: %w", ErrCheckpointCorrupt, err)
		}
	}
	return u.Estimate(), nil
}

// keptHoursLocked clips the hours [lo, hi) to those the reach tier holds,
// saying why nothing is left when nothing is.
// The newest complete hour is the last whose minutes are all sealed (an
// hour without data has no reach-tier hour stored: it is empty).
func (st *store) keptHoursLocked(lo, hi, horizon int64) (int64, int64, error) {
	newest := st.newestHour
	if st.newest >= 0 {
		newest = max(newest, hourOf(st.newest+1)-1)
	}
	if st.newestHour < 0 || newest < 0 {
		return 0, 0, fmt.Errorf("%w: no hour of the reach tier is complete yet", ErrNoData)
	}
	first := max(st.firstHour, horizon)
	if hi <= first {
		return 0, 0, fmt.Errorf("%w: the window ends before %s, the oldest hour of the reach tier kept", ErrExpired, rfc(minuteTime(first*60)))
	}
	if lo > newest {
		return 0, 0, fmt.Errorf("%w: the window starts after %s, the newest complete hour of the reach tier", ErrNoData, rfc(minuteTime(newest*60)))
	}
	return max(lo, first), min(hi, newest+1), nil
}

// sealHours merges the shards' partials of each hour in hps into a
// reach-tier hour, whose total is the union of its channels, and stores it
// packed.
func (a *Aggregator) sealHours(hps []*hourPartial) {
	if len(hps) == 0 {
		return
	}
	slices.SortStableFunc(hps, func(x, y *hourPartial) int { return int(x.hour - y.hour) })
	chNames := a.channels.all()
	var cs []*counter
	for len(hps) > 0 {
		n := 1
		for n < len(hps) && hps[n].hour == hps[0].hour {
			n++
		}
		group := hps[:n]
		hps = hps[n:]
		key := group[0].key
		total := a.newSketch(key)
		h := &reachHour{hourSketches: hourSketches{key: key, chans: make(map[string]packed)}}
		nch := 0
		for _, hp := range group {
			nch = max(nch, len(hp.chans))
		}
		for ch := 1; ch < nch; ch++ {
			cs = cs[:0]
			for _, hp := range group {
				if ch < len(hp.chans) && hp.chans[ch].credits > 0 {
					cs = append(cs, &hp.chans[ch])
				}
			}
			if len(cs) > 0 {
				sk := a.hourUnion(key, cs)
				h.chans[chNames[ch]] = pack(sk)
				mustMerge(total, sk)
			}
		}
		h.total = pack(total)
		a.store.putReach(group[0].hour, h)
	}
}

// hourUnion is the compacted sketch of the union of counters under key.
func (a *Aggregator) hourUnion(key *sketch.Key, cs []*counter) *sketch.Sketch {
	allExact := true
	for _, c := range cs {
		allExact = allExact && c.exact()
	}
	sk := a.union(key, cs, allExact)
	sk.Estimate()
	return sk
}
