package sketch

import "fmt"

// Register returns the index and the value of hash h's register in a dense
// sketch of precision p, as the library computes them: a dense sketch's
// register i holds the largest value of the hashes added to it whose index
// is i. With FromRegisters it lets a caller keep dense registers of its own
// on a hot path (one load, one compare, one store per hash, inlined, where
// AddHash goes through the library's representation checks) and turn them
// into a sketch once.
func Register(h uint64, p uint8) (i uint64, r uint8) { return posVal(h, p) }

// FromRegisters returns the dense sketch under key whose registers are
// regs, which must hold 2^precision registers made by Register with hashes
// from key.Hash: the same sketch as NewUnion with each of those hashes
// added. regs is copied.
func FromRegisters(key *Key, precision uint8, regs []uint8) (*Sketch, error) {
	s, err := newSketch(key, precision, true)
	if err != nil {
		return nil, err
	}
	m := 1 << precision
	if len(regs) != m {
		return nil, fmt.Errorf("sketch: %d registers for precision %d, want %d", len(regs), precision, m)
	}
	lib := make([]byte, 8+m)
	copy(lib, []byte{libVersion, precision, 0, 0}) // version 2, p, b = 0, dense
	lib[4], lib[5], lib[6], lib[7] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
	copy(lib[8:], regs)
	if err := s.hll.UnmarshalBinary(lib); err != nil {
		panic(fmt.Sprintf("BUG: FromRegisters built an encoding the library refuses: %v", err))
	}
	return s, nil
}

// MaxRegisters raises each of regs (2^p registers of s's precision p, for
// hashes of s's key) to the value of the same register of s: afterwards
// regs are the registers of the union of s and what they held. s is only
// read (a sparse s is merged into a dense copy first).
func (s *Sketch) MaxRegisters(regs []uint8) error {
	if m := 1 << s.p; len(regs) != m {
		return fmt.Errorf("sketch: max into %d registers, precision %d has %d: %w", len(regs), s.p, m, ErrPrecisionMismatch)
	}
	src := &s.hll
	if !s.dense {
		u, err := NewUnion(s.key, s.p)
		if err != nil {
			return err
		}
		if err := u.Merge(s); err != nil {
			return err
		}
		src = &u.hll
	}
	b, err := src.AppendBinary(nil)
	if err != nil {
		panic(fmt.Sprintf("BUG: hyperloglog AppendBinary of precision %d: %v", s.p, err))
	}
	if b[3] != 0 || len(b) != 8+len(regs) {
		panic(fmt.Sprintf("BUG: a dense sketch of precision %d encodes as %d bytes, representation %d", s.p, len(b), b[3]))
	}
	for i, r := range b[8:] {
		regs[i] = max(regs[i], r)
	}
	return nil
}
