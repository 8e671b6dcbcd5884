package event_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/event from the encoders")

const goldenDir = "../../testdata/event"

// goldenEvents is the fixed event list behind the golden files: both kinds of
// timestamps deltas (later and earlier than the first), every kind, an empty
// channel (standby), no region, the longest names and device, the smallest
// and largest ts, and a device that JSON must escape.
func goldenEvents() []event.Event {
	long := func(c byte) []byte { return bytes.Repeat([]byte{c}, 64) }
	return []event.Event{
		{Device: []byte("stb-0012345"), Channel: []byte("npo1"), Region: []byte("ams-03"), TS: 1764187200123, Kind: event.Tune},
		{Device: []byte("stb-0012346"), Channel: []byte("rtl4"), TS: 1764187200456, Kind: event.Tune},
		{Device: []byte("stb-0012345"), Channel: []byte("npo1"), Region: []byte("ams-03"), TS: 1764187260123, Kind: event.Heartbeat},
		{Device: []byte("stb-0099999"), Region: []byte("rtm-01"), TS: 1764187199000, Kind: event.Standby},
		{Device: []byte("q\"b\\s/\x01\té"), Channel: []byte("bbc.one_hd-2"), Region: []byte("ams-03"), TS: 1, Kind: event.Heartbeat},
		{Device: long('d'), Channel: long('C'), Region: long('r'), TS: 253402300799999, Kind: event.Tune},
	}
}

// goldenVariantsJSON is JSON as producers in the wild write it: reordered
// fields, whitespace, escapes, RFC 3339 times with offsets, unknown fields
// (nested), null for a missing region, kind left to its default, a duplicate
// field (the last wins). It decodes to goldenEvents()[:4].
const goldenVariantsJSON = `[
  {"kind": "tune", "ts": "2025-11-26T21:00:00.123+01:00", "channel": "npo1",
   "device": "stb-\u00300\u0031\u0032345", "region": "ams-03", "fw": {"v": [1, 2.5e3, {"x": null}], "ok": true}},
  {"device":"stb-0012346","channel":"rtl4","ts":1764187200456,"region":null,"seq":18446744073709551616},
  {"device":"stb-0012345","channel":"npo1","ts":1764187260123,"kind":"heartbeat","region":"ams-03","kind":"heartbeat"},
  {"device": "stb-0099999", "channel": "", "ts": "2025-11-26t19:59:59z", "kind": "standby", "region": "rtm-01", "note": "\"bye\"\n"}
]
`

func goldenFiles(t *testing.T) map[string][]byte {
	t.Helper()
	evs := goldenEvents()
	var enc event.BatchEncoder
	for i := range evs {
		if err := enc.Add(&evs[i]); err != nil {
			t.Fatalf("Add(golden event %d): %v", i, err)
		}
	}
	return map[string][]byte{
		"single.json":   event.AppendJSON(nil, &evs[0]),
		"array.json":    event.AppendJSONArray(nil, evs),
		"variants.json": []byte(goldenVariantsJSON),
		"frame.bin":     enc.AppendFrame(nil, false),
		"frame-s2.bin":  enc.AppendFrame(nil, true),
	}
}

// TestGolden freezes the wire formats: every golden file decodes to the fixed
// event list, and the encoders still produce the plain frame and the JSON
// byte for byte. (S2 output may change with the compression library; its
// golden file must still decode.)
func TestGolden(t *testing.T) {
	files := goldenFiles(t)
	if *update {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string][]event.Event{
		"single.json":   goldenEvents()[:1],
		"array.json":    goldenEvents(),
		"variants.json": goldenEvents()[:4],
		"frame.bin":     goldenEvents(),
		"frame-s2.bin":  goldenEvents(),
	}
	for name, wantEvs := range want {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(goldenDir, name))
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			var d event.Decoder
			var rej event.Rejections
			got := d.Decode(nil, b, &rej)
			if rej.Total() != 0 {
				t.Fatalf("got %d rejections, first %v; want none", rej.Total(), rej.First)
			}
			if diff := diffEvents(got, wantEvs); diff != "" {
				t.Fatal(diff)
			}
			if name != "frame-s2.bin" && !bytes.Equal(b, files[name]) {
				t.Errorf("encoder output changed:\ngot  %q\nwant %q", files[name], b)
			}
		})
	}
}

// diffEvents describes how got differs from want ("" if equal). Devices are
// test data here, so it prints them.
func diffEvents(got, want []event.Event) string {
	var s strings.Builder
	if len(got) != len(want) {
		s.WriteString("got " + itoa(len(got)) + " events, want " + itoa(len(want)) + "\n")
	}
	for i := range min(len(got), len(want)) {
		if !sameEvent(&got[i], &want[i]) {
			s.WriteString("event " + itoa(i) + ":\n got  " + show(&got[i]) + "\n want " + show(&want[i]) + "\n")
		}
	}
	return s.String()
}

func sameEvent(a, b *event.Event) bool {
	return bytes.Equal(a.Device, b.Device) && bytes.Equal(a.Channel, b.Channel) &&
		bytes.Equal(a.Region, b.Region) && a.TS == b.TS && a.Kind == b.Kind
}

func show(e *event.Event) string { return string(event.AppendJSON(nil, e)) }
