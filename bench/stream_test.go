package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

func TestWriteStreamRoundTrip(t *testing.T) {
	cfg := Config{Seed: 21, Devices: 3000, Duration: 20 * time.Minute, Truth: true, Duplicates: 0.01}
	want, wantTruth := generate(t, cfg)

	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.tvs")
	var reports []Progress
	st, err := WriteStream(context.Background(), path, g, StreamOptions{FrameEvents: 1000}, func(p Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != int64(len(want)) || st.Frames != (st.Events+999)/1000 || st.Bytes == 0 || st.TruthBytes == 0 {
		t.Errorf("stats %+v for %d events", st, len(want))
	}
	if len(reports) == 0 || reports[len(reports)-1].Events != st.Events {
		t.Errorf("progress reports %+v do not end with all %d events", reports, st.Events)
	}

	s, err := OpenStream(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []event.Event
	for {
		n := len(got)
		got, err = s.Next(got)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := n; i < len(got); i++ {
			e := &got[i]
			e.Device, e.Channel, e.Region = bytes.Clone(e.Device), bytes.Clone(e.Channel), bytes.Clone(e.Region)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d events, wrote %d", len(got), len(want))
	}
	for i := range got {
		a, b := &got[i], &want[i]
		if !bytes.Equal(a.Device, b.Device) || !bytes.Equal(a.Channel, b.Channel) || !bytes.Equal(a.Region, b.Region) ||
			a.TS != b.TS || a.Kind != b.Kind {
			t.Fatalf("event %d: read %+v, wrote %+v", i, *a, *b)
		}
	}

	tr, err := LoadTruth(path + ".truth")
	if err != nil {
		t.Fatal(err)
	}
	var b1, b2 bytes.Buffer
	tr.WriteTo(&b1)
	wantTruth.WriteTo(&b2)
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("the truth file differs from the truth of the same run")
	}
}

func TestStreamRejectsGarbage(t *testing.T) {
	var good bytes.Buffer
	w, err := NewStreamWriter(&good, StreamOptions{FrameEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := generate(t, Config{Seed: 1, Devices: 100, Duration: 2 * time.Minute})
	if err := w.Write(evs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, in := range streamGarbage(good.Bytes()) {
		s, err := NewStreamReader(bytes.NewReader(in))
		for err == nil {
			_, err = s.Next(nil)
		}
		if err == io.EOF {
			t.Errorf("a malformed stream (% x…) read to its end", in[:min(16, len(in))])
		}
	}
	if _, err := OpenStream(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStream of a missing file: %v", err)
	}
}

// streamGarbage returns malformed stream files.
func streamGarbage(good []byte) [][]byte {
	frame := func(n uint32, body []byte) []byte {
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}, body...)
	}
	return [][]byte{
		nil,
		good[:len(good)/2],
		zstdBytes([]byte("ratingsd stream v2\n")),
		zstdBytes(append([]byte(streamMagic), 1, 2)),                                        // a torn length
		zstdBytes(append([]byte(streamMagic), frame(10, []byte("short"))...)),               // a torn frame
		zstdBytes(append([]byte(streamMagic), frame(1<<30, nil)...)),                        // too large
		zstdBytes(append([]byte(streamMagic), frame(5, []byte{0xF5, 'R', 'T', 'V', 9})...)), // not a frame
		zstdBytes(append([]byte(streamMagic), frame(6, []byte(`{"a":1`))...)),               // JSON, malformed
	}
}

func FuzzStream(f *testing.F) {
	var good bytes.Buffer
	w, _ := NewStreamWriter(&good, StreamOptions{FrameEvents: 7})
	g, _ := NewGenerator(Config{Seed: 1, Devices: 50, Duration: time.Minute})
	var batch []event.Event
	for g.Next(context.Background(), &batch) {
		w.Write(batch)
	}
	w.Close()
	f.Add(good.Bytes())
	for _, in := range streamGarbage(good.Bytes()) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := NewStreamReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		defer s.Close()
		for range 1000 {
			if _, err := s.Next(nil); err != nil {
				return
			}
		}
	})
}

// TestCommittedStream checks that testdata/stream holds exactly what its
// README's command generates.
func TestCommittedStream(t *testing.T) {
	const path = "../testdata/stream/prime-20k.tvs"
	cfg := Config{Seed: 1, Devices: 20000, Start: time.Date(2025, 3, 14, 19, 30, 0, 0, time.UTC),
		Duration: time.Hour, Truth: true, ReachSets: [][]string{{"ch-001", "ch-002", "ch-003"}}}
	want, wantTruth := generate(t, cfg)
	s, err := OpenStream(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	i := 0
	var evs []event.Event
	for {
		evs, err = s.Next(evs[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if i >= len(want) {
				t.Fatalf("%s has more than the %d events the generator makes", path, len(want))
			}
			w := &want[i]
			if !bytes.Equal(e.Device, w.Device) || !bytes.Equal(e.Channel, w.Channel) || !bytes.Equal(e.Region, w.Region) ||
				e.TS != w.TS || e.Kind != w.Kind {
				t.Fatalf("%s event %d differs from the generator's: regenerate it (testdata/stream/README.md)", path, i)
			}
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("%s has %d events, the generator makes %d", path, i, len(want))
	}
	tr, err := LoadTruth(path + ".truth")
	if err != nil {
		t.Fatal(err)
	}
	var got, wantBytes bytes.Buffer
	tr.WriteTo(&got)
	wantTruth.WriteTo(&wantBytes)
	if !bytes.Equal(got.Bytes(), wantBytes.Bytes()) {
		t.Fatalf("%s.truth differs from the generator's: regenerate it (testdata/stream/README.md)", path)
	}
	if info := tr.Info(); info.MinDwell != 5*time.Second || info.Inactivity != 4*time.Hour || info.Heartbeat != 0 {
		t.Errorf("truth settings %+v, want min dwell 5s, inactivity 4h, no heartbeats", info)
	}
}
