package sketch

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// FromHashes returns the sketch of hashes (each made by key.Hash), the same
// sketch as adding each with AddHash to a New sketch, built in one pass: the
// hashes are turned into the library's sparse keys, sorted, deduplicated and
// delta-encoded (or, past the size at which the library turns dense, into
// registers), then handed to the library's own decoder. Adding n hashes one
// by one into a sparse sketch re-sorts and re-encodes its growing list every
// 2^p/100 inserts, which is quadratic; this is O(n log n). The returned
// sketch is compacted (as after Estimate). hashes is not modified.
//
// It relies on the library's version-2 encoding, a documented and versioned
// format that pins the hash layout (sparse precision 25); TestFromHashes
// checks that both ways give the same bytes.
func FromHashes(key *Key, precision uint8, hashes []uint64) (*Sketch, error) {
	if len(hashes) == 0 {
		return New(key, precision)
	}
	s, err := newSketch(key, precision, false)
	if err != nil {
		return nil, err
	}
	p, m := precision, 1<<precision
	ks := make([]uint32, len(hashes))
	for i, h := range hashes {
		ks[i] = encodeHash(h, p)
	}
	sortKeys(ks)
	ks = slices.Compact(ks)

	// The sparse list: varint deltas, the library's layout.
	var stream []byte
	var last uint32
	for _, k := range ks {
		stream = binary.AppendUvarint(stream, uint64(k-last))
		last = k
		if len(stream) > m {
			break // the library would be dense by now
		}
	}
	var lib []byte
	if len(stream) <= m {
		lib = make([]byte, 0, 20+len(stream))
		lib = append(lib, libVersion, p, 0, 1)      // version 2, p, b = 0, sparse
		lib = binary.BigEndian.AppendUint32(lib, 0) // empty temporary set
		lib = binary.BigEndian.AppendUint32(lib, uint32(len(ks)))
		lib = binary.BigEndian.AppendUint32(lib, last)
		lib = binary.BigEndian.AppendUint32(lib, uint32(len(stream)))
		lib = append(lib, stream...)
		s.sparseBound = uint64(len(stream))
	} else {
		lib = make([]byte, 8+m)
		copy(lib, []byte{libVersion, p, 0, 0})
		binary.BigEndian.PutUint32(lib[4:8], uint32(m))
		regs := lib[8:]
		for _, h := range hashes {
			i, r := posVal(h, p)
			regs[i] = max(regs[i], r)
		}
		s.markDense()
	}
	if err := s.hll.UnmarshalBinary(lib); err != nil {
		panic(fmt.Sprintf("BUG: FromHashes built an encoding the library refuses: %v", err))
	}
	s.settled = true
	return s, nil
}

// encodeHash is the library's sparse key of hash x at precision p (sparse
// precision 25): the top 25 bits as the index; when the bits of the index
// below the top p are all zero, the run of leading zeros of the rest too.
func encodeHash(x uint64, p uint8) uint32 {
	const pp = sparsePrecision
	idx := uint32(x >> (64 - pp))
	if bextr(x, 64-pp, pp-p) == 0 {
		zeros := bits.LeadingZeros64((bextr(x, 0, 64-pp)<<pp)|(1<<pp-1)) + 1
		return idx<<7 | uint32(zeros<<1) | 1
	}
	return idx << 1
}

// posVal is the library's dense register index and value of hash x.
func posVal(x uint64, p uint8) (uint64, uint8) {
	i := x >> (64 - p)
	w := x<<p | 1<<(p-1)
	return i, uint8(bits.LeadingZeros64(w)) + 1
}

func bextr(v uint64, start, length uint8) uint64 {
	return (v >> start) & ((1 << length) - 1)
}

// radixAbove is the length from which sortKeys sorts by radix: below it a
// comparison sort is as fast and needs no scratch space.
const radixAbove = 256

// sortKeys sorts ks ascending: four passes of an 8-bit radix sort (stable,
// linear, its counts one pass and 4 KiB of stack) for long lists, which the
// sealer builds for every channel of every minute (profiled: the comparison
// sort was 6% of a tuning-model workload), else slices.Sort.
func sortKeys(ks []uint32) {
	if len(ks) < radixAbove {
		slices.Sort(ks)
		return
	}
	var counts [4][256]int32
	for _, k := range ks {
		counts[0][k&0xFF]++
		counts[1][k>>8&0xFF]++
		counts[2][k>>16&0xFF]++
		counts[3][k>>24]++
	}
	src, dst := ks, make([]uint32, len(ks))
	for d := range 4 {
		c := &counts[d]
		var sum int32
		for i := range c {
			sum, c[i] = sum+c[i], sum
		}
		shift := 8 * d
		for _, k := range src {
			b := k >> shift & 0xFF
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	// After an even number of passes the sorted keys are back in ks.
}
