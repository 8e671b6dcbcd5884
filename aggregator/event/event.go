// Package event defines the channel-change Event that set-top boxes report and
// its two wire codecs, which producers import too: JSON (one object or an array
// of objects) and the binary batch frame (a versioned header, per-batch
// dictionaries of channel and region names, compact records, optionally
// S2-compressed), the high-throughput path. docs/wire-format.md specifies both.
//
// A Decoder tells the formats apart by their first bytes and decodes without
// building intermediate values: a scanner for the one fixed JSON schema, and
// a frame reader that checks every length and index against the bytes that
// remain. Every rejected event is counted by Reason in Rejections, so a bad
// event never costs the other events of its batch their place. Decoded events
// alias the message or the Decoder's scratch buffers and are valid until the
// next Decode; a warm Decoder allocates nothing per message. BatchEncoder and
// AppendJSON encode, also without allocating once warm.
//
// A Decoder or a BatchEncoder is not safe for concurrent use: use one per
// goroutine. The package-level functions are safe for concurrent use.
package event

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is what an event reports about its box.
type Kind uint8

const (
	// Tune: the box now shows Channel. The JSON default.
	Tune Kind = iota
	// Heartbeat: the box is still on Channel.
	Heartbeat
	// Standby: the box is off or shows no channel; Channel may be empty.
	Standby
	numKinds
)

var kindNames = [numKinds]string{"tune", "heartbeat", "standby"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the Kind named s ("tune", "heartbeat" or "standby").
func ParseKind(s []byte) (Kind, bool) {
	for k, name := range kindNames {
		if string(s) == name {
			return Kind(k), true
		}
	}
	return 0, false
}

// Limits of the event contract (DESIGN.md, Event contract).
const (
	MaxDeviceLen  = 64
	MaxChannelLen = 64
	MaxRegionLen  = 64
)

// Event is one decoded report of a set-top box. Device is the raw device
// identifier: it must be hashed with a secret key before it touches any state,
// and it never appears in an error, a log line, a metric or a response.
type Event struct {
	Device  []byte // 1..64 bytes, opaque
	Channel []byte // 1..64 bytes of [A-Za-z0-9._-]; may be empty for Standby
	Region  []byte // 0..64 bytes of [A-Za-z0-9._-]
	TS      int64  // event time, Unix milliseconds
	Kind    Kind
}

// Reason says why an event or a message was rejected. The zero Reason is OK.
// The aggregator adds the reasons that need its state (TooOld, Future, Late,
// ChannelLimit); decoders use the others.
type Reason uint8

const (
	OK           Reason = iota
	Malformed           // not a valid JSON object / frame, or a field of the wrong type
	TooLarge            // message or batch larger than the configured limit
	BadDevice           // device missing, empty or longer than 64 bytes
	BadChannel          // channel missing (for tune/heartbeat), too long or outside [A-Za-z0-9._-]
	BadRegion           // region too long or outside [A-Za-z0-9._-]
	BadKind             // kind is not tune, heartbeat or standby
	BadTS               // ts missing, not an integer of Unix ms or an RFC 3339 time, or out of range
	TooOld              // older than what the service still keeps
	Future              // beyond the allowed clock skew ahead of now
	Late                // its minute is already sealed
	ChannelLimit        // a new channel beyond the configured maximum
	NumReasons
)

var reasonNames = [NumReasons]string{
	"ok", "malformed", "too_large", "bad_device", "bad_channel", "bad_region",
	"bad_kind", "bad_ts", "too_old", "future", "late", "channel_limit",
}

// String returns the reason's metric label, e.g. "bad_channel".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Error is a rejection with its reason and a detail that never contains a
// device identifier.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return e.Reason.String() + ": " + e.Detail }

// ReasonOf returns the Reason of err if it is (or wraps) an *Error, else Malformed.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return Malformed
}

// ValidName reports whether b is made only of [A-Za-z0-9._-]
// (the alphabet of channels and regions). The empty name is valid.
func ValidName(b []byte) bool {
	// Eight bytes at a time without a branch per byte: a frame's dictionary
	// names are checked as one run, on the hot path.
	for len(b) >= 8 {
		if !validWord(binary.LittleEndian.Uint64(b)) {
			return false
		}
		b = b[8:]
	}
	var bad byte
	for _, c := range b {
		bad |= nameBad[c]
	}
	return bad == 0
}

// validWord reports whether the 8 bytes of x are all in [A-Za-z0-9._-]. For
// a byte b < 0x80, (b|0x80) - c has its high bit set iff b >= c, and no
// borrow crosses bytes, so each range test is a subtraction and a mask.
func validWord(x uint64) bool {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	if x&high != 0 {
		return false
	}
	h := x | high
	ok := (h-'-'*ones)&^(h-'/'*ones) | (h-'0'*ones)&^(h-('9'+1)*ones) | (h-'A'*ones)&^(h-('Z'+1)*ones) |
		(h-'_'*ones)&^(h-('_'+1)*ones) | (h-'a'*ones)&^(h-('z'+1)*ones)
	return ok&high == high
}

// nameBad is 1 for the bytes outside [A-Za-z0-9._-].
var nameBad = func() (t [256]byte) {
	for c := range t {
		t[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 0
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 0
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 0
	}
	t['.'], t['_'], t['-'] = 0, 0, 0
	return t
}()

// Validate checks the fields of e against the event contract and returns the
// first violation as an *Error (nil if e is valid). It does not check time
// against a clock: that is the aggregator's job.
func (e *Event) Validate() *Error {
	if p := e.check(); p != fine {
		return e.explain(p)
	}
	return nil
}

// problem is the first violation check finds. Decoders count rejections by
// problem.reason() and format an *Error only for the first one, so a flood of
// bad events costs no allocation per event.
type problem uint8

const (
	fine problem = iota
	deviceEmpty
	deviceLong
	kindUnknown
	channelEmpty
	channelLong
	channelChars
	regionLong
	regionChars
	tsRange
)

var problemReasons = [...]Reason{
	fine: OK, deviceEmpty: BadDevice, deviceLong: BadDevice, kindUnknown: BadKind,
	channelEmpty: BadChannel, channelLong: BadChannel, channelChars: BadChannel,
	regionLong: BadRegion, regionChars: BadRegion, tsRange: BadTS,
}

func (p problem) reason() Reason { return problemReasons[p] }

// check is Validate without the allocation: the rules, in Validate's order.
func (e *Event) check() problem {
	switch {
	case len(e.Device) == 0:
		return deviceEmpty
	case len(e.Device) > MaxDeviceLen:
		return deviceLong
	case e.Kind >= numKinds:
		return kindUnknown
	case len(e.Channel) == 0 && e.Kind != Standby:
		return channelEmpty
	case len(e.Channel) > MaxChannelLen:
		return channelLong
	case !ValidName(e.Channel):
		return channelChars
	case len(e.Region) > MaxRegionLen:
		return regionLong
	case !ValidName(e.Region):
		return regionChars
	case e.TS <= 0 || e.TS > maxTS:
		return tsRange
	}
	return fine
}

// explain formats the *Error of problem p of e.
func (e *Event) explain(p problem) *Error {
	switch p {
	case deviceEmpty:
		return &Error{BadDevice, "device is empty"}
	case deviceLong:
		return &Error{BadDevice, fmt.Sprintf("device is %d bytes, max %d", len(e.Device), MaxDeviceLen)}
	case kindUnknown:
		return &Error{BadKind, fmt.Sprintf("kind %d is not tune, heartbeat or standby", e.Kind)}
	case channelEmpty:
		return &Error{BadChannel, "channel is empty for a " + e.Kind.String() + " event"}
	case channelLong:
		return &Error{BadChannel, fmt.Sprintf("channel is %d bytes, max %d", len(e.Channel), MaxChannelLen)}
	case channelChars:
		return &Error{BadChannel, fmt.Sprintf("channel %q has bytes outside [A-Za-z0-9._-]", clip(e.Channel))}
	case regionLong:
		return &Error{BadRegion, fmt.Sprintf("region is %d bytes, max %d", len(e.Region), MaxRegionLen)}
	case regionChars:
		return &Error{BadRegion, fmt.Sprintf("region %q has bytes outside [A-Za-z0-9._-]", clip(e.Region))}
	case tsRange:
		return &Error{BadTS, fmt.Sprintf("ts %d is outside 1..%d Unix ms", e.TS, int64(maxTS))}
	}
	panic(fmt.Sprintf("BUG: event: explain(%d) of a valid event", p))
}

// maxTS is 9999-12-31T23:59:59.999Z in Unix ms.
const maxTS = 253402300799999

// clip shortens a name quoted in an error so that a flood of long garbage
// does not produce long log lines.
func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
