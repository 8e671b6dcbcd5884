package event

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/klauspost/compress/s2"
)

// BatchEncoder builds one binary batch frame from events added one at a time.
// Add copies what it needs, so the caller may reuse an Event's buffers at
// once. After AppendFrame, Reset starts the next batch; a BatchEncoder keeps
// its buffers and the channel and region names it has seen across Reset, so a
// warm encoder allocates nothing. The zero BatchEncoder is ready to use. A
// BatchEncoder is not safe for concurrent use.
//
// Producers cut batches by Len or Size: about 16 KiB (a few hundred events)
// is the fastest message size through NATS (DESIGN.md, NATS facts), and a
// frame must stay within the consumer's Decoder limits (4 MiB by default).
type BatchEncoder struct {
	records  []byte // the encoded records, in the order added
	channels names
	regions  names
	base     int64  // ts of the first event; records carry ts - base
	n        int    // events added
	body     []byte // scratch: the body to compress
}

// Add validates ev and appends it to the batch. It returns ev.Validate()'s
// *Error if ev breaks the event contract, or a too_large *Error if the batch
// already holds DefaultMaxBatchEvents events; the batch is then unchanged.
func (e *BatchEncoder) Add(ev *Event) error {
	if e.n >= DefaultMaxBatchEvents {
		return &Error{TooLarge, fmt.Sprintf("batch already has %d events, max %d", e.n, DefaultMaxBatchEvents)}
	}
	// The cheap rules first; a name is checked once, when first remembered.
	if uint(len(ev.Device)-1) >= MaxDeviceLen || ev.Kind >= numKinds || uint64(ev.TS-1) >= maxTS ||
		len(ev.Channel) == 0 && ev.Kind != Standby {
		return invalid(ev)
	}
	cid, ok := e.channels.id(ev.Channel, MaxChannelLen)
	if !ok {
		return invalid(ev)
	}
	rid, ok := e.regions.id(ev.Region, MaxRegionLen)
	if !ok {
		return invalid(ev)
	}
	if e.n == 0 {
		e.base = ev.TS
	}
	r := slices.Grow(e.records, maxRecordLen)
	r = append(r, byte(ev.Kind), byte(len(ev.Device)))
	r = binary.AppendUvarint(r, zigzag(ev.TS-e.base))
	r = binary.AppendUvarint(r, uint64(e.channels.index(cid)))
	r = binary.AppendUvarint(r, uint64(e.regions.index(rid)))
	e.records = append(r, ev.Device...)
	e.n++
	return nil
}

// invalid returns ev's violation of the contract; the caller found one.
func invalid(ev *Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	panic("BUG: event: BatchEncoder.Add rejected a valid event")
}

// Len returns the number of events added since the last Reset.
func (e *BatchEncoder) Len() int { return e.n }

// Size returns the length of the uncompressed frame AppendFrame would append.
func (e *BatchEncoder) Size() int {
	return len(frameMagic) + 2 + uvarintLen(uint64(e.n)) + uvarintLen(uint64(e.base)) +
		e.channels.dictSize() + e.regions.dictSize() + len(e.records)
}

// AppendFrame appends the frame of the events added so far to dst and returns
// the extended slice; with compress, its body is an S2 block. A batch with no
// events is a valid frame that decodes to none.
func (e *BatchEncoder) AppendFrame(dst []byte, compress bool) []byte {
	var flags byte
	if compress {
		flags = flagS2
	}
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, frameVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(e.n))
	if !compress {
		return e.appendBody(dst)
	}
	e.body = e.appendBody(e.body[:0])
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(e.body)))
	out := s2.Encode(dst[len(dst):cap(dst)], e.body)
	return dst[:len(dst)+len(out)]
}

func (e *BatchEncoder) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(e.base))
	dst = e.channels.appendDict(dst)
	dst = e.regions.appendDict(dst)
	return append(dst, e.records...)
}

// Reset empties the batch, keeping buffers and remembered names.
func (e *BatchEncoder) Reset() {
	e.records = e.records[:0]
	e.n, e.base = 0, 0
	e.channels.reset()
	e.regions.reset()
}

// names is a BatchEncoder's dictionary of channel or region names. It
// remembers every valid name it has seen under a stable id (so a name is
// validated and copied once, not once per batch) and maps ids to indexes of
// the current batch's dictionary; a generation stamp makes reset O(1). The
// name → id table is open addressing over maphash: two Go map lookups per
// event measured 60% of Add.
type names struct {
	seed  maphash.Seed
	table []int32  // id+1 of the name hashed there, 0 if empty; a power of two long
	list  []string // id → name
	slot  []int32  // id → index in the batch, if stamp[id] == gen
	stamp []uint32
	gen   uint32
	order []int32 // index in the batch → id
	size  int     // bytes of the batch's entries (length byte + name)
}

// id returns the id of name, remembering it; ok is false if name is longer
// than maxLen or has bytes outside [A-Za-z0-9._-].
func (t *names) id(name []byte, maxLen int) (id int32, ok bool) {
	if t.table == nil {
		t.seed = maphash.MakeSeed()
		t.table = make([]int32, 64)
		t.gen = 1
	}
	mask := uint64(len(t.table) - 1)
	i := maphash.Bytes(t.seed, name) & mask
	for ; t.table[i] != 0; i = (i + 1) & mask {
		if id := t.table[i] - 1; t.list[id] == string(name) {
			return id, true
		}
	}
	if len(name) > maxLen || !ValidName(name) {
		return 0, false
	}
	id = int32(len(t.list))
	t.table[i] = id + 1
	t.list = append(t.list, string(name))
	t.slot = append(t.slot, 0)
	t.stamp = append(t.stamp, 0)
	if 2*len(t.list) > len(t.table) {
		t.rehash(2 * len(t.table))
	}
	return id, true
}

// rehash rebuilds the table with n slots.
func (t *names) rehash(n int) {
	t.table = make([]int32, n)
	mask := uint64(n - 1)
	for id, name := range t.list {
		i := maphash.String(t.seed, name) & mask
		for t.table[i] != 0 {
			i = (i + 1) & mask
		}
		t.table[i] = int32(id) + 1
	}
}

// index returns the index of id in the batch's dictionary, adding it.
func (t *names) index(id int32) int32 {
	if t.stamp[id] == t.gen {
		return t.slot[id]
	}
	i := int32(len(t.order))
	t.order = append(t.order, id)
	t.slot[id], t.stamp[id] = i, t.gen
	t.size += 1 + len(t.list[id])
	return i
}

func (t *names) dictSize() int { return uvarintLen(uint64(len(t.order))) + t.size }

func (t *names) appendDict(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(t.order)))
	for _, id := range t.order {
		dst = append(dst, byte(len(t.list[id])))
	}
	for _, id := range t.order {
		dst = append(dst, t.list[id]...)
	}
	return dst
}

func (t *names) reset() {
	t.order, t.size = t.order[:0], 0
	t.gen++
	if len(t.list) > maxRemembered || t.gen == 0 {
		clear(t.table)
		t.list, t.slot, t.stamp = t.list[:0], t.slot[:0], t.stamp[:0]
		t.gen = 1
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
