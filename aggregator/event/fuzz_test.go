package event_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// malformedSeeds is a table of broken messages of both formats.
func malformedSeeds(t testing.TB) [][]byte {
	frame := frameOf(t, goldenEvents(), false)
	s2frame := frameOf(t, goldenEvents(), true)
	seeds := []string{
		"", " ", "\n\t", "x", "null", "42", `"str"`, "[", "]", "{", "}", "[{", "{]", "[}", "[,]", "[1,]",
		`{"device":`, `{"device":"`, `{"device":"a\`, `{"device":"\u`, `{"device":"\ud800"}`,
		`{"device":"\ud800\udc00","channel":"c","ts":1}`, `{"device":"\x","channel":"c","ts":1}`,
		"{\"device\":\"\xff\xfe\xfd\",\"channel\":\"c\",\"ts\":1}", "{\"device\":\"a\x00b\",\"channel\":\"c\",\"ts\":1}",
		`{"device":"d","channel":"c","ts":"2025-11-26T20:00:00Z"}`, `{"device":"d","channel":"c","ts":"2025-13-26T20:00:00Z"}`,
		`{"device":"d","channel":"c","ts":1e400}`, `{"device":"d","channel":"c","ts":-0.0e-0}`, `{"device":"d","channel":"c","ts":00}`,
		`[{"device":"d","channel":"c","ts":1},{"device":"d","channel":"c","ts":1}}`,
		strings.Repeat("[", 10000), strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000),
		`{"device":"d","x":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
		"\xF5", "\xF5RTV", "\xF5RTV\x01", "\xF5RTV\x01\x00", "\xF5RTV\x01\x00\x00", "\xF5RTV\x02\x00\x00",
		"\xF5RTV\x01\x80\x00", "\xF5RTV\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
		"\xF5RTV\x01\x00\xff\xff\x03", "\xF5RTV\x01\x01\x01\xff\xff\xff\xff\x0f", "\xF5RTV\x01\x01\x01\x00",
	}
	var out [][]byte
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	one := func(r []byte, tail string) []byte {
		return rawFrame{count: -1, base: 1764187200000, channels: []string{"npo1"}, regions: []string{""},
			records: [][]byte{r}, tail: []byte(tail)}.bytes()
	}
	out = append(out,
		one(rec(0, -1, 0, 200, 0, "stb-1"), ""),    // channel index out of range
		one(rec(0, -1, 0, 0, 1<<40, "stb-1"), ""),  // region index out of range
		one(rec(7, -1, 0, 0, 0, "stb-1"), ""),      // kind 7
		one(rec(0, 65, 0, 0, 0, "stb-1"), ""),      // device length beyond the message
		one(rec(0, 0, 0, 0, 0, ""), ""),            // empty device
		one(rec(0, -1, -1<<41, 0, 0, "stb-1"), ""), // ts before 1970
		one(rec(0, -1, 0, 0, 0, "stb-1"), "trailing"),
		rawFrame{count: -1, channels: []string{"np 1"}, regions: []string{""}, records: [][]byte{rec(0, -1, 1, 0, 0, "stb-1")}}.bytes(),
	)
	for _, b := range [][]byte{frame, s2frame} {
		for n := 0; n < len(b); n += 7 {
			out = append(out, b[:n]) // truncated
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 0x55
		out = append(out, flipped, append(bytes.Clone(b), 0))
	}
	return out
}

func FuzzDecode(f *testing.F) {
	for _, seed := range malformedSeeds(f) {
		f.Add(seed)
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*"))
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
	good := [][]byte{
		event.AppendJSONArray(nil, goldenEvents()),
		frameOf(f, goldenEvents(), false),
		frameOf(f, goldenEvents(), true),
	}
	var d event.Decoder // shared: every input runs on a decoder that has seen others
	var frame event.Frame
	f.Fuzz(func(t *testing.T, msg []byte) {
		var rej event.Rejections
		evs := d.Decode(nil, msg, &rej)
		checkRejections(t, evs, &rej)
		checkDecodeFrame(t, &d, &frame, msg, evs, &rej)
		if n := len(evs) + rej.Total(); n == 0 && !emptyBatch(msg) {
			t.Errorf("no event and no rejection from %q", msg)
		} else if max := maxOutcomes(msg); n > max {
			t.Errorf("%d events + %d rejections from a message that holds at most %d", len(evs), rej.Total(), max)
		}
		for i, msg := range good {
			var rej event.Rejections
			got := d.Decode(nil, msg, &rej)
			if diff := diffEvents(got, goldenEvents()); diff != "" || rej.Total() != 0 {
				t.Fatalf("good message %d after the input: %s (rejections: %v)", i, diff, rej.First)
			}
		}
	})
}

// emptyBatch reports whether msg is a batch of no events: `[]` or a frame
// whose count is 0.
func emptyBatch(msg []byte) bool {
	if bytes.HasPrefix(msg, []byte("\xF5RTV")) {
		n, k := binary.Uvarint(msg[min(len(msg), 6):])
		return k > 0 && n == 0
	}
	trimmed := bytes.Trim(msg, " \t\r\n")
	return len(trimmed) >= 2 && trimmed[0] == '[' && trimmed[len(trimmed)-1] == ']' &&
		len(bytes.Trim(trimmed[1:len(trimmed)-1], " \t\r\n")) == 0
}

// maxOutcomes bounds events plus rejections of msg: a frame's claimed count
// and one more for trailing bytes; a JSON message's elements (at most one
// more than its commas) and one more for a syntax error or trailing data.
func maxOutcomes(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\xF5RTV")) {
		if n, k := binary.Uvarint(msg[min(len(msg), 6):]); k > 0 && n <= event.DefaultMaxBatchEvents {
			return max(int(n), 1) + 1
		}
		return 1
	}
	return bytes.Count(msg, []byte(",")) + 2
}

func FuzzRoundTrip(f *testing.F) {
	for _, e := range append(goldenEvents(), workload(20, 2)...) {
		f.Add(e.Device, string(e.Channel), string(e.Region), e.TS, uint8(e.Kind), uint8(3), int64(-1000))
	}
	f.Add([]byte{}, "", "", int64(0), uint8(9), uint8(1), int64(0))
	f.Add([]byte("\x00\"\\\xff"), "a b", "r/1", int64(-1), uint8(3), uint8(200), int64(1<<62))
	f.Add([]byte(strings.Repeat("x", 65)), strings.Repeat("c", 65), strings.Repeat("r", 65), int64(253402300800000), uint8(0), uint8(2), int64(1))

	var d event.Decoder
	var enc event.BatchEncoder
	f.Fuzz(func(t *testing.T, device []byte, channel, region string, ts int64, kind, n uint8, step int64) {
		// n events: the device varies by a suffix, the ts by step.
		var evs, valid []event.Event
		want := counts{}
		for i := range int(n%16) + 1 {
			ev := event.Event{
				Device:  append(bytes.Clone(device), bytes.Repeat([]byte{'+'}, i)...),
				Channel: []byte(channel), Region: []byte(region),
				TS: ts + int64(i)*step, Kind: event.Kind(kind % 4),
			}
			evs = append(evs, ev)
			if err := ev.Validate(); err != nil {
				want[err.Reason]++
			} else {
				valid = append(valid, ev)
			}
		}
		check := func(format string, msg []byte, want []event.Event, wantRej counts) {
			t.Helper()
			var rej event.Rejections
			got := d.Decode(nil, msg, &rej)
			checkRejections(t, got, &rej)
			if diff := diffEvents(got, want); diff != "" {
				t.Errorf("%s: %s(first rejection: %v)", format, diff, rej.First)
			}
			for r := event.Reason(0); r < event.NumReasons; r++ {
				if rej.Count[r] != wantRej[r] {
					t.Errorf("%s: got %d %s rejections, want %d (first: %v)", format, rej.Count[r], r, wantRej[r], rej.First)
				}
			}
		}
		check("JSON array", event.AppendJSONArray(nil, evs), valid, want)
		for i := range evs {
			err := evs[i].Validate()
			wantEvs, wantRej := evs[i:i+1], counts{}
			if err != nil {
				wantEvs, wantRej = nil, counts{err.Reason: 1}
			}
			check("JSON", event.AppendJSON(nil, &evs[i]), wantEvs, wantRej)
		}

		enc.Reset()
		for i := range evs {
			got, want := enc.Add(&evs[i]), evs[i].Validate()
			if e, ok := got.(*event.Error); (got == nil) != (want == nil) || got != nil && (!ok || *e != *want) {
				t.Fatalf("Add(event %d) = %v, want %v", i, got, want)
			}
		}
		check("frame", enc.AppendFrame(nil, false), valid, nil)
		check("S2 frame", enc.AppendFrame(nil, true), valid, nil)
	})
}

// checkDecodeFrame checks that DecodeFrame of msg gives the events evs and
// the rejections rej that Decode gave, and takes msg exactly if it is a
// frame.
func checkDecodeFrame(t *testing.T, d *event.Decoder, f *event.Frame, msg []byte, evs []event.Event, rej *event.Rejections) {
	t.Helper()
	var frej event.Rejections
	isFrame := bytes.HasPrefix(msg, []byte("\xF5RTV"))
	if got := d.DecodeFrame(f, msg, &frej); got != isFrame {
		t.Fatalf("DecodeFrame took the message: %v, want %v (%q)", got, isFrame, msg)
	}
	if !isFrame {
		return
	}
	if frej.Count != rej.Count || (frej.First == nil) != (rej.First == nil) ||
		frej.First != nil && *frej.First != *rej.First {
		t.Fatalf("DecodeFrame rejections %v (%v), Decode's %v (%v)", frej.Count, frej.First, rej.Count, rej.First)
	}
	if len(f.Devices) != len(f.Events) {
		t.Fatalf("DecodeFrame gave %d devices for %d events", len(f.Devices), len(f.Events))
	}
	got := make([]event.Event, len(f.Events))
	for i, e := range f.Events {
		if int(e.Channel) >= len(f.Channels) || int(e.Region) >= len(f.Regions) {
			t.Fatalf("event %d: channel %d of %d, region %d of %d", i, e.Channel, len(f.Channels), e.Region, len(f.Regions))
		}
		got[i] = event.Event{TS: e.TS, Device: f.Devices[i], Channel: f.Channels[e.Channel], Region: f.Regions[e.Region], Kind: e.Kind}
	}
	if diff := diffEvents(got, evs); diff != "" {
		t.Fatalf("DecodeFrame events differ from Decode's: %s", diff)
	}
}
