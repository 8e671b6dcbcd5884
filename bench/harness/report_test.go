package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

func TestReplaceSection(t *testing.T) {
	section := BeginMarker + "\nnew\n" + EndMarker + "\n"
	f := func(doc, want, wantErr string) {
		t.Helper()
		got, err := ReplaceSection([]byte(doc), section)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ReplaceSection(%q) error %v, want one containing %q", doc, err, wantErr)
			}
			return
		}
		if err != nil || string(got) != want {
			t.Errorf("ReplaceSection(%q) = %q, %v; want %q", doc, got, err, want)
		}
	}
	f("# Results\n\nhand\n", "# Results\n\nhand\n\n"+BeginMarker+"\nnew\n"+EndMarker+"\n", "")
	f("# R\n"+BeginMarker+"\nold\nlines\n"+EndMarker+"\n\n## Later\nkept\n", "# R\n"+BeginMarker+"\nnew\n"+EndMarker+"\n\n## Later\nkept\n", "")
	f("a "+BeginMarker+" b", "", "markers")
	f(EndMarker+"\n"+BeginMarker, "", "markers")
}

func TestAppendDeviceMatchesGenerator(t *testing.T) {
	for _, d := range []uint32{0, 7, 12345, 99_999_999} {
		if got, want := string(appendDevice(nil, d)), bench.DeviceName(int(d)); got != want {
			t.Errorf("appendDevice(%d) = %q, want %q", d, got, want)
		}
		if n, ok := deviceNumber(appendDevice(nil, d)); !ok || n != d {
			t.Errorf("deviceNumber(appendDevice(%d)) = %d, %v", d, n, ok)
		}
	}
	for _, bad := range []string{"", "stb-1234567", "box-00000001", "stb-0000000x"} {
		if _, ok := deviceNumber([]byte(bad)); ok {
			t.Errorf("deviceNumber(%q) ok, want not", bad)
		}
	}
}

func TestPrimeTime(t *testing.T) {
	for _, start := range []time.Time{
		time.Date(2026, 11, 27, 5, 13, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 20, 30, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 8, 31, 0, 0, time.UTC),
	} {
		local := start.In(primeTime(start))
		if local.Hour() != 20 || local.Minute() != 30 {
			t.Errorf("%s in primeTime is %s, want 20:30 local", start.Format(time.TimeOnly), local.Format(time.TimeOnly))
		}
		if _, off := local.Zone(); off > 12*3600 || off <= -12*3600 {
			t.Errorf("%s: offset %ds is outside (-12h, 12h]", start.Format(time.TimeOnly), off)
		}
	}
}

// TestEncodeKeepsEveryEvent encodes a small generated workload in every
// format and checks that the messages hold every event, in batches no
// larger than asked, on the 16 partition subjects.
func TestEncodeKeepsEveryEvent(t *testing.T) {
	w, err := Generate(t.Context(), bench.Config{Seed: 3, Devices: 2000, Channels: 20, Duration: 3 * time.Minute}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() < 1000 {
		t.Fatalf("workload of %d events, want at least 1000", w.Len())
	}
	for _, enc := range []Encoding{
		{Format: bench.FormatJSON}, {Format: bench.FormatJSONArray, Batch: 64},
		{Format: bench.FormatBinary, Batch: 256}, {Format: bench.FormatBinary, Batch: 256, S2: true},
	} {
		m, err := w.Encode(enc, 0)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if m.Events != int64(w.Len()) {
			t.Errorf("%s: %d events encoded, want %d", enc, m.Events, w.Len())
		}
		var sum int64
		for i := range m.Len() {
			subject, data, n, _ := m.msg(i)
			sum += int64(n)
			if !strings.HasPrefix(subject, "tv.events.p") || len(data) == 0 {
				t.Fatalf("%s: message %d on %q with %d bytes", enc, i, subject, len(data))
			}
			if enc.Format != bench.FormatJSON && n > enc.Batch || enc.Format == bench.FormatJSON && n != 1 {
				t.Fatalf("%s: message %d holds %d events", enc, i, n)
			}
		}
		if sum != m.Events {
			t.Errorf("%s: messages hold %d events, want %d", enc, sum, m.Events)
		}
	}
	var newest int64
	for i := range w.Len() {
		var e event.Event
		w.event(i, &e, nil)
		newest = max(newest, e.TS)
	}
	if m, err := w.Encode(Encoding{Format: bench.FormatBinary, Batch: 256}, 0); err != nil || m.newest() != newest {
		t.Errorf("newest event time of the messages %d, want %d (%v)", m.newest(), newest, err)
	}
	if m, err := w.Encode(Encoding{Format: bench.FormatJSON}, 100); err != nil || m.Events != 100 {
		t.Errorf("Encode(json, limit 100) = %d events, %v; want 100", m.Events, err)
	}
}

// TestReachWindow: the reach window of the runs lies within the day of the
// newest event (a key epoch of the minute tier) and holds its minute.
func TestReachWindow(t *testing.T) {
	f := func(newest, from, to time.Time) {
		t.Helper()
		gotFrom, gotTo := reachWindow(newest)
		if !gotFrom.Equal(from) || !gotTo.Equal(to) {
			t.Errorf("reachWindow(%s) = [%s, %s), want [%s, %s)", newest, gotFrom, gotTo, from, to)
		}
	}
	at := func(d, hh, mm, ss int) time.Time { return time.Date(2026, 11, d, hh, mm, ss, 0, time.UTC) }
	f(at(27, 6, 18, 30), at(27, 0, 0, 0), at(27, 6, 19, 0))
	f(at(27, 0, 3, 0), at(27, 0, 0, 0), at(27, 0, 4, 0)) // the hour before spans midnight
	f(at(27, 0, 0, 0), at(27, 0, 0, 0), at(27, 0, 1, 0))
	f(at(26, 23, 59, 59), at(26, 0, 0, 0), at(27, 0, 0, 0))
	f(at(27, 1, 2, 3).In(time.FixedZone("x", -11*3600)), at(27, 0, 0, 0), at(27, 1, 3, 0))
}

// TestCheckPeakRSS: a peak RSS below an RSS of the same process was read
// before it, and Check says so.
func TestCheckPeakRSS(t *testing.T) {
	f := func(x RatingsdResult, flagged bool) {
		t.Helper()
		rep := &Report{Scale: []ScaleRow{{Devices: 5, Channels: 3, Runs: []RatingsdResult{x}}}}
		got := strings.Contains(strings.Join(Check(rep), "\n"), "peak RSS")
		if got != flagged {
			t.Errorf("Check of RSS %d, sealed %d, peak %d: peak flagged %v, want %v", x.RSS, x.RSSSealed, x.PeakRSS, got, flagged)
		}
	}
	f(RatingsdResult{EventsPerSec: 1, RSS: 20, RSSSealed: 30, PeakRSS: 30}, false)
	f(RatingsdResult{EventsPerSec: 1, RSS: 20, RSSSealed: 25, PeakRSS: 40}, false)
	f(RatingsdResult{EventsPerSec: 1, RSS: 20, RSSSealed: 30, PeakRSS: 20}, true)
	f(RatingsdResult{EventsPerSec: 1, RSS: 50, RSSSealed: 30, PeakRSS: 40}, true)
}
