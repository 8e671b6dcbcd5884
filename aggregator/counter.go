package aggregator

import (
	"math/bits"

	"github.com/ratingsd/ratingsd/sketch"
)

// denseAbove is the size at which a counter trades its exact set for dense
// registers: 1024 hashes fill a 2048-slot table of 16 KiB, the size of the
// dense registers at the default precision, so a counter never holds more
// than that; and a small audience stays exact.
const denseAbove = 1024

// counter is one shard's open-minute audience of a channel, a region cell or
// the total. It is an exact set of keyed hashes while small (a few ns per
// insert in a table that stays in cache) and dense HyperLogLog registers past
// denseAbove (one register update in 2^p bytes: a big channel's sketch stays
// in cache however large its audience). Either way it is turned into the
// minute's sketch once, when the minute is sealed.
//
// Why not insert into a sketch from the start: the library's sparse
// representation costs 100–400 ns per insert (a hash-set insert plus periodic
// sorted rebuilds of its list), and an exact set that grows past the caches
// costs a DRAM miss per insert (profiled: 60% of ingest time).
type counter struct {
	set hashSet
	// regs are the dense registers (sketch.Register), nil while exact:
	// an insert is a load, a compare and a store, inlined.
	regs []uint8
	// credits counts add calls. In the Tuning model a device is credited at
	// most once per minute, so it is the exact audience even when dense.
	credits uint32
}

// add adds hash h (of precision p's sketches) and counts a credit.
func (c *counter) add(p uint8, h uint64) {
	c.credits++
	c.insert(p, h)
}

// addKnown is add that also reports whether h is certainly already in
// the counter: only an exact set can tell (dense registers cannot say
// whether a hash is new), so a dense counter always answers false.
func (c *counter) addKnown(p uint8, h uint64) (had bool) {
	c.credits++
	if c.regs != nil {
		c.raise(p, h)
		return false
	}
	if !c.set.add(h) {
		return true
	}
	if c.set.len() > denseAbove {
		c.toDense(p)
	}
	return false
}

// mark adds hash h and sets credits to 1: the counters of a reach-tier
// hour count devices, not credits.
func (c *counter) mark(p uint8, h uint64) {
	c.credits = 1
	c.insert(p, h)
}

func (c *counter) insert(p uint8, h uint64) {
	if c.regs != nil {
		c.raise(p, h)
		return
	}
	if c.set.add(h) && c.set.len() > denseAbove {
		c.toDense(p)
	}
}

// raise puts h into the dense registers.
func (c *counter) raise(p uint8, h uint64) {
	i, r := sketch.Register(h, p)
	if c.regs[i] < r {
		c.regs[i] = r
	}
}

// peek loads what an insert of h would touch first, for the cache (see
// shard.ingest).
func (c *counter) peek(p uint8, h uint64) uint64 {
	if c.regs != nil {
		return uint64(c.regs[h>>(64-p)])
	}
	return c.set.peek(h)
}

// toDense moves the counter's exact set into dense registers of
// precision p.
func (c *counter) toDense(p uint8) {
	if c.regs != nil {
		return
	}
	c.regs = make([]uint8, 1<<p)
	for _, h := range c.set.slots {
		if h != 0 {
			c.raise(p, h)
		}
	}
	c.set = hashSet{}
}

// exact reports whether the counter still holds its devices exactly.
func (c *counter) exact() bool { return c.regs == nil }

// denseSketch returns the sketch of a dense counter's registers, hashed
// under key.
func (c *counter) denseSketch(key *sketch.Key) *sketch.Sketch {
	sk, err := sketch.FromRegisters(key, uint8(bits.TrailingZeros(uint(len(c.regs)))), c.regs)
	if err != nil {
		panic("BUG: registers of the configured precision: " + err.Error())
	}
	return sk
}

func (a *Aggregator) newUnion(key *sketch.Key) *sketch.Sketch {
	sk, err := sketch.NewUnion(key, a.cfg.Precision)
	if err != nil {
		panic("BUG: precision validated in Config: " + err.Error())
	}
	return sk
}
