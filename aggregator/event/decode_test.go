package event_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// counts is the expected rejections of a message, by reason.
type counts map[event.Reason]int

// secret marks the devices of the rejection tables: no error may quote it.
const secret = "SECRET"

// checkDecode decodes msg with d and checks the number of events, the
// rejection counts, checkRejections, and that no error quotes a device.
func checkDecode(t *testing.T, d *event.Decoder, msg []byte, wantEvents int, want counts) []event.Event {
	t.Helper()
	var rej event.Rejections
	evs := d.Decode(nil, msg, &rej)
	if len(evs) != wantEvents {
		t.Errorf("got %d events, want %d (first rejection: %v)", len(evs), wantEvents, rej.First)
	}
	for r := event.Reason(0); r < event.NumReasons; r++ {
		if rej.Count[r] != want[r] {
			t.Errorf("got %d %s rejections, want %d (first rejection: %v)", rej.Count[r], r, want[r], rej.First)
		}
	}
	checkRejections(t, evs, &rej)
	if rej.First != nil && strings.Contains(rej.First.Detail, secret) {
		t.Errorf("error quotes a device: %v", rej.First)
	}
	return evs
}

// checkRejections checks the invariants of every Decode: each event is
// valid, and First is set exactly when something was rejected and names a
// counted reason.
func checkRejections(t testing.TB, evs []event.Event, rej *event.Rejections) {
	t.Helper()
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			t.Errorf("event %d is invalid: %v", i, err)
		}
	}
	switch {
	case rej.Total() == 0 && rej.First != nil:
		t.Errorf("First is %v with no rejection counted", rej.First)
	case rej.Total() > 0 && rej.First == nil:
		t.Errorf("%d rejections counted, First is nil", rej.Total())
	case rej.First != nil && rej.Count[rej.First.Reason] == 0:
		t.Errorf("First is %v but no %s rejection is counted", rej.First, rej.First.Reason)
	}
}

func TestDecodeJSON(t *testing.T) {
	f := func(msg string, wantEvents int, want counts) {
		t.Helper()
		var d event.Decoder
		checkDecode(t, &d, []byte(msg), wantEvents, want)
	}
	// obj is a valid event object with extra (or overriding) fields.
	obj := func(extra string) string {
		return `{"device":"stb-SECRET-1","channel":"npo1","ts":1764187200123` + extra + `}`
	}
	long := strings.Repeat("x", 65)

	// Valid messages.
	f(obj(""), 1, nil)
	f(" \t\r\n"+obj("")+"\n", 1, nil)
	f("["+obj("")+","+obj(`,"kind":"heartbeat","region":"ams-03"`)+"]", 2, nil)
	f("[]", 0, nil)
	f("[ \n ]", 0, nil)
	f(`{"device":"stb-SECRET-1","ts":1,"kind":"standby"}`, 1, nil)
	f(obj(`,"ts":"2025-11-26T20:00:00Z"`), 1, nil)
	f(obj(`,"region":null`), 1, nil)
	f(obj(`,"extra":{"a":[1,-2.5e-3,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"],"b":{}},"c":[]`), 1, nil)
	f(obj(`,"deep":`+strings.Repeat("[", 500)+strings.Repeat("]", 500)), 1, nil)
	f(`{"dev\u0069ce":"stb-SECRET-1","channel":"npo1","ts":1}`, 1, nil)
	f("{\"device\":\"stb-\xff\xfe-SECRET\",\"channel\":\"npo1\",\"ts\":1}", 1, nil) // bytes, not text: see AppendJSON
	f(`{"device":"","device":"stb-SECRET-1","channel":"npo1","ts":1}`, 1, nil)

	// Not JSON at all.
	f("", 0, counts{event.Malformed: 1})
	f(" \n", 0, counts{event.Malformed: 1})
	f("stb-SECRET", 0, counts{event.Malformed: 1})
	f("\xF5RT", 0, counts{event.Malformed: 1})

	// Each field's rules.
	f(`{"channel":"npo1","ts":1}`, 0, counts{event.BadDevice: 1})
	f(obj(`,"device":""`), 0, counts{event.BadDevice: 1})
	f(obj(`,"device":"`+long+`"`), 0, counts{event.BadDevice: 1})
	f(obj(`,"device":null`), 0, counts{event.BadDevice: 1})
	f(obj(`,"device":12345`), 0, counts{event.Malformed: 1})
	f(obj(`,"device":["stb-SECRET"]`), 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET-1","ts":1}`, 0, counts{event.BadChannel: 1})
	f(obj(`,"channel":"npo 1"`), 0, counts{event.BadChannel: 1})
	f(obj(`,"channel":"`+long+`"`), 0, counts{event.BadChannel: 1})
	f(obj(`,"channel":"n\u00e9"`), 0, counts{event.BadChannel: 1})
	f(obj(`,"channel":true`), 0, counts{event.Malformed: 1})
	f(obj(`,"region":"ams/03"`), 0, counts{event.BadRegion: 1})
	f(obj(`,"region":"`+long+`"`), 0, counts{event.BadRegion: 1})
	f(obj(`,"region":{}`), 0, counts{event.Malformed: 1})
	f(obj(`,"kind":"off"`), 0, counts{event.BadKind: 1})
	f(obj(`,"kind":"Tune"`), 0, counts{event.BadKind: 1})
	f(obj(`,"kind":1`), 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET-1","channel":"npo1"}`, 0, counts{event.BadTS: 1})
	f(obj(`,"ts":null`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":0`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":-5`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":1.5`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":1764187200123.0`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":1e3`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":253402300800000`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":99999999999999999999`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":"1764187200123"`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":"2025-02-29T00:00:00Z"`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":"1969-12-31T23:59:59Z"`), 0, counts{event.BadTS: 1})
	f(obj(`,"ts":false`), 0, counts{event.Malformed: 1})
	// Several problems: counted once, under the first in Validate's order.
	f(`{"device":"","kind":"off","channel":"a b","ts":-1}`, 0, counts{event.BadDevice: 1})
	f(`{"device":"stb-SECRET","kind":7,"channel":"a b","ts":-1}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET","channel":"a b","region":"/","ts":"x"}`, 0, counts{event.BadChannel: 1})

	// Syntax errors: the message, or the rest of an array, is one rejection.
	f(`{"device":"stb-SECRET-1","channel":"npo1","ts":1764187200123`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET-1" "channel":"npo1","ts":1}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET-1","channel":"npo1","ts":1,}`, 0, counts{event.Malformed: 1})
	f(`{device:"stb-SECRET-1"}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET-1`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-SECRET\x01","channel":"npo1","ts":1}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-\x-SECRET","channel":"npo1","ts":1}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-\u12G4-SECRET","channel":"npo1","ts":1}`, 0, counts{event.Malformed: 1})
	f(`{"device":"stb-\u12`, 0, counts{event.Malformed: 1})
	f(obj(`,"ts":01`), 0, counts{event.Malformed: 1})
	f(obj(`,"ts":-`), 0, counts{event.Malformed: 1})
	f(obj(`,"ts":1.`), 0, counts{event.Malformed: 1})
	f(obj(`,"ts":1e`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":tru`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":nul`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":[1,]`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":{"a" 1}`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":{"a":1,}`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":{1:1}`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":[1}`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":"\q"`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":"\u00"`), 0, counts{event.Malformed: 1})
	f(obj(`,"x":"`+"\x1f"+`"`), 0, counts{event.Malformed: 1})
	f(obj(`,"deep":`+strings.Repeat("[", 513)+strings.Repeat("]", 513)), 0, counts{event.Malformed: 1})
	f(obj(`,"deep":`+strings.Repeat(`{"a":`, 100000)), 0, counts{event.Malformed: 1})
	f("[", 0, counts{event.Malformed: 1})
	f("[{", 0, counts{event.Malformed: 1})
	f("["+obj(""), 1, counts{event.Malformed: 1})
	f("["+obj("")+",", 1, counts{event.Malformed: 1})
	f("["+obj("")+",]", 1, counts{event.Malformed: 1})
	f("["+obj("")+" "+obj("")+"]", 1, counts{event.Malformed: 1})
	f("["+obj("")+`,{"device":"stb-SECRET-2",}, `+obj("")+"]", 1, counts{event.Malformed: 1})
	// Trailing data after the value.
	f(obj("")+" x", 1, counts{event.Malformed: 1})
	f(obj("")+obj(""), 1, counts{event.Malformed: 1})
	f("[]]", 0, counts{event.Malformed: 1})

	// Bad elements of an array cost only themselves.
	f("[1,\"stb-SECRET\",null,[],"+obj("")+"]", 1, counts{event.Malformed: 4})
	f("["+obj(`,"kind":"off"`)+","+obj("")+","+obj(`,"device":""`)+"]", 1, counts{event.BadKind: 1, event.BadDevice: 1})
}

func TestDecodeJSONStrings(t *testing.T) {
	f := func(jsonDevice, want string) {
		t.Helper()
		var d event.Decoder
		msg := `{"device":` + jsonDevice + `,"channel":"npo1","ts":1}`
		evs := checkDecode(t, &d, []byte(msg), 1, nil)
		if len(evs) == 1 && string(evs[0].Device) != want {
			t.Errorf("device %s: got %q, want %q", jsonDevice, evs[0].Device, want)
		}
	}
	f(`"plain"`, "plain")
	f(`"q\"b\\s\/"`, `q"b\s/`)
	f(`"\b\f\n\r\t"`, "\b\f\n\r\t")
	f(`"\u0041\u00e9\u20AC"`, "Aé€")
	f(`"\ud83d\ude00"`, "😀")
	f(`"a\ud83dz"`, "a\uFFFDz")           // lone high surrogate
	f(`"\ude00"`, "\uFFFD")               // lone low surrogate
	f(`"\ud83d\u0041"`, "\uFFFDA")        // high surrogate, then not a low one
	f(`"\ud83d\ud83d\ude00"`, "\uFFFD😀")  // high, then a pair
	f(`"é€😀 raw UTF-8"`, "é€😀 raw UTF-8") // kept as is
	f(`"`+strings.Repeat(`\n`, 64)+`"`, strings.Repeat("\n", 64))
}

// TestDecodeJSONScratch checks that unescaped strings in the decoder's
// scratch stay intact while later events of the message grow the scratch.
func TestDecodeJSONScratch(t *testing.T) {
	var want []event.Event
	for i := range 300 {
		dev := fmt.Appendf(nil, "dev\"%d\n%s", i, strings.Repeat("\\", i%50))
		want = append(want, event.Event{Device: dev, Channel: []byte("npo1"), TS: int64(i + 1)})
	}
	var d event.Decoder
	for range 2 {
		var rej event.Rejections
		got := d.Decode(nil, event.AppendJSONArray(nil, want), &rej)
		if diff := diffEvents(got, want); diff != "" || rej.Total() != 0 {
			t.Fatalf("%s (first rejection %v)", diff, rej.First)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	evs := workload(100, 7)
	frame := frameOf(t, evs, false)
	jsonArray := event.AppendJSONArray(nil, evs)

	f := func(d event.Decoder, msg []byte, wantEvents int, want counts) {
		t.Helper()
		checkDecode(t, &d, msg, wantEvents, want)
	}
	f(event.Decoder{MaxMessageBytes: len(frame)}, frame, 100, nil)
	f(event.Decoder{MaxMessageBytes: len(frame) - 1}, frame, 0, counts{event.TooLarge: 1})
	f(event.Decoder{MaxMessageBytes: len(jsonArray) - 1}, jsonArray, 0, counts{event.TooLarge: 1})
	f(event.Decoder{MaxBatchEvents: 100}, frame, 100, nil)
	f(event.Decoder{MaxBatchEvents: 99}, frame, 0, counts{event.TooLarge: 1})
	f(event.Decoder{MaxBatchEvents: 100}, jsonArray, 100, nil)
	f(event.Decoder{MaxBatchEvents: 60}, jsonArray, 60, counts{event.TooLarge: 1})

	// An S2 body may decode to 4×MaxMessageBytes, no more.
	var enc event.BatchEncoder
	ev := event.Event{Device: []byte("stb-1"), Channel: []byte("npo1"), TS: 1}
	for range 1000 {
		if err := enc.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	s2frame := enc.AppendFrame(nil, true)
	plain := enc.Size()
	f(event.Decoder{MaxMessageBytes: plain / 4}, s2frame, 1000, nil)
	f(event.Decoder{MaxMessageBytes: plain/4 - 10}, s2frame, 0, counts{event.TooLarge: 1})
}

// TestDecodeKeepsGoodEvents mixes each kind of bad event among good ones, in
// both formats: exactly the good ones come out, in order.
func TestDecodeKeepsGoodEvents(t *testing.T) {
	good := workload(50, 3)
	bad := []event.Event{
		{Device: nil, Channel: []byte("npo1"), TS: 1},
		{Device: []byte(secret), Channel: []byte("npo 1"), TS: 1},
		{Device: []byte(secret), Channel: []byte("npo1"), Region: []byte("a/b"), TS: 1},
		{Device: []byte(secret), Channel: []byte("npo1"), TS: 1, Kind: 3},
		{Device: []byte(secret), Channel: []byte("npo1"), TS: -1},
		{Device: []byte(secret), TS: 1, Kind: event.Heartbeat},
	}
	var mixed []event.Event
	for i := range good {
		mixed = append(mixed, good[i])
		if i%7 == 0 {
			mixed = append(mixed, bad[(i/7)%len(bad)])
		}
	}
	want := counts{}
	for _, b := range mixed {
		if err := b.Validate(); err != nil {
			want[err.Reason]++
		}
	}
	var d event.Decoder
	got := checkDecode(t, &d, event.AppendJSONArray(nil, mixed), len(good), want)
	if diff := diffEvents(got, good); diff != "" {
		t.Errorf("JSON: %s", diff)
	}
	// A BatchEncoder refuses bad events, so the frame is built by hand:
	// every bad one gets its own dictionary entries.
	fr := rawFrame{count: -1, base: uint64(good[0].TS)}
	for i := range mixed {
		e := &mixed[i]
		fr.channels = append(fr.channels, string(e.Channel))
		fr.regions = append(fr.regions, string(e.Region))
		fr.records = append(fr.records, rec(byte(e.Kind), -1, e.TS-good[0].TS, uint64(i), uint64(i), string(e.Device)))
	}
	for _, compress := range []byte{0, 1} {
		fr.flags = compress
		got := checkDecode(t, &d, fr.bytes(), len(good), want)
		if diff := diffEvents(got, good); diff != "" {
			t.Errorf("frame, flags %d: %s", compress, diff)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var d event.Decoder
	var enc event.BatchEncoder
	var frame []byte
	// Several batches through one encoder and one decoder: names remembered
	// across Reset must land in each batch's own dictionary.
	for seed := range uint64(5) {
		evs := append(workload(300, seed), goldenEvents()...)
		enc.Reset()
		for i := range evs {
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatalf("Add(event %d): %v", i, err)
			}
		}
		if enc.Len() != len(evs) {
			t.Fatalf("Len() = %d, want %d", enc.Len(), len(evs))
		}
		for _, compress := range []bool{false, true} {
			frame = enc.AppendFrame(frame[:0], compress)
			if !compress && enc.Size() != len(frame) {
				t.Errorf("Size() = %d, frame is %d bytes", enc.Size(), len(frame))
			}
			name := fmt.Sprintf("seed %d, compress %v", seed, compress)
			got := checkDecode(t, &d, frame, len(evs), nil)
			if diff := diffEvents(got, evs); diff != "" {
				t.Fatalf("%s: %s", name, diff)
			}
		}
		got := checkDecode(t, &d, event.AppendJSONArray(nil, evs), len(evs), nil)
		if diff := diffEvents(got, evs); diff != "" {
			t.Fatalf("JSON array, seed %d: %s", seed, diff)
		}
		for i := range evs {
			got := checkDecode(t, &d, event.AppendJSON(nil, &evs[i]), 1, nil)
			if diff := diffEvents(got, evs[i:i+1]); diff != "" {
				t.Fatalf("JSON event %d: %s", i, diff)
			}
		}
	}
}

// TestRFC3339 compares the decoder's RFC 3339 parser with time.Parse.
func TestRFC3339(t *testing.T) {
	f := func(ts string) {
		t.Helper()
		var d event.Decoder
		var rej event.Rejections
		evs := d.Decode(nil, []byte(`{"device":"d","channel":"c","ts":"`+ts+`"}`), &rej)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		switch {
		case err != nil || tm.UnixMilli() <= 0:
			if len(evs) != 0 || rej.Count[event.BadTS] != 1 {
				t.Errorf("%s: got %d events, %v; want a bad_ts rejection (time.Parse: %v)", ts, len(evs), rej.First, err)
			}
		case len(evs) != 1:
			t.Errorf("%s: rejected (%v), want %d", ts, rej.First, tm.UnixMilli())
		case evs[0].TS != tm.UnixMilli():
			t.Errorf("%s: got %d, want %d", ts, evs[0].TS, tm.UnixMilli())
		}
	}
	f("2025-11-26T20:00:00Z")
	f("2025-11-26T20:00:00.1Z")
	f("2025-11-26T20:00:00.12Z")
	f("2025-11-26T20:00:00.123Z")
	f("2025-11-26T20:00:00.123999999Z")
	f("2025-11-26T21:30:00.5+01:30")
	f("2025-11-26T00:00:00-23:59")
	f("1970-01-01T00:00:00.001Z")
	f("1970-01-01T00:00:00Z")
	f("1970-01-01T01:00:00.001+01:00")
	f("2000-02-29T12:00:00Z")
	f("2100-02-28T23:59:59Z")
	f("9999-12-31T23:59:59.999Z")
	f("0001-01-01T00:00:00Z")
	f("0000-01-01T00:00:00Z")
	f("2024-12-31T23:59:59+00:00")
	for _, bad := range []string{
		"2025-11-26", "2025-11-26T20:00:00", "2025-11-26T20:00Z", "2025-11-26 20:00:00Z",
		"2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z", "2025-11-31T00:00:00Z", "2025-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z", "2025-11-26T24:00:00Z", "2025-11-26T23:60:00Z", "2025-11-26T23:59:60Z",
		"2025-11-26T20:00:00.Z", "2025-11-26T20:00:00+0100", "2025-11-26T20:00:00ZZ", "+2025-11-26T20:00:00Z", "2025-1-26T20:00:00Z",
		"2025-11-26T20:00:00.1234567890Zx", "２０２５-11-26T20:00:00Z",
	} {
		f(bad)
	}
	// RFC 3339 §5.6 lets 'T' and 'Z' be lower case (time.Parse does not), and
	// limits offsets to 23:59 (time.Parse takes up to 24:60).
	var d event.Decoder
	checkDecode(t, &d, []byte(`{"device":"d","channel":"c","ts":"2025-11-26t20:00:00.123z"}`), 1, nil)
	checkDecode(t, &d, []byte(`{"device":"d","channel":"c","ts":"2025-11-26T20:00:00+24:00"}`), 0, counts{event.BadTS: 1})
	checkDecode(t, &d, []byte(`{"device":"d","channel":"c","ts":"2025-11-26T20:00:00+01:60"}`), 0, counts{event.BadTS: 1})
}

// TestNoAllocs: a warm decoder and encoder allocate nothing per message, in
// every format, and neither do rejections once First is set.
func TestNoAllocs(t *testing.T) {
	evs := append(workload(256, 1), goldenEvents()...)
	var enc event.BatchEncoder
	escaped := []byte(`[{"device":"a\"\u00e9\ud83d\ude00","channel":"npo1","ts":"2025-11-26T21:00:00.123+01:00","x":{"y":[1,2]}},` +
		`{"device":"b","channel":"c","ts":1,"kind":"off"}]`)
	msgs := map[string][]byte{
		"frame":        frameOf(t, evs, false),
		"frame-s2":     frameOf(t, evs, true),
		"json-array":   event.AppendJSONArray(nil, evs),
		"json-single":  event.AppendJSON(nil, &evs[0]),
		"json-escaped": escaped,
		"garbage":      []byte("nope"),
	}
	for name, msg := range msgs {
		var d event.Decoder
		rej := event.Rejections{First: &event.Error{}}
		dst := d.Decode(nil, msg, &rej)
		if n := testing.AllocsPerRun(100, func() { dst = d.Decode(dst[:0], msg, &rej) }); n != 0 {
			t.Errorf("Decode %s: %v allocs per message, want 0", name, n)
		}
	}
	var frame []byte
	if n := testing.AllocsPerRun(100, func() {
		enc.Reset()
		for i := range evs {
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		frame = enc.AppendFrame(frame[:0], true)
	}); n != 0 {
		t.Errorf("BatchEncoder: %v allocs per batch, want 0", n)
	}
	var js []byte
	if n := testing.AllocsPerRun(100, func() { js = event.AppendJSONArray(js[:0], evs) }); n != 0 {
		t.Errorf("AppendJSONArray: %v allocs, want 0", n)
	}
}

func TestRejections(t *testing.T) {
	var d event.Decoder
	var rej event.Rejections
	d.Decode(nil, []byte(`[{"device":"d"},{"device":"d","channel":"c","ts":1},1]`), &rej)
	d.Decode(nil, []byte(`x`), &rej)
	if got, want := rej.Total(), 3; got != want {
		t.Errorf("Total() = %d, want %d", got, want)
	}
	if got, want := rej.First.Error(), `bad_channel: event at offset 1: channel is empty for a tune event`; got != want {
		t.Errorf("First = %q, want %q", got, want)
	}
	rej.Reset()
	if rej.Total() != 0 || rej.First != nil {
		t.Errorf("after Reset: %+v", rej)
	}
	// A nil *Rejections is allowed.
	if evs := d.Decode(nil, []byte(`[{"device":"d","channel":"c","ts":1},2]`), nil); len(evs) != 1 {
		t.Errorf("got %d events, want 1", len(evs))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
