package aggregator

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// TestDevIndex checks the tuning table's index against a Go map through
// random puts and deletes, many of them in clusters (pseudonyms sharing
// their home slot), so that deletion's backward shift is exercised.
func TestDevIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x devIndex
	want := make(map[uint64]int32)
	var keys []uint64
	for op := range 200_000 {
		switch {
		case len(keys) > 0 && r.IntN(3) == 0:
			i := r.IntN(len(keys))
			h := keys[i]
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			x.del(h)
			delete(want, h)
		default:
			// Half the pseudonyms share their bits 24..31: long runs.
			h := r.Uint64()
			if r.IntN(2) == 0 {
				h = h&^(0xFF<<24) | 7<<24
			}
			if _, dup := want[h]; dup {
				continue
			}
			x.put(h, int32(op))
			want[h] = int32(op)
			keys = append(keys, h)
		}
		if op%10_000 == 0 || op == 199_999 {
			if x.n != len(want) {
				t.Fatalf("op %d: index holds %d, want %d", op, x.n, len(want))
			}
			for h, idx := range want {
				if got, ok := x.get(h); !ok || got != idx {
					t.Fatalf("op %d: get(%#x) = %d, %v; want %d", op, h, got, ok, idx)
				}
			}
			x.del(r.Uint64()) // absent: no change
			if _, ok := x.get(r.Uint64()); ok {
				t.Fatalf("op %d: found an absent pseudonym", op)
			}
		}
	}
}

// TestInternCached checks that the name cache gives every name the id of
// the names table, whatever the names share: lengths around the 8 and 16
// bytes the cache compares as words, names equal but for one inner byte,
// names longer than the cache takes, a zero byte at the end.
func TestInternCached(t *testing.T) {
	a := benchAggregator(t, Events, time.Hour)
	w := a.NewWriter()
	var list [][]byte
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 40} {
		base := bytes.Repeat([]byte("x"), n)
		list = append(list, base)
		for i := range n {
			v := bytes.Clone(base)
			v[i] = 'y'
			list = append(list, v)
		}
		list = append(list, append(bytes.Clone(base), 0))
	}
	for i := range 2000 { // more names than the cache has entries
		list = append(list, fmt.Appendf(nil, "ch-%d", i))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		for _, i := range r.Perm(len(list)) {
			name := list[i]
			got, ok := w.internCached(w.channels, a.channels, bytes.Clone(name), 0)
			want, _ := a.channels.intern(name)
			if !ok || got != want {
				t.Fatalf("channel %q: id %d (%v), want %d", name, got, ok, want)
			}
		}
	}
	if id, ok := w.internCached(w.regions, a.regions, nil, 1); id != 0 || !ok {
		t.Errorf("empty region: id %d, %v; want 0, true", id, ok)
	}
}

// TestWriteAtPosition takes snapshots while a writer ingests batches with
// WriteAt: every snapshot must hold exactly the events of the positions up
// to the one it records (each position is one batch of per events).
func TestWriteAtPosition(t *testing.T) {
	const batches, per = 2000, 8
	a := benchAggregator(t, Events, time.Hour)
	evs := synthetic(batches*per, 10_000, 20, 5, 5)
	var wg sync.WaitGroup
	wg.Go(func() {
		w := a.NewWriter()
		for i := range batches {
			if got := w.WriteAt(evs[i*per:(i+1)*per], nil, uint64(i+1)); got != per {
				t.Errorf("batch %d: %d of %d accepted", i, got, per)
			}
			if i%100 == 0 { // a message whose events were all rejected
				w.WriteAt(nil, nil, uint64(i+1))
			}
		}
	})
	snaps := 0
	for a.StreamPosition() < batches {
		sn := a.Snapshot(a.StreamPosition)
		if sn.accepted != sn.StreamSeq*per {
			t.Fatalf("snapshot at position %d holds %d events, want %d", sn.StreamSeq, sn.accepted, sn.StreamSeq*per)
		}
		snaps++
	}
	wg.Wait()
	t.Logf("%d snapshots", snaps)
	if got := a.StreamPosition(); got != batches {
		t.Errorf("position %d after the last batch, want %d", got, batches)
	}
}

// TestWriteFrameMatchesWrite ingests the committed stream, with events
// made future, late and too old, and more channels than the limit, into
// two aggregators of each model: one by Decode and Write, the other by
// DecodeFrame and WriteFrame. Every count, rejection and sealed minute
// must be the same.
func TestWriteFrameMatchesWrite(t *testing.T) {
	frames, truth := streamFrames(t)
	info := truth.Info()
	// The stream's events again, some moved out of the window, in frames
	// of 256 with the stream's own frames between them.
	var dec event.Decoder
	var evs []event.Event
	for _, f := range frames {
		evs = dec.Decode(evs, f, nil)
	}
	var enc event.BatchEncoder
	var mixed [][]byte
	for i := range evs {
		e := evs[i]
		switch i % 7 {
		case 1:
			e.TS = info.End.Add(2 * time.Hour).UnixMilli() // future
		case 2:
			e.TS = info.Start.Add(-90 * time.Minute).UnixMilli() // late, then too old
		case 3:
			e.TS = info.Start.Add(-72 * time.Hour).UnixMilli() // too old
		}
		if err := enc.Add(&e); err != nil {
			t.Fatal(err)
		}
		if enc.Len() == 256 || i == len(evs)-1 {
			mixed = append(mixed, enc.AppendFrame(nil, false), frames[len(mixed)%len(frames)])
			enc.Reset()
		}
	}
	for _, model := range []Model{Tuning, Events} {
		t.Run(model.String(), func(t *testing.T) {
			cfg := Config{Model: model, Key: benchKey(t), Shards: 4, MaxChannels: 60, Now: func() time.Time { return info.End }}
			byEvents, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			byFrame, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			w1, w2 := byEvents.NewWriter(), byFrame.NewWriter()
			var d1, d2 event.Decoder
			var rej1, rej2 event.Rejections
			var batch []event.Event
			var f event.Frame
			for i, msg := range mixed {
				batch = d1.Decode(batch[:0], msg, &rej1)
				n1 := w1.Write(batch, &rej1)
				if !d2.DecodeFrame(&f, msg, &rej2) {
					t.Fatal("DecodeFrame refused a frame")
				}
				if n2 := w2.WriteFrame(&f, &rej2); n1 != n2 {
					t.Fatalf("message %d: Write accepted %d events, WriteFrame %d", i, n1, n2)
				}
				if i%16 == 0 {
					byEvents.Tick()
					byFrame.Tick()
				}
			}
			if rej1.Count != rej2.Count {
				t.Errorf("rejections by Write %v, by WriteFrame %v", rej1.Count, rej2.Count)
			}
			for _, r := range []event.Reason{event.Future, event.Late, event.TooOld, event.ChannelLimit} {
				if rej1.Count[r] == 0 {
					t.Errorf("no %s rejection: the test misses a path", r)
				}
			}
			byEvents.SealThrough(info.End.UnixMilli())
			byFrame.SealThrough(info.End.UnixMilli())
			if !reflect.DeepEqual(byEvents.Channels(), byFrame.Channels()) || !reflect.DeepEqual(byEvents.Regions(), byFrame.Regions()) {
				t.Errorf("channels or regions differ:\n%v %v\n%v %v", byEvents.Channels(), byEvents.Regions(), byFrame.Channels(), byFrame.Regions())
			}
			m1, m2 := byEvents.Minutes(info.Start, info.End), byFrame.Minutes(info.Start, info.End)
			if len(m1) < 55 || len(m1) != len(m2) {
				t.Fatalf("%d and %d sealed minutes", len(m1), len(m2))
			}
			for i := range m1 {
				if diff := minuteDiff(m1[i], m2[i], true); diff != "" {
					t.Errorf("minute %s: %s", m1[i].Start.Format("15:04"), diff)
				}
			}
		})
	}
}
