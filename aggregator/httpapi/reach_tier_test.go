package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// TestReachTiers: a reach across midnight at minute resolution spans two
// day keys: 400, saying where the boundary is and what to ask instead; the
// same evening in whole hours is counted by the reach tier; a window past
// the minute retention is 410, never zero.
func TestReachTiers(t *testing.T) {
	key, err := sketch.KeyFromBytes([]byte("httpapi-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC) // a Thursday
	clock := day.Add(25 * time.Hour)
	agg, err := aggregator.New(aggregator.Config{Model: aggregator.Events, Key: key, Shards: 2, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for i, at := range []time.Duration{22 * time.Hour, 23*time.Hour + 50*time.Minute, 24*time.Hour + 10*time.Minute} {
		evs = append(evs, event.Event{Device: []byte{'d', byte('0' + i)}, Channel: []byte("npo1"), TS: day.Add(at).UnixMilli()})
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
	win := func(from, to time.Duration) string {
		return "/v1/reach?from=" + url.QueryEscape(day.Add(from).Format(time.RFC3339)) + "&to=" + url.QueryEscape(day.Add(to).Format(time.RFC3339))
	}
	check := func(path string, code int, mention ...string) {
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
	check(win(23*time.Hour+30*time.Minute, 24*time.Hour+30*time.Minute), 400,
		"reach window spans two key epochs",
		"spans the day boundary at 2025-11-28T00:00:00Z",
		"minute resolution within one day",
		"whole hours, such as [2025-11-27T23:00:00Z, 2025-11-28T01:00:00Z), which the reach tier counts at hour resolution within one ISO week")

	var got reachJSON
	f.getJSON(t, win(22*time.Hour, 25*time.Hour), &got)
	if got.Reach != 3 {
		t.Errorf("reach tier over [22:00, 01:00): %d, want 3", got.Reach)
	}
	f.getJSON(t, win(23*time.Hour, 24*time.Hour), &got)
	if got.Reach != 1 {
		t.Errorf("minute tier over [23:00, 24:00): %d, want 1", got.Reach)
	}

	clock = day.Add(72 * time.Hour) // the 27th's minutes are past the 48h retention
	check(win(22*time.Hour+10*time.Minute, 22*time.Hour+20*time.Minute), 410,
		"data expired", "48h0m0s minute retention", "whole hours, such as [2025-11-27T22:00:00Z, 2025-11-27T23:00:00Z)")
	f.getJSON(t, win(22*time.Hour, 23*time.Hour), &got)
	if got.Reach != 1 {
		t.Errorf("reach tier over [22:00, 23:00) after the minutes expired: %d, want 1", got.Reach)
	}
}
