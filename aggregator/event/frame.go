package event

import (
	"encoding/binary"
	"slices"

	"github.com/klauspost/compress/s2"
)

// The binary batch frame, version 1. Its byte layout is frozen by the golden
// files in testdata/event and documented in docs/wire-format.md:
//
//	header  magic F5 52 54 56 ("\xF5RTV") | version 01 | flags | count uvarint
//	body    base_ts uvarint
//	        n_channels uvarint | n_channels × len u8 | the channel names
//	        n_regions uvarint  | n_regions × len u8  | the region names
//	        count × record
//	record  kind u8 | device_len u8 | ts_delta zigzag varint |
//	        channel_index uvarint | region_index uvarint | device
//
// With flags&flagS2 the body is one S2 block (klauspost/compress/s2, block
// format). 0xF5 never occurs in UTF-8, so no text message starts like a frame.
var frameMagic = [4]byte{0xF5, 'R', 'T', 'V'}

const (
	frameVersion = 1
	// flagS2: the body is an S2 block.
	flagS2 = 1 << 0
	// minRecordLen is the smallest record (every field one byte, no device):
	// truncation rejects no more events than the remaining bytes could hold.
	minRecordLen = 5
	// maxRecordLen is the largest record Add writes.
	maxRecordLen = 2 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen32 + MaxDeviceLen
	// maxRemembered bounds the names a BatchEncoder remembers across Reset:
	// more than any channel line-up, and a flood of random names cannot make
	// the encoder grow without bound.
	maxRemembered = 1 << 14
)

// IsFrame reports whether msg is a binary frame (starts with the frame
// magic), which DecodeFrame takes, rather than JSON.
func IsFrame(msg []byte) bool {
	return len(msg) >= len(frameMagic) && [4]byte(msg[:4]) == frameMagic
}

// dictionary is a frame's channel and region dictionaries: the nch channel
// names, then the region names, each checked once per frame rather than
// once per event.
type dictionary struct {
	names [][]byte
	// kinds[i] has bit k set if an event of Kind k may carry names[i]: all
	// three for a valid name, only Standby for the empty channel, none for a
	// name that breaks the contract.
	kinds []uint8
	nch   int
}

func (d *dictionary) reset() {
	d.names, d.kinds, d.nch = d.names[:0], d.kinds[:0], 0
}

// channels returns the channel dictionary, regions the region dictionary.
func (d *dictionary) channels() [][]byte { return d.names[:d.nch:d.nch] }
func (d *dictionary) regions() [][]byte  { return d.names[d.nch:len(d.names):len(d.names)] }

// channel returns channel name i, region region name i.
func (d *dictionary) channel(i uint32) []byte { return d.names[i] }
func (d *dictionary) region(i uint32) []byte  { return d.names[d.nch+int(i)] }

const allKinds = 1<<Tune | 1<<Heartbeat | 1<<Standby

// decodeFrame decodes the binary frame msg (IsFrame(msg) holds): its
// records to f.Events and f.Devices (appended), its dictionaries to
// d.dict.
func (d *Decoder) decodeFrame(f *Frame, msg []byte, rej *Rejections) {
	d.dict.reset()
	if len(msg) < len(frameMagic)+3 {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "frame header is truncated: %d bytes", len(msg))
		}
		return
	}
	if v := msg[4]; v != frameVersion {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "frame version %d is not supported (want %d)", v, frameVersion)
		}
		return
	}
	flags := msg[5]
	if flags&^flagS2 != 0 {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "frame flags 0x%02x have unknown bits", flags)
		}
		return
	}
	count, n := binary.Uvarint(msg[6:])
	if n <= 0 {
		if rej.add(Malformed, 1) {
			rej.First = &Error{Malformed, "frame header: bad event count varint at offset 6"}
		}
		return
	}
	if max := d.maxBatchEvents(); count > uint64(max) {
		if rej.add(TooLarge, 1) {
			rej.First = errorf(TooLarge, "frame claims %d events, max %d", count, max)
		}
		return
	}
	hdr := 6 + n
	body := msg[hdr:]
	if flags&flagS2 != 0 {
		size, err := s2.DecodedLen(body)
		if err != nil {
			if rej.add(Malformed, 1) {
				rej.First = errorf(Malformed, "frame S2 body: %v", err)
			}
			return
		}
		if max := d.maxBodyBytes(); size > max {
			if rej.add(TooLarge, 1) {
				rej.First = errorf(TooLarge, "frame S2 body decodes to %d bytes, max %d", size, max)
			}
			return
		}
		out, err := s2.Decode(d.body, body)
		if err != nil {
			if rej.add(Malformed, 1) {
				rej.First = errorf(Malformed, "frame S2 body: %v", err)
			}
			return
		}
		d.body, body = out, out
	}
	d.decodeBody(f, body, int(count), hdr, rej)
}

// decodeBody decodes the records of a frame body; hdr is the header length,
// so that offsets in errors count bytes of the uncompressed frame.
func (d *Decoder) decodeBody(f *Frame, p []byte, count, hdr int, rej *Rejections) {
	start := len(p) + hdr // offset of a position: start - len(rest)
	base, n := binary.Uvarint(p)
	if n <= 0 || base > maxTS {
		rejectRest(rej, count, len(p), start-len(p), "base ts is truncated or out of range")
		return
	}
	p = p[n:]
	var what string
	if p, what = d.dict.read(p, count, MaxChannelLen, 1<<Standby); what != "" {
		rejectRest(rej, count, len(p), start-len(p), "channel dictionary: "+what)
		return
	}
	d.dict.nch = len(d.dict.names)
	if p, what = d.dict.read(p, count, MaxRegionLen, allKinds); what != "" {
		rejectRest(rej, count, len(p), start-len(p), "region dictionary: "+what)
		return
	}
	room := min(count, len(p)/minRecordLen)
	f.Events, f.Devices = slices.Grow(f.Events, room), slices.Grow(f.Devices, room)
	for k := 0; k < count; k++ {
		// Records go through the fast loop; one it cannot take (a long
		// varint, a rejection, truncation) is decoded here, and the fast loop
		// resumes after it.
		if fastRecordsOn {
			if p, k = fastRecords(f, p, k, count, d.dict.kinds, d.dict.nch, int64(base)); k == count {
				break
			}
		}
		var ok bool
		if p, ok = d.record(f, p, k, start-len(p), int64(base), rej); !ok {
			rejectRest(rej, count-k, len(p), start-len(p), "record is truncated")
			return
		}
	}
	if len(p) > 0 {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "frame has %d bytes after its %d records", len(p), count)
		}
	}
}

// fastRecordsOn is false only in the test that holds fastRecords to the
// record-at-a-time decoding of every check (FuzzFastRecords).
var fastRecordsOn = true

// fastWindow is the span of body bytes fastRecords reads a record from:
// more than its longest record (kind, device length, two-byte ts delta and
// channel index, one-byte region index, MaxDeviceLen device bytes), so
// that one check of the span covers every byte the record can have.
const fastWindow = 1 + 1 + 2 + 2 + 1 + MaxDeviceLen + 1

// fastRecords decodes records k.. of a frame body while they are valid and
// their varints short (ts delta and channel index up to two bytes, region
// index one), and returns at the first record that is not, or at count, or
// where fewer than fastWindow bytes are left (the caller decodes the last
// records of a body with every check). It keeps few variables live so that
// they stay in registers: one loop with the rejection paths spilled them
// and cost twice as much. The caller guarantees room for
// len(p)/minRecordLen more events in f.Events and f.Devices (their
// capacity), which are equally long.
func fastRecords(f *Frame, p []byte, k, count int, kinds []uint8, nch int, base int64) ([]byte, int) {
	// Every record the loop takes is an event: n, the next event's index,
	// stands for k too (k - k0 = n - n0), and the loop ends at end, where k
	// would reach count, or where the events run out of room (which the
	// caller rules out).
	n0 := len(f.Events)
	end := min(n0+count-k, cap(f.Events), cap(f.Devices))
	evs := f.Events[:end]
	devs := f.Devices[:len(evs)]
	n := n0
	i := 0 // offset of record n in p
	for ; n < len(evs) && len(p)-i >= fastWindow; n++ {
		// The record's bytes as an array: its fields are read without a
		// bounds check each.
		r := (*[fastWindow]byte)(p[i : i+fastWindow])
		kind, devLen := r[0], int(r[1])
		delta, j := uint64(r[2]), 3
		if delta >= 0x80 {
			if r[3] >= 0x80 {
				break
			}
			delta, j = delta&0x7f|uint64(r[3])<<7, 4
		}
		ci := uint64(r[j])
		if ci >= 0x80 {
			if r[j+1] >= 0x80 {
				break
			}
			ci = ci&0x7f | uint64(r[j+1])<<7
			j++
		}
		ri := uint64(r[j+1])
		j += 2
		if ri >= 0x80 || uint(devLen-1) >= MaxDeviceLen || ci >= uint64(nch) || ri >= uint64(len(kinds)-nch) {
			break
		}
		ts := base + unzigzag(delta)
		if (kinds[ci]&kinds[nch+int(ri)])>>kind&1 == 0 || uint64(ts-1) >= maxTS {
			break
		}
		// Field by field: a composite literal is built on the stack and
		// copied with 16-byte loads that stall on store forwarding.
		e := &evs[n]
		e.Channel, e.Region, e.TS, e.Kind = uint32(ci), uint32(ri), ts, Kind(kind)
		devs[n] = r[j : j+devLen : j+devLen]
		i += j + devLen
	}
	f.Events, f.Devices = evs[:n], devs[:n]
	return p[i:], k + n - n0
}

// record decodes record k at p[0:] (offset off in the frame) with every
// check, appending its event to f or counting its rejection. ok is false
// if the record is truncated.
func (d *Decoder) record(f *Frame, p []byte, k, off int, base int64, rej *Rejections) (_ []byte, ok bool) {
	if len(p) < minRecordLen {
		return p, false
	}
	kind, devLen := p[0], int(p[1])
	delta, j := uvarintAt(p, 2)
	ci, j := uvarintAt(p, j)
	ri, j := uvarintAt(p, j)
	if j < 0 || len(p)-j < devLen {
		return p, false
	}
	dev := p[j : j+devLen : j+devLen]
	p = p[j+devLen:]
	nch, nreg := d.dict.nch, len(d.dict.names)-d.dict.nch
	if ci >= uint64(nch) || ri >= uint64(nreg) {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "record %d at offset %d: channel index %d of %d or region index %d of %d is out of range",
				k, off, ci, nch, ri, nreg)
		}
		return p, true
	}
	ev := Event{Device: dev, Channel: d.dict.channel(uint32(ci)), Region: d.dict.region(uint32(ri)), TS: base + unzigzag(delta), Kind: Kind(kind)}
	if prob := ev.check(); prob != fine {
		if rej.add(prob.reason(), 1) {
			rej.First = errorf(prob.reason(), "record %d at offset %d: %s", k, off, ev.explain(prob).Detail)
		}
		return p, true
	}
	f.Events = append(f.Events, FrameEvent{TS: ev.TS, Channel: uint32(ci), Region: uint32(ri), Kind: ev.Kind})
	f.Devices = append(f.Devices, dev)
	return p, true
}

// rejectRest counts the events of a frame that can no longer be read as
// malformed: the claimed remaining events, but no more than the remaining
// bytes could hold (a partial record counts as one), and at least one.
func rejectRest(rej *Rejections, left, rest, off int, what string) {
	n := min(left, (rest+minRecordLen-1)/minRecordLen)
	if n < 1 {
		n = 1
	}
	if rej.add(Malformed, n) {
		rej.First = errorf(Malformed, "frame at offset %d: %s (%d events lost)", off, what, n)
	}
}

// read reads a dictionary of at most max names and appends them to d:
// their count, then every length, then the names back to back, so that the
// names are checked with one ValidName over all of them (a call per name
// cost more than the records they serve). A valid non-empty name (at most
// maxLen bytes of [A-Za-z0-9._-]) admits all kinds, the empty name
// emptyKinds, an invalid name none. what describes a framing error.
func (d *dictionary) read(p []byte, max, maxLen int, emptyKinds uint8) (_ []byte, what string) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return p, "bad size varint"
	}
	if n > uint64(max) {
		return p, "more names than events"
	}
	p = p[k:]
	if uint64(len(p)) < n {
		return p, "name lengths are truncated"
	}
	lens := p[:n]
	p = p[n:]
	total := 0
	for _, l := range lens {
		total += int(l)
	}
	if len(p) < total {
		return p, "names are truncated"
	}
	names := p[:total]
	p = p[total:]
	allValid := ValidName(names)
	from := len(d.names)
	d.names = slices.Grow(d.names, len(lens))[:from+len(lens)]
	d.kinds = slices.Grow(d.kinds, len(lens))[:from+len(lens)]
	dn, dk := d.names[from:], d.kinds[from:]
	for i, l := range lens {
		name := names[:l:l]
		names = names[l:]
		dn[i] = name
		switch {
		case l == 0:
			dk[i] = emptyKinds
		case int(l) <= maxLen && (allValid || ValidName(name)):
			dk[i] = allKinds
		default:
			dk[i] = 0
		}
	}
	return p, ""
}

// uvarintAt decodes the uvarint at p[i:] and returns it with the index after
// it; the index is negative if p ends first, the varint is longer than 10
// bytes or i is already negative, so calls can be chained and checked once.
func uvarintAt(p []byte, i int) (uint64, int) {
	if i < 0 || i >= len(p) {
		return 0, -1
	}
	v, n := binary.Uvarint(p[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
