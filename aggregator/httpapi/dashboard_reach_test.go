package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/keys"
)

// presetWindow is the window the reach panel asks for with a preset when
// the newest sealed minute ends at to: the spec of epochs.js in Go. The last
// N minutes are asked as they are within the current day; across the day
// start, whichever covers more of them: the day so far, or the whole hours
// around them within one ISO week.
func presetWindow(cal keys.Calendar, preset string, to time.Time) (from, end time.Time) {
	dayStart, _ := cal.Span(keys.Minute, cal.Epoch(keys.Minute, to.Add(-time.Millisecond)))
	weekStart, _ := cal.Span(keys.Reach, cal.Epoch(keys.Reach, to.Add(-time.Millisecond)))
	switch preset {
	case "day":
		return dayStart, to
	case "week":
		if weekStart.Equal(dayStart) {
			return weekStart, to
		}
		return weekStart, to.Truncate(time.Hour)
	}
	var n int
	fmt.Sscan(preset, &n)
	from = to.Add(-time.Duration(n) * time.Minute)
	if !from.Before(dayStart) {
		return from, to
	}
	hf, ht := from.Truncate(time.Hour), to.Truncate(time.Hour)
	_, weekEnd := cal.Span(keys.Reach, cal.Epoch(keys.Reach, hf))
	if ht.After(hf) && !ht.After(weekEnd) && ht.Sub(from) > to.Sub(dayStart) {
		return hf, ht
	}
	return dayStart, to
}

// fixClock makes the page's clock (Date) read at from the moment the next
// document loads, and run on from there.
func fixClock(b *browser, at time.Time) {
	b.t.Helper()
	script := fmt.Sprintf(`(() => {
		const RealDate = Date;
		const offset = %d - RealDate.now();
		function FixedDate(...a) {
			if (!new.target) return new RealDate(RealDate.now() + offset).toString();
			return a.length ? new RealDate(...a) : new RealDate(RealDate.now() + offset);
		}
		FixedDate.prototype = RealDate.prototype;
		FixedDate.now = () => RealDate.now() + offset;
		FixedDate.UTC = RealDate.UTC;
		FixedDate.parse = RealDate.parse;
		globalThis.Date = FixedDate;
	})();`, at.UnixMilli())
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		b.t.Fatalf("fix the page's clock: %v", err)
	}
}

// TestDashboardReachPresets: at 01:20 UTC on a Friday, "last 3 h" crosses
// midnight, where the minute tier's day key changes. Every preset still
// gets an answer (no 400): the last 15 minutes and the last hour at minute
// resolution, the last 3 h in the whole hours around them from the hour
// tier, today from the day start, this week in whole hours from Monday; and
// the page says which tier and epoch counted each. A custom window across
// midnight shows the server's explanation. The browser is in India
// (+05:30): local midnight is not the day start, and the local time toggle
// moves labels, never windows.
func TestDashboardReachPresets(t *testing.T) {
	day := time.Date(2025, 11, 28, 0, 0, 0, 0, time.UTC) // a Friday of 2025-W48
	start := day.Add(-2*time.Hour - 10*time.Minute)
	f := newLiveFixture(t, aggregator.Tuning, Config{}, start, 3*time.Hour+40*time.Minute)
	f.feed(t, day.Add(80*time.Minute+30*time.Second))
	f.seal(day.Add(80 * time.Minute))
	to := day.Add(80 * time.Minute) // the end of the newest sealed minute, 01:19

	b := newBrowser(t, 1366, 900, "Asia/Kolkata")
	fixClock(b, time.UnixMilli(f.clock.Load()))
	b.do(chromedp.Navigate(f.ts.URL + "/"))
	b.waitFor("the now board", `document.querySelector("#board-rows tr[data-channel]")`)
	if got := eval[string](b, `new Date().toISOString()`); !strings.HasPrefix(got, "2025-11-28T01:2") {
		t.Fatalf("the page's clock reads %s, want 2025-11-28T01:2x", got)
	}
	checkCalendar(t, b)

	cal := keys.Calendar{}
	for _, c := range []struct {
		preset      string
		from, to    time.Time
		tier, epoch string
		how         string
	}{
		{"15", to.Add(-15 * time.Minute), to, "minute", "2025-11-28", "asked"},
		{"60", to.Add(-60 * time.Minute), to, "minute", "2025-11-28", "asked"},
		{"180", day.Add(-2 * time.Hour), day.Add(time.Hour), "hour", "2025-W48", "hours"},
		{"day", day, to, "minute", "2025-11-28", "day"},
		{"week", day.Add(-4 * 24 * time.Hour), day.Add(time.Hour), "hour", "2025-W48", "hours"},
	} {
		if from, end := presetWindow(cal, c.preset, to); !from.Equal(c.from) || !end.Equal(c.to) {
			t.Errorf("presetWindow %s: [%v, %v), want [%v, %v)", c.preset, from, end, c.from, c.to)
		}
		got := checkReach(t, b, f, nil, c.preset, c.from, c.to)
		if got.Tier != c.tier || got.Epoch != c.epoch {
			t.Errorf("preset %s: counted by the %s tier in %s, want the %s tier in %s", c.preset, got.Tier, got.Epoch, c.tier, c.epoch)
		}
		if how := eval[string](b, `document.getElementById("reach-value").dataset.how`); how != c.how {
			t.Errorf("preset %s: fitted as %q, want %q", c.preset, how, c.how)
		}
	}
	// The last 3 h say why they were counted in whole hours.
	checkReach(t, b, f, []string{"ch-002"}, "180", day.Add(-2*time.Hour), day.Add(time.Hour))
	if note := eval[string](b, `document.getElementById("reach-note")?.textContent ?? ""`); !strings.Contains(note, "cross the day start (00:00 UTC)") ||
		!strings.Contains(note, "whole hours") {
		t.Errorf("the last 3 h across midnight are explained as %q", note)
	}

	// Local time: labels move to +05:30, the windows stay on the UTC days.
	b.do(chromedp.Click(chromedp.ID("tz-local")))
	b.waitFor("local labels", `document.querySelector("#reach-window option[value=day]").textContent.includes("05:30")`)
	checkReach(t, b, f, nil, "day", day, to)
	if tier := eval[string](b, `document.getElementById("reach-tier").textContent`); !strings.Contains(tier, "(from 05:30 ") {
		t.Errorf("the day epoch in local time: %q, want it to start at 05:30", tier)
	}
	b.do(chromedp.Click(chromedp.ID("tz-utc")))
	b.waitFor("UTC labels", `document.querySelector("#reach-window option[value=day]").textContent === "today (from 00:00 UTC)" &&
		document.querySelector("#reach-window option[value=week]").textContent === "this week (from Mon 00:00 UTC)"`)

	// A custom window across midnight: the server's explanation, and
	// where days start.
	b.do(chromedp.Evaluate[chromedp.Void](`{const s = document.getElementById("reach-window");
		s.value = "custom"; s.dispatchEvent(new Event("change"));
		document.getElementById("reach-from").value = "2025-11-27T23:30"; document.getElementById("reach-to").value = "2025-11-28T00:30";}`),
		chromedp.Click(chromedp.ID("reach-go")))
	b.waitFor("the refused reach", `document.querySelector("#reach-result [data-state]")?.dataset.state === "bad"`)
	txt := eval[string](b, `document.getElementById("reach-result").textContent`)
	for _, want := range []string{
		"Cannot ask that: reach window spans two key epochs: [2025-11-27T23:30:00Z, 2025-11-28T00:30:00Z) spans the day boundary at 2025-11-28T00:00:00Z",
		"ask within one day, or for whole hours, such as [2025-11-27T23:00:00Z, 2025-11-28T01:00:00Z)",
		"Days start at 00:00 UTC",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("the refused reach says %q, want it to say %q", txt, want)
		}
	}
	b.noConsoleErrors(true) // the 400 of the refused window is expected
}

// checkCalendar compares the page's calendar (epochs.js) with the
// service's (keys.Calendar) for day starts and instants around the edges of
// days and weeks.
func checkCalendar(t *testing.T, b *browser) {
	t.Helper()
	type span struct{ From, To int64 }
	type want struct {
		DayStart  string
		At        int64
		Day, Week span
	}
	var cases []want
	base := time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC) // a Monday; ISO week 2026-W01
	for _, h := range []int{0, 2, 6, 23} {
		cal, err := keys.NewCalendar(time.Duration(h) * time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []time.Duration{-time.Minute, 0, time.Duration(h)*time.Hour - time.Minute, time.Duration(h) * time.Hour,
			3*24*time.Hour + 90*time.Minute, 7*24*time.Hour + time.Duration(h)*time.Hour - time.Millisecond, -400 * 24 * time.Hour} {
			at := base.Add(off)
			ds, de := cal.Span(keys.Minute, cal.Epoch(keys.Minute, at))
			ws, we := cal.Span(keys.Reach, cal.Epoch(keys.Reach, at))
			cases = append(cases, want{fmt.Sprintf("%02d:00", h), at.UnixMilli(),
				span{ds.UnixMilli(), de.UnixMilli()}, span{ws.UnixMilli(), we.UnixMilli()}})
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]want](fmt.Sprintf(`import("/static/epochs.js").then(({ Calendar }) => %s.map((c) => {
		const cal = new Calendar(c.DayStart);
		const d = cal.day(c.At), w = cal.week(c.At);
		return { DayStart: c.DayStart, At: c.At, Day: { From: d.start, To: d.end }, Week: { From: w.start, To: w.end } };
	}))`, mustJSON(t, cases)), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's calendar: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(cases) {
		t.Errorf("the page's calendar differs from the service's:\npage    %v\nservice %v", got, cases)
	}
}
