package event

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The lexical layer of the JSON decoder: whitespace, strings (unescaped into
// the Decoder's scratch only when they hold escapes), numbers, literals, and
// skipping whole values. A syntax error is recorded in the Decoder and
// reported as offset -1, so a failing scan allocates nothing.

// maxDepth bounds the nesting of skipped values, so that a message of a
// million '[' costs a rejection instead of a deep stack.
const maxDepth = 512

// fail records a syntax error at offset i and returns -1.
func (d *Decoder) fail(i int, want string) int {
	d.synOff, d.synWant = i, want
	return -1
}

var jsonSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipSpace(b []byte, i int) int {
	for i < len(b) && jsonSpace[b[i]] {
		i++
	}
	return i
}

// next returns the offset of the first non-space byte at or after b[i]. It
// tests b[i] before calling skipSpace: compact JSON has no spaces, and the
// separators come several times per field.
func next(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	return skipSpace(b, i)
}

// strPlain marks the bytes a string holds as they are: not '"', not '\\',
// not a control character.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string at msg[i] (a '"') and returns its bytes (aliasing msg
// when it has no escapes) and the offset after it, or -1.
func (d *Decoder) str(msg []byte, i int) ([]byte, int) {
	j := plainRun(msg, i+1)
	if j < len(msg) && msg[j] == '"' {
		return msg[i+1 : j : j], j + 1
	}
	return d.unescape(msg, i+1, j)
}

// plainRun returns the offset of the first byte at or after msg[j] that is
// not strPlain (or len(msg)). It tests eight bytes at a time: for each byte
// b, (b - c) &^ b has its high bit set if b < c (in the lowest such byte of
// the word; higher ones may be false hits, so only the lowest is used).
func plainRun(msg []byte, j int) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for ; j+8 <= len(msg); j += 8 {
		x := binary.LittleEndian.Uint64(msg[j:])
		q, bs := x^('"'*ones), x^('\\'*ones)
		hit := ((x-0x20*ones)&^x | (q-ones)&^q | (bs-ones)&^bs) & high
		if hit != 0 {
			return j + bits.TrailingZeros64(hit)/8
		}
	}
	for j < len(msg) && strPlain[msg[j]] {
		j++
	}
	return j
}

// unescape continues str at msg[j], a byte that is not plain: it copies the
// string from msg[start:] into d.text, decoding escapes.
func (d *Decoder) unescape(msg []byte, start, j int) ([]byte, int) {
	t := len(d.text)
	d.text = append(d.text, msg[start:j]...)
	for j < len(msg) {
		c := msg[j]
		switch {
		case c == '"':
			return d.text[t:len(d.text):len(d.text)], j + 1
		case c != '\\':
			if c < 0x20 {
				return nil, d.fail(j, "control character in string (escape it)")
			}
			k := plainRun(msg, j+1)
			d.text = append(d.text, msg[j:k]...)
			j = k
			continue
		}
		if j+1 >= len(msg) {
			break
		}
		switch e := msg[j+1]; e {
		case '"', '\\', '/':
			d.text = append(d.text, e)
		case 'b':
			d.text = append(d.text, '\b')
		case 'f':
			d.text = append(d.text, '\f')
		case 'n':
			d.text = append(d.text, '\n')
		case 'r':
			d.text = append(d.text, '\r')
		case 't':
			d.text = append(d.text, '\t')
		case 'u':
			r, ok := hex4(msg, j+2)
			if !ok {
				return nil, d.fail(j, `invalid \u escape`)
			}
			j += 6
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with a following \u low surrogate;
				// anything else is U+FFFD, as in encoding/json.
				r2, ok := hex4(msg, j+2)
				if ok && r < 0xDC00 && msg[j] == '\\' && msg[j+1] == 'u' && r2 >= 0xDC00 && r2 < 0xE000 {
					r, j = utf16.DecodeRune(r, r2), j+6
				} else {
					r = utf8.RuneError
				}
			}
			d.text = utf8.AppendRune(d.text, r)
			continue
		default:
			return nil, d.fail(j, "invalid escape in string")
		}
		j += 2
	}
	return nil, d.fail(j, "unterminated string")
}

// hex4 decodes the 4 hex digits at b[i:], if there are.
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipString returns the offset after the string at msg[i], or -1.
func (d *Decoder) skipString(msg []byte, i int) int {
	j := i + 1
	for j < len(msg) {
		c := msg[j]
		switch {
		case strPlain[c]:
			j++
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(msg) {
				return d.fail(j, "unterminated string")
			}
			switch msg[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if _, ok := hex4(msg, j+2); !ok {
					return d.fail(j, `invalid \u escape`)
				}
				j += 6
			default:
				return d.fail(j, "invalid escape in string")
			}
		default:
			return d.fail(j, "control character in string (escape it)")
		}
	}
	return d.fail(j, "unterminated string")
}

// skipNumber returns the offset after the JSON number at msg[i], or -1.
func (d *Decoder) skipNumber(msg []byte, i int) int {
	j := i
	if j < len(msg) && msg[j] == '-' {
		j++
	}
	switch {
	case j < len(msg) && msg[j] == '0':
		j++
	case j < len(msg) && msg[j] >= '1' && msg[j] <= '9':
		j = skipDigits(msg, j)
	default:
		return d.fail(j, "invalid number")
	}
	if j < len(msg) && msg[j] == '.' {
		if k := skipDigits(msg, j+1); k > j+1 {
			j = k
		} else {
			return d.fail(j+1, "want a digit after '.'")
		}
	}
	if j < len(msg) && (msg[j] == 'e' || msg[j] == 'E') {
		j++
		if j < len(msg) && (msg[j] == '+' || msg[j] == '-') {
			j++
		}
		if k := skipDigits(msg, j); k > j {
			j = k
		} else {
			return d.fail(j, "want a digit in the exponent")
		}
	}
	return j
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// literal returns the offset after the literal lit at msg[i], or -1.
func (d *Decoder) literal(msg []byte, i int, lit string) int {
	if len(msg)-i < len(lit) || string(msg[i:i+len(lit)]) != lit {
		return d.fail(i, "invalid literal (want true, false or null)")
	}
	return i + len(lit)
}

// skipValue returns the offset after the JSON value at msg[i], or -1. It
// walks nested values with an explicit stack (one bit per level: set for an
// array) instead of recursion.
func (d *Decoder) skipValue(msg []byte, i int) int {
	var stack [maxDepth / 64]uint64
	depth := 0
	for {
		// At the start of a value.
		if i = next(msg, i); i >= len(msg) {
			return d.fail(i, "want a value")
		}
		switch c := msg[i]; {
		case c == '{' || c == '[':
			if depth == maxDepth {
				return d.fail(i, "values nested deeper than 512")
			}
			closer := byte('}')
			if c == '[' {
				stack[depth/64] |= 1 << (depth % 64)
				closer = ']'
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			if i = next(msg, i+1); i < len(msg) && msg[i] == closer {
				depth--
				i++
				break
			}
			if c == '{' {
				if i = d.objectKey(msg, i); i < 0 {
					return i
				}
			}
			continue
		case c == '"':
			i = d.skipString(msg, i)
		case c == '-' || c >= '0' && c <= '9':
			i = d.skipNumber(msg, i)
		case c == 't':
			i = d.literal(msg, i, "true")
		case c == 'f':
			i = d.literal(msg, i, "false")
		case c == 'n':
			i = d.literal(msg, i, "null")
		default:
			return d.fail(i, "want a value")
		}
		if i < 0 {
			return i
		}
		// After a value: close containers until the next value starts.
		for {
			if depth == 0 {
				return i
			}
			inArray := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			if i = next(msg, i); i >= len(msg) {
				return d.fail(i, "want ',' or the end of a value")
			}
			if msg[i] == ',' {
				i++
				if !inArray {
					if i = d.objectKey(msg, next(msg, i)); i < 0 {
						return i
					}
				}
				break
			}
			if inArray && msg[i] == ']' || !inArray && msg[i] == '}' {
				depth--
				i++
				continue
			}
			return d.fail(i, "want ',' or the end of a value")
		}
	}
}

// objectKey skips the `"key" :` at msg[i] and returns the offset after the
// colon, or -1.
func (d *Decoder) objectKey(msg []byte, i int) int {
	if i >= len(msg) || msg[i] != '"' {
		return d.fail(i, "want a field name")
	}
	if i = d.skipString(msg, i); i < 0 {
		return i
	}
	if i = next(msg, i); i >= len(msg) || msg[i] != ':' {
		return d.fail(i, "want ':' after a field name")
	}
	return i + 1
}
