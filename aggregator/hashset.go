package aggregator

import "slices"

// hashSet is an exact set of keyed device hashes, the small form of a
// counter. Open addressing with linear probing over a power-of-two table; 0
// marks an empty slot, so the (2^-64 likely) hash 0 is stored as 1.
type hashSet struct {
	slots []uint64
	n     int
}

const minSetSlots = 16

// add inserts h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	// h is a keyed hash (of an epoch's key), uniform in every bit; the
	// bits above 16 index the table.
	for i := (h >> 16) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			return true
		}
	}
}

// peek returns the content of the slot where a probe for h starts (0 for
// an empty set): a load whose only purpose is to bring that slot into the
// cache ahead of add (see shard.ingest).
func (s *hashSet) peek(h uint64) uint64 {
	if len(s.slots) == 0 {
		return 0
	}
	return s.slots[(h>>16)&uint64(len(s.slots)-1)]
}

// reserve makes an empty set ready for n hashes without growing.
func (s *hashSet) reserve(n int) {
	if s.n > 0 || n <= 0 {
		return
	}
	size := minSetSlots
	for 2*(n+1) > size {
		size *= 2
	}
	s.slots = make([]uint64, size)
	adviseHuge(s.slots)
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(2*len(old), minSetSlots))
	adviseHuge(s.slots)
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

func (s *hashSet) len() int { return s.n }

// appendTo appends the set's hashes to dst.
func (s *hashSet) appendTo(dst []uint64) []uint64 {
	for _, h := range s.slots {
		if h != 0 {
			dst = append(dst, h)
		}
	}
	return dst
}

// bytes is the memory the set holds.
func (s *hashSet) bytes() int { return 8 * len(s.slots) }

// countMap counts per nonzero uint64 key (a cellKey: its channel id is at
// least 1): open addressing with linear probing, keys and counts side by
// side so that a minute's few thousand region cells stay in cache.
type countMap struct {
	keys []uint64
	vals []uint32
	n    int
}

func (m *countMap) grow() {
	keys, vals := m.keys, m.vals
	size := max(2*len(keys), minSetSlots)
	m.keys, m.vals, m.n = make([]uint64, size), make([]uint32, size), 0
	for i, k := range keys {
		if k != 0 {
			m.add(k, vals[i])
		}
	}
}

// add adds n to k's count.
func (m *countMap) add(k uint64, n uint32) {
	if 2*(m.n+1) > len(m.keys) {
		m.grow()
	}
	mask := uint64(len(m.keys) - 1)
	for i := (k * 0x9E3779B97F4A7C15 >> 32) & mask; ; i = (i + 1) & mask {
		switch m.keys[i] {
		case k:
			m.vals[i] += n
			return
		case 0:
			m.keys[i], m.vals[i] = k, n
			m.n++
			return
		}
	}
}

// peek loads the slots where a probe for k starts, for the cache (see
// shard.ingest).
func (m *countMap) peek(k uint64) uint64 {
	if len(m.keys) == 0 {
		return 0
	}
	i := (k * 0x9E3779B97F4A7C15 >> 32) & uint64(len(m.keys)-1)
	return m.keys[i] + uint64(m.vals[i])
}

func (m *countMap) clone() countMap {
	return countMap{keys: slices.Clone(m.keys), vals: slices.Clone(m.vals), n: m.n}
}

// each calls f for every key and count.
func (m *countMap) each(f func(k uint64, n uint32)) {
	for i, k := range m.keys {
		if k != 0 {
			f(k, m.vals[i])
		}
	}
}

// viewCounts counts per (channel, region) cell in a slice per channel
// indexed by region: the shards' "now" counts, updated twice on every
// channel change. Every shard of the Tuning model sees every cell, so a
// hash table of them per shard (16 bytes a slot at half load, probed at
// random) took a quarter of ingest; this is 4 bytes a cell, dense.
type viewCounts struct {
	chans [][]uint32 // by channel id, then region id
}

// add adds n to the count of (ch, region).
func (v *viewCounts) add(ch, region, n uint32) {
	v.chans = grownTo(v.chans, int(ch))
	v.chans[ch] = grownTo(v.chans[ch], int(region))
	v.chans[ch][region] += n
}

// regionCounts counts per region id (a partial's tune events): a
// slice rather than a map, as it is updated on every tune event.
type regionCounts []uint32

// add adds n to region r's count.
func (z *regionCounts) add(r, n uint32) {
	*z = grownTo(*z, int(r))
	(*z)[r] += n
}

// grownTo returns s, or a copy of s grown (zeros added) if i is not an
// index of it.
func grownTo[T any](s []T, i int) []T {
	if i < len(s) {
		return s
	}
	g := make([]T, max(i+1, 2*len(s), 8))
	copy(g, s)
	return g
}

// each calls f for every cell with a nonzero count, by its cellKey.
func (v *viewCounts) each(f func(k uint64, n uint32)) {
	for ch, rs := range v.chans {
		for r, n := range rs {
			if n != 0 {
				f(cellKey(uint32(ch), uint32(r)), n)
			}
		}
	}
}

// devIndex maps device pseudonyms to tuning-table indexes (the shard's
// devs): open addressing with linear probing, each pseudonym next to its
// index, so that a lookup is one cache miss (a Go map's is two or three:
// its control word, then the slot; profiled at a fifth of tuning-model
// ingest). Any pseudonym can be a key: an empty slot is marked by index 0,
// and indexes are stored plus one.
type devIndex struct {
	slots []devSlot
	n     int
}

type devSlot struct {
	h   uint64
	idx int32 // index + 1; 0 = empty
}

// home is the slot where a probe for h starts: bits of the pseudonym
// above those that pick its shard.
func (x *devIndex) home(h uint64) uint64 { return (h >> 24) & uint64(len(x.slots)-1) }

// get returns h's index.
func (x *devIndex) get(h uint64) (int32, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.idx == 0 {
			return 0, false
		}
		if s.h == h {
			return s.idx - 1, true
		}
	}
}

// peek loads the slot where a probe for h starts, for the cache (see
// shard.ingest).
func (x *devIndex) peek(h uint64) uint64 {
	if len(x.slots) == 0 {
		return 0
	}
	return x.slots[x.home(h)].h
}

// put adds h → idx; h must not be in the index.
func (x *devIndex) put(h uint64, idx int32) {
	if 2*(x.n+1) > len(x.slots) {
		old := x.slots
		x.slots, x.n = make([]devSlot, max(2*len(old), minSetSlots)), 0
		adviseHuge(x.slots)
		for _, s := range old {
			if s.idx != 0 {
				x.put(s.h, s.idx-1)
			}
		}
	}
	mask := uint64(len(x.slots) - 1)
	i := x.home(h)
	for x.slots[i].idx != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = devSlot{h: h, idx: idx + 1}
	x.n++
}

// del removes h, if present, shifting back the entries after it that
// would otherwise no longer be found (no tombstones).
func (x *devIndex) del(h uint64) {
	if len(x.slots) == 0 {
		return
	}
	mask := uint64(len(x.slots) - 1)
	i := x.home(h)
	for {
		if x.slots[i].idx == 0 {
			return
		}
		if x.slots[i].h == h {
			break
		}
		i = (i + 1) & mask
	}
	x.n--
	for j := (i + 1) & mask; x.slots[j].idx != 0; j = (j + 1) & mask {
		// The entry at j may move to the hole at i if its home is not
		// in (i, j], cyclically.
		if k := x.home(x.slots[j].h); (j-k)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = devSlot{}
}
