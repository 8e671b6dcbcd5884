package event

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// indexedNames returns the dictionaries of the indexed tests: 132 names
// each, so that indexes of one and two bytes exist, with the empty channel
// at index 3 and the empty region at index 0.
func indexedNames() (channels, regions [][]byte) { return indexedChannels, indexedRegions }

var indexedChannels, indexedRegions = func() (channels, regions [][]byte) {
	for i := range 132 {
		channels = append(channels, fmt.Appendf(nil, "ch-%03d", i))
		regions = append(regions, fmt.Appendf(nil, "r-%d", i))
	}
	channels[3], regions[0] = nil, nil
	return channels, regions
}()

// indexedEncoder returns an encoder whose dictionaries hold names, in
// order.
func indexedEncoder(t testing.TB, channels, regions [][]byte) *BatchEncoder {
	t.Helper()
	var e BatchEncoder
	for i, name := range channels {
		if got, err := e.ChannelIndex(name, i); got != i || err != nil {
			t.Fatalf("ChannelIndex(%q) = %d, %v; want %d", name, got, err, i)
		}
	}
	for i, name := range regions {
		if got, err := e.RegionIndex(name, -1); got != i || err != nil {
			t.Fatalf("RegionIndex(%q) = %d, %v; want %d", name, got, err, i)
		}
	}
	return &e
}

// device returns a device of n bytes that differ from those of other
// events.
func device(n, seed int) []byte {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte('a' + (i+seed)%26)
	}
	return d
}

// sameIndexed adds evs to encoders of the same dictionaries by
// AddIndexedEvents, by AddIndexed of each (until one is refused), and, for
// the events whose indexes are in the dictionaries, by Add of each with
// its names; it fails unless all three take the same events and make the
// same frame, and the first two return the same error.
func sameIndexed(t *testing.T, what string, evs []IndexedEvent) {
	t.Helper()
	channels, regions := indexedNames()
	batch, one, named := indexedEncoder(t, channels, regions), indexedEncoder(t, channels, regions), indexedEncoder(t, channels, regions)
	n, err := batch.AddIndexedEvents(evs)
	var oneErr error
	k := 0
	for ; k < len(evs); k++ {
		ev := &evs[k]
		if oneErr = one.AddIndexed(ev.Kind, ev.TS, ev.Device, int(ev.Channel), int(ev.Region)); oneErr != nil {
			break
		}
	}
	if n != k || fmt.Sprint(err) != fmt.Sprint(oneErr) {
		t.Fatalf("%s: AddIndexedEvents = %d, %v; AddIndexed took %d, then %v", what, n, err, k, oneErr)
	}
	got, want := batch.AppendFrame(nil, false), one.AppendFrame(nil, false)
	if !bytes.Equal(got, want) || batch.Len() != one.Len() || batch.Size() != one.Size() {
		t.Fatalf("%s: AddIndexedEvents' frame differs from AddIndexed's\ngot  %x\nwant %x", what, got, want)
	}
	for i := range evs[:n] {
		ev := &evs[i]
		e := Event{Device: ev.Device, Channel: channels[ev.Channel], Region: regions[ev.Region], TS: ev.TS, Kind: ev.Kind}
		if err := named.Add(&e); err != nil {
			t.Fatalf("%s: Add of event %d, which AddIndexed took: %v", what, i, err)
		}
	}
	if named := named.AppendFrame(nil, false); !bytes.Equal(got, named) {
		t.Fatalf("%s: AddIndexedEvents' frame differs from Add's\ngot  %x\nwant %x", what, got, named)
	}
}

// TestAddIndexedEventsUsual checks AddIndexedEvents' usual path at its
// edges: ts deltas of one, two and three bytes either side of the base,
// batches at either end of the valid ts, indexes of one and two bytes and
// outside the dictionaries, devices of every length class, every kind and
// the empty channel. An event after the batch's first must take the usual
// path exactly when the table says so, and the frame and error must be
// AddIndexed's of each event and the frame Add's.
func TestAddIndexedEventsUsual(t *testing.T) {
	const mid = 1764187200000
	f := func(what string, base, ts int64, kind Kind, devLen int, ch, rg int32, usual bool) {
		t.Helper()
		first := IndexedEvent{TS: base, Device: device(12, 0), Channel: 1, Region: 1}
		ev := IndexedEvent{TS: ts, Device: device(devLen, 1), Channel: ch, Region: rg, Kind: kind}
		sameIndexed(t, what, []IndexedEvent{first, ev, first})

		channels, regions := indexedNames()
		e := indexedEncoder(t, channels, regions)
		if err := e.AddIndexed(first.Kind, first.TS, first.Device, 1, 1); err != nil {
			t.Fatalf("%s: first event: %v", what, err)
		}
		if got, want := e.addUsual([]IndexedEvent{ev}), map[bool]int{true: 1}[usual]; got != want {
			t.Errorf("%s: addUsual took %d events, want %d", what, got, want)
		}
	}
	// ts: a zigzag delta of 127 is the largest of one byte, 16383 of two.
	f("delta 0", mid, mid, Tune, 12, 1, 1, true)
	f("delta 63", mid, mid+63, Tune, 12, 1, 1, true)
	f("delta -64", mid, mid-64, Tune, 12, 1, 1, true)
	f("delta 64", mid, mid+64, Tune, 12, 1, 1, true)
	f("delta -65", mid, mid-65, Tune, 12, 1, 1, true)
	f("delta 8191", mid, mid+8191, Tune, 12, 1, 1, true)
	f("delta -8192", mid, mid-8192, Tune, 12, 1, 1, true)
	f("delta 8192", mid, mid+8192, Tune, 12, 1, 1, false)
	f("delta -8193", mid, mid-8193, Tune, 12, 1, 1, false)
	f("delta -2^40", mid, mid-1<<40, Tune, 12, 1, 1, false)
	f("ts MaxInt64", mid, math.MaxInt64, Tune, 12, 1, 1, false)
	f("ts MinInt64", mid, math.MinInt64, Tune, 12, 1, 1, false)
	f("ts MinInt64 from base 8193", 8193, math.MinInt64, Tune, 12, 1, 1, false)
	// Batches at either end of the valid ts: the usual path takes only
	// batches whose deltas of two bytes are all valid ts.
	f("ts 1 from base 8193", 8193, 1, Tune, 12, 1, 1, true)
	f("ts 0 from base 8193", 8193, 0, Tune, 12, 1, 1, false)
	f("base 8192", 8192, 8192, Tune, 12, 1, 1, false)
	f("ts 0 from base 8192", 8192, 0, Tune, 12, 1, 1, false)
	f("ts max from base max-8191", maxTS-8191, maxTS, Tune, 12, 1, 1, true)
	f("ts max+1 from base max-8191", maxTS-8191, maxTS+1, Tune, 12, 1, 1, false)
	f("ts max from base max-8190", maxTS-8190, maxTS, Tune, 12, 1, 1, false)
	f("ts max+1 from base max-8190", maxTS-8190, maxTS+1, Tune, 12, 1, 1, false)
	f("ts max+1 from base max", maxTS, maxTS+1, Tune, 12, 1, 1, false)
	// Indexes: 127 is the largest of one byte; 132 is outside.
	f("channel 127", mid, mid+5, Tune, 12, 127, 1, true)
	f("channel 128", mid, mid+5, Tune, 12, 128, 1, false)
	f("channel 131", mid, mid+5, Tune, 12, 131, 1, false)
	f("channel 132", mid, mid+5, Tune, 12, 132, 1, false)
	f("channel -1", mid, mid+5, Tune, 12, -1, 1, false)
	f("region 127", mid, mid+5, Tune, 12, 1, 127, true)
	f("region 128", mid, mid+5, Tune, 12, 1, 128, false)
	f("region 132", mid, mid+5, Tune, 12, 1, 132, false)
	f("region -1", mid, mid+5, Tune, 12, 1, -1, false)
	f("region empty", mid, mid+5, Tune, 12, 1, 0, true)
	f("indexes MaxInt32", mid, mid+5, Tune, 12, math.MaxInt32, math.MaxInt32, false)
	f("indexes MinInt32", mid, mid+5, Tune, 12, math.MinInt32, math.MinInt32, false)
	// Devices: 8 to 16 bytes are usual; 1 to 64 valid.
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 64, 65} {
		f(fmt.Sprintf("device of %d bytes", n), mid, mid-100, Heartbeat, n, 2, 2, n >= 8 && n <= 16)
	}
	// Kinds, and the empty channel, only for a standby.
	f("heartbeat", mid, mid+5, Heartbeat, 12, 1, 1, true)
	f("standby", mid, mid+5, Standby, 12, 1, 1, true)
	f("kind 3", mid, mid+5, Kind(3), 12, 1, 1, false)
	f("kind 255", mid, mid+5, Kind(255), 12, 1, 1, false)
	f("standby, empty channel", mid, mid+5, Standby, 12, 3, 1, true)
	f("tune, empty channel", mid, mid+5, Tune, 12, 3, 1, false)
	f("heartbeat, empty channel", mid, mid+5, Heartbeat, 12, 3, 1, false)
	f("kind 3, empty channel", mid, mid+5, Kind(3), 12, 3, 1, false)
	// Several problems: the error is AddIndexed's, whichever it names.
	f("bad device and kind", mid, mid+5, Kind(9), 0, 1, 1, false)
	f("bad ts and channel", mid, -1, Tune, 12, 200, 1, false)
}

// TestAddIndexedEventsFull checks that AddIndexedEvents stops at
// DefaultMaxBatchEvents with AddIndexed's too_large error, the events
// before it added by the usual path.
func TestAddIndexedEventsFull(t *testing.T) {
	channels, regions := indexedNames()
	evs := make([]IndexedEvent, DefaultMaxBatchEvents+3)
	for i := range evs {
		ch, kind := int32(i%130), Kind(i%3)
		if ch == 3 {
			kind = Standby // the empty channel
		}
		evs[i] = IndexedEvent{TS: 1764187200000 + int64(i%16000), Device: device(8+i%9, i), Channel: ch, Region: int32(i % 131), Kind: kind}
	}
	sameIndexed(t, "a full batch", evs)
	e := indexedEncoder(t, channels, regions)
	if n, err := e.AddIndexedEvents(evs[:10]); n != 10 || err != nil {
		t.Fatalf("AddIndexedEvents of 10 = %d, %v", n, err)
	}
	n, err := e.AddIndexedEvents(evs)
	if n != DefaultMaxBatchEvents-10 || ReasonOf(err) != TooLarge || e.Len() != DefaultMaxBatchEvents {
		t.Errorf("AddIndexedEvents past the limit = %d, %v with %d events; want %d, too_large",
			n, err, e.Len(), DefaultMaxBatchEvents-10)
	}
}

// TestAddIndexedEventsAllocatesNothing checks that a warm encoder writes a
// batch by AddIndexedEvents without allocating.
func TestAddIndexedEventsAllocatesNothing(t *testing.T) {
	channels, regions := indexedNames()
	e := indexedEncoder(t, channels, regions)
	evs := make([]IndexedEvent, 256)
	for i := range evs {
		evs[i] = IndexedEvent{TS: 1764187200000 + int64(i*37), Device: device(12, i), Channel: int32(4 + i%36), Region: int32(i % 20), Kind: Kind(i % 3)}
	}
	var frame []byte
	run := func() {
		e.Reset()
		for i, name := range channels[:40] {
			e.ChannelIndex(name, i)
		}
		for _, name := range regions[:20] {
			e.RegionIndex(name, -1)
		}
		if _, err := e.AddIndexedEvents(evs); err != nil {
			t.Fatal(err)
		}
		frame = e.AppendFrame(frame[:0], false)
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("a batch of %d events allocates %.1f times", len(evs), allocs)
	}
}

// FuzzAddIndexedEvents checks that AddIndexedEvents writes the frame and
// returns the error of AddIndexed of each event, and the frame of Add of
// each with its names, for events made from the input: 7 bytes each
// (kind, ts delta, channel, region, device length), the first also
// choosing the batch's base ts.
func FuzzAddIndexedEvents(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 1, 12})
	f.Add([]byte{1, 0, 0, 0, 1, 1, 12, 1, 0x7f, 0, 127, 127, 16, 2, 0x80, 0, 3, 0, 8, 0, 0xff, 0x7f, 128, 1, 7})
	f.Add([]byte{2, 0, 0, 5, 3, 0, 12, 2, 0, 0x20, 3, 0, 12, 0, 0, 0xe0, 3, 0, 17, 3, 1, 0, 1, 1, 12})
	f.Add([]byte{3, 0, 0, 0, 1, 1, 12, 0, 0xff, 0x1f, 1, 1, 12, 0, 0, 0xe0, 1, 1, 12, 0, 1, 0xe0, 1, 1, 65})
	f.Fuzz(fuzzIndexed)
}

func fuzzIndexed(t *testing.T, data []byte) {
	{
		bases := []int64{1764187200000, 1, 8192, 8193, 20000, maxTS - 8191, maxTS - 8190, maxTS}
		kinds := []Kind{Tune, Heartbeat, Standby, Tune, Heartbeat, Standby, 3, 255}
		var evs []IndexedEvent
		var base int64
		for i := 0; i+7 <= len(data) && len(evs) < 300; i += 7 { // a short input minimizes fast
			b := data[i : i+7]
			if i == 0 {
				base = bases[b[0]>>3%uint8(len(bases))]
			}
			delta := int64(int16(binary.LittleEndian.Uint16(b[1:])))
			if b[0]&4 != 0 {
				delta *= 3 // past the deltas of two bytes
			}
			evs = append(evs, IndexedEvent{
				TS: base + delta, Kind: kinds[b[0]%uint8(len(kinds))],
				Channel: int32(b[3]) - 2, Region: int32(b[4]) - 2, // -2 .. 253: outside the dictionaries both ways
				Device: device(int(b[5]%70), i),
			})
			if b[6]&1 != 0 && len(evs) > 1 {
				evs[len(evs)-1].Device = device(8+int(b[6]>>1)%9, i) // a usual device more often
			}
		}
		sameIndexed(t, fmt.Sprintf("%d events", len(evs)), evs)
	}
}

// TestAppendFrameWritesNoFurther checks that AppendFrame changes no byte
// of dst's capacity past the frame it appends, whatever names end the
// dictionaries (a short name is written as a word of 8 bytes).
func TestAppendFrameWritesNoFurther(t *testing.T) {
	for last := range 20 {
		for _, events := range []int{0, 1} {
			var e BatchEncoder
			for i := range 20 {
				e.ChannelIndex(bytes.Repeat([]byte{'c'}, 1+(last+i+1)%20), -1)
				e.RegionIndex(bytes.Repeat([]byte{'r'}, (last+i+1)%20), -1)
			}
			for range events {
				if err := e.AddIndexed(Standby, 1764187200000, []byte("stb-1"), 0, 0); err != nil {
					t.Fatal(err)
				}
			}
			buf := bytes.Repeat([]byte{0xaa}, 4096)
			frame := e.AppendFrame(buf[:3], false)
			if want := e.AppendFrame([]byte{0xaa, 0xaa, 0xaa}, false); !bytes.Equal(frame, want) {
				t.Fatalf("last name %d, %d events: the frame depends on dst's capacity", last, events)
			}
			for i, b := range buf[len(frame):] {
				if b != 0xaa {
					t.Errorf("last name %d, %d events: byte %d past the frame changed to %#x", last, events, i, b)
					break
				}
			}
		}
	}
}

// keyedBatch is one batch of TestAddChannelsMatchesChannelIndex: names
// given by ChannelIndex before (pre), then the keys of channels (into
// table) and of regions (into the region table).
type keyedBatch struct {
	table             [][]byte
	pre, ch, reg      []uint16
	wantCh, wantRegOK int // keys AddChannels and AddRegions take
}

// keyedTable returns n channel names, "" at key 0, then "ch-1", "ch-2", ….
func keyedTable(n int, format string) [][]byte {
	table := make([][]byte, n)
	for i := 1; i < n; i++ {
		table[i] = fmt.Appendf(nil, format, i)
	}
	return table
}

func seq(from, to int) []uint16 {
	var keys []uint16
	for k := from; k < to; k++ {
		keys = append(keys, uint16(k))
	}
	return keys
}

// TestAddChannelsMatchesChannelIndex checks that AddChannels and
// AddRegions leave the encoder as ChannelIndex and RegionIndex of each
// key in turn do (the same frame, dictionaries and indexes, across Reset),
// and return the error of the first name they refuse.
func TestAddChannelsMatchesChannelIndex(t *testing.T) {
	short := keyedTable(64, "ch-%d")
	other := keyedTable(64, "other-%d") // the same keys for other names
	long := keyedTable(64, "a-channel-name-longer-than-16-%d")
	bad := keyedTable(8, "ch-%d")
	bad[3], bad[5] = []byte("bad name"), bytes.Repeat([]byte{'c'}, MaxChannelLen+1)
	many := keyedTable(1<<15, "c%d") // past maxRemembered in a few batches
	regions := keyedTable(64, "r-%d")
	cases := []struct {
		name    string
		batches []keyedBatch
	}{
		{"distinct", []keyedBatch{
			{table: short, ch: seq(1, 40), reg: seq(0, 20)},
			{table: short, ch: seq(10, 50), reg: seq(5, 30)},
		}},
		{"none", []keyedBatch{{table: short}, {table: short, ch: seq(1, 3)}}},
		{"repeated", []keyedBatch{
			{table: short, ch: []uint16{1, 2, 1, 3, 2, 3}, reg: []uint16{4, 4, 0, 4, 0}},
			{table: short, ch: []uint16{3, 3, 1}, reg: []uint16{0, 0}},
		}},
		{"empty channel", []keyedBatch{
			{table: short, ch: []uint16{0, 5, 0, 6}, reg: []uint16{0}},
			{table: short, ch: []uint16{7, 0}, reg: []uint16{1, 0}},
		}},
		{"long names", []keyedBatch{
			{table: long, ch: seq(1, 30), reg: seq(0, 10)},
			{table: long, ch: seq(20, 40)},
		}},
		{"other names under the keys", []keyedBatch{
			{table: short, ch: seq(1, 20)},
			{table: other, ch: seq(1, 30)},
			{table: short, ch: seq(10, 20)},
			{table: long, ch: seq(1, 5)},
		}},
		{"dictionary not empty", []keyedBatch{
			{table: short, pre: []uint16{7, 0, 3}, ch: seq(1, 10), reg: seq(2, 4)},
			{table: short, pre: []uint16{9}, ch: []uint16{9, 8, 9}},
		}},
		{"bad name", []keyedBatch{
			{table: bad, ch: []uint16{1, 2, 3, 4}},
			{table: bad, ch: []uint16{1, 4, 5, 6}},
			{table: bad, ch: []uint16{3}},
			{table: bad, ch: seq(1, 8)},
		}},
		{"past maxRemembered", []keyedBatch{
			{table: many, ch: seq(1, 6000)},
			{table: many, ch: seq(6000, 12000)},
			{table: many, ch: seq(12000, 18000)},
			{table: many, ch: seq(1, 6000)},
			{table: many, ch: seq(100, 200)},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var byName, bulk BatchEncoder
			var frameByName, frameBulk []byte
			for b, batch := range c.batches {
				for _, enc := range []*BatchEncoder{&byName, &bulk} {
					enc.Reset()
					for _, k := range batch.pre {
						if _, err := enc.ChannelIndex(batch.table[k], int(k)); err != nil {
							t.Fatalf("batch %d: ChannelIndex(%q): %v", b, batch.table[k], err)
						}
					}
				}
				// By name: ChannelIndex of each key up to the first error.
				kCh, errCh := len(batch.ch), error(nil)
				for i, k := range batch.ch {
					if _, err := byName.ChannelIndex(batch.table[k], int(k)); err != nil {
						kCh, errCh = i, err
						break
					}
				}
				kReg, errReg := len(batch.reg), error(nil)
				for i, k := range batch.reg {
					if _, err := byName.RegionIndex(regions[k], int(k)); err != nil {
						kReg, errReg = i, err
						break
					}
				}
				gotCh, gotErrCh := bulk.AddChannels(batch.ch, batch.table)
				gotReg, gotErrReg := bulk.AddRegions(batch.reg, regions)
				if gotCh != kCh || fmt.Sprint(gotErrCh) != fmt.Sprint(errCh) {
					t.Errorf("batch %d: AddChannels = %d, %v; ChannelIndex of each: %d, %v", b, gotCh, gotErrCh, kCh, errCh)
				}
				if gotReg != kReg || fmt.Sprint(gotErrReg) != fmt.Sprint(errReg) {
					t.Errorf("batch %d: AddRegions = %d, %v; RegionIndex of each: %d, %v", b, gotReg, gotErrReg, kReg, errReg)
				}
				if gotErrCh != nil && !isCode(gotErrCh) {
					t.Errorf("batch %d: AddChannels's error %v is not an *Error", b, gotErrCh)
				}
				// The same indexes of every name, and an event of each
				// (in the absent region, added to both if not there).
				rb, err1 := byName.RegionIndex(nil, -1)
				ru, err2 := bulk.RegionIndex(nil, -1)
				if rb != ru || err1 != nil || err2 != nil {
					t.Fatalf("batch %d: region \"\": index %d, %v by name, %d, %v in bulk", b, rb, err1, ru, err2)
				}
				for _, k := range batch.ch[:kCh] {
					i, err1 := byName.ChannelIndex(batch.table[k], int(k))
					j, err2 := bulk.ChannelIndex(batch.table[k], int(k))
					if i != j || err1 != nil || err2 != nil {
						t.Fatalf("batch %d: channel %q: index %d, %v by name, %d, %v in bulk", b, batch.table[k], i, err1, j, err2)
					}
					for _, enc := range []*BatchEncoder{&byName, &bulk} {
						if err := enc.AddIndexed(Standby, 1764187200000, []byte("stb-1"), i, rb); err != nil {
							t.Fatal(err)
						}
					}
				}
				bc, br := byName.Dictionaries()
				uc, ur := bulk.Dictionaries()
				if bc != uc || br != ur {
					t.Errorf("batch %d: dictionaries %d, %d in bulk; %d, %d by name", b, uc, ur, bc, br)
				}
				frameByName = byName.AppendFrame(frameByName[:0], false)
				frameBulk = bulk.AppendFrame(frameBulk[:0], false)
				if !bytes.Equal(frameBulk, frameByName) {
					t.Errorf("batch %d: the frames differ:\nbulk    %q\nby name %q", b, frameBulk, frameByName)
				}
				if bulk.Size() != len(frameBulk) {
					t.Errorf("batch %d: Size() = %d, frame of %d bytes", b, bulk.Size(), len(frameBulk))
				}
			}
		})
	}
}

// isCode reports whether err is an *Error.
func isCode(err error) bool {
	_, ok := err.(*Error)
	return ok
}

// TestAddChannelsAllocatesNothing checks that a warm encoder takes a
// batch's names in bulk without allocating.
func TestAddChannelsAllocatesNothing(t *testing.T) {
	channels, regions := keyedTable(200, "ch-%d"), keyedTable(50, "r-%d")
	chKeys, regKeys := seq(0, 200), seq(0, 50)
	var e BatchEncoder
	run := func() {
		e.Reset()
		if _, err := e.AddChannels(chKeys, channels); err != nil {
			t.Fatal(err)
		}
		if _, err := e.AddRegions(regKeys, regions); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("%d channels and %d regions allocate %.1f times", len(chKeys), len(regKeys), allocs)
	}
}
