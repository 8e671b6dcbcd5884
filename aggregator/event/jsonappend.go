package event

import "strconv"

// AppendJSON appends ev as one JSON object to dst and returns the extended
// slice, fields in the order device, channel, ts, kind, region:
//
//	{"device":"stb-0012345","channel":"npo1","ts":1764187200123,"kind":"tune","region":"ams-03"}
//
// ts is integer Unix milliseconds; kind is always written, though the decoder
// defaults it to tune, so that a message read off the wire by a person says
// what it is (the JSON path is bound by per-message costs, not bytes); region
// is omitted when empty. Strings escape '"', '\\' and control characters;
// other bytes, even ones that are not UTF-8, are written as they are, so a
// device round-trips through Decode byte for byte (but a binary identifier
// is better carried by a frame). AppendJSON does not validate ev.
func AppendJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"device":`...)
	dst = appendString(dst, ev.Device)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, ev.Channel)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ev.TS, 10)
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, ev.Kind.String()...)
	dst = append(dst, '"')
	if len(ev.Region) > 0 {
		dst = append(dst, `,"region":`...)
		dst = appendString(dst, ev.Region)
	}
	return append(dst, '}')
}

// AppendJSONArray appends evs as a JSON array of AppendJSON objects.
func AppendJSONArray(dst []byte, evs []Event) []byte {
	dst = append(dst, '[')
	for i := range evs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSON(dst, &evs[i])
	}
	return append(dst, ']')
}

// appendString appends b as a JSON string.
func appendString(dst, b []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range b {
		if strPlain[c] {
			continue
		}
		dst = append(dst, b[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, b[start:]...)
	return append(dst, '"')
}
