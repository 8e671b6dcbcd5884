package aggregator

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

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(2*len(old), minSetSlots))
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

// each calls f for every key and count.
func (m *countMap) each(f func(k uint64, n uint32)) {
	for i, k := range m.keys {
		if k != 0 {
			f(k, m.vals[i])
		}
	}
}
