// Package aggregator turns channel-change events into per-channel, per-minute
// audiences without keeping a viewing history.
//
// Device identifiers are hashed with a secret pseudonym key before they touch
// any state; the pseudonym routes a device to its shard and keys its tuning
// table entry, and never enters a sketch. In the tuning model (the industry definition, see docs/semantics.md) an in-memory
// tuning table holds only each pseudonymous device's current channel and since
// when; every device is credited, at each minute, to the one channel it watched
// longest. In the events model each tune or heartbeat event puts its device
// into the sketch of its (channel, minute), with no per-device state at all.
// Per (channel, minute) the aggregator keeps a HyperLogLog sketch of device
// hashes (and, in the tuning model, the exact credited count), plus a sketch
// of all channels per minute, counts per (channel, region, minute), flow
// counters and channel-change counters.
//
// Sketches come in two tiers, each hashed under its own key epochs
// (package keys): minute sketches, and their hourly rollups, under the key of
// their day, kept MinuteRetention; and per-hour reach sketches under the key
// of their ISO week, kept Retention. A device's hash in a tier is its
// pseudonym keyed again under the epoch's key, so sketches of two epochs
// cannot be linked to each other. Every device credited (or, in the events
// model, counted) in a minute also goes into its shard's partial of the
// hour; when the hour's last minute is sealed the hour's partials are merged
// into one immutable reach-tier hour. Retention runs against the wall clock
// at every seal and Tick; once the last data of an epoch is gone, its key is
// forgotten (crypto-shredding), and checkpoint sections sealed under it can
// no longer be read. Reach picks the tier that can answer a window
// (docs/semantics.md, Reach tiers).
//
// State is sharded by device hash so that several writers ingest in parallel;
// each shard has its own lock and its own partial state of every open minute.
// When the watermark (the highest event time minus Lateness, advanced by the
// wall clock while the stream is idle) passes the end of a minute, the minute
// is sealed: the shards' partials are merged outside their locks, estimated
// once, and the sealed Minute is immutable from then on, so queries never
// re-estimate it. An Aggregator is safe for concurrent use; a Writer is not
// (use one per goroutine).
package aggregator

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

// Model selects how audiences are computed (docs/semantics.md).
type Model uint8

const (
	// Tuning credits every device, at each minute, to the one channel it
	// watched longest (after MinDwell). The default.
	Tuning Model = iota
	// Events counts a device in every (channel, minute) it sent a tune or
	// heartbeat for; stateless.
	Events
)

func (m Model) String() string {
	switch m {
	case Tuning:
		return "tuning"
	case Events:
		return "events"
	}
	return fmt.Sprintf("model(%d)", uint8(m))
}

// ParseModel parses "tuning" or "events".
func ParseModel(s string) (Model, error) {
	switch s {
	case "tuning":
		return Tuning, nil
	case "events":
		return Events, nil
	}
	return 0, fmt.Errorf("model %q is not tuning or events", s)
}

// Config configures an Aggregator. The zero value of each field means its
// documented default; DefaultConfig returns them filled in.
type Config struct {
	Model Model
	// Precision of the HyperLogLog sketches, 4..18. Default 14 (≈0.81% standard error).
	Precision uint8
	// Lateness is how far behind the highest event time a minute stays open.
	// Default 60s. Must be at least MinDwell.
	Lateness time.Duration
	// MaxClockSkew: events further ahead of the clock are rejected as future. Default 5m.
	MaxClockSkew time.Duration
	// MinDwell: shorter viewing segments (zapping) are credited nowhere. Default 5s.
	MinDwell time.Duration
	// Inactivity ends a device's segment when it sends no event for this long. Default 4h.
	Inactivity time.Duration
	// MaxChannels bounds the number of distinct channels (and, separately,
	// regions); events for more are rejected as channel_limit. Default 5000.
	MaxChannels int
	// MinuteRetention is how long, by the wall clock, sealed minutes and
	// their hourly rollups (the minute tier) are kept. Default 48h; 1h..7d.
	MinuteRetention time.Duration
	// Retention is how long, by the wall clock, the reach tier's hours are
	// kept. Default 28 days; at least MinuteRetention and under 30 days.
	Retention time.Duration
	// DayStart is when the minute tier's days start, after 00:00 UTC; the
	// reach tier's weeks start on Monday at that time. A whole number of
	// hours, 0..23h. Default 0.
	DayStart time.Duration
	// Shards of device state. Default 4×GOMAXPROCS, rounded up to a power of two.
	Shards int
	// Keys holds the pseudonym key and the key of every epoch (a
	// keys.Ring). Required, unless Key is set.
	Keys Keys
	// Key, if Keys is nil, is the root of keys.Derived(Key): every key is
	// computed from it, so estimates are reproducible. For tests and
	// examples only: forgetting a derived key shreds nothing.
	Key *sketch.Key
	// Now is the wall clock. Default time.Now. Tests inject their own.
	Now func() time.Time
	// OnSeal, if set, is called with every sealed minute, in minute order,
	// from the goroutine that sealed it. It must not block for long.
	OnSeal func(*Minute)
	// OnForget, if set, is called when the engine has forgotten the key of
	// an epoch whose data is all gone (err nil), or failed to (err; it
	// tries again at the next Tick), from the goroutine that expired it.
	OnForget func(tier keys.Tier, epoch int64, err error)
}

// Keys is what the engine needs of a key ring: keys.Ring (Open, NewMemory
// or Derived) has it.
type Keys interface {
	// Pseudonym returns the key that hashes device identifiers.
	Pseudonym() *sketch.Key
	// Key returns the key of an epoch, creating it on first use; an error
	// for an epoch already forgotten.
	Key(tier keys.Tier, epoch int64) (*sketch.Key, error)
	// Forget deletes the key of an epoch for good.
	Forget(tier keys.Tier, epoch int64) error
	// Epochs lists the epochs of tier whose keys are held, ascending.
	Epochs(tier keys.Tier) []int64
	// Lookup returns the key material of the epoch with the given id
	// (keys.ID), if held: the checkpoint store's KeyLookup.
	Lookup(id string) ([]byte, bool)
}

// DefaultRetention is the default Retention of the reach tier, and
// MaxRetention the limit it must stay under.
const (
	DefaultRetention = 28 * 24 * time.Hour
	MaxRetention     = 30 * 24 * time.Hour
)

// DefaultConfig returns a Config with every default filled in (and no Keys).
func DefaultConfig() Config {
	return Config{
		Model:           Tuning,
		Precision:       sketch.DefaultPrecision,
		Lateness:        60 * time.Second,
		MaxClockSkew:    5 * time.Minute,
		MinDwell:        5 * time.Second,
		Inactivity:      4 * time.Hour,
		MaxChannels:     5000,
		MinuteRetention: 48 * time.Hour,
		Retention:       DefaultRetention,
		Shards:          defaultShards(),
		Now:             time.Now,
	}
}

func defaultShards() int {
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) {
		n <<= 1
	}
	return n
}

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Precision == 0 {
		c.Precision = d.Precision
	}
	if c.Lateness == 0 {
		c.Lateness = d.Lateness
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = d.MaxClockSkew
	}
	if c.MinDwell == 0 {
		c.MinDwell = d.MinDwell
	}
	if c.Inactivity == 0 {
		c.Inactivity = d.Inactivity
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = d.MaxChannels
	}
	if c.MinuteRetention == 0 {
		c.MinuteRetention = d.MinuteRetention
	}
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
	if c.Shards == 0 {
		c.Shards = d.Shards
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Keys == nil && c.Key != nil {
		c.Keys = keys.Derived(c.Key)
	}
	switch {
	case c.Keys == nil:
		return c, errors.New("config: Keys (or, for tests, Key) is required")
	case c.Key != nil && c.Keys.Pseudonym() != c.Key:
		return c, errors.New("config: set Keys or Key, not both")
	case c.Model != Tuning && c.Model != Events:
		return c, fmt.Errorf("config: model %d is not tuning or events", c.Model)
	case c.Precision < sketch.MinPrecision || c.Precision > sketch.MaxPrecision:
		return c, fmt.Errorf("config: precision %d is outside %d..%d", c.Precision, sketch.MinPrecision, sketch.MaxPrecision)
	case c.Lateness < 0 || c.Lateness > time.Hour:
		return c, fmt.Errorf("config: lateness %s is outside 0..1h", c.Lateness)
	case c.MinDwell < 0 || c.MinDwell > time.Minute:
		return c, fmt.Errorf("config: min dwell %s is outside 0..1m", c.MinDwell)
	case c.Model == Tuning && c.Lateness < c.MinDwell:
		return c, fmt.Errorf("config: lateness %s must be at least min dwell %s: a segment still open when its minute seals is taken to qualify", c.Lateness, c.MinDwell)
	case c.MaxClockSkew < 0:
		return c, fmt.Errorf("config: max clock skew %s is negative", c.MaxClockSkew)
	case c.Inactivity < time.Minute:
		return c, fmt.Errorf("config: inactivity %s is under 1m", c.Inactivity)
	case c.MaxChannels < 1 || c.MaxChannels > 1<<20:
		return c, fmt.Errorf("config: max channels %d is outside 1..%d", c.MaxChannels, 1<<20)
	case c.MinuteRetention < time.Hour || c.MinuteRetention > 7*24*time.Hour:
		return c, fmt.Errorf("config: minute retention %s is outside 1h..168h", c.MinuteRetention)
	case c.Retention < c.MinuteRetention || c.Retention >= MaxRetention:
		return c, fmt.Errorf("config: retention %s is outside the minute retention %s..%s: reach sketches and their keys must not outlive 30 days", c.Retention, c.MinuteRetention, MaxRetention)
	case c.Shards < 1 || c.Shards > 1024 || c.Shards&(c.Shards-1) != 0:
		return c, fmt.Errorf("config: shards %d is not a power of two in 1..1024", c.Shards)
	}
	if _, err := keys.NewCalendar(c.DayStart); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Aggregator is the engine. See the package doc.
type Aggregator struct {
	cfg       Config
	pseudonym *sketch.Key // cfg.Keys.Pseudonym()
	channels  *names
	regions   *names
	shards    []*shard
	mask      uint64

	// maxTS is the highest accepted event time (Unix ms; 0 before the first
	// event) and advancedAt the wall time (Unix ns) it last moved: together
	// they make the event-time clock (docs/semantics.md, Watermark).
	maxTS      atomic.Int64
	advancedAt atomic.Int64
	// firstOpen is the first minute (Unix minute number) not yet sealed; -1
	// before the first event. Writers read it as a fast pre-check; the
	// authoritative check is each shard's own nextSeal, under its lock.
	firstOpen atomic.Int64

	sealMu sync.Mutex // serializes sealing; never held while a shard lock is wanted by a writer for long
	// gate is held shared by every Writer.Write (after start) and
	// exclusively by Snapshot while it copies the state, so that a snapshot
	// holds exactly the events of the Writes that returned before it. Lock
	// order: sealMu, gate, a shard's mu, store.mu.
	gate sync.RWMutex

	store store

	// cal numbers the key epochs; epochKeys caches the keys of the epochs
	// the engine holds data in (epochs.go).
	cal       keys.Calendar
	epochKeys atomic.Pointer[keyCache]
	keyMu     sync.Mutex // serializes changes to epochKeys; last in any lock order
	// forgetFrom is, per tier, the first epoch not yet checked for
	// forgetting (under sealMu).
	forgetFrom [2]int64
	// keyErr is why the last seal could not get its keys (KeyError).
	keyErr atomic.Pointer[error]

	stats Stats
}

// New returns an Aggregator for cfg. It forgets the keys of epochs whose
// time is entirely past retention: whatever they sealed has expired.
func New(cfg Config) (*Aggregator, error) {
	a, err := newAggregator(cfg)
	if err != nil {
		return nil, err
	}
	a.sealMu.Lock()
	a.expireLocked(a.cfg.Now())
	a.sealMu.Unlock()
	return a, nil
}

func newAggregator(cfg Config) (*Aggregator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Aggregator{
		cfg:      cfg,
		channels: newNames(cfg.MaxChannels),
		regions:  newNames(cfg.MaxChannels),
		shards:   make([]*shard, cfg.Shards),
		mask:     uint64(cfg.Shards - 1),
	}
	for i := range a.shards {
		a.shards[i] = newShard(a)
	}
	a.firstOpen.Store(-1)
	a.store.init(cfg)
	a.pseudonym = cfg.Keys.Pseudonym()
	a.cal, _ = keys.NewCalendar(cfg.DayStart) // validated by withDefaults
	a.epochKeys.Store(&keyCache{})
	a.forgetFrom = [2]int64{math.MinInt64, math.MinInt64}
	return a, nil
}

// Config returns the effective configuration (defaults filled in).
func (a *Aggregator) Config() Config { return a.cfg }
