package event_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// rawFrame builds frames byte by byte, to make what BatchEncoder never writes.
type rawFrame struct {
	head     string // replaces magic, version, flags and count if set
	flags    byte
	count    int // -1: len(records)
	base     uint64
	channels []string
	regions  []string
	records  [][]byte
	tail     []byte
}

func (f rawFrame) bytes() []byte {
	var b []byte
	if f.head != "" {
		b = append(b, f.head...)
	} else {
		b = append(b, "\xF5RTV\x01"...)
		b = append(b, f.flags)
		n := f.count
		if n < 0 {
			n = len(f.records)
		}
		b = binary.AppendUvarint(b, uint64(n))
	}
	body := binary.AppendUvarint(nil, f.base)
	for _, dict := range [][]string{f.channels, f.regions} {
		body = binary.AppendUvarint(body, uint64(len(dict)))
		for _, name := range dict {
			body = append(body, byte(len(name)))
		}
		for _, name := range dict {
			body = append(body, name...)
		}
	}
	for _, r := range f.records {
		body = append(body, r...)
	}
	body = append(body, f.tail...)
	if f.flags&1 != 0 {
		body = s2.Encode(nil, body)
	}
	return append(b, body...)
}

// rec is a frame record; devLen < 0 means len(dev).
func rec(kind byte, devLen int, delta int64, ci, ri uint64, dev string) []byte {
	if devLen < 0 {
		devLen = len(dev)
	}
	b := []byte{kind, byte(devLen)}
	b = binary.AppendVarint(b, delta)
	b = binary.AppendUvarint(b, ci)
	b = binary.AppendUvarint(b, ri)
	return append(b, dev...)
}

func TestDecodeFrame(t *testing.T) {
	f := func(fr rawFrame, wantEvents int, want counts) {
		t.Helper()
		var d event.Decoder
		checkDecode(t, &d, fr.bytes(), wantEvents, want)
	}
	const base = 1764187200000
	ok := rec(0, -1, 0, 0, 0, "stb-SECRET-1")
	frame := func(records ...[]byte) rawFrame {
		return rawFrame{count: -1, base: base, channels: []string{"npo1", ""}, regions: []string{"", "ams-03"}, records: records}
	}
	long := strings.Repeat("x", 65)

	f(rawFrame{base: base}, 0, nil)
	f(frame(ok, rec(1, -1, -1000, 0, 1, "stb-SECRET-2"), rec(2, -1, 5, 1, 0, "stb-SECRET-3")), 3, nil)
	// Long varints take the careful path, and are fine.
	f(frame(rec(0, -1, 1<<40, 0, 0, "stb-SECRET-1"), rec(0, -1, -1<<20, 0, 1, "stb-SECRET-2")), 2, nil)
	big := frame(ok)
	for i := range 20000 {
		big.channels = append(big.channels, "ch"+strconv.Itoa(i))
	}
	big.records = append(big.records, rec(0, -1, 0, 19999, 1, "stb-SECRET-2"))
	big.count = len(big.channels)
	f(big, 2, counts{event.Malformed: 1}) // claims 20002 events; 2 follow, then truncation
	s2frame := frame(ok, ok)
	s2frame.flags = 1
	f(s2frame, 2, nil)

	// Headers that cannot be read: one rejection for the message.
	f(rawFrame{head: "\xF5RTV"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x00"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x02\x00\x01"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x02\x01"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x00\x80\x80\x10"}, 0, counts{event.TooLarge: 1}) // 262144 events
	f(rawFrame{head: "\xF5RTX\x01\x00\x00"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x01\x01" + "\xff\xff\xff\xff\x0f"}, 0, counts{event.TooLarge: 1}) // S2 bomb: 4 GiB
	f(rawFrame{head: "\xF5RTV\x01\x01\x01" + "\x05garbage"}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x01\x01" + "\xff\xff\xff\xff\xff\xff"}, 0, counts{event.Malformed: 1})

	// Framing errors: the claimed remaining events, at most what the bytes could hold.
	noBase := frame(ok, ok)
	noBase.base = 1 << 62
	f(noBase, 0, counts{event.Malformed: 2})
	tooMany := frame(ok)
	tooMany.channels = []string{"a", "b"}
	f(tooMany, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x00\x03", tail: []byte{0x80}}, 0, counts{event.Malformed: 1})
	f(rawFrame{head: "\xF5RTV\x01\x00\x03" + "\x01\x01\x05n"}, 0, counts{event.Malformed: 1})
	truncated := frame(ok, ok, ok[:len(ok)-1])
	truncated.count = 10
	f(truncated, 2, counts{event.Malformed: 4}) // 8 claimed, ceil(16 bytes / 5) could fit
	truncated.count = 3
	f(truncated, 2, counts{event.Malformed: 1})
	overflow := frame(ok, []byte{0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 'a', 'b', 'c', 'd', 'e'})
	f(overflow, 1, counts{event.Malformed: 1})
	trailing := frame(ok, ok)
	trailing.tail = []byte("xyz")
	f(trailing, 2, counts{event.Malformed: 1})

	// Bad records whose framing is intact cost only themselves.
	f(frame(ok, rec(0, -1, 0, 2, 0, "stb-SECRET-2"), ok), 2, counts{event.Malformed: 1})
	f(frame(ok, rec(0, -1, 0, 0, 2, "stb-SECRET-2"), ok), 2, counts{event.Malformed: 1})
	f(frame(ok, rec(0, -1, 0, 1<<40, 0, "stb-SECRET-2"), ok), 2, counts{event.Malformed: 1})
	f(frame(ok, rec(3, -1, 0, 0, 0, "stb-SECRET-2"), rec(255, -1, 0, 0, 0, "stb-SECRET-2"), ok), 2, counts{event.BadKind: 2})
	f(frame(ok, rec(0, -1, 0, 0, 0, ""), ok), 2, counts{event.BadDevice: 1})
	f(frame(ok, rec(0, -1, 0, 0, 0, secret+long), ok), 2, counts{event.BadDevice: 1})
	f(frame(ok, rec(0, -1, 0, 1, 0, "stb-SECRET-2"), rec(1, -1, 0, 1, 0, "stb-SECRET-2"), ok), 2, counts{event.BadChannel: 2})
	f(frame(ok, rec(0, -1, -base, 0, 0, "stb-SECRET-2"), rec(0, -1, 253402300800000-base, 0, 0, "stb-SECRET-2")), 1, counts{event.BadTS: 2})
	badNames := frame(ok, rec(0, -1, 0, 2, 0, "stb-SECRET-2"), rec(0, -1, 0, 3, 0, "stb-SECRET-2"), rec(0, -1, 0, 0, 2, "stb-SECRET-2"), rec(0, -1, 0, 0, 3, "stb-SECRET-2"))
	badNames.channels = append(badNames.channels, "npo 1", long)
	badNames.regions = append(badNames.regions, "ams/03", long)
	f(badNames, 1, counts{event.BadChannel: 2, event.BadRegion: 2})
	// Several problems: counted once, under the first in Validate's order.
	f(frame(ok, ok, rec(9, 0, -base, 1, 0, "")), 2, counts{event.BadDevice: 1})
}

// TestBatchEncoderForgets makes the encoder remember more names than it
// keeps across Reset; batches must stay right.
func TestBatchEncoderForgets(t *testing.T) {
	var d event.Decoder
	var enc event.BatchEncoder
	for batch := range 8 { // 8 × 4000 names: past maxRemembered, so Reset forgets
		enc.Reset()
		var evs []event.Event
		for i := range 5000 {
			evs = append(evs, event.Event{
				Device:  []byte("stb-1"),
				Channel: fmt.Appendf(nil, "c%d-%d", batch, i%(4000+batch)),
				Region:  fmt.Appendf(nil, "r%d", i%3),
				TS:      int64(1 + i),
			})
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		got := checkDecode(t, &d, enc.AppendFrame(nil, false), len(evs), nil)
		if diff := diffEvents(got, evs); diff != "" {
			t.Fatalf("batch %d: %s", batch, diff)
		}
	}
}

func TestBatchEncoderAdd(t *testing.T) {
	var enc event.BatchEncoder
	first := event.Event{Device: []byte("stb-1"), Channel: []byte("npo1"), TS: 1764187200000}
	if err := enc.Add(&first); err != nil {
		t.Fatal(err)
	}
	before := enc.AppendFrame(nil, false)
	f := func(ev event.Event) {
		t.Helper()
		err := enc.Add(&ev)
		want := ev.Validate()
		if want == nil {
			t.Fatalf("test event is valid")
		}
		if e, ok := err.(*event.Error); !ok || *e != *want {
			t.Errorf("Add: got %v, want %v", err, want)
		}
		if after := enc.AppendFrame(nil, false); !bytes.Equal(after, before) || enc.Len() != 1 || enc.Size() != len(before) {
			t.Errorf("a rejected Add changed the batch")
		}
	}
	long := []byte(strings.Repeat("x", 65))
	f(event.Event{Channel: []byte("npo1"), TS: 1})
	f(event.Event{Device: long, Channel: []byte("npo1"), TS: 1})
	f(event.Event{Device: []byte("d"), Channel: []byte("npo1"), TS: 1, Kind: 3})
	f(event.Event{Device: []byte("d"), TS: 1})
	f(event.Event{Device: []byte("d"), Channel: long, TS: 1})
	f(event.Event{Device: []byte("d"), Channel: []byte("new channel"), TS: 1})
	f(event.Event{Device: []byte("d"), Channel: []byte("new-channel"), Region: []byte("new/region"), TS: 1})
	f(event.Event{Device: []byte("d"), Channel: []byte("npo1"), Region: long, TS: 1})
	f(event.Event{Device: []byte("d"), Channel: []byte("npo1"), TS: 0})
	f(event.Event{Device: []byte("d"), Channel: []byte("npo1"), TS: 253402300800000})
	f(event.Event{Device: nil, Channel: []byte("bad channel"), Kind: 9, TS: -1})

	// The batch is full at DefaultMaxBatchEvents.
	enc.Reset()
	for i := range event.DefaultMaxBatchEvents {
		if err := enc.Add(&first); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if err := enc.Add(&first); event.ReasonOf(err) != event.TooLarge {
		t.Errorf("Add to a full batch: got %v, want a too_large error", err)
	}
	var d event.Decoder
	checkDecode(t, &d, enc.AppendFrame(nil, true), event.DefaultMaxBatchEvents, nil)
}

// TestBatchEncoderAddKeyed checks that AddKeyed writes the frames and
// returns the errors of Add whatever the keys: right, wrong, reused for
// another name, negative or too large; over names of every length class the
// name table distinguishes, and past the names an encoder remembers.
func TestBatchEncoderAddKeyed(t *testing.T) {
	long := strings.Repeat("x", 40)
	names := []string{"", "a", "ab", "abc", "ch-1", "ch-01", "ch-001", "channel", "channel8", "channel-9",
		"sixteen-bytes-16", "seventeen-bytes17", long, long + "y", "x" + long, "bad name", strings.Repeat("z", 65)}
	type keyed struct {
		ev     event.Event
		ch, rg int
	}
	f := func(name string, batches [][]keyed) {
		t.Helper()
		var plain, withKeys event.BatchEncoder
		for b, batch := range batches {
			for i := range batch {
				k := &batch[i]
				errPlain, errKeyed := plain.Add(&k.ev), withKeys.AddKeyed(&k.ev, k.ch, k.rg)
				if fmt.Sprint(errPlain) != fmt.Sprint(errKeyed) {
					t.Fatalf("%s: batch %d event %d (keys %d, %d): AddKeyed: %v; Add: %v", name, b, i, k.ch, k.rg, errKeyed, errPlain)
				}
			}
			for _, compress := range []bool{false, true} {
				if got, want := withKeys.AppendFrame(nil, compress), plain.AppendFrame(nil, compress); !bytes.Equal(got, want) {
					t.Fatalf("%s: batch %d: AddKeyed's frame differs from Add's\ngot  %x\nwant %x", name, b, got, want)
				}
			}
			if withKeys.Len() != plain.Len() || withKeys.Size() != plain.Size() {
				t.Fatalf("%s: batch %d: Len, Size %d, %d; Add's %d, %d", name, b, withKeys.Len(), withKeys.Size(), plain.Len(), plain.Size())
			}
			plain.Reset()
			withKeys.Reset()
		}
	}
	ev := func(i int, ch, rg string) event.Event {
		kind := event.Kind(i % 3)
		return event.Event{Device: fmt.Appendf(nil, "stb-%0*d", 1+i%20, i), Channel: []byte(ch), Region: []byte(rg),
			TS: 1764187200000 + int64(i*37%5000) - 2500, Kind: kind}
	}
	gen := func(keyOf func(i, name int) int) [][]keyed {
		var batches [][]keyed
		for b := range 6 {
			var batch []keyed
			for i := range 300 {
				c, r := (i*7+b)%len(names), (i*5+b*3)%len(names)
				batch = append(batch, keyed{ev(i, names[c], names[r]), keyOf(i, c), keyOf(i, r+100)})
			}
			batches = append(batches, batch)
		}
		return batches
	}
	f("right keys", gen(func(_, name int) int { return name }))
	f("keys at the limit", gen(func(_, name int) int { return event.MaxNameKey - 200 + name }))
	f("no keys", gen(func(int, int) int { return -1 }))
	f("keys past the limit", gen(func(_, name int) int { return event.MaxNameKey + name }))
	f("one key for all", gen(func(int, int) int { return 3 }))
	f("keys that change names", gen(func(i, name int) int { return (i + name) % 5 }))

	// Past the names an encoder remembers (it forgets them at Reset): the
	// keys must not point at forgotten names.
	var many [][]keyed
	for b := range 5 {
		var batch []keyed
		for i := range 6000 {
			batch = append(batch, keyed{ev(i, fmt.Sprintf("c%d-%d", b%2, i), "r1"), i, 0})
		}
		many = append(many, batch)
	}
	f("forgotten names", many)
}

// TestBatchEncoderAddIndexed checks that ChannelIndex, RegionIndex and
// AddIndexed write the frames of Add and return its errors: over names of
// every length class, the empty channel and region, keys right, wrong and
// absent, and past the names an encoder remembers; and that a bad index or
// the empty channel on a tune is refused with the batch unchanged.
func TestBatchEncoderAddIndexed(t *testing.T) {
	long := strings.Repeat("x", 40)
	names := []string{"", "a", "ab", "abc", "ch-1", "ch-01", "ch-001", "channel", "channel8", "channel-9",
		"sixteen-bytes-16", "seventeen-bytes17", long, long + "y", "bad name", strings.Repeat("z", 65)}
	var plain, indexed event.BatchEncoder
	add := func(ev *event.Event, chKey, rgKey int) {
		t.Helper()
		errPlain := plain.Add(ev)
		ci, errCh := indexed.ChannelIndex(ev.Channel, chKey)
		ri, errRg := indexed.RegionIndex(ev.Region, rgKey)
		var errIdx error
		switch {
		case errCh != nil:
			errIdx = errCh
		case errRg != nil:
			errIdx = errRg
		default:
			errIdx = indexed.AddIndexed(ev.Kind, ev.TS, ev.Device, ci, ri)
		}
		if fmt.Sprint(errPlain) != fmt.Sprint(errIdx) {
			t.Fatalf("event %s %q %q %d %s (keys %d, %d): indexed: %v; Add: %v",
				ev.Device, ev.Channel, ev.Region, ev.TS, ev.Kind, chKey, rgKey, errIdx, errPlain)
		}
	}
	same := func(what string) {
		t.Helper()
		// A name refused by Add is in neither dictionary; a valid name of
		// a refused event is in indexed's only: compare where none was.
		for _, compress := range []bool{false, true} {
			if got, want := indexed.AppendFrame(nil, compress), plain.AppendFrame(nil, compress); !bytes.Equal(got, want) {
				t.Fatalf("%s: AddIndexed's frame differs from Add's\ngot  %x\nwant %x", what, got, want)
			}
		}
		if indexed.Len() != plain.Len() || indexed.Size() != plain.Size() {
			t.Fatalf("%s: Len, Size %d, %d; Add's %d, %d", what, indexed.Len(), indexed.Size(), plain.Len(), plain.Size())
		}
		plain.Reset()
		indexed.Reset()
	}
	for b := range 6 {
		for i := range 300 {
			c, r := (i*7+b)%len(names), (i*5+b*3)%len(names)
			ev := event.Event{Device: fmt.Appendf(nil, "stb-%0*d", 1+i%20, i), Channel: []byte(names[c]),
				Region: []byte(names[r]), TS: 1764187200000 + int64(i*37%12000) - 6000, Kind: event.Kind(i % 3)}
			if ev.Validate() != nil {
				continue // below: a refused event leaves its valid names in indexed's dictionaries
			}
			switch b % 3 {
			case 0:
				add(&ev, c, r+100)
			case 1:
				add(&ev, -1, -1)
			case 2:
				add(&ev, (i+c)%5, 3) // keys that change names
			}
		}
		same(fmt.Sprintf("batch %d", b))
	}
	// Past the names an encoder remembers (it forgets them at Reset), and
	// indexes of more than one byte.
	for b := range 5 {
		for i := range 6000 {
			add(&event.Event{Device: fmt.Appendf(nil, "stb-%0*d", 1+i%12, i), Channel: fmt.Appendf(nil, "c%d-%d", b%2, i),
				Region: fmt.Appendf(nil, "r%d", i/2%300), TS: int64(1 + i)}, i, i/2%300)
		}
		same(fmt.Sprintf("forgetting batch %d", b))
	}

	// Errors: Add's for what Add checks, with the batch unchanged.
	ok := event.Event{Device: []byte("stb-1"), Channel: []byte("npo1"), TS: 1764187200000}
	add(&ok, 1, 1)
	before := indexed.AppendFrame(nil, false)
	longDev := []byte(strings.Repeat("d", 65))
	for _, ev := range []event.Event{
		{Channel: []byte("npo1"), TS: 1},
		{Device: longDev, Channel: []byte("npo1"), TS: 1},
		{Device: []byte("d"), Channel: []byte("npo1"), TS: 1, Kind: 3},
		{Device: []byte("d"), Channel: []byte("npo1"), TS: 0},
		{Device: []byte("d"), Channel: []byte("npo1"), TS: 253402300800000},
		{Device: []byte("d"), Channel: []byte("new channel"), TS: 1},
		{Device: []byte("d"), Channel: []byte("npo1"), Region: []byte(long + long), TS: 1},
		{Device: []byte("d"), Channel: []byte("npo1"), Region: []byte("r/1"), TS: 1},
	} {
		add(&ev, -1, -1)
	}
	f := func(kind event.Kind, channel, region int, want string) {
		t.Helper()
		err := indexed.AddIndexed(kind, 1764187200000, []byte("stb-2"), channel, region)
		if err == nil || err.Error() != want {
			t.Errorf("AddIndexed(%s, channel %d, region %d) = %v, want %s", kind, channel, region, err, want)
		}
		if got := indexed.AppendFrame(nil, false); !bytes.Equal(got, before) || indexed.Len() != 1 {
			t.Errorf("a refused AddIndexed changed the batch")
		}
	}
	empty, _ := indexed.ChannelIndex(nil, -1)
	before = indexed.AppendFrame(nil, false) // the dictionary has "" now
	f(event.Tune, 7, 0, "bad_channel: channel index 7 is not in the batch's dictionary of 2")
	f(event.Tune, -1, 0, "bad_channel: channel index -1 is not in the batch's dictionary of 2")
	f(event.Tune, 0, 1, "bad_region: region index 1 is not in the batch's dictionary of 1")
	f(event.Heartbeat, empty, 0, "bad_channel: channel is empty for a heartbeat event")
	if err := indexed.AddIndexed(event.Standby, 1764187200000, []byte("stb-2"), empty, 0); err != nil {
		t.Errorf("AddIndexed of a standby with the empty channel: %v", err)
	}

	// The batch is full at DefaultMaxBatchEvents.
	indexed.Reset()
	ci, _ := indexed.ChannelIndex([]byte("npo1"), -1)
	ri, _ := indexed.RegionIndex(nil, -1)
	for i := range event.DefaultMaxBatchEvents {
		if err := indexed.AddIndexed(event.Tune, 1, []byte("stb-1"), ci, ri); err != nil {
			t.Fatalf("AddIndexed %d: %v", i, err)
		}
	}
	if err := indexed.AddIndexed(event.Tune, 1, []byte("stb-1"), ci, ri); event.ReasonOf(err) != event.TooLarge {
		t.Errorf("AddIndexed to a full batch: got %v, want a too_large error", err)
	}
}

// TestBatchEncoderAddIndexedEvents checks that AddIndexedEvents writes the
// frame of AddIndexed of each event, and stops at the first bad one with
// the events before it in the batch.
func TestBatchEncoderAddIndexedEvents(t *testing.T) {
	var one, many event.BatchEncoder
	var evs []event.IndexedEvent
	for _, enc := range []*event.BatchEncoder{&one, &many} {
		for i := range 40 {
			c, err := enc.ChannelIndex(fmt.Appendf(nil, "ch-%d", i%17), i%17)
			if err != nil {
				t.Fatal(err)
			}
			r, err := enc.RegionIndex(fmt.Appendf(nil, "r-%d", i%150), -1)
			if err != nil {
				t.Fatal(err)
			}
			ev := event.IndexedEvent{TS: 1764187200000 + int64(i*977%20000), Device: fmt.Appendf(nil, "stb-%0*d", 1+i%20, i),
				Channel: int32(c), Region: int32(r), Kind: event.Kind(i % 3)}
			if enc == &one {
				if err := one.AddIndexed(ev.Kind, ev.TS, ev.Device, int(ev.Channel), int(ev.Region)); err != nil {
					t.Fatalf("AddIndexed %d: %v", i, err)
				}
			} else {
				evs = append(evs, ev)
			}
		}
	}
	if n, err := many.AddIndexedEvents(evs); n != len(evs) || err != nil {
		t.Fatalf("AddIndexedEvents = %d, %v; want %d, nil", n, err, len(evs))
	}
	want := one.AppendFrame(nil, false)
	if got := many.AppendFrame(nil, false); !bytes.Equal(got, want) {
		t.Fatalf("AddIndexedEvents' frame differs from AddIndexed's\ngot  %x\nwant %x", got, want)
	}

	// A bad event stops it: the events before it stay, the rest are not added.
	many.Reset()
	bad := append([]event.IndexedEvent(nil), evs[:5]...)
	bad = append(bad, event.IndexedEvent{TS: 1, Device: []byte("d"), Channel: 99})
	bad = append(bad, evs[5:]...)
	one.Reset()
	many.Reset()
	for _, enc := range []*event.BatchEncoder{&one, &many} {
		for i := range 40 {
			enc.ChannelIndex(fmt.Appendf(nil, "ch-%d", i%17), i%17)
			enc.RegionIndex(fmt.Appendf(nil, "r-%d", i%150), -1)
		}
	}
	for _, ev := range evs[:5] {
		one.AddIndexed(ev.Kind, ev.TS, ev.Device, int(ev.Channel), int(ev.Region))
	}
	n, err := many.AddIndexedEvents(bad)
	if n != 5 || err == nil || err.Error() != "bad_channel: channel index 99 is not in the batch's dictionary of 17" {
		t.Fatalf("AddIndexedEvents with event 5 bad = %d, %v; want 5 and its error", n, err)
	}
	if got, want := many.AppendFrame(nil, false), one.AppendFrame(nil, false); !bytes.Equal(got, want) || many.Len() != 5 {
		t.Errorf("after a bad event: %d events, frame differs %v; want the 5 before it", many.Len(), !bytes.Equal(got, want))
	}
}
