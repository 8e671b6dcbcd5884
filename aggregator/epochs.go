package aggregator

import (
	"fmt"
	"math"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

// Key epochs: the engine keeps the keys of the epochs it holds data in, and
// forgets them once the data is gone.
//
// The per-event path never asks the Keys (which may write a key file): a
// Writer makes sure the keys of every epoch an event can touch are in the
// engine's keyCache first (ensureKeys), and a shard then reads them from the
// cache, without a lock, when it opens a minute or an hour partial. The
// minutes an event can touch are [first open minute, its minute]: a shard
// opens partials only from its nextSeal (which is never behind the first
// open minute the Writer read) up to the minute of the event it applies.
// The sealer does the same for the minute it seals. An epoch is forgotten
// (and leaves the cache) only once it ends before both the retention horizon
// and the first open minute, so no partial can need it again.

// keyCache is an immutable copy of the keys of the epochs in use, per tier,
// ascending. A new one replaces it under keyMu.
type keyCache struct {
	tiers [2][]epochKey
}

type epochKey struct {
	n   int64
	key *sketch.Key
}

// cachedKey returns the cached key of epoch n of tier t, or nil.
func (a *Aggregator) cachedKey(t keys.Tier, n int64) *sketch.Key {
	es := a.epochKeys.Load().tiers[t]
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].n == n {
			return es[i].key
		}
	}
	return nil
}

// keyOfMinute returns the cached key of the epoch of tier t that holds
// minute m. Callers have ensured it (see the comment at the top); a miss
// breaks that invariant.
func (a *Aggregator) keyOfMinute(t keys.Tier, m int64) *sketch.Key {
	k := a.cachedKey(t, a.cal.EpochOfMinute(t, m))
	if k == nil {
		panic(fmt.Sprintf("BUG: no %s key cached for minute %d", t, m))
	}
	return k
}

// ensureKeys puts into the cache the keys of every epoch of both tiers that
// meets the minutes [lo, hi], and returns the minutes [from, to] around them
// whose epochs of both tiers it has cached.
func (a *Aggregator) ensureKeys(lo, hi int64) (from, to int64, err error) {
	from, to = math.MinInt64, math.MaxInt64
	for t := range keys.Tier(2) {
		first, last := a.cal.EpochOfMinute(t, lo), a.cal.EpochOfMinute(t, hi)
		for n := first; n <= last; n++ {
			if a.cachedKey(t, n) != nil {
				continue
			}
			if err := a.cacheKey(t, n); err != nil {
				return 0, 0, err
			}
		}
		s, _ := a.cal.SpanMinutes(t, first)
		_, e := a.cal.SpanMinutes(t, last)
		from, to = max(from, s), min(to, e-1)
	}
	return from, to, nil
}

func (a *Aggregator) cacheKey(t keys.Tier, n int64) error {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	if a.cachedKey(t, n) != nil {
		return nil
	}
	k, err := a.cfg.Keys.Key(t, n)
	if err != nil {
		return fmt.Errorf("key of %s: %w", keys.ID(t, n), err)
	}
	old := a.epochKeys.Load()
	next := &keyCache{tiers: old.tiers}
	es := make([]epochKey, 0, len(old.tiers[t])+1)
	i := 0
	for ; i < len(old.tiers[t]) && old.tiers[t][i].n < n; i++ {
		es = append(es, old.tiers[t][i])
	}
	es = append(es, epochKey{n, k})
	next.tiers[t] = append(es, old.tiers[t][i:]...)
	a.epochKeys.Store(next)
	return nil
}

func (a *Aggregator) uncacheKey(t keys.Tier, n int64) {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	old := a.epochKeys.Load()
	next := &keyCache{tiers: old.tiers}
	next.tiers[t] = nil
	for _, e := range old.tiers[t] {
		if e.n != n {
			next.tiers[t] = append(next.tiers[t], e)
		}
	}
	a.epochKeys.Store(next)
}

// horizons returns the first minute of the minute tier and the first hour
// of the reach tier that retention keeps at wall time now.
func (a *Aggregator) horizons(now time.Time) (minute, hour int64) {
	ms := now.UnixMilli()
	return floorDiv(ms-a.cfg.MinuteRetention.Milliseconds(), msPerMinute),
		floorDiv(ms-a.cfg.Retention.Milliseconds(), 60*msPerMinute)
}

// expireLocked applies retention at wall time now: it drops the minutes and
// rollups, and the reach-tier hours, past their horizons, then forgets the
// keys of the epochs that end before both the horizon and the first open
// minute (so that no open partial can need them). Forgetting is checked
// again only when that limit enters a new epoch, or after a failure.
// The caller holds sealMu.
func (a *Aggregator) expireLocked(now time.Time) {
	mh, hh := a.horizons(now)
	a.store.expire(mh, hh)
	limits := [2]int64{mh, hh * 60}
	if fo := a.firstOpen.Load(); fo >= 0 {
		limits[keys.Minute], limits[keys.Reach] = min(mh, fo), min(hh*60, fo)
	}
	for t := range keys.Tier(2) {
		e := a.cal.EpochOfMinute(t, limits[t]) // epochs before e end by the limit
		if e <= a.forgetFrom[t] {
			continue
		}
		ok := true
		for _, n := range a.cfg.Keys.Epochs(t) {
			if n >= e {
				break
			}
			err := a.cfg.Keys.Forget(t, n)
			if err == nil {
				a.uncacheKey(t, n)
			} else {
				ok = false
			}
			if a.cfg.OnForget != nil {
				a.cfg.OnForget(t, n, err)
			}
		}
		if ok {
			a.forgetFrom[t] = e
		}
	}
}
