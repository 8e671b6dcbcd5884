package event_test

import (
	"fmt"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// A producer batches events into a frame; the service decodes it. One bad
// event costs only itself.
func Example() {
	var enc event.BatchEncoder
	for _, ev := range []event.Event{
		{Device: []byte("stb-0012345"), Channel: []byte("npo1"), Region: []byte("ams-03"), TS: 1764187200123},
		{Device: []byte("stb-0012346"), Channel: []byte("rtl4"), TS: 1764187201000, Kind: event.Heartbeat},
		{Device: []byte("stb-0012347"), TS: 1764187202000, Kind: event.Standby},
		{Device: []byte("stb-0012348"), Channel: []byte("npo 2"), TS: 1764187203000},
	} {
		if err := enc.Add(&ev); err != nil {
			fmt.Println("add:", err)
		}
	}
	frame := enc.AppendFrame(nil, true)

	// The events alias the message and the decoder's buffers: use them
	// before the next Decode.
	var d event.Decoder
	var rej event.Rejections
	var events []event.Event
	for _, msg := range [][]byte{
		frame,
		[]byte(`[{"device":"stb-9","channel":"npo1","ts":"2025-11-26T20:00:05Z"},{"device":"stb-10","ts":1}]`),
	} {
		events = d.Decode(events[:0], msg, &rej)
		for _, ev := range events {
			fmt.Printf("%d %-9s %-4s %q\n", ev.TS, ev.Kind, ev.Channel, ev.Region)
		}
	}
	fmt.Println("rejected:", rej.Total(), rej.First)
	// Output:
	// add: bad_channel: channel "npo 2" has bytes outside [A-Za-z0-9._-]
	// 1764187200123 tune      npo1 "ams-03"
	// 1764187201000 heartbeat rtl4 ""
	// 1764187202000 standby        ""
	// 1764187205000 tune      npo1 ""
	// rejected: 1 bad_channel: event at offset 65: channel is empty for a tune event
}

// A consumer of frames can take each name once: DecodeFrame gives the
// frame's dictionaries and events that refer to them by index.
func ExampleDecoder_DecodeFrame() {
	var enc event.BatchEncoder
	for i, ch := range []string{"npo1", "rtl4", "npo1", "npo1"} {
		ev := event.Event{Device: fmt.Appendf(nil, "stb-%d", i), Channel: []byte(ch), Region: []byte("ams-03"), TS: 1764187200000 + int64(i)*1000}
		if err := enc.Add(&ev); err != nil {
			fmt.Println("add:", err)
		}
	}
	var d event.Decoder
	var f event.Frame
	if !d.DecodeFrame(&f, enc.AppendFrame(nil, false), nil) {
		fmt.Println("not a frame")
	}
	fmt.Printf("channels %q, regions %q\n", f.Channels, f.Regions)
	perChannel := make([]int, len(f.Channels)) // counted by index: no name looked up per event
	for _, e := range f.Events {
		perChannel[e.Channel]++
	}
	for i, n := range perChannel {
		fmt.Printf("%s: %d events\n", f.Channels[i], n)
	}
	// Output:
	// channels ["npo1" "rtl4"], regions ["ams-03"]
	// npo1: 3 events
	// rtl4: 1 events
}
