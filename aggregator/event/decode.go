package event

import (
	"fmt"
	"slices"
)

// Decoder limits when the Decoder's fields are zero.
const (
	DefaultMaxMessageBytes = 4 << 20
	DefaultMaxBatchEvents  = 65536
)

// Decoder decodes messages of either wire format into Events. The zero Decoder
// is ready to use. It keeps scratch buffers (the decompressed S2 body, the
// unescaped JSON strings, the frame dictionaries) that grow to the largest
// message seen and are reused, so that decoding allocates nothing per event
// once warm. A Decoder is not safe for concurrent use.
type Decoder struct {
	// MaxMessageBytes bounds a message as received; a larger one is rejected
	// whole as too_large. An S2-compressed frame body may decode to at most
	// 4×MaxMessageBytes. If 0, DefaultMaxMessageBytes (4 MiB).
	MaxMessageBytes int
	// MaxBatchEvents bounds the events of one message: a frame claiming more
	// is rejected whole as too_large, and a JSON array's elements beyond it
	// are rejected as one too_large. If 0, DefaultMaxBatchEvents (65536).
	MaxBatchEvents int

	body    []byte     // decompressed S2 frame body
	text    []byte     // unescaped JSON strings
	dict    dictionary // the frame's dictionaries
	recs    Frame      // Decode of a frame: its events as DecodeFrame gives them
	discard Rejections // counts rejections when the caller passes none

	// The last JSON syntax error: a constant description and its offset, so
	// that a failing scan allocates nothing until it is reported.
	synOff  int
	synWant string
}

// Rejections counts rejected events (and undecodable messages) by reason.
// Decode adds to it and keeps the first rejection's *Error in First; Reset it
// between messages to get each message's first error.
type Rejections struct {
	Count [NumReasons]int
	First *Error
}

// Total returns the number of rejections counted.
func (r *Rejections) Total() int {
	n := 0
	for _, c := range r.Count {
		n += c
	}
	return n
}

// Reset clears r.
func (r *Rejections) Reset() { *r = Rejections{} }

// add counts n rejections for reason and reports whether the caller should
// set First: only the first rejection is described, so that a flood of bad
// events costs no allocation per event.
func (r *Rejections) add(reason Reason, n int) bool {
	r.Count[reason] += n
	return r.First == nil
}

// errorf returns an *Error of reason with a formatted detail. Callers use it
// only inside `if rej.add(...)`, so that the arguments are boxed only for the
// first rejection.
func errorf(reason Reason, format string, args ...any) *Error {
	return &Error{reason, fmt.Sprintf(format, args...)}
}

// Decode appends the valid events of msg to dst and returns dst. Every
// rejected event, or an undecodable message, is counted in rej by reason (a
// nil rej discards the counts).
//
// A message is a binary frame if it starts with the frame magic, JSON if its
// first byte after optional whitespace is '{' or '[', and otherwise one
// malformed rejection. Events decoded before a point where the message cannot
// be read any further are kept; the rest counts as rejected (see
// docs/wire-format.md for the exact counting rules).
//
// The byte slices of the returned events alias msg or the Decoder's scratch
// buffers: they are valid until msg is reused or the next call to Decode.
// Every returned event passes Validate.
func (d *Decoder) Decode(dst []Event, msg []byte, rej *Rejections) []Event {
	if rej == nil {
		rej = &d.discard
	}
	d.text = d.text[:0]
	if d.tooLarge(msg, rej) {
		return dst
	}
	if IsFrame(msg) {
		f := &d.recs
		f.Events, f.Devices = f.Events[:0], f.Devices[:0]
		d.decodeFrame(f, msg, rej)
		dst = slices.Grow(dst, len(f.Events))
		for i := range f.Events {
			r := &f.Events[i]
			n := len(dst)
			dst = dst[:n+1]
			e := &dst[n]
			e.Device, e.Channel, e.Region, e.TS, e.Kind = f.Devices[i], d.dict.channel(r.Channel), d.dict.region(r.Region), r.TS, r.Kind
		}
		clear(f.Devices) // no references into msg
		return dst
	}
	i := skipSpace(msg, 0)
	if i < len(msg) && (msg[i] == '{' || msg[i] == '[') {
		return d.decodeJSON(dst, msg, i, rej)
	}
	if rej.add(Malformed, 1) {
		switch {
		case len(msg) == 0:
			rej.First = &Error{Malformed, "message is empty"}
		case i == len(msg):
			rej.First = &Error{Malformed, "message is only whitespace"}
		default:
			rej.First = errorf(Malformed, "message is neither JSON nor a binary frame: unexpected byte 0x%02x at offset %d", msg[i], i)
		}
	}
	return dst
}

// FrameEvent is an event of a binary frame as the frame holds it: its
// channel and region are indexes into the frame's dictionaries
// (Frame.Channels, Frame.Regions), and its device is in Frame.Devices, at
// the event's index.
type FrameEvent struct {
	TS              int64 // Unix ms
	Channel, Region uint32
	Kind            Kind
}

// Frame is a binary frame as DecodeFrame decodes it: every name once, and
// events that refer to them by index. A consumer that resolves each name
// once per frame rather than once per event saves a lookup per event. The
// devices are a slice of their own, which a consumer can hash in one batch
// (sketch.Key.HashIDs) without gathering them.
type Frame struct {
	Channels [][]byte // the channel dictionary; a name may be empty (standby events)
	Regions  [][]byte // the region dictionary; a name may be empty (no region)
	Events   []FrameEvent
	Devices  [][]byte // Devices[i] is the device of Events[i]
}

// DecodeFrame decodes msg into f, as Decode would, if msg is a binary
// frame, and reports whether it was; it leaves f alone if not (Decode it
// then). f's slices are reused: its previous contents are replaced. The
// events are the valid ones, those Decode returns, in the same order, and
// every rejection is counted in rej as Decode counts it; the names of the
// dictionaries are as the frame holds them, so a name no valid event uses
// may break the contract. The byte slices alias msg or the Decoder's
// scratch buffers, as with Decode, and so do f.Channels and f.Regions
// themselves: all are valid until the next call.
func (d *Decoder) DecodeFrame(f *Frame, msg []byte, rej *Rejections) bool {
	if !IsFrame(msg) {
		return false
	}
	if rej == nil {
		rej = &d.discard
	}
	f.Events, f.Devices, f.Channels, f.Regions = f.Events[:0], f.Devices[:0], f.Channels[:0], f.Regions[:0]
	if d.tooLarge(msg, rej) {
		return true
	}
	d.decodeFrame(f, msg, rej)
	f.Channels, f.Regions = d.dict.channels(), d.dict.regions()
	return true
}

// tooLarge counts msg as one too_large rejection if it is over the
// Decoder's bound, and reports whether it was.
func (d *Decoder) tooLarge(msg []byte, rej *Rejections) bool {
	max := d.maxMessageBytes()
	if len(msg) <= max {
		return false
	}
	if rej.add(TooLarge, 1) {
		rej.First = errorf(TooLarge, "message is %d bytes, max %d", len(msg), max)
	}
	return true
}

func (d *Decoder) maxMessageBytes() int {
	if d.MaxMessageBytes > 0 {
		return d.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}

func (d *Decoder) maxBatchEvents() int {
	if d.MaxBatchEvents > 0 {
		return d.MaxBatchEvents
	}
	return DefaultMaxBatchEvents
}

// maxBodyBytes bounds the decompressed body of an S2 frame. At the defaults
// it is 16 MiB, more than the largest frame of 65536 valid events (about
// 14 MB with 64-byte devices and 65536 distinct 64-byte names), so no honest
// frame is refused, while a 10-byte "decompression bomb" claiming gigabytes is
// refused before anything is allocated.
func (d *Decoder) maxBodyBytes() int { return 4 * d.maxMessageBytes() }
