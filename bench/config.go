package bench

import (
	"errors"
	"fmt"
	"time"
)

// DefaultStart is the Start of a Config that leaves it zero: a Friday at
// 19:30 UTC, half an hour before the prime-time peak.
var DefaultStart = time.Date(2025, 3, 14, 19, 30, 0, 0, time.UTC)

// Limits of a Config.
const (
	MaxDevices  = 99_999_999 // device names have 8 digits
	MaxChannels = 9_999
	MaxRegions  = 9_999
	MaxDuration = 30 * 24 * time.Hour // event times are kept as uint32 ms offsets
	MaxJitter   = 30 * time.Second    // well inside the aggregator's default lateness (60 s)
)

// Config describes a simulated population of set-top boxes and what to do
// with its events. The zero Config is valid: every zero field takes the
// default named in its comment. docs/workload.md says where each value comes
// from and which are assumptions.
type Config struct {
	// Seed selects the population and everything it does. The same Seed and
	// parameters give byte-identical events and truth.
	Seed uint64
	// Devices is the number of boxes, named "stb-00000000", "stb-00000001", ….
	// If 0, 200 000. At most MaxDevices. The simulation keeps 20 bytes a
	// box (28 with Heartbeat, 24 with Jitter), the truth 24 more plus its
	// reach bitsets (ReachSlots).
	Devices int
	// Regions is the number of access nodes, named "r-01", "r-02", …; each
	// box belongs to one, uniformly at random. If 0, 40.
	Regions int
	// Channels is the size of the line-up, named "ch-001", "ch-002", … in
	// line-up order, which is also the order of popularity. If 0, 300.
	Channels int
	// Start is the event time of the first events: the state report, a tune
	// from every box that is on. It is truncated to the millisecond. If zero,
	// DefaultStart.
	Start time.Time
	// Duration is how much event time to simulate, from Start. If 0, 1h. At
	// most MaxDuration.
	Duration time.Duration
	// Zone is the population's local time, which the daily viewing curve,
	// programme boundaries and prime time follow (its offset at Start is used
	// for the whole run). If nil, UTC.
	Zone *time.Location

	// MinDwell and Inactivity are the aggregator's -min-dwell and
	// -inactivity; only the truth uses them. If 0, 5s and 4h.
	MinDwell   time.Duration
	Inactivity time.Duration
	// Heartbeat, if positive, makes every box in a viewing session report its
	// channel this long after its last event (the `events` model's feed;
	// boxes that go silent stop too). 0 (the default) sends none; 60s is usual.
	Heartbeat time.Duration

	// Behaviour is the viewing model. If nil, DefaultBehaviour().
	Behaviour *Behaviour

	// Duplicates is the fraction of events delivered twice in a row (NATS
	// redelivery), 0 to 0.5. Default 0.
	Duplicates float64
	// Jitter, if positive, makes each event's ts up to Jitter earlier than its
	// true time (late delivery), keeping every box's own events in order: the
	// stream is then no longer sorted by ts across boxes. At most MaxJitter.
	// Default 0.
	Jitter time.Duration

	// Pace, if positive, paces event time against the wall clock: 1 runs it
	// at wall-clock speed (a live demo with Start = now), 60 a minute per
	// second. 0 (the default) generates as fast as possible.
	Pace float64
	// BatchEvents bounds the events of one Generator.Next. If 0, 256.
	BatchEvents int

	// Truth makes the Generator compute the exact ground truth of its events
	// (Generator.Truth). Off by default: it costs memory and time.
	Truth bool
	// ReachSlots are the window lengths for which the truth computes reach:
	// for each length L, every window [k·L, (k+1)·L) of Unix time that meets
	// the run, clipped to it; the whole run is always one window. If nil,
	// 15m and 1h; an empty non-nil slice asks for the whole run only. Each
	// must be a positive multiple of a minute. Reach costs
	// 2 × (len(ReachSlots)+1) × (Channels+1) × Devices bits at most.
	ReachSlots []time.Duration
	// ReachSets are channel sets, besides each single channel and all
	// channels, whose reach the truth computes. Default none.
	ReachSets [][]string
}

// Behaviour is the viewing model of a Config. Shares are probabilities in
// [0, 1]. DefaultBehaviour gives the values docs/workload.md explains.
type Behaviour struct {
	// DormantShare of boxes stays off for the whole run.
	DormantShare float64
	// OnShare[h] is the share of the other boxes that are in a viewing
	// session at hour h:00 local time, interpolated linearly in between.
	OnShare [24]float64
	// SessionMean is the mean length of a viewing session that starts
	// outside PrimeHours, SessionMeanPrime of one inside them.
	SessionMean, SessionMeanPrime time.Duration
	// PrimeFrom and PrimeTo bound prime time, in local hours [PrimeFrom, PrimeTo).
	PrimeFrom, PrimeTo int
	// ShortSessionShare of sessions is drawn from a component four times
	// shorter (the session length is a mixture of two exponentials).
	ShortSessionShare float64
	// StandbyShare of sessions ends with a standby event; the others just go
	// silent, which only the inactivity timeout ends.
	StandbyShare float64
	// ResumeShare of sessions starts on the box's last channel.
	ResumeShare float64

	// Zipf is the exponent of channel popularity: channel k has weight k^-Zipf.
	Zipf float64
	// PrimeBoost multiplies the weight of the top PrimeBoostChannels channels
	// in prime time.
	PrimeBoost         float64
	PrimeBoostChannels int

	// StartBurstShare of sessions begins with a zapping burst.
	StartBurstShare float64
	// BurstMean is the mean number of zaps of a burst (geometric, at least 1).
	BurstMean float64
	// ZapDwellMean is the mean time on a channel while zapping, above a floor
	// of 1 s (exponential).
	ZapDwellMean time.Duration
	// LinearShare of zaps goes to the next or previous channel of the
	// line-up; UpShare of those go up.
	LinearShare, UpShare float64
	// Viewing stints (time on a channel once settled) are a mixture of two
	// exponentials: WatchShortShare with mean WatchShortMean, the rest with
	// mean WatchLongMean.
	WatchShortShare               float64
	WatchShortMean, WatchLongMean time.Duration
	// SwitchBurstShare of the channel changes that end a stint are zapping
	// bursts; the others are one direct jump (number keys, guide).
	SwitchBurstShare float64

	// BoundaryLeave is the chance that a viewer leaves at a programme
	// boundary (:00 and :30 local time).
	BoundaryLeave float64
	// CommercialShare of channels carries ad breaks, every BreakEvery with
	// a random phase per channel, each lasting BreakLength (varying ±40%).
	CommercialShare float64
	BreakEvery      time.Duration
	BreakLength     time.Duration
	// BreakLeave is the chance that a viewer zaps away when a break starts;
	// BreakReturn that such a viewer comes back when it ends.
	BreakLeave, BreakReturn float64
	// ReactionMean is the mean delay between a boundary or break and the
	// viewer's first zap (exponential, at least 1 s).
	ReactionMean time.Duration
}

// DefaultBehaviour returns the default viewing model.
func DefaultBehaviour() Behaviour {
	return Behaviour{
		DormantShare: 0.08,
		OnShare: [24]float64{
			0.18, 0.10, 0.06, 0.04, 0.03, 0.04, 0.07, 0.11, 0.12, 0.12, 0.13, 0.14,
			0.17, 0.17, 0.16, 0.17, 0.20, 0.26, 0.34, 0.44, 0.55, 0.57, 0.46, 0.31,
		},
		SessionMean:       45 * time.Minute,
		SessionMeanPrime:  100 * time.Minute,
		PrimeFrom:         19,
		PrimeTo:           23,
		ShortSessionShare: 0.2,
		StandbyShare:      0.8,
		ResumeShare:       0.6,

		Zipf:               1.2,
		PrimeBoost:         2.5,
		PrimeBoostChannels: 3,

		StartBurstShare:  0.5,
		BurstMean:        3,
		ZapDwellMean:     4 * time.Second,
		LinearShare:      0.6,
		UpShare:          0.6,
		WatchShortShare:  0.4,
		WatchShortMean:   3 * time.Minute,
		WatchLongMean:    25 * time.Minute,
		SwitchBurstShare: 0.5,

		BoundaryLeave:   0.2,
		CommercialShare: 0.8,
		BreakEvery:      15 * time.Minute,
		BreakLength:     3 * time.Minute,
		BreakLeave:      0.3,
		BreakReturn:     0.5,
		ReactionMean:    15 * time.Second,
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Devices == 0 {
		c.Devices = 200_000
	}
	if c.Regions == 0 {
		c.Regions = 40
	}
	if c.Channels == 0 {
		c.Channels = 300
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = time.UnixMilli(c.Start.UnixMilli()).UTC()
	if c.Duration == 0 {
		c.Duration = time.Hour
	}
	if c.Zone == nil {
		c.Zone = time.UTC
	}
	if c.MinDwell == 0 {
		c.MinDwell = 5 * time.Second
	}
	if c.Inactivity == 0 {
		c.Inactivity = 4 * time.Hour
	}
	if c.Behaviour == nil {
		b := DefaultBehaviour()
		c.Behaviour = &b
	}
	if c.BatchEvents == 0 {
		c.BatchEvents = 256
	}
	if c.ReachSlots == nil {
		c.ReachSlots = []time.Duration{15 * time.Minute, time.Hour}
	}
	return c
}

// validate reports the first field of c (with defaults applied) that is out
// of range, naming it as tvload's flag does (MinDwell is min-dwell) with its
// value.
func (c *Config) validate() error {
	switch {
	case c.Devices < 0 || c.Devices > MaxDevices:
		return fmt.Errorf("devices %d is outside 1..%d", c.Devices, MaxDevices)
	case c.Regions < 0 || c.Regions > MaxRegions:
		return fmt.Errorf("regions %d is outside 1..%d", c.Regions, MaxRegions)
	case c.Channels < 0 || c.Channels > MaxChannels:
		return fmt.Errorf("channels %d is outside 1..%d", c.Channels, MaxChannels)
	case c.Start.UnixMilli() <= 0:
		return fmt.Errorf("start %s is not after 1970-01-01", c.Start.Format(time.RFC3339))
	case c.Duration < time.Second || c.Duration > MaxDuration:
		return fmt.Errorf("duration %s is outside 1s..%s", c.Duration, MaxDuration)
	case c.MinDwell < 0 || c.MinDwell > time.Minute:
		return fmt.Errorf("min-dwell %s is outside 0..1m (it must not exceed the aggregator's lateness)", c.MinDwell)
	case c.Inactivity < time.Minute || c.Inactivity > 7*24*time.Hour:
		return fmt.Errorf("inactivity %s is outside 1m..168h", c.Inactivity)
	case c.Inactivity < c.MinDwell:
		return fmt.Errorf("inactivity %s is shorter than min-dwell %s", c.Inactivity, c.MinDwell)
	case c.Heartbeat < 0 || (c.Heartbeat > 0 && c.Heartbeat < time.Second):
		return fmt.Errorf("heartbeat %s is neither 0 (off) nor at least 1s", c.Heartbeat)
	case !(c.Duplicates >= 0 && c.Duplicates <= 0.5):
		return fmt.Errorf("duplicates %g is outside 0..0.5", c.Duplicates)
	case c.Jitter < 0 || c.Jitter > MaxJitter:
		return fmt.Errorf("jitter %s is outside 0..%s", c.Jitter, MaxJitter)
	case !(c.Pace >= 0 && c.Pace <= 1e6):
		return fmt.Errorf("pace %g is outside 0..1e6", c.Pace)
	case c.BatchEvents < 2 || c.BatchEvents > 1<<20:
		return fmt.Errorf("batch-events %d is outside 2..%d", c.BatchEvents, 1<<20)
	}
	if c.Truth && c.Channels*c.Regions > 1<<22 {
		return fmt.Errorf("channels × regions is %d, more than the truth's %d region cells a minute", c.Channels*c.Regions, 1<<22)
	}
	for _, l := range c.ReachSlots {
		if l < time.Minute || l%time.Minute != 0 || l > MaxDuration {
			return fmt.Errorf("reach-slots: %s is not a whole number of minutes in 1m..%s", l, MaxDuration)
		}
	}
	for i, set := range c.ReachSets {
		if len(set) == 0 {
			return fmt.Errorf("reach-set %d is empty", i)
		}
		for _, name := range set {
			if _, ok := channelIndex(name, c.Channels); !ok {
				return fmt.Errorf("reach-set %d: %q is not a channel of the line-up ch-%0*d..ch-%0*d",
					i, name, channelDigits(c.Channels), 1, channelDigits(c.Channels), c.Channels)
			}
		}
	}
	if err := c.Behaviour.validate(); err != nil {
		return err
	}
	return nil
}

var errShare = errors.New("is not a share in [0, 1]")

func (b *Behaviour) validate() error {
	shares := []struct {
		name string
		v    float64
	}{
		{"dormant-share", b.DormantShare}, {"short-session-share", b.ShortSessionShare},
		{"standby-share", b.StandbyShare}, {"resume-share", b.ResumeShare},
		{"start-burst-share", b.StartBurstShare}, {"linear-share", b.LinearShare},
		{"up-share", b.UpShare}, {"watch-short-share", b.WatchShortShare},
		{"switch-burst-share", b.SwitchBurstShare}, {"boundary-leave", b.BoundaryLeave},
		{"commercial-share", b.CommercialShare}, {"break-leave", b.BreakLeave},
		{"break-return", b.BreakReturn},
	}
	for _, s := range shares {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("%s %g %w", s.name, s.v, errShare)
		}
	}
	for h, p := range b.OnShare {
		if !(p >= 0.001 && p <= 0.95) {
			return fmt.Errorf("on-share at %02d:00 is %g, outside 0.001..0.95", h, p)
		}
	}
	durations := []struct {
		name   string
		v, min time.Duration
	}{
		{"session-mean", b.SessionMean, time.Minute}, {"session-mean-prime", b.SessionMeanPrime, time.Minute},
		{"zap-dwell-mean", b.ZapDwellMean, 0}, {"watch-short-mean", b.WatchShortMean, time.Second},
		{"watch-long-mean", b.WatchLongMean, time.Second}, {"break-every", b.BreakEvery, time.Minute},
		{"break-length", b.BreakLength, 0}, {"reaction-mean", b.ReactionMean, 0},
	}
	for _, d := range durations {
		if d.v < d.min || d.v > 24*time.Hour {
			return fmt.Errorf("%s %s is outside %s..24h", d.name, d.v, d.min)
		}
	}
	switch {
	case b.BreakLength >= b.BreakEvery*5/7:
		return fmt.Errorf("break-length %s leaves no programme between breaks every %s", b.BreakLength, b.BreakEvery)
	case b.PrimeFrom < 0 || b.PrimeTo > 24 || b.PrimeFrom > b.PrimeTo:
		return fmt.Errorf("prime-from %d and prime-to %d are not hours 0..24 in order", b.PrimeFrom, b.PrimeTo)
	case !(b.Zipf >= 0 && b.Zipf <= 4):
		return fmt.Errorf("zipf %g is outside 0..4", b.Zipf)
	case !(b.PrimeBoost >= 0.1 && b.PrimeBoost <= 100):
		return fmt.Errorf("prime-boost %g is outside 0.1..100", b.PrimeBoost)
	case b.PrimeBoostChannels < 0:
		return fmt.Errorf("prime-boost-channels %d is negative", b.PrimeBoostChannels)
	case !(b.BurstMean >= 1 && b.BurstMean <= 50):
		return fmt.Errorf("burst-mean %g is outside 1..50", b.BurstMean)
	}
	return nil
}
