package event

import "fmt"

// The JSON decoder is a scanner for the one fixed schema: it walks the bytes
// once, keeps the fields it knows as slices of the message, unescapes only
// strings that contain escapes (into the Decoder's scratch), and skips any
// other value without building it. encoding/json costs 1.3–1.7 µs per event
// here (DESIGN.md); this scanner, about a tenth of that (compare
// BenchmarkDecodeJSONArray256 with BenchmarkDecodeJSONArray256Stdlib).

// decodeJSON decodes the JSON value starting at msg[i] ('{' or '[').
func (d *Decoder) decodeJSON(dst []Event, msg []byte, i int, rej *Rejections) []Event {
	if msg[i] == '{' {
		dst, i = d.decodeObject(dst, msg, i, rej)
	} else {
		dst, i = d.decodeArray(dst, msg, i, rej)
	}
	if i < 0 {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "invalid JSON at offset %d: %s", d.synOff, d.synWant)
		}
		return dst
	}
	if j := next(msg, i); j < len(msg) {
		if rej.add(Malformed, 1) {
			rej.First = errorf(Malformed, "%d bytes of trailing data at offset %d after the JSON value", len(msg)-j, j)
		}
	}
	return dst
}

// decodeArray decodes the array at msg[i] and returns the offset after it,
// or -1 on a syntax error. An element beyond MaxBatchEvents ends the decoding
// as one too_large rejection (and an offset past the message).
func (d *Decoder) decodeArray(dst []Event, msg []byte, i int, rej *Rejections) ([]Event, int) {
	i = next(msg, i+1)
	if i < len(msg) && msg[i] == ']' {
		return dst, i + 1
	}
	max := d.maxBatchEvents()
	for n := 0; ; n++ {
		if i >= len(msg) {
			return dst, d.fail(i, "want an array element")
		}
		if n == max {
			if rej.add(TooLarge, 1) {
				rej.First = errorf(TooLarge, "JSON array has more than %d events: the rest from offset %d is rejected", max, i)
			}
			return dst, len(msg)
		}
		if msg[i] == '{' {
			if dst, i = d.decodeObject(dst, msg, i, rej); i < 0 {
				return dst, i
			}
		} else {
			start := i
			if i = d.skipValue(msg, i); i < 0 {
				return dst, i
			}
			if rej.add(Malformed, 1) {
				rej.First = errorf(Malformed, "array element %d at offset %d is %s, want an object", n, start, typeName(msg[start]))
			}
		}
		i = next(msg, i)
		if i >= len(msg) {
			return dst, d.fail(i, "want ',' or ']'")
		}
		switch msg[i] {
		case ',':
			i = next(msg, i+1)
		case ']':
			return dst, i + 1
		default:
			return dst, d.fail(i, "want ',' or ']'")
		}
	}
}

// field is what an object says about one known field, the last time it
// names it: typ is 0 (absent or null), '"' (a string: val is its unescaped
// bytes), '0' (a number: val is its text) or the first byte of a value of
// another type. off is the value's offset in the message.
type field struct {
	val []byte
	off int
	typ byte
}

// Known fields, in the order Validate reports their problems.
const (
	fDevice = iota
	fKind
	fChannel
	fRegion
	fTS
	numFields
)

var fieldNames = [numFields]string{"device", "kind", "channel", "region", "ts"}

// decodeObject decodes the object at msg[i] as one event: appended to dst if
// valid, else counted in rej. It returns the offset after the object, or -1
// on a syntax error.
func (d *Decoder) decodeObject(dst []Event, msg []byte, i int, rej *Rejections) ([]Event, int) {
	start := i
	var f [numFields]field
	i = next(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		return d.finishObject(dst, &f, start, rej), i + 1
	}
	for {
		if i >= len(msg) || msg[i] != '"' {
			return dst, d.fail(i, "want a field name")
		}
		var key []byte
		if key, i = d.str(msg, i); i < 0 {
			return dst, i
		}
		if i = next(msg, i); i >= len(msg) || msg[i] != ':' {
			return dst, d.fail(i, "want ':' after a field name")
		}
		if i = next(msg, i+1); i >= len(msg) {
			return dst, d.fail(i, "want a value")
		}
		k := -1
		switch string(key) {
		case "device":
			k = fDevice
		case "channel":
			k = fChannel
		case "ts":
			k = fTS
		case "kind":
			k = fKind
		case "region":
			k = fRegion
		}
		if k < 0 {
			i = d.skipValue(msg, i)
		} else {
			i = d.value(msg, i, &f[k])
		}
		if i < 0 {
			return dst, i
		}
		if i = next(msg, i); i >= len(msg) {
			return dst, d.fail(i, "want ',' or '}'")
		}
		switch msg[i] {
		case ',':
			i = next(msg, i+1)
		case '}':
			return d.finishObject(dst, &f, start, rej), i + 1
		default:
			return dst, d.fail(i, "want ',' or '}'")
		}
	}
}

// value reads the value at msg[i] into f; a later duplicate overwrites it.
func (d *Decoder) value(msg []byte, i int, f *field) int {
	c := msg[i]
	f.off = i
	switch {
	case c == '"':
		f.typ = '"'
		f.val, i = d.str(msg, i)
		return i
	case c == '-' || c >= '0' && c <= '9':
		j := d.skipNumber(msg, i)
		if j > 0 {
			f.val, f.typ = msg[i:j], '0'
		}
		return j
	case c == 'n':
		f.typ = 0
		return d.literal(msg, i, "null")
	}
	f.typ = c
	return d.skipValue(msg, i)
}

// finishObject checks the fields f of the object at offset start and appends
// its event to dst, or counts its first problem in the order Validate checks.
func (d *Decoder) finishObject(dst []Event, f *[numFields]field, start int, rej *Rejections) []Event {
	ev := Event{Kind: Tune}
	bad := numFields // the first field whose value is missing or of the wrong type
	var badReason Reason
	for k := numFields - 1; k >= 0; k-- {
		fk := &f[k]
		switch {
		case fk.typ == '"':
			switch k {
			case fDevice:
				ev.Device = fk.val
			case fChannel:
				ev.Channel = fk.val
			case fRegion:
				ev.Region = fk.val
			case fKind:
				kind, ok := ParseKind(fk.val)
				if !ok {
					bad, badReason = k, BadKind
				}
				ev.Kind = kind
			case fTS:
				ts, ok := parseRFC3339(fk.val)
				if !ok {
					bad, badReason = k, BadTS
				}
				ev.TS = ts
			}
		case fk.typ == '0' && k == fTS:
			ts, ok := parseInt(fk.val)
			if !ok {
				bad, badReason = k, BadTS
			}
			ev.TS = ts
		case fk.typ == 0 && k == fDevice:
			bad, badReason = k, BadDevice
		case fk.typ == 0 && k == fTS:
			bad, badReason = k, BadTS
		case fk.typ != 0:
			bad, badReason = k, Malformed
		}
	}
	prob := ev.check()
	if bad == numFields && prob == fine {
		return append(dst, ev)
	}
	if bad < numFields && bad <= probField[prob] {
		if rej.add(badReason, 1) {
			rej.First = errorf(badReason, "event at offset %d: %s", start, describe(&f[bad], bad))
		}
		return dst
	}
	r := prob.reason()
	if rej.add(r, 1) {
		rej.First = errorf(r, "event at offset %d: %s", start, ev.explain(prob).Detail)
	}
	return dst
}

// probField maps a problem to the field it concerns.
var probField = [...]int{
	fine: numFields, deviceEmpty: fDevice, deviceLong: fDevice, kindUnknown: fKind,
	channelEmpty: fChannel, channelLong: fChannel, channelChars: fChannel,
	regionLong: fRegion, regionChars: fRegion, tsRange: fTS,
}

// describe says what is wrong with field k: missing, of the wrong type, or a
// value that does not parse. It never quotes a device.
func describe(f *field, k int) string {
	name := fieldNames[k]
	switch {
	case f.typ == 0:
		return name + " is missing"
	case f.typ == '"' && k == fKind:
		return fmt.Sprintf("kind %q at offset %d is not tune, heartbeat or standby", clip(f.val), f.off)
	case f.typ == '"' && k == fTS:
		return fmt.Sprintf("ts %q at offset %d is not an RFC 3339 time", clip(f.val), f.off)
	case f.typ == '0' && k == fTS:
		return fmt.Sprintf("ts %s at offset %d is not an integer of Unix ms in range", clip(f.val), f.off)
	}
	want := "a string"
	if k == fTS {
		want = "an integer of Unix ms or an RFC 3339 string"
	}
	return fmt.Sprintf("%s at offset %d is %s, want %s", name, f.off, typeName(f.typ), want)
}

func typeName(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// parseInt parses a JSON number that must be an integer of at most 18 digits
// (beyond any valid ts, and short of int64 overflow).
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false // a fraction or an exponent
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
