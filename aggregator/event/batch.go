package event

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
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
func (e *BatchEncoder) Add(ev *Event) error { return e.add(ev, -1, -1) }

// AddKeyed is Add for a producer that numbers its channel and region names:
// channel and region are keys in [0, MaxNameKey) that the caller gives
// ev.Channel and ev.Region, the same name always under the same key. The
// encoder then finds a name by its key instead of hashing it. It still
// checks that the key's name is ev's, and looks a name up by its bytes if
// not (a negative key, or one that named another name before), so the frame
// is the one Add writes whatever the keys.
func (e *BatchEncoder) AddKeyed(ev *Event, channel, region int) error {
	return e.add(ev, channel, region)
}

// MaxNameKey bounds the keys of AddKeyed: a BatchEncoder keeps 4 bytes per
// key up to the largest it has seen.
const MaxNameKey = 1 << 16

func (e *BatchEncoder) add(ev *Event, chKey, rgKey int) error {
	if e.n >= DefaultMaxBatchEvents {
		return &Error{TooLarge, fmt.Sprintf("batch already has %d events, max %d", e.n, DefaultMaxBatchEvents)}
	}
	// The cheap rules first; a name is checked once, when first remembered.
	if uint(len(ev.Device)-1) >= MaxDeviceLen || ev.Kind >= numKinds || uint64(ev.TS-1) >= maxTS ||
		len(ev.Channel) == 0 && ev.Kind != Standby {
		return invalid(ev)
	}
	ch := e.channels.find(ev.Channel, chKey, MaxChannelLen)
	if ch == nil {
		return invalid(ev)
	}
	rg := e.regions.find(ev.Region, rgKey, MaxRegionLen)
	if rg == nil {
		return invalid(ev)
	}
	if e.n == 0 {
		e.base = ev.TS
	}
	r := e.records
	if cap(r)-len(r) < maxRecordLen {
		r = slices.Grow(r, maxRecordLen)
	}
	// Written in place through a view of fixed length, with the short
	// varints inline: appending field by field re-checked the capacity and
	// called the varint writer four times per event.
	n := len(r)
	p := r[n : n+maxRecordLen]
	p[0], p[1] = byte(ev.Kind), byte(len(ev.Device))
	j := 2 + putUvarint(p[2:], zigzag(ev.TS-e.base))
	j += putUvarint(p[j:], uint64(e.channels.index(ch)))
	j += putUvarint(p[j:], uint64(e.regions.index(rg)))
	if d := ev.Device; len(d) >= 8 && len(d) <= 16 {
		// Two overlapping word stores: copy's memmove call cost more than
		// the rest of the record for the typical 10–16 byte device.
		_ = p[j+16]
		binary.LittleEndian.PutUint64(p[j:], binary.LittleEndian.Uint64(d))
		binary.LittleEndian.PutUint64(p[j+len(d)-8:], binary.LittleEndian.Uint64(d[len(d)-8:]))
		j += len(d)
	} else {
		j += copy(p[j:], d)
	}
	e.records = r[:n+j]
	e.n++
	return nil
}

// ChannelIndex returns the index of channel name in the batch's channel
// dictionary (the channel_index of docs/wire-format.md), adding name to the
// dictionary if no event of the batch has named it yet; AddIndexed takes
// the index. key is as AddKeyed's channel key: a caller's number for name
// that spares the encoder hashing it, or -1. The name "" is the channel of
// standby events. It returns ValidName's or the length limit's *Error for a
// name the contract refuses. An index holds until Reset; a name added
// but used by no event is still in the frame's dictionary.
func (e *BatchEncoder) ChannelIndex(name []byte, key int) (int, error) {
	x := e.channels.find(name, key, MaxChannelLen)
	if x == nil {
		// A standby event's channel may be anything valid, "" included:
		// Validate of one judges the name alone.
		return -1, (&Event{Kind: Standby, Channel: name, TS: 1}).nameError()
	}
	return int(e.channels.index(x)), nil
}

// RegionIndex is ChannelIndex for the region dictionary; "" is the absent
// region.
func (e *BatchEncoder) RegionIndex(name []byte, key int) (int, error) {
	x := e.regions.find(name, key, MaxRegionLen)
	if x == nil {
		return -1, (&Event{Kind: Standby, Region: name, TS: 1}).nameError()
	}
	return int(e.regions.index(x)), nil
}

// AddChannels adds the channel names table[keys[0]], table[keys[1]], … to
// the batch's dictionary, in that order, as ChannelIndex(table[k], int(k))
// of each key k of keys in turn does, with far less work a name: it is for
// a producer that numbers its names and, finding the dictionaries empty
// (Dictionaries), knows their indexes: 0, 1, … in the order of keys, a
// name repeated keeping its first. It stops at the first name ChannelIndex
// refuses and returns the number of keys it added before it, with
// ChannelIndex's *Error of that name; else len(keys) and nil. Every key
// must index table.
func (e *BatchEncoder) AddChannels(keys []uint16, table [][]byte) (int, error) {
	k := e.channels.addKeyed(keys, table, MaxChannelLen)
	if k < len(keys) {
		return k, (&Event{Kind: Standby, Channel: table[keys[k]], TS: 1}).nameError()
	}
	return k, nil
}

// AddRegions is AddChannels for the region dictionary, as RegionIndex.
func (e *BatchEncoder) AddRegions(keys []uint16, table [][]byte) (int, error) {
	k := e.regions.addKeyed(keys, table, MaxRegionLen)
	if k < len(keys) {
		return k, (&Event{Kind: Standby, Region: table[keys[k]], TS: 1}).nameError()
	}
	return k, nil
}

// nameError returns the *Error of ev, an event whose only fault can be a
// name.
func (ev *Event) nameError() error {
	ev.Device = []byte{'-'}
	if err := ev.Validate(); err != nil {
		return err
	}
	panic("BUG: event: a name the dictionary refused is valid")
}

// AddIndexed appends the event of kind at ts (Unix ms) from device whose
// channel and region are the names at indexes channel and region of the
// batch's dictionaries (ChannelIndex, RegionIndex). It writes the record
// Add writes for the event with those names, without a name lookup: for a
// producer that numbers its names and builds a frame's records straight
// from its own state. It returns the *Error of Add for a bad device, kind
// or ts, a bad_channel *Error for an index the channel dictionary does not
// have or the empty channel on an event other than a standby, a bad_region
// *Error for an index the region dictionary does not have, or too_large if
// the batch is full; the batch is then unchanged.
func (e *BatchEncoder) AddIndexed(kind Kind, ts int64, device []byte, channel, region int) error {
	return e.addIndexed(kind, ts, device, channel, region)
}

// IndexedEvent is an event of AddIndexedEvents: its channel and region are
// indexes in the batch's dictionaries (ChannelIndex, RegionIndex).
type IndexedEvent struct {
	TS              int64 // Unix ms
	Device          []byte
	Channel, Region int32
	Kind            Kind
}

// AddIndexedEvents is AddIndexed of each of evs in turn, in one call: a
// producer that writes a batch at a time spares a call per event, which
// with its saved registers cost as much as writing the record. It returns
// the number of events added; if that is short of len(evs), the error is
// AddIndexed's of the next one, and the batch holds the events before it.
//
// (Nor can a method that writes one event be inlined into the producer's
// loop: the smallest that checks the event and writes its record measured
// an inlining cost of 151 against the compiler's budget of 80, its checks
// 60 and the record's first word 57.)
func (e *BatchEncoder) AddIndexedEvents(evs []IndexedEvent) (int, error) {
	end := min(len(evs), DefaultMaxBatchEvents-e.n)
	i := 0
	for i < end {
		// The usual events in a loop without calls, the others one by
		// one: with the call of addIndexed in it (even not taken), the
		// compiler kept the loop's state on the stack, and the loop took
		// 123 instructions an event against addUsual's 77.
		if i += e.addUsual(evs[i:end]); i == end {
			break
		}
		ev := &evs[i]
		if err := e.addIndexed(ev.Kind, ev.TS, ev.Device, int(ev.Channel), int(ev.Region)); err != nil {
			return i, err
		}
		i++
	}
	if i < len(evs) {
		ev := &evs[i]
		return i, e.indexedError(ev.Kind, ev.TS, len(ev.Device), int(ev.Channel), int(ev.Region))
	}
	return i, nil
}

// addUsual appends the records of the usual events at the start of evs,
// and returns how many it appended; the batch has room for all of evs. The
// usual event is valid, its ts is within 8 s of the batch's first (a delta
// of one or two bytes), its indexes are of one byte, and its device has 8
// to 16 bytes. Each rule is one comparison, and the record four word
// stores: checking every rule of Validate, as addIndexed does, took 26
// instructions an event.
func (e *BatchEncoder) addUsual(evs []IndexedEvent) int {
	// The bounds live in memory, read by the comparisons themselves: as
	// locals, with the loop's other dozen values, the compiler spilled and
	// reloaded them at every turn (91 instructions an event, against 77).
	var b usualBounds
	b.nch, b.nrg = uint(min(len(e.channels.order), 1<<7)), uint(min(len(e.regions.order), 1<<7))
	b.empty = uint32(e.channels.empty - 1)
	b.base, b.span = e.window()
	r := e.records
	m := len(r)
	r = r[:cap(r)]
	i := 0
	for ; i < len(evs); i++ {
		ev := &evs[i]
		d, kind := ev.Device, ev.Kind
		ch, rg := uint32(ev.Channel), uint32(ev.Region) // a negative index is refused as a large one
		delta := ev.TS - b.base
		if uint64(delta+usualDelta) >= b.span || uint(ch) >= b.nch || uint(rg) >= b.nrg || kind >= numKinds ||
			ch == b.empty && kind != Standby || len(d) < 8 || len(d) > 16 || m+usualRecordRoom > len(r) {
			break
		}
		// The fields before the device in one word, then the device as
		// two overlapping words: a field at a time took twice the
		// instructions, and copy's memmove call more than the rest of
		// the record.
		zz := zigzag(delta)
		p := (*[usualRecordRoom]byte)(r[m : m+usualRecordRoom])
		w := uint64(kind) | uint64(len(d))<<8
		j := 5
		if zz < 1<<7 {
			w |= zz<<16 | uint64(ch)<<24 | uint64(rg)<<32
		} else {
			w |= (zz&0x7f|0x80)<<16 | zz>>7<<24 | uint64(ch)<<32 | uint64(rg)<<40
			j = 6
		}
		binary.LittleEndian.PutUint64(p[:], w)
		binary.LittleEndian.PutUint64(p[j:], binary.LittleEndian.Uint64(d))
		binary.LittleEndian.PutUint64(p[j+len(d)-8:], binary.LittleEndian.Uint64(d[len(d)-8:]))
		m += j + len(d)
	}
	e.records = r[:m]
	e.n += i
	return i
}

// usualBounds are addUsual's: more than four fields, so that the compiler
// keeps them in memory and not in registers.
type usualBounds struct {
	base     int64  // the batch's base ts
	span     uint64 // 2*usualDelta if ts within usualDelta of base are all valid, else 0
	nch, nrg uint   // the dictionaries' one-byte indexes
	empty    uint32 // the index of the empty channel, or MaxUint32
}

// usualDelta bounds the ts deltas of addUsual: [-usualDelta, usualDelta),
// those of one or two bytes.
const usualDelta = 1 << 13

// usualRecordRoom is the room addUsual writes a record into: a 6-byte head
// and a 16-byte device.
const usualRecordRoom = 6 + 16

// window returns the batch's base ts and the span of addUsual's deltas
// from it: 2*usualDelta if all the ts it spans are valid, else 0, as before
// the batch's first event sets the base.
func (e *BatchEncoder) window() (base int64, span uint64) {
	if base = e.base; e.n > 0 && base-usualDelta >= 1 && base+usualDelta-1 <= maxTS {
		span = 2 * usualDelta
	}
	return base, span
}

// addIndexed is AddIndexed.
func (e *BatchEncoder) addIndexed(kind Kind, ts int64, d []byte, channel, region int) error {
	if e.n >= DefaultMaxBatchEvents || uint(len(d)-1) >= MaxDeviceLen || kind >= numKinds || uint64(ts-1) >= maxTS ||
		uint(channel) >= uint(len(e.channels.order)) || uint(region) >= uint(len(e.regions.order)) ||
		int32(channel)+1 == e.channels.empty && kind != Standby {
		return e.indexedError(kind, ts, len(d), channel, region)
	}
	if e.n == 0 {
		e.base = ts
	}
	r := e.records
	if cap(r)-len(r) < maxRecordLen {
		r = slices.Grow(r, maxRecordLen)
	}
	m := len(r)
	p := r[m : m+maxRecordLen]
	p[0], p[1] = byte(kind), byte(len(d))
	j := 2 + putUvarint(p[2:], zigzag(ts-e.base))
	j += putUvarint(p[j:], uint64(channel))
	j += putUvarint(p[j:], uint64(region))
	j += copy(p[j:], d)
	e.records = r[:m+j]
	e.n++
	return nil
}

// indexedError returns AddIndexed's error of an event it refused.
// It takes the device's length, not the device: the device stays on the
// caller's stack.
func (e *BatchEncoder) indexedError(kind Kind, ts int64, deviceLen, channel, region int) error {
	if e.n >= DefaultMaxBatchEvents {
		return &Error{TooLarge, fmt.Sprintf("batch already has %d events, max %d", e.n, DefaultMaxBatchEvents)}
	}
	// Validate's errors (the test holds them to Add's).
	switch {
	case deviceLen == 0:
		return &Error{BadDevice, "device is empty"}
	case deviceLen > MaxDeviceLen:
		return &Error{BadDevice, fmt.Sprintf("device is %d bytes, max %d", deviceLen, MaxDeviceLen)}
	}
	ev := Event{Device: []byte{'-'}, Kind: kind, TS: ts, Channel: []byte{'-'}}
	if err := ev.Validate(); err != nil {
		return err
	}
	switch {
	case uint(channel) >= uint(len(e.channels.order)):
		return &Error{BadChannel, fmt.Sprintf("channel index %d is not in the batch's dictionary of %d", channel, len(e.channels.order))}
	case uint(region) >= uint(len(e.regions.order)):
		return &Error{BadRegion, fmt.Sprintf("region index %d is not in the batch's dictionary of %d", region, len(e.regions.order))}
	}
	return &Error{BadChannel, "channel is empty for a " + kind.String() + " event"}
}

// putUvarint writes v as a uvarint at the start of b and returns its length.
// Dictionary indexes and the ts deltas of a batch over a second are one or
// two bytes, written without binary.PutUvarint's loop.
func putUvarint(b []byte, v uint64) int {
	switch {
	case v < 1<<7:
		b[0] = byte(v)
		return 1
	case v < 1<<14:
		_ = b[1]
		b[0], b[1] = byte(v)|0x80, byte(v>>7)
		return 2
	}
	return binary.PutUvarint(b, v)
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

// Dictionaries returns the number of names in the batch's channel and region
// dictionaries. A producer that finds both empty knows the indexes that
// ChannelIndex and RegionIndex will give its names: 0, 1, … in the order it
// asks for them.
func (e *BatchEncoder) Dictionaries() (channels, regions int) {
	return len(e.channels.order), len(e.regions.order)
}

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
// validated and copied once, not once per batch), with the name's index in
// the current batch's dictionary; a generation stamp makes reset O(1).
//
// The name → id table is open addressing. An entry keeps a name's first and
// last 8 bytes, which for a name of up to 16 bytes (every channel and region
// name seen in practice) are the whole name: such a name is hashed and
// compared as two words, with no call. A longer name is hashed with maphash
// and compared in full. The table holds only ids and the entries are dense
// by id, so that AddKeyed's key → id reaches an entry without the table.
// Two lookups per event with maphash and a string comparison measured 60%
// of Add.
type names struct {
	seed  [2]uint64    // hash seeds of short names
	long  maphash.Seed // hash seed of longer names
	table []int32      // id+1 of the name hashed there, 0 if empty; a power of two long, at most half full
	ents  []entry      // id → entry
	list  []string     // id → name
	gen   uint32
	order []int32 // index in the batch → id
	size  int     // bytes of the batch's entries (length byte + name)
	empty int32   // 1 + the index of "" in the batch's dictionary; 0 = not in it
	keys  []int32 // AddKeyed's key → id+1 of the name it stood for last; 0 = none
}

// entry is what names keeps of a name.
type entry struct {
	w0, w1 uint64 // words(name)
	n      uint32 // len(name)+1
	id     int32
	stamp  uint32 // the generation of the batch that last used the name
	slot   int32  // its index in that batch's dictionary, if stamp == gen
}

// shortName is the longest name that words holds whole.
const shortName = 16

// words returns b's first and last 8 bytes as little-endian words, the
// bytes past a shorter b zero. For len(b) ≤ shortName, len(b) and the words
// determine b. (The lookups inline it by hand: it is too large to inline.)
func words(b []byte) (w0, w1 uint64) {
	n := len(b)
	if n >= 8 {
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	}
	if n >= 4 {
		// Two overlapping loads: the overlap holds the same bytes.
		lo, hi := uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[n-4:]))
		return lo | hi<<(8*(n-4)), 0
	}
	return tinyWord(b), 0
}

// tinyWord is words' w0 of a name of under 4 bytes.
func tinyWord(b []byte) uint64 {
	if n := len(b); n > 0 {
		return uint64(b[0]) | uint64(b[n/2])<<(8*(n/2)) | uint64(b[n-1])<<(8*(n-1))
	}
	return 0
}

// shortHash returns the table hash of a name of n-1 ≤ shortName bytes
// with words w0, w1.
func (t *names) shortHash(w0, w1 uint64, n uint32) uint64 {
	hi, lo := bits.Mul64(w0^t.seed[0], w1^t.seed[1]^uint64(n))
	return hi ^ lo
}

// find returns the entry of name, which the caller keys key (negative:
// none), or nil if lookup refuses name; it tries the name key stood for last
// before the table. The entry is valid until the next find.
func (t *names) find(name []byte, key, maxLen int) *entry {
	if uint(key) < uint(len(t.keys)) {
		if id := t.keys[key] - 1; id >= 0 && len(name) <= shortName {
			x := &t.ents[id]
			var w0, w1 uint64
			switch l := len(name); {
			case l >= 8:
				w0, w1 = binary.LittleEndian.Uint64(name), binary.LittleEndian.Uint64(name[l-8:])
			case l >= 4:
				lo, hi := uint64(binary.LittleEndian.Uint32(name)), uint64(binary.LittleEndian.Uint32(name[l-4:]))
				w0 = lo | hi<<(8*(l-4))
			default:
				w0 = tinyWord(name)
			}
			if x.w0 == w0 && x.w1 == w1 && x.n == uint32(len(name))+1 {
				return x
			}
		}
	}
	id := t.lookup(name, maxLen)
	if id < 0 {
		return nil
	}
	if key >= 0 && key < MaxNameKey {
		if key >= len(t.keys) {
			t.keys = append(t.keys, make([]int32, key+1-len(t.keys))...)
		}
		t.keys[key] = id + 1
	}
	return &t.ents[id]
}

// addKeyed is index(find(table[k], int(k), maxLen)) of each key k of keys
// in turn, up to the first that find refuses; it returns the number of
// keys done. addKnown does the names whose key stands for them (the usual
// case: the name was remembered in an earlier batch), with no call;
// addKeyed calls find and index for the others.
func (t *names) addKeyed(keys []uint16, table [][]byte, maxLen int) int {
	t.order = slices.Grow(t.order, len(keys))
	for i := 0; ; i++ {
		var n int
		i, n = t.addKnown(keys, table, i)
		t.order = t.order[:n]
		if i == len(keys) {
			return i
		}
		x := t.find(table[keys[i]], int(keys[i]), maxLen)
		if x == nil {
			return i
		}
		t.index(x)
	}
}

// addKnown is addKeyed from keys[i] up to the first key that does not
// stand for its name, whose position it returns, with the dictionary's new
// length; t.order has the capacity of every key. It calls nothing: with a
// call in it (find, or append's growth), the compiler kept the loop's
// state on the stack, and a name cost 108 instructions (ChannelIndex's
// calls 127); this loop takes 74.
func (t *names) addKnown(keys []uint16, table [][]byte, i int) (int, int) {
	order := t.order[:cap(t.order)]
	j := len(t.order)
	tk, ents := t.keys, t.ents // locals: read through t, they were read again after each store
	for ; i < len(keys); i++ {
		k := int(keys[i])
		if k >= len(tk) {
			break
		}
		id, name := tk[k]-1, table[k]
		l := len(name)
		if id < 0 || l > shortName {
			break
		}
		var w0, w1 uint64
		switch {
		case l >= 8:
			w0, w1 = binary.LittleEndian.Uint64(name), binary.LittleEndian.Uint64(name[l-8:])
		case l >= 4:
			lo, hi := uint64(binary.LittleEndian.Uint32(name)), uint64(binary.LittleEndian.Uint32(name[l-4:]))
			w0 = lo | hi<<(8*(l-4))
		default:
			w0 = tinyWord(name)
		}
		x := &ents[id]
		if x.w0 != w0 || x.w1 != w1 || x.n != uint32(l)+1 {
			break
		}
		if x.stamp != t.gen { // index's work
			order[j] = x.id
			x.slot, x.stamp = int32(j), t.gen
			j++
			t.size += int(x.n)
			if x.n == 1 {
				t.empty = int32(j)
			}
		}
	}
	return i, j
}

// lookup returns the id of name, remembering it; it returns -1 if name is
// longer than maxLen or has bytes outside [A-Za-z0-9._-]. It looks up a
// remembered short name itself and leaves the rest to remember.
func (t *names) lookup(name []byte, maxLen int) int32 {
	var w0, w1 uint64
	switch l := len(name); {
	case l > shortName || t.table == nil:
		return t.remember(name, maxLen)
	case l >= 8:
		w0, w1 = binary.LittleEndian.Uint64(name), binary.LittleEndian.Uint64(name[l-8:])
	case l >= 4:
		lo, hi := uint64(binary.LittleEndian.Uint32(name)), uint64(binary.LittleEndian.Uint32(name[l-4:]))
		w0 = lo | hi<<(8*(l-4))
	default:
		w0 = tinyWord(name)
	}
	n := uint32(len(name)) + 1
	mask := uint64(len(t.table) - 1)
	for i := t.shortHash(w0, w1, n) & mask; t.table[i] != 0; i = (i + 1) & mask {
		id := t.table[i] - 1
		if x := &t.ents[id]; x.w0 == w0 && x.w1 == w1 && x.n == n {
			return id
		}
	}
	return t.remember(name, maxLen)
}

// remember is lookup's general case: a long name, a name not remembered
// yet, or the first name of all.
func (t *names) remember(name []byte, maxLen int) int32 {
	if t.table == nil {
		t.seed = [2]uint64{rand.Uint64(), rand.Uint64()}
		t.long = maphash.MakeSeed()
		t.table = make([]int32, 64)
		t.gen = 1
	}
	w0, w1 := words(name)
	n := uint32(len(name)) + 1
	var h uint64
	if len(name) <= shortName {
		h = t.shortHash(w0, w1, n)
	} else {
		h = maphash.Bytes(t.long, name)
	}
	mask := uint64(len(t.table) - 1)
	i := h & mask
	for ; t.table[i] != 0; i = (i + 1) & mask {
		id := t.table[i] - 1
		if x := &t.ents[id]; x.w0 == w0 && x.w1 == w1 && x.n == n && (len(name) <= shortName || t.list[id] == string(name)) {
			return id
		}
	}
	if len(name) > maxLen || !ValidName(name) {
		return -1
	}
	id := int32(len(t.list))
	t.list = append(t.list, string(name))
	t.ents = append(t.ents, entry{w0: w0, w1: w1, n: n, id: id})
	t.table[i] = id + 1
	if 2*len(t.list) > len(t.table) {
		t.rehash(2 * len(t.table))
	}
	return id
}

// rehash rebuilds the table with n slots.
func (t *names) rehash(n int) {
	t.table = make([]int32, n)
	mask := uint64(n - 1)
	for id, x := range t.ents {
		var h uint64
		if x.n <= shortName+1 {
			h = t.shortHash(x.w0, x.w1, x.n)
		} else {
			h = maphash.String(t.long, t.list[id])
		}
		i := h & mask
		for t.table[i] != 0 {
			i = (i + 1) & mask
		}
		t.table[i] = int32(id) + 1
	}
}

// index returns the index of x's name in the batch's dictionary, adding it.
func (t *names) index(x *entry) int32 {
	if x.stamp == t.gen {
		return x.slot
	}
	i := int32(len(t.order))
	t.order = append(t.order, x.id)
	x.slot, x.stamp = i, t.gen
	t.size += int(x.n) // the length byte and the name
	if x.n == 1 {
		t.empty = i + 1
	}
	return i
}

func (t *names) dictSize() int { return uvarintLen(uint64(len(t.order))) + t.size }

func (t *names) appendDict(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(t.order)))
	// The lengths, then the names, a short one as its entry's words: an
	// append (a memmove call) a name cost 40 instructions, more than the
	// rest of the dictionary. The word of a name of 8 bytes or fewer is
	// the name and zeros, which the next name overwrites; near the end,
	// where they would fall past the dictionary (into dst's capacity,
	// which is the caller's), the name is copied.
	n := len(dst)
	end := n + t.size
	dst = slices.Grow(dst, t.size)[:end]
	m := n + len(t.order)
	for i, id := range t.order {
		x := &t.ents[id]
		l := int(x.n - 1)
		dst[n+i] = byte(l)
		switch {
		case l > shortName || l <= 8 && m+8 > end:
			copy(dst[m:], t.list[id])
		case l > 8:
			binary.LittleEndian.PutUint64(dst[m:], x.w0)
			binary.LittleEndian.PutUint64(dst[m+l-8:], x.w1)
		default:
			binary.LittleEndian.PutUint64(dst[m:], x.w0)
		}
		m += l
	}
	return dst[:end]
}

func (t *names) reset() {
	t.order, t.size, t.empty = t.order[:0], 0, 0
	t.gen++
	if len(t.list) > maxRemembered || t.gen == 0 {
		clear(t.table)
		clear(t.keys)
		t.list, t.ents = t.list[:0], t.ents[:0]
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
