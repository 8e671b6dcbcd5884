package aggregator

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/sketch"
)

// Query errors. Each is wrapped with the values that caused it.
var (
	ErrUnknownChannel = errors.New("unknown channel")
	ErrUnknownRegion  = errors.New("unknown region")
	ErrBadRange       = errors.New("bad time range")
	ErrWindowTooLarge = errors.New("window too large")
	// ErrExpired: the window, or part of it, is past retention.
	ErrExpired = errors.New("data expired")
	ErrNoData  = errors.New("no data yet")
	ErrModel   = errors.New("not available in this audience model")
	// ErrCrossEpoch: a reach window spans two key epochs of the tier that
	// would count it (two days for minute resolution, two ISO weeks for
	// whole hours): no count of distinct devices spans two keys.
	ErrCrossEpoch = errors.New("reach window spans two key epochs")
)

func checkRange(from, to time.Time) error {
	if from.IsZero() || to.IsZero() {
		return fmt.Errorf("%w: from and to are both required", ErrBadRange)
	}
	if !from.Before(to) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrBadRange, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return nil
}

// window converts [from, to) to minute numbers [lo, hi), from rounded down
// and to rounded up to whole minutes, and checks it against the retention.
func (a *Aggregator) window(from, to time.Time) (lo, hi int64, err error) {
	if err := checkRange(from, to); err != nil {
		return 0, 0, err
	}
	lo = floorDiv(from.UnixMilli(), msPerMinute)
	hi = -floorDiv(-to.UnixMilli(), msPerMinute)
	if hi-lo > a.store.retention {
		return 0, 0, fmt.Errorf("%w: %s is longer than the %s minute retention", ErrWindowTooLarge, to.Sub(from), a.cfg.MinuteRetention)
	}
	return lo, hi, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// keptLocked clips [lo, hi) to the minutes the store keeps (none before
// horizon, the retention's first minute by the clock), saying why nothing
// is left when nothing is.
func (st *store) keptLocked(lo, hi, horizon int64) (int64, int64, error) {
	if st.newest < 0 {
		return 0, 0, ErrNoData
	}
	first := max(st.first, horizon)
	if hi <= first {
		return 0, 0, fmt.Errorf("%w: the window ends before %s, the oldest minute kept", ErrExpired, minuteTime(first).Format(time.RFC3339))
	}
	if lo > st.newest {
		return 0, 0, fmt.Errorf("%w: the window starts after %s, the newest sealed minute", ErrNoData, minuteTime(st.newest).Format(time.RFC3339))
	}
	return max(lo, first), min(hi, st.newest+1), nil
}

func minuteTime(m int64) time.Time { return time.UnixMilli(m * msPerMinute).UTC() }

// sealedIn returns the kept minutes [lo, hi) of the window [from, to), and
// for each the sealed Minute (nil for a minute skipped as idle).
func (a *Aggregator) sealedIn(from, to time.Time) (lo, hi int64, mins []*Minute, err error) {
	if lo, hi, err = a.window(from, to); err != nil {
		return 0, 0, nil, err
	}
	horizon, _ := a.horizons(a.cfg.Now())
	st := &a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if lo, hi, err = st.keptLocked(lo, hi, horizon); err != nil {
		return 0, 0, nil, err
	}
	mins = make([]*Minute, hi-lo)
	for m := lo; m < hi; m++ {
		mins[m-lo] = st.minutes[m]
	}
	return lo, hi, mins, nil
}

// Point is one minute of an audience curve.
type Point struct {
	Minute   time.Time
	Audience sketch.Estimate
	Share    float64
}

// Curve is a channel's minute audience over a window, with its peak and
// average minute audience (AMA).
type Curve struct {
	Channel  string
	From, To time.Time // the minutes actually covered: [From, To)
	Points   []Point
	Peak     Point
	Average  float64
}

// Audience returns channel's minute audience for the sealed minutes of
// [from, to). Sealed minutes carry their estimates: nothing is re-estimated.
func (a *Aggregator) Audience(channel string, from, to time.Time) (Curve, error) {
	if _, ok := a.channels.lookup(channel); !ok {
		return Curve{}, fmt.Errorf("%w: %q", ErrUnknownChannel, channel)
	}
	lo, hi, mins, err := a.sealedIn(from, to)
	if err != nil {
		return Curve{}, err
	}

	c := Curve{Channel: channel, From: minuteTime(lo), To: minuteTime(hi), Points: make([]Point, len(mins))}
	var sum float64
	for i, sealed := range mins {
		p := Point{Minute: minuteTime(lo + int64(i))}
		if sealed != nil {
			if cm, ok := sealed.Channel(channel); ok {
				p.Audience, p.Share = cm.Audience, cm.Share
			}
		}
		c.Points[i] = p
		sum += float64(p.Audience.Value)
		if i == 0 || p.Audience.Value > c.Peak.Audience.Value {
			c.Peak = p
		}
	}
	if len(mins) > 0 {
		c.Average = sum / float64(len(mins))
	}
	return c, nil
}

// Board is the "now" view: the latest sealed minute, and the open one.
type Board struct {
	Sealed *Minute // nil before the first sealed minute
	// Open is the live picture of the minute in progress: in the Tuning model
	// the devices on each channel right now; in the Events model the
	// distinct devices seen so far in the newest open minute. Both exact.
	OpenMinute time.Time
	Open       []ChannelMinute
}

// Now returns the board.
func (a *Aggregator) Now() Board {
	var b Board
	st := &a.store
	st.mu.Lock()
	if st.newest >= 0 {
		b.Sealed = st.minutes[st.newest]
	}
	st.mu.Unlock()
	b.OpenMinute, b.Open = a.open("")
	return b
}

// open returns the live audience per channel, restricted to region unless "".
func (a *Aggregator) open(region string) (time.Time, []ChannelMinute) {
	regionID, ok := a.regions.lookup(region)
	if !ok {
		return time.Time{}, nil
	}
	maxTS := a.maxTS.Load()
	if maxTS == 0 {
		return time.Time{}, nil
	}
	m := minuteOf(maxTS)
	var out []ChannelMinute
	if a.cfg.Model == Tuning {
		counts := make(map[uint32]uint64)
		var total uint64
		for _, s := range a.shards {
			s.mu.Lock()
			s.viewing.each(func(k uint64, n uint32) {
				if n != 0 && (region == "" || uint32(k) == regionID) {
					counts[uint32(k>>32)] += uint64(n)
					total += uint64(n)
				}
			})
			s.mu.Unlock()
		}
		chNames := a.channels.all() // after the shards: it names every id they hold
		for ch, n := range counts {
			cm := ChannelMinute{Channel: chNames[ch], Audience: exact(n)}
			cm.Share = float64(n) / float64(total)
			out = append(out, cm)
		}
	} else {
		// The shards count disjoint devices: their counts add up. A dense
		// counter is estimated on a clone, outside the shard lock.
		counts := make(map[uint32]uint64)
		var total uint64
		var dense []*sketch.Sketch
		var denseCh []uint32
		count := func(key *sketch.Key, ch uint32, c *counter) {
			if c.exact() {
				counts[ch] += uint64(c.set.len())
				total += uint64(c.set.len())
				return
			}
			dense = append(dense, c.denseSketch(key))
			denseCh = append(denseCh, ch)
		}
		for _, s := range a.shards {
			s.mu.Lock()
			for _, p := range s.open {
				if p.minute != m {
					continue
				}
				if region == "" {
					for ch := range p.chans {
						if p.chans[ch].credits > 0 {
							count(p.key, uint32(ch), &p.chans[ch])
						}
					}
					continue
				}
				p.cells.each(func(k uint64, n uint32) {
					if uint32(k) == regionID {
						counts[uint32(k>>32)] += uint64(n)
						total += uint64(n)
					}
				})
			}
			s.mu.Unlock()
		}
		for i, sk := range dense {
			n := sk.Estimate().Value
			counts[denseCh[i]] += n
			total += n
		}
		chNames := a.channels.all() // after the shards: it names every id they hold
		for ch, n := range counts {
			cm := ChannelMinute{Channel: chNames[ch], Audience: exact(n)}
			if total > 0 {
				cm.Share = float64(n) / float64(total)
			}
			out = append(out, cm)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Audience.Value != out[j].Audience.Value {
			return out[i].Audience.Value > out[j].Audience.Value
		}
		return out[i].Channel < out[j].Channel
	})
	return minuteTime(m), out
}

// FlowReport says where a channel's viewers went in a minute, and where its
// new viewers came from ("" is off: standby, switched off or not seen before).
type FlowReport struct {
	Channel  string
	Minute   time.Time
	Audience sketch.Estimate // the channel's audience in the minute before
	Out, In  []Flow
	OutTotal uint64
	InTotal  uint64
}

// Flow returns channel's flows in the sealed minute containing at.
func (a *Aggregator) Flow(channel string, at time.Time) (FlowReport, error) {
	if a.cfg.Model != Tuning {
		return FlowReport{}, fmt.Errorf("%w: flows need the tuning model (this service runs %s)", ErrModel, a.cfg.Model)
	}
	if _, ok := a.channels.lookup(channel); !ok {
		return FlowReport{}, fmt.Errorf("%w: %q", ErrUnknownChannel, channel)
	}
	m := floorDiv(at.UnixMilli(), msPerMinute)
	horizon, _ := a.horizons(a.cfg.Now())
	st := &a.store
	st.mu.Lock()
	_, _, err := st.keptLocked(m, m+1, horizon)
	sealed, before := st.minutes[m], st.minutes[m-1]
	st.mu.Unlock()
	if err != nil {
		return FlowReport{}, err
	}
	r := FlowReport{Channel: channel, Minute: minuteTime(m)}
	if before != nil {
		if cm, ok := before.Channel(channel); ok {
			r.Audience = cm.Audience
		}
	}
	if sealed == nil {
		return r, nil
	}
	for _, f := range sealed.Flows() {
		switch {
		case f.From == channel:
			r.Out = append(r.Out, f)
			r.OutTotal += f.Devices
		case f.To == channel:
			r.In = append(r.In, f)
			r.InTotal += f.Devices
		}
	}
	return r, nil
}

// ChannelCount is a channel's viewers in a region.
type ChannelCount struct {
	Channel string
	Viewers sketch.Estimate
}

// CapacityMinute is a region's load in one minute.
type CapacityMinute struct {
	Minute     time.Time
	Viewers    uint64 // sum of the channels' viewers
	Channels   int    // distinct channels watched (= multicast groups needed)
	Zaps       uint64 // channel changes (tune events)
	PerChannel []ChannelCount
}

// Capacity is the network capacity planner's view of a region.
type Capacity struct {
	Region     string
	OpenMinute time.Time
	Now        []ChannelCount // viewers per channel right now
	Minutes    []CapacityMinute
	Peak       CapacityMinute // the minute with the most viewers (without PerChannel)
}

// Capacity returns region's viewers per channel now and per sealed minute of
// [from, to), distinct channels watched and channel changes per minute.
func (a *Aggregator) Capacity(region string, from, to time.Time) (Capacity, error) {
	if _, ok := a.regions.lookup(region); !ok {
		return Capacity{}, fmt.Errorf("%w: %q", ErrUnknownRegion, region)
	}
	lo, _, mins, err := a.sealedIn(from, to)
	if err != nil {
		return Capacity{}, err
	}

	c := Capacity{Region: region}
	om, open := a.open(region)
	c.OpenMinute = om
	for _, cm := range open {
		c.Now = append(c.Now, ChannelCount{Channel: cm.Channel, Viewers: cm.Audience})
	}
	for i, sealed := range mins {
		cm := CapacityMinute{Minute: minuteTime(lo + int64(i))}
		if sealed != nil {
			sealed.cells.each(func(r, ch string, n uint64) {
				if r != region || n == 0 {
					return
				}
				cm.PerChannel = append(cm.PerChannel, ChannelCount{Channel: ch, Viewers: exact(n)})
				cm.Viewers += n
				cm.Channels++
			})
			for _, z := range sealed.Zaps {
				if z.Region == region {
					cm.Zaps = z.Count
				}
			}
		}
		c.Minutes = append(c.Minutes, cm)
		if cm.Viewers > c.Peak.Viewers || i == 0 {
			c.Peak = cm
			c.Peak.PerChannel = nil
		}
	}
	return c, nil
}

// ChannelInfo is a channel seen by the service and its audience in the
// latest sealed minute.
type ChannelInfo struct {
	Channel  string
	Audience sketch.Estimate
	Share    float64
}

// Channels returns every channel seen, by descending latest audience.
func (a *Aggregator) Channels() []ChannelInfo {
	b := a.Now()
	names := a.channels.all()[1:]
	out := make([]ChannelInfo, 0, len(names))
	for _, n := range names {
		ci := ChannelInfo{Channel: n}
		if b.Sealed != nil {
			if cm, ok := b.Sealed.Channel(n); ok {
				ci.Audience, ci.Share = cm.Audience, cm.Share
			}
		}
		out = append(out, ci)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Audience.Value != out[j].Audience.Value {
			return out[i].Audience.Value > out[j].Audience.Value
		}
		return out[i].Channel < out[j].Channel
	})
	return out
}

// Regions returns every region seen, sorted.
func (a *Aggregator) Regions() []string {
	out := append([]string(nil), a.regions.all()[1:]...)
	sort.Strings(out)
	return out
}

// Minutes returns the sealed minutes of [from, to) that are kept, in order.
func (a *Aggregator) Minutes(from, to time.Time) []*Minute {
	lo := floorDiv(from.UnixMilli(), msPerMinute)
	hi := -floorDiv(-to.UnixMilli(), msPerMinute)
	horizon, _ := a.horizons(a.cfg.Now())
	st := &a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*Minute
	if st.newest < 0 {
		return nil
	}
	for m := max(lo, st.first, horizon); m < min(hi, st.newest+1); m++ {
		if sealed := st.minutes[m]; sealed != nil {
			out = append(out, sealed)
		}
	}
	return out
}

// Latest returns the newest sealed minute, or nil.
func (a *Aggregator) Latest() *Minute {
	st := &a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.newest < 0 {
		return nil
	}
	return st.minutes[st.newest]
}

// Channel/region counts for metrics.

// ChannelCount returns the number of distinct channels seen.
func (a *Aggregator) ChannelCount() int { return a.channels.len() }

// TuningTableSize returns the number of devices in the tuning table.
func (a *Aggregator) TuningTableSize() int {
	n := 0
	for _, s := range a.shards {
		s.mu.Lock()
		n += s.index.n
		s.mu.Unlock()
	}
	return n
}

// OpenMinutes returns the number of open (unsealed) minute partials across shards.
func (a *Aggregator) OpenMinutes() int {
	seen := make(map[int64]bool)
	for _, s := range a.shards {
		s.mu.Lock()
		for _, p := range s.open {
			seen[p.minute] = true
		}
		s.mu.Unlock()
	}
	return len(seen)
}
