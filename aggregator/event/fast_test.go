package event

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzFastRecords holds the frame decoder's fast record loop (fastRecords)
// to the record-at-a-time path with every check (Decoder.record): every
// input decodes to the same events, devices, dictionaries and rejections
// with the fast loop as without it.
func FuzzFastRecords(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("../../testdata/event", "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 3, 7, 40, 300} {
		frame := randomFrame(f, r, size)
		f.Add(frame)
		for _, at := range []int{len(frame) / 3, len(frame) / 2, len(frame) - 1} {
			bad := bytes.Clone(frame)
			bad[at] ^= 0x80
			f.Add(bad)
		}
		f.Add(frame[:len(frame)-5])
	}
	var fast, slow Decoder
	var ff, sf Frame
	f.Fuzz(func(t *testing.T, msg []byte) {
		var frej, srej Rejections
		fast.DecodeFrame(&ff, msg, &frej)
		fastRecordsOn = false
		slow.DecodeFrame(&sf, msg, &srej)
		fastRecordsOn = true
		if frej.Count != srej.Count || (frej.First == nil) != (srej.First == nil) ||
			frej.First != nil && *frej.First != *srej.First {
			t.Fatalf("rejections %v (%v) with the fast loop, %v (%v) without", frej.Count, frej.First, srej.Count, srej.First)
		}
		if !slices.Equal(ff.Events, sf.Events) {
			t.Fatalf("events %v with the fast loop, %v without", ff.Events, sf.Events)
		}
		if !slices.EqualFunc(ff.Devices, sf.Devices, bytes.Equal) ||
			!slices.EqualFunc(ff.Channels, sf.Channels, bytes.Equal) ||
			!slices.EqualFunc(ff.Regions, sf.Regions, bytes.Equal) {
			t.Fatalf("devices or names differ: %q %q %q with the fast loop, %q %q %q without",
				ff.Devices, ff.Channels, ff.Regions, sf.Devices, sf.Channels, sf.Regions)
		}
	})
}

// randomFrame returns a frame of n events with devices of every length up
// to MaxDeviceLen, some deltas, channel and region indexes past one varint
// byte, and every kind.
func randomFrame(tb testing.TB, r *rand.Rand, n int) []byte {
	var enc BatchEncoder
	base := int64(1764187200000)
	for i := range n {
		dev := bytes.Repeat([]byte{'a' + byte(i%26)}, 1+r.IntN(MaxDeviceLen))
		e := Event{
			Device:  dev,
			Channel: fmt.Appendf(nil, "ch-%d", r.IntN(200)),
			Region:  fmt.Appendf(nil, "r-%d", r.IntN(150)),
			TS:      base + r.Int64N(40_000) - 20_000,
			Kind:    Kind(r.IntN(3)),
		}
		if e.Kind == Standby && r.IntN(2) == 0 {
			e.Channel = nil
		}
		if err := enc.Add(&e); err != nil {
			tb.Fatal(err)
		}
	}
	return enc.AppendFrame(nil, false)
}
