package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/archive")

const goldenDir = "../../testdata/archive"

var goldenDay = time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC)

// goldenMinutes is the fixed content of the golden files: minutes with and
// without cells and zaps, a gap, a channel that comes and goes, a count of
// zero, the empty region, an estimated minute and the day's last minute.
func goldenMinutes() []Minute {
	at := func(h, m int) time.Time {
		return goldenDay.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	return []Minute{
		{Start: at(0, 0), Total: 7, Channels: []Count{{"npo1", 5}, {"rtl4", 2}}},
		{Start: at(20, 0), Total: 1503, Channels: []Count{{"npo1", 1000}, {"npo2", 3}, {"rtl4", 500}},
			Cells: []Cell{{"npo1", "", 10}, {"npo1", "ams-03", 990}, {"rtl4", "ams-03", 500}},
			Zaps:  []Count{{"", 4}, {"ams-03", 130}}},
		{Start: at(20, 1), Total: 1497, Channels: []Count{{"npo1", 998}, {"rtl4", 499}},
			Cells: []Cell{{"npo1", "ams-03", 998}, {"rtl4", "ams-03", 0}}},
		{Start: at(23, 59), Estimated: true, Total: MaxCount, Channels: []Count{{"a", MaxCount}, {strings.Repeat("z", 64), 1}}},
	}
}

func goldenLog(t testing.TB) []byte {
	b := appendLogHeader(nil, dayOf(goldenDay))
	for _, m := range goldenMinutes() {
		b = appendRecord(b, &m)
	}
	return b
}

func goldenDayFile(t testing.TB) []byte {
	b, err := encodeDay(dayOf(goldenDay), goldenMinutes())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden checks that the files in testdata/archive still decode to
// goldenMinutes and that the encoders still write them byte for byte.
func TestGolden(t *testing.T) {
	files := map[string][]byte{"2025-11-27.rtcl": goldenLog(t), "2025-11-27.rtca": goldenDayFile(t)}
	if *update {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the encoder no longer writes the golden file (%d bytes, golden %d): a format change needs a new version", name, len(want), len(got))
		}
		var mins []Minute
		var day time.Time
		if filepath.Ext(name) == logExt {
			var n int
			day, mins, n, err = DecodeLog(got)
			if n != len(got) {
				t.Errorf("%s: %d of %d bytes are whole records", name, n, len(got))
			}
		} else {
			day, mins, err = DecodeDay(got)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !day.Equal(goldenDay) || !reflect.DeepEqual(mins, goldenMinutes()) {
			t.Errorf("%s decodes to day %s, minutes\n%+v\nwant %s,\n%+v", name, day, mins, goldenDay, goldenMinutes())
		}
	}
}

// TestDayRoundTrip: random days of minutes survive the day file.
func TestDayRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		d := dayOf(goldenDay) + rng.Int64N(1000)
		var mins []Minute
		for mod := range minutesPerDay {
			if rng.IntN(10) != 0 {
				continue
			}
			m := Minute{Start: dayStart(d).Add(time.Duration(mod) * time.Minute), Estimated: rng.IntN(5) == 0, Total: rng.Uint64N(MaxCount)}
			for _, ch := range []string{"a", "b", "c", "d"} {
				if rng.IntN(2) == 0 {
					m.Channels = append(m.Channels, Count{ch, rng.Uint64N(1 << uint(rng.IntN(63)))})
				}
			}
			for _, r := range []string{"", "r1"} {
				if rng.IntN(3) == 0 {
					m.Cells = append(m.Cells, Cell{"a", r, rng.Uint64N(100)})
				}
				if rng.IntN(3) == 0 {
					m.Zaps = append(m.Zaps, Count{r, rng.Uint64N(100)})
				}
			}
			if err := m.validate(); err != nil {
				t.Fatal(err)
			}
			mins = append(mins, m)
		}
		b, err := encodeDay(d, mins)
		if err != nil {
			t.Fatal(err)
		}
		day, got, err := DecodeDay(b)
		if err != nil {
			t.Fatal(err)
		}
		if dayOf(day) != d || len(got) != len(mins) || (len(mins) > 0 && !reflect.DeepEqual(got, mins)) {
			t.Fatalf("day %s: %d minutes back of %d, or different", dayName(d), len(got), len(mins))
		}
	}
}

// TestDecodeErrors: each kind of damage is reported with its sentinel.
func TestDecodeErrors(t *testing.T) {
	log, day := goldenLog(t), goldenDayFile(t)
	firstRec := logHeaderSize
	f := func(name string, decode func([]byte) error, b []byte, want error, wantMsg string) {
		t.Helper()
		err := decode(b)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
			return
		}
		if !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("%s: got %q, want it to say %q", name, err, wantMsg)
		}
	}
	decLog := func(b []byte) error { _, _, _, err := DecodeLog(b); return err }
	decDay := func(b []byte) error { _, _, err := DecodeDay(b); return err }
	with := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	reheader := func(b []byte, size int) []byte { // fix a header's CRC after an edit
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[size-4:], crc(b[:size-4]))
		return b
	}

	f("log empty", decLog, nil, ErrTruncated, "0 of 16 bytes")
	f("log short header", decLog, log[:10], ErrTruncated, "10 of 16 bytes")
	f("log magic", decLog, with(log, 0, 'X'), ErrCorrupt, `magic "XTCL"`)
	f("log not a log", decLog, day, ErrCorrupt, `magic "RTCA" is not "RTCL"`)
	f("log header crc", decLog, with(log, 9, 0xff), ErrChecksum, "log header")
	f("log version", decLog, reheader(with(log, 4, 2), logHeaderSize), ErrVersion, "version 2")
	f("log flags", decLog, reheader(with(log, 5, 1), logHeaderSize), ErrVersion, "flags 1")
	f("record header torn", decLog, log[:firstRec+5], ErrTruncated, "record at byte 16: counts file truncated: 5 of its 8 header bytes")
	f("record torn", decLog, log[:firstRec+12], ErrTruncated, "record at byte 16: counts file truncated: 4 of its")
	f("record crc", decLog, with(log, firstRec+9, log[firstRec+9]^1), ErrChecksum, "record at byte 16")
	f("record length 0", decLog, append(bytes.Clone(log[:firstRec]), 0, 0, 0, 0, 0, 0, 0, 0), ErrCorrupt, "length 0 is not in 1..")
	f("record length huge", decLog, append(bytes.Clone(log[:firstRec]), 0xff, 0, 0, 0, 0, 0, 0, 0), ErrCorrupt, "length 4278190080")
	rec := func(payload ...byte) []byte {
		b := bytes.Clone(log[:firstRec])
		b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
		b = binary.BigEndian.AppendUint32(b, crc(payload))
		return append(b, payload...)
	}
	f("minute of day", decLog, rec(0xa0, 0x0b, 0, 0, 0, 0, 0), ErrCorrupt, "minute of the day 1440")
	f("record flags", decLog, rec(0, 2, 0, 0, 0, 0), ErrCorrupt, "flags 0x02")
	f("record trailing", decLog, rec(0, 0, 0, 0, 0, 0, 9), ErrCorrupt, "1 bytes follow")
	f("record channel count", decLog, rec(0, 0, 0, 100, 1), ErrCorrupt, "channel count 100 exceeds")
	f("record bad name", decLog, rec(0, 0, 0, 1, 2, 'a', ' ', 1, 0, 0), ErrCorrupt, `channel "a " is not`)
	f("record empty channel", decLog, rec(0, 0, 0, 1, 0, 1, 0, 0), ErrCorrupt, `channel "" is not`)
	f("record order", decLog, rec(0, 0, 0, 2, 1, 'b', 1, 1, 'a', 1, 0, 0), ErrCorrupt, `channel "a" is out of order`)
	f("record count beyond", decLog, rec(0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0, 0, 0), ErrCorrupt, "total 4611686018427387904 is beyond")
	f("record varint", decLog, rec(0, 0, 0x80), ErrCorrupt, "total is not a varint")

	f("day empty", decDay, nil, ErrTruncated, "0 of 24 bytes")
	f("day magic", decDay, log, ErrCorrupt, `magic "RTCL" is not "RTCA"`)
	f("day header crc", decDay, with(day, 9, 0xff), ErrChecksum, "day header")
	f("day version", decDay, reheader(with(day, 4, 9), dayHeaderSize), ErrVersion, "version 9")
	f("day body crc", decDay, with(day, len(day)-1, day[len(day)-1]^1), ErrChecksum, "day 2025-11-27 body")
	f("day truncated body", decDay, day[:len(day)-3], ErrChecksum, "day 2025-11-27 body")
	bodyFile := func(body []byte, rawLen uint32) []byte {
		b := make([]byte, dayHeaderSize)
		b = zenc.EncodeAll(body, b)
		copy(b, dayMagic)
		b[4] = dayVersion
		binary.BigEndian.PutUint32(b[8:], uint32(dayOf(goldenDay)))
		binary.BigEndian.PutUint32(b[12:], rawLen)
		binary.BigEndian.PutUint32(b[16:], crc(b[dayHeaderSize:]))
		binary.BigEndian.PutUint32(b[20:], crc(b[:20]))
		return b
	}
	f("day raw length", decDay, bodyFile([]byte{0, 0, 0, 0, 0}, 6), ErrCorrupt, "5 bytes inflated, the header says 6")
	f("day raw length limit", decDay, bodyFile([]byte{0}, math.MaxUint32), ErrCorrupt, "raw length 4294967295 is beyond")
	notZstd := bodyFile(nil, 3)[:dayHeaderSize]
	notZstd = append(notZstd, "not zstd"...)
	binary.BigEndian.PutUint32(notZstd[16:], crc(notZstd[dayHeaderSize:]))
	binary.BigEndian.PutUint32(notZstd[20:], crc(notZstd[:20]))
	f("day not zstd", decDay, notZstd, ErrCorrupt, "zstd")
	body := func(b ...byte) []byte { return bodyFile(b, uint32(len(b))) }
	f("day minutes", decDay, body(0xa1, 0x0b), ErrCorrupt, "minute count 1441 exceeds") // more than the bytes
	f("day minute gap", decDay, body(2, 0, 0, 0xa0, 0x0b, 0), ErrCorrupt, "minute gap 1440 is beyond a day")
	f("day minute order", decDay, body(2, 0x9f, 0x0b, 0, 0, 0), ErrCorrupt, "minute of the day 1440")
	f("day names order", decDay, body(0, 2, 1, 'b', 1, 'a', 0, 0, 0), ErrCorrupt, `name "a" is out of order`)
	f("day name index", decDay, body(1, 0, 0, 1, 1, 'a', 0, 1, 5, 0), ErrCorrupt, "channel index 5 is beyond the 1 names")
	f("day empty channel", decDay, body(1, 0, 0, 1, 0, 0, 1, 0, 0), ErrCorrupt, "channel index 0 names the empty name")
	f("day series order", decDay, body(1, 0, 0, 1, 1, 'a', 0, 2, 0, 2, 0, 2, 0, 0), ErrCorrupt, `channel "a" is out of order`)
	f("day series count", decDay, body(1, 0, 0, 0, 0, 9, 0, 0), ErrCorrupt, "channel series count 9 exceeds")
	f("day trailing", decDay, body(0, 0, 0, 0, 0, 7), ErrCorrupt, "1 bytes follow")
	f("day count beyond", decDay, body(1, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0), ErrCorrupt, "total")
	f("day flags", decDay, body(1, 0, 4, 0, 0, 0, 0, 0), ErrCorrupt, "flags 0x04")
}

// malformedSeeds are broken files of both kinds for the fuzzers.
func malformedSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, b := range [][]byte{goldenLog(t), goldenDayFile(t)} {
		for n := 0; n < len(b); n += 5 {
			out = append(out, b[:n])
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 0x55
		out = append(out, flipped, append(bytes.Clone(b), 0), append(bytes.Clone(b), b[logHeaderSize:]...))
	}
	return append(out, []byte("RTCL"), []byte("RTCA"), []byte("RTCL\x02"), bytes.Repeat([]byte{0xff}, 64))
}

func fuzzSeeds(f *testing.F) {
	for _, s := range malformedSeeds(f) {
		f.Add(s)
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.rtc?"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func isDocumented(err error) bool {
	return errors.Is(err, ErrTruncated) || errors.Is(err, ErrChecksum) || errors.Is(err, ErrVersion) || errors.Is(err, ErrCorrupt)
}

// FuzzDecodeLog: any input decodes to valid minutes and a documented error,
// and the records it accepts re-encode to the same bytes.
func FuzzDecodeLog(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		day, mins, n, err := DecodeLog(b)
		if err != nil && !isDocumented(err) {
			t.Fatalf("undocumented error %v", err)
		}
		if n < 0 || n > len(b) || (err == nil && n != len(b)) {
			t.Fatalf("n = %d of %d bytes, err %v", n, len(b), err)
		}
		if n == 0 {
			if len(mins) > 0 {
				t.Fatalf("%d minutes without a header", len(mins))
			}
			return
		}
		re := appendLogHeader(nil, dayOf(day))
		for i := range mins {
			if err := mins[i].validate(); err != nil {
				t.Fatalf("decoded an invalid minute: %v", err)
			}
			if dayOf(mins[i].Start) != dayOf(day) {
				t.Fatalf("minute %s outside day %s", mins[i].Start, day)
			}
			re = appendRecord(re, &mins[i])
		}
		if !bytes.Equal(re, b[:n]) {
			t.Fatalf("the %d accepted bytes do not re-encode to themselves", n)
		}
	})
}

// FuzzDecodeDay: any input decodes to valid, ordered minutes of its day or
// fails with a documented error; what decodes survives a round trip.
func FuzzDecodeDay(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		day, mins, err := DecodeDay(b)
		if err != nil {
			if !isDocumented(err) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		for i := range mins {
			if err := mins[i].validate(); err != nil {
				t.Fatalf("decoded an invalid minute: %v", err)
			}
			if dayOf(mins[i].Start) != dayOf(day) || (i > 0 && !mins[i-1].Start.Before(mins[i].Start)) {
				t.Fatalf("minute %d at %s is out of order or outside day %s", i, mins[i].Start, day)
			}
		}
		re, err := encodeDay(dayOf(day), mins)
		if err != nil {
			t.Fatal(err)
		}
		_, again, err := DecodeDay(re)
		if err != nil || len(again) != len(mins) || (len(mins) > 0 && !reflect.DeepEqual(again, mins)) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
