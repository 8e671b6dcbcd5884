package event_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

func TestValidate(t *testing.T) {
	f := func(ev event.Event, want string) {
		t.Helper()
		err := ev.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Validate(%s) = %q, want %q", show(&ev), got, want)
		}
	}
	ok := event.Event{Device: []byte("stb-1"), Channel: []byte("npo1"), Region: []byte("ams-03"), TS: 1764187200123}
	with := func(change func(*event.Event)) event.Event {
		e := ok
		change(&e)
		return e
	}
	long := []byte(strings.Repeat("a", 65))
	f(ok, "")
	f(with(func(e *event.Event) { e.Kind, e.Channel = event.Standby, nil }), "")
	f(with(func(e *event.Event) { e.Region = nil }), "")
	f(with(func(e *event.Event) { e.TS = 253402300799999 }), "")
	f(with(func(e *event.Event) { e.Device = long[:64]; e.Channel = long[:64]; e.Region = long[:64] }), "")
	f(with(func(e *event.Event) { e.Device = nil }), "bad_device: device is empty")
	f(with(func(e *event.Event) { e.Device = long }), "bad_device: device is 65 bytes, max 64")
	f(with(func(e *event.Event) { e.Kind = 3 }), "bad_kind: kind 3 is not tune, heartbeat or standby")
	f(with(func(e *event.Event) { e.Channel = nil }), "bad_channel: channel is empty for a tune event")
	f(with(func(e *event.Event) { e.Kind, e.Channel = event.Heartbeat, nil }), "bad_channel: channel is empty for a heartbeat event")
	f(with(func(e *event.Event) { e.Channel = long }), "bad_channel: channel is 65 bytes, max 64")
	f(with(func(e *event.Event) { e.Channel = []byte("npo 1") }), `bad_channel: channel "npo 1" has bytes outside [A-Za-z0-9._-]`)
	f(with(func(e *event.Event) { e.Region = long }), "bad_region: region is 65 bytes, max 64")
	f(with(func(e *event.Event) { e.Region = []byte("ams/03") }), `bad_region: region "ams/03" has bytes outside [A-Za-z0-9._-]`)
	f(with(func(e *event.Event) { e.TS = 0 }), "bad_ts: ts 0 is outside 1..253402300799999 Unix ms")
	f(with(func(e *event.Event) { e.TS = 253402300800000 }), "bad_ts: ts 253402300800000 is outside 1..253402300799999 Unix ms")
	// The first problem wins.
	f(event.Event{Kind: 9, Channel: []byte(" "), TS: -1}, "bad_device: device is empty")
}

// TestValidName checks the word-at-a-time ValidName against the definition,
// for every byte value at every position of names up to 17 bytes.
func TestValidName(t *testing.T) {
	valid := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	for n := 1; n <= 17; n++ {
		for pos := range n {
			name := bytes.Repeat([]byte{'a'}, n)
			for c := range 256 {
				name[pos] = byte(c)
				if got, want := event.ValidName(name), valid(byte(c)); got != want {
					t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
				}
			}
		}
	}
	if !event.ValidName(nil) || !event.ValidName([]byte("Az09._-zA90-_.")) {
		t.Errorf("ValidName rejects a valid name")
	}
}

func TestNames(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(event.Tune.String(), "tune")
	f(event.Heartbeat.String(), "heartbeat")
	f(event.Standby.String(), "standby")
	f(event.Kind(7).String(), "kind(7)")
	f(event.ChannelLimit.String(), "channel_limit")
	f(event.Reason(99).String(), "reason(99)")
	for _, k := range []event.Kind{event.Tune, event.Heartbeat, event.Standby} {
		if got, ok := event.ParseKind([]byte(k.String())); !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, ok)
		}
	}
	if _, ok := event.ParseKind([]byte("off")); ok {
		t.Errorf("ParseKind(off) succeeded")
	}
	f(event.ReasonOf(fmt.Errorf("decode: %w", &event.Error{Reason: event.BadTS})).String(), "bad_ts")
	f(event.ReasonOf(errors.New("other")).String(), "malformed")
}
