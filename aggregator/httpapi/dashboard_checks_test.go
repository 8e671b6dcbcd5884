package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The checks of the dashboard's browser tests: each reads a panel from the
// page's DOM (its data attributes hold the exact figures, its text the
// figures as shown) and compares it with the API's answer to the same
// question.

// boardRow is a row of the now board as the page shows it.
type boardRow struct {
	Channel  string  `json:"channel"`
	Audience uint64  `json:"audience"`
	Low      uint64  `json:"low"`
	High     uint64  `json:"high"`
	Share    float64 `json:"share"`
	Open     int64   `json:"open"` // -1: no figure in the open minute
	Text     string  `json:"text"`
	Pct      string  `json:"pct"`
	Whisker  bool    `json:"whisker"`
}

const readBoard = `[...document.querySelectorAll("#board-rows tr[data-channel]")].map((tr) => ({
	channel: tr.dataset.channel, audience: +tr.dataset.audience, low: +tr.dataset.low,
	high: +tr.dataset.high, share: +tr.dataset.share,
	open: tr.dataset.open === "" ? -1 : +tr.dataset.open,
	text: tr.querySelector(".aud").textContent, pct: tr.querySelector(".share").textContent,
	whisker: !tr.querySelector(".whisker").hidden,
}))`

// checkBoard compares the now board with GET /v1/now.
func checkBoard(t *testing.T, b *browser, f *liveFixture) {
	t.Helper()
	var now nowOut
	f.get(t, "/v1/now", &now)
	if now.Sealed == nil {
		t.Fatal("GET /v1/now: nothing sealed")
	}
	if got := eval[string](b, `document.getElementById("board-panel").dataset.minute`); got != rfcMinute(now.Sealed.Minute) {
		t.Errorf("board minute %s, want %s", got, rfcMinute(now.Sealed.Minute))
	}
	if now.Open != nil {
		b.waitFor("the open minute on the board", fmt.Sprintf(`document.getElementById("board-panel").dataset.openMinute === %q`, rfcMinute(now.Open.Minute)))
	}
	total := eval[shown](b, `({text: document.getElementById("board-total-value").textContent,
		value: +document.getElementById("board-total-value").dataset.value})`)
	if now.Sealed.Total == nil || total.Value != float64(*now.Sealed.Total) {
		t.Errorf("board total %v, want %v", total.Value, now.Sealed.Total)
	}
	checkShown(t, "board total", total)

	rows := eval[[]boardRow](b, readBoard)
	if len(rows) != len(now.Sealed.Channels) {
		t.Fatalf("board has %d channels, the API %d", len(rows), len(now.Sealed.Channels))
	}
	open := map[string]uint64{}
	if now.Open != nil {
		for _, c := range now.Open.Channels {
			open[c.Channel] = c.Audience
		}
	}
	for i, r := range rows {
		w := now.Sealed.Channels[i]
		if r.Channel != w.Channel || r.Audience != w.Audience || r.Low != w.Low || r.High != w.High || r.Share != w.Share {
			t.Errorf("board row %d: %+v, want %+v", i, r, w)
		}
		checkShown(t, "board "+r.Channel, shown{r.Text, float64(r.Audience)})
		// The page rounds a tie up (toFixed), Go to even: either will do.
		if p := 100 * w.Share; w.Share >= 0.01 && r.Pct != fmt.Sprintf("%.1f%%", p) && r.Pct != fmt.Sprintf("%.1f%%", p+1e-9) {
			t.Errorf("board %s: share %q, want %.1f%%", r.Channel, r.Pct, p)
		}
		if o, ok := open[r.Channel]; ok != (r.Open >= 0) || ok && uint64(r.Open) != o {
			t.Errorf("board %s: open minute %d, want %d (in the open minute: %v)", r.Channel, r.Open, o, ok)
		}
		if r.Whisker != (r.Low != r.High) {
			t.Errorf("board %s: error bar shown %v for the interval [%d, %d]", r.Channel, r.Whisker, r.Low, r.High)
		}
	}
}

// curvePoint is a cell of the curves' minute table.
type curvePoint struct {
	Minute   string  `json:"minute"`
	Channel  string  `json:"channel"`
	Audience uint64  `json:"audience"`
	Low      uint64  `json:"low"`
	High     uint64  `json:"high"`
	Share    float64 `json:"share"`
}

type curveSummary struct {
	Channel    string  `json:"channel"`
	Latest     uint64  `json:"latest"`
	Peak       uint64  `json:"peak"`
	PeakMinute string  `json:"peakMinute"`
	Average    float64 `json:"average"`
}

// checkCurves compares the curves (their minute table and their summary)
// with GET /v1/audience over the window the panel shows; to is the window's
// end it must have reached.
func checkCurves(t *testing.T, b *browser, f *liveFixture, to time.Time) {
	t.Helper()
	b.waitFor("the curves up to "+rfcMinute(to), fmt.Sprintf(
		`document.getElementById("curves-panel").dataset.to === %q && document.querySelector("#curves-table tbody tr")`, rfcMinute(to)))
	panel := eval[map[string]string](b, `({...document.getElementById("curves-panel").dataset})`)
	chans := strings.Split(panel["channels"], ",")
	if len(chans) == 0 || chans[0] == "" {
		t.Fatalf("curves of no channel: %v", panel)
	}
	cells := eval[[]curvePoint](b, `[...document.querySelectorAll("#curves-table tbody td[data-channel]")].map((td) => ({
		minute: td.parentElement.dataset.minute, channel: td.dataset.channel, audience: +td.dataset.audience,
		low: +td.dataset.low, high: +td.dataset.high, share: +td.dataset.share}))`)
	got := map[string]curvePoint{}
	for _, c := range cells {
		got[c.Minute+" "+c.Channel] = c
	}
	sums := eval[[]curveSummary](b, `[...document.querySelectorAll("#curves-summary tbody tr")].map((tr) => ({
		channel: tr.dataset.channel, latest: +tr.dataset.latest, peak: +tr.dataset.peak,
		peakMinute: tr.dataset.peakMinute, average: +tr.dataset.average}))`)
	if len(sums) != len(chans) {
		t.Errorf("curves summary has %d rows for %d channels", len(sums), len(chans))
	}
	points := 0
	for i, ch := range chans {
		var c curveJSON
		f.get(t, "/v1/audience?"+url.Values{"channel": {ch}, "from": {panel["from"]}, "to": {panel["to"]}}.Encode(), &c)
		if rfcMinute(c.From) != panel["from"] || rfcMinute(c.To) != panel["to"] {
			t.Errorf("curve %s: the API covers [%v, %v), the page [%s, %s)", ch, c.From, c.To, panel["from"], panel["to"])
		}
		for _, p := range c.Points {
			points++
			key := rfcMinute(p.Minute) + " " + ch
			g, ok := got[key]
			want := curvePoint{rfcMinute(p.Minute), ch, p.Audience, p.Low, p.High, p.Share}
			if !ok || g != want {
				t.Errorf("curve %s at %s: page %+v (shown %v), API %+v", ch, p.Minute, g, ok, want)
			}
		}
		if i < len(sums) {
			s := sums[i]
			last := c.Points[len(c.Points)-1].Audience
			if s.Channel != ch || s.Latest != last || s.Peak != c.Peak.Audience || s.PeakMinute != rfcMinute(c.Peak.Minute) || s.Average != c.Average {
				t.Errorf("curve %s summary %+v, want latest %d, peak %d at %v, average %v", ch, s, last, c.Peak.Audience, c.Peak.Minute, c.Average)
			}
		}
	}
	if points != len(cells) || points == 0 {
		t.Errorf("the minute table has %d cells, the API %d points", len(cells), points)
	}
	if n := eval[int](b, `document.querySelectorAll("#curves-chart canvas").length`); n != 1 {
		t.Errorf("curves chart: %d canvases, want 1", n)
	}
}

// checkFlow picks channel in the flow panel and compares it with
// GET /v1/flow.
func checkFlow(t *testing.T, b *browser, f *liveFixture, channel string) {
	t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{const s = document.getElementById("flow-channel");
		s.value = %q; s.dispatchEvent(new Event("change"));}`, channel)))
	b.waitFor("the flow of "+channel, fmt.Sprintf(`document.getElementById("flow-head")?.dataset.channel === %q`, channel))
	head := eval[map[string]string](b, `({...document.getElementById("flow-head").dataset})`)
	var want flowJSON
	f.get(t, "/v1/flow?"+url.Values{"from": {channel}, "minute": {head["minute"]}}.Encode(), &want)
	type entry struct {
		State   string `json:"state"`
		Devices uint64 `json:"devices"`
	}
	read := func(id string) []entry {
		return eval[[]entry](b, fmt.Sprintf(`[...document.querySelectorAll("#%s li")].map((li) => ({state: li.dataset.state, devices: +li.dataset.devices}))`, id))
	}
	var out, in []entry
	for _, e := range want.Out {
		out = append(out, entry{e.To, e.Devices})
	}
	for _, e := range want.In {
		in = append(in, entry{e.From, e.Devices})
	}
	if got := read("flow-out"); fmt.Sprint(got) != fmt.Sprint(out) {
		t.Errorf("flow out of %s:\npage %v\nAPI  %v", channel, got, out)
	}
	if got := read("flow-in"); fmt.Sprint(got) != fmt.Sprint(in) {
		t.Errorf("flow into %s:\npage %v\nAPI  %v", channel, got, in)
	}
	if head["previous"] != strconv.FormatUint(want.Previous.Audience, 10) || head["outTotal"] != strconv.FormatUint(want.OutTotal, 10) ||
		head["inTotal"] != strconv.FormatUint(want.InTotal, 10) {
		t.Errorf("flow of %s: page %v, API previous %d, out %d, in %d", channel, head, want.Previous.Audience, want.OutTotal, want.InTotal)
	}
	if len(out) == 0 && len(in) == 0 {
		t.Errorf("flow of %s at %s: nobody moved; the test shows nothing", channel, head["minute"])
	}
}

// checkCapacity picks region in the capacity panel and compares it with
// GET /v1/capacity.
func checkCapacity(t *testing.T, b *browser, f *liveFixture, region string) {
	t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{const s = document.getElementById("capacity-region");
		s.value = %q; s.dispatchEvent(new Event("change"));}`, region)))
	b.waitFor("the capacity of "+region, fmt.Sprintf(`document.getElementById("capacity-stats")?.dataset.region === %q`, region))
	newest := eval[string](b, `document.getElementById("board-panel").dataset.minute`)
	nt, err := time.Parse(time.RFC3339, newest)
	if err != nil {
		t.Fatal(err)
	}
	var want capacityJSON
	f.get(t, "/v1/capacity?"+url.Values{"region": {region}, "from": {rfcMinute(nt.Add(-59 * time.Minute))}, "to": {rfcMinute(nt.Add(time.Minute))}}.Encode(), &want)
	type minute struct {
		Minute   string `json:"minute"`
		Viewers  uint64 `json:"viewers"`
		Channels int    `json:"channels"`
		Zaps     uint64 `json:"zaps"`
	}
	got := eval[[]minute](b, `[...document.querySelectorAll("#capacity-table tbody tr")].map((tr) => ({
		minute: tr.dataset.minute, viewers: +tr.dataset.viewers, channels: +tr.dataset.channels, zaps: +tr.dataset.zaps})).reverse()`)
	var wantMin []minute
	for _, m := range want.Minutes {
		wantMin = append(wantMin, minute{rfcMinute(m.Minute), m.Viewers, m.DistinctChannels, m.Zaps})
	}
	if fmt.Sprint(got) != fmt.Sprint(wantMin) {
		t.Errorf("capacity of %s per minute:\npage %v\nAPI  %v", region, got, wantMin)
	}
	type viewers struct {
		Channel string `json:"channel"`
		Viewers uint64 `json:"viewers"`
	}
	now := eval[[]viewers](b, `[...document.querySelectorAll("#capacity-now li")].map((li) => ({channel: li.dataset.channel, viewers: +li.dataset.viewers}))`)
	var wantNow []viewers
	for _, c := range want.Now.Channels[:min(8, len(want.Now.Channels))] {
		wantNow = append(wantNow, viewers{c.Channel, c.Viewers})
	}
	if fmt.Sprint(now) != fmt.Sprint(wantNow) {
		t.Errorf("capacity of %s now:\npage %v\nAPI  %v", region, now, wantNow)
	}
	peak := eval[map[string]string](b, `({...document.getElementById("capacity-peak").dataset})`)
	if peak["minute"] != rfcMinute(want.Peak.Minute) || peak["viewers"] != strconv.FormatUint(want.Peak.Viewers, 10) {
		t.Errorf("capacity of %s: peak %v, want %d at %v", region, peak, want.Peak.Viewers, want.Peak.Minute)
	}
	last := want.Minutes[len(want.Minutes)-1]
	checkShown(t, "capacity viewers", eval[shown](b, `({text: document.getElementById("capacity-viewers").textContent,
		value: +document.getElementById("capacity-viewers").dataset.value})`))
	if v := eval[float64](b, `+document.getElementById("capacity-viewers").dataset.value`); v != float64(last.Viewers) {
		t.Errorf("capacity of %s: viewers %v, want %d", region, v, last.Viewers)
	}
}

// checkReach counts the reach of channels (typed into the reach panel's
// picker) over the preset window, wants the page to ask for [from, to), and
// compares what it shows with GET /v1/reach over that window: the figures,
// the tier and epoch that counted them, and the window they cover. It
// returns the API's answer.
func checkReach(t *testing.T, b *browser, f *liveFixture, channels []string, window string, from, to time.Time) reachJSON {
	t.Helper()
	// Clear the picker, then type each channel as a planner would.
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("#reach-picker .chip .x").forEach((x) => x.click())`))
	for _, ch := range channels {
		b.do(chromedp.SendKeys(chromedp.CSS("#reach-picker input"), ch+"\r"))
	}
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{const s = document.getElementById("reach-window");
		s.value = %q; s.dispatchEvent(new Event("change")); document.getElementById("reach-result").replaceChildren();}`, window)))
	b.do(chromedp.Click(chromedp.ID("reach-go")))
	b.waitFor("the reach", `!document.getElementById("reach-result").hasAttribute("aria-busy") &&
		(document.getElementById("reach-value") || document.querySelector("#reach-result [data-state]"))`)
	if state := eval[string](b, `document.querySelector("#reach-result [data-state]")?.textContent ?? ""`); state != "" {
		t.Fatalf("reach over the preset %q: %s", window, state)
	}
	got := eval[map[string]string](b, `({...document.getElementById("reach-value").dataset,
		text: document.getElementById("reach-value").textContent,
		tierText: document.getElementById("reach-tier").textContent,
		result: document.getElementById("reach-result").textContent})`)
	if r := got["result"]; strings.Contains(r, "null") || strings.Contains(r, "undefined") || strings.Contains(r, "NaN") {
		t.Errorf("reach over the preset %q shows %q", window, r)
	}
	if got["channels"] != strings.Join(channels, ",") {
		t.Errorf("reach of %q, want %q", got["channels"], strings.Join(channels, ","))
	}
	if got["askedFrom"] != rfcMinute(from) || got["askedTo"] != rfcMinute(to) {
		t.Errorf("preset %q asks for [%s, %s), want [%v, %v)", window, got["askedFrom"], got["askedTo"], rfcMinute(from), rfcMinute(to))
	}
	var want reachJSON
	f.get(t, "/v1/reach?"+url.Values{"channel": channels, "from": {rfcMinute(from)}, "to": {rfcMinute(to)}}.Encode(), &want)
	if got["reach"] != strconv.FormatUint(want.Reach, 10) || got["low"] != strconv.FormatUint(want.Low, 10) || got["high"] != strconv.FormatUint(want.High, 10) ||
		got["from"] != rfcMinute(want.From) || got["to"] != rfcMinute(want.To) || got["tier"] != want.Tier || got["epoch"] != want.Epoch {
		t.Errorf("reach of %v over the preset %q: page %v, API %+v", channels, window, got, want)
	}
	if unit := map[string]string{"minute": "day ", "hour": "week "}[want.Tier]; !strings.Contains(got["tierText"], want.Tier+" tier "+unit+want.Epoch) ||
		!strings.Contains(got["tierText"], want.Tier+" resolution") {
		t.Errorf("reach over the preset %q says %q, want the %s tier, %s%s and its resolution", window, got["tierText"], want.Tier, unit, want.Epoch)
	}
	v, _ := strconv.ParseFloat(got["reach"], 64)
	checkShown(t, "reach", shown{got["text"], v})
	return want
}

// screenshot writes the viewport to docs/img/name.
func screenshot(t *testing.T, b *browser, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// Let the charts finish their frame.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`,
		chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(img) > 300<<10 {
		t.Errorf("screenshot %s is %d KiB, more than the README should carry (300 KiB)", name, len(img)>>10)
	}
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d KiB)", path, len(img)>>10)
}
