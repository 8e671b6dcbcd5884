package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// tierDay is the day of the reach tier tests, a Thursday of ISO week
// 2025-W48.
var tierDay = time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC)

// tierFixture serves an aggregator whose days start dayStart after 00:00
// UTC, with one device each on npo1 at 22:00 and 23:50 on tierDay and at
// 00:10 the next day, sealed through 01:00. The aggregator's clock is
// *clock, 01:00 until the test moves it.
func tierFixture(t *testing.T, dayStart time.Duration) (*fixture, *time.Time) {
	t.Helper()
	key, err := sketch.KeyFromBytes([]byte("httpapi-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	clock := new(time.Time)
	*clock = tierDay.Add(25 * time.Hour)
	agg, err := aggregator.New(aggregator.Config{Model: aggregator.Events, Key: key, Shards: 2, DayStart: dayStart,
		Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for i, at := range []time.Duration{22 * time.Hour, 23*time.Hour + 50*time.Minute, 24*time.Hour + 10*time.Minute} {
		evs = append(evs, event.Event{Device: []byte{'d', byte('0' + i)}, Channel: []byte("npo1"), TS: tierDay.Add(at).UnixMilli()})
	}
	var rej event.Rejections
	if n := agg.NewWriter().Write(evs, &rej); n != len(evs) {
		t.Fatalf("%d of %d events accepted: %v", n, len(evs), rej.First)
	}
	agg.SealThrough(clock.UnixMilli())
	f := &fixture{agg: agg, srv: New(Config{Agg: agg})}
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(func() {
		f.srv.Close()
		f.ts.Close()
	})
	return f, clock
}

// tierWindow is the /v1/reach query of [tierDay+from, tierDay+to).
func tierWindow(from, to time.Duration) string {
	return "/v1/reach?from=" + tierDay.Add(from).Format(time.RFC3339) + "&to=" + tierDay.Add(to).Format(time.RFC3339)
}

// checkError GETs path and wants status code with an error that mentions
// each of mention.
func (f *fixture) checkError(t *testing.T, path string, code int, mention ...string) {
	t.Helper()
	r := f.do(t, "GET", path, "")
	var e struct{ Error string }
	if err := json.Unmarshal(r.body, &e); err != nil || r.code != code {
		t.Errorf("GET %s: %d %s, want %d", path, r.code, r.body, code)
		return
	}
	for _, m := range mention {
		if !strings.Contains(e.Error, m) {
			t.Errorf("GET %s: %q does not mention %q", path, e.Error, m)
		}
	}
}

// TestReachTiers: a reach across midnight at minute resolution spans two
// day keys: 400, saying where the boundary is and what to ask instead; the
// same evening in whole hours is counted by the reach tier; a window past
// the minute retention is 410, never zero. Each answer says which tier and
// epoch counted it, and the minutes or hours it covers.
func TestReachTiers(t *testing.T) {
	f, clock := tierFixture(t, 0)
	f.checkError(t, tierWindow(23*time.Hour+30*time.Minute, 24*time.Hour+30*time.Minute), 400,
		"reach window spans two key epochs",
		"spans the day boundary at 2025-11-28T00:00:00Z",
		"minute resolution within one day",
		"whole hours, such as [2025-11-27T23:00:00Z, 2025-11-28T01:00:00Z), which the reach tier counts at hour resolution within one ISO week")
	// Whole hours across the Monday of the next week: no tier at all.
	f.checkError(t, "/v1/reach?from=2025-11-30T23:00:00Z&to=2025-12-01T01:00:00Z", 400,
		"spans the ISO week boundary at 2025-12-01T00:00:00Z", "ask for [2025-11-30T23:00:00Z, 2025-12-01T00:00:00Z) and [2025-12-01T00:00:00Z, 2025-12-01T01:00:00Z) separately")

	check := func(path string, reach uint64, tier, epoch string, from, to time.Duration) {
		t.Helper()
		var got reachJSON
		f.getJSON(t, path, &got)
		want := reachJSON{Reach: reach, Tier: tier, Epoch: epoch, From: tierDay.Add(from), To: tierDay.Add(to)}
		if got.Reach != want.Reach || got.Tier != want.Tier || got.Epoch != want.Epoch || !got.From.Equal(want.From) || !got.To.Equal(want.To) {
			t.Errorf("GET %s: %d by the %s tier in %s over [%v, %v), want %d by the %s tier in %s over [%v, %v)", path,
				got.Reach, got.Tier, got.Epoch, got.From, got.To, want.Reach, want.Tier, want.Epoch, want.From, want.To)
		}
	}
	check(tierWindow(22*time.Hour, 25*time.Hour), 3, "hour", "2025-W48", 22*time.Hour, 25*time.Hour)
	check(tierWindow(23*time.Hour, 24*time.Hour), 1, "minute", "2025-11-27", 23*time.Hour, 24*time.Hour)
	// Minutes widen to whole minutes; the window is clipped to what is
	// sealed (through 01:00) and to the hours the reach tier holds (from
	// 22:00, the hour of the first event).
	check(tierWindow(24*time.Hour+5*time.Minute+30*time.Second, 26*time.Hour), 1, "minute", "2025-11-28", 24*time.Hour+5*time.Minute, 25*time.Hour)
	check("/v1/reach?from=2025-11-24T00:00:00Z&to=2025-11-28T01:00:00Z", 3, "hour", "2025-W48", 22*time.Hour, 25*time.Hour)

	*clock = tierDay.Add(72 * time.Hour) // the 27th's minutes are past the 48h retention
	f.checkError(t, tierWindow(22*time.Hour+10*time.Minute, 22*time.Hour+20*time.Minute), 410,
		"data expired", "48h0m0s minute retention", "whole hours, such as [2025-11-27T22:00:00Z, 2025-11-27T23:00:00Z)")
	check(tierWindow(22*time.Hour, 23*time.Hour), 1, "hour", "2025-W48", 22*time.Hour, 23*time.Hour)
}

// TestReachDayStart: with days starting at 02:00 UTC the evening across
// midnight is one day, counted at minute resolution, and /v1/epochs says
// where that day and its week start.
func TestReachDayStart(t *testing.T) {
	f, _ := tierFixture(t, 2*time.Hour)
	var got reachJSON
	f.getJSON(t, tierWindow(23*time.Hour+30*time.Minute, 24*time.Hour+30*time.Minute), &got)
	if got.Reach != 2 || got.Tier != "minute" || got.Epoch != "2025-11-27" {
		t.Errorf("[23:30, 00:30) with days from 02:00: %d by the %s tier in %s, want 2 by the minute tier in 2025-11-27", got.Reach, got.Tier, got.Epoch)
	}
	f.checkError(t, tierWindow(25*time.Hour+30*time.Minute, 26*time.Hour+30*time.Minute), 400, "spans the day boundary at 2025-11-28T02:00:00Z")

	var ep epochsJSON
	f.getJSON(t, "/v1/epochs", &ep)
	want := epochsJSON{DayStart: "02:00", At: tierDay.Add(24*time.Hour + 59*time.Minute), Tiers: []tierJSON{
		{"minute", "day", "48h0m0s", epochJSON{"2025-11-27", tierDay.Add(2 * time.Hour), tierDay.Add(26 * time.Hour)}},
		{"hour", "week", "672h0m0s", epochJSON{"2025-W48", tierDay.Add(-3*24*time.Hour + 2*time.Hour), tierDay.Add(4*24*time.Hour + 2*time.Hour)}},
	}}
	if g, w := mustJSON(t, ep), mustJSON(t, want); !bytes.Equal(g, w) {
		t.Errorf("GET /v1/epochs:\ngot  %s\nwant %s", g, w)
	}
	f.checkError(t, "/v1/epochs?at=now", 400, `unknown parameter "at"`)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReachGolden freezes the reach tier's answers, a cross-epoch error and
// /v1/epochs in testdata/http (go test -run TestReachGolden -update).
func TestReachGolden(t *testing.T) {
	f, _ := tierFixture(t, 0)
	g, _ := tierFixture(t, 6*time.Hour)
	cases := []struct {
		name string
		f    *fixture
		path string
	}{
		{"reach_hours", f, tierWindow(22*time.Hour, 25*time.Hour)},
		{"error_cross_epoch", f, tierWindow(23*time.Hour+30*time.Minute, 24*time.Hour+30*time.Minute)},
		{"epochs", f, "/v1/epochs"},
		{"epochs_day_start", g, "/v1/epochs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareGoldenResponse(t, c.name+".json", "GET "+c.path, c.f.do(t, "GET", c.path, ""))
		})
	}
}
