package event

import (
	"fmt"
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

	body     []byte      // decompressed S2 frame body
	text     []byte      // unescaped JSON strings
	channels []dictEntry // the frame's channel dictionary
	regions  []dictEntry // the frame's region dictionary
	discard  Rejections  // counts rejections when the caller passes none

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
	if max := d.maxMessageBytes(); len(msg) > max {
		if rej.add(TooLarge, 1) {
			rej.First = errorf(TooLarge, "message is %d bytes, max %d", len(msg), max)
		}
		return dst
	}
	if isFrame(msg) {
		return d.decodeFrame(dst, msg, rej)
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
