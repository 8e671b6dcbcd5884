package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/bench"
	"github.com/ratingsd/ratingsd/sketch"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite the dashboard screenshots in docs/img")

// The dashboard's browser tests drive the page in headless Chromium against
// a real aggregator behind a real HTTP server, fed by the bench generator's
// simulated set-top boxes. The simulation is anchored at the wall clock, so
// that the page, which compares minutes with the browser's clock, sees live
// data.

// liveFixture is an aggregator fed by a generator, behind the API.
type liveFixture struct {
	agg   *aggregator.Aggregator
	w     *aggregator.Writer
	srv   *Server
	ts    *httptest.Server
	gen   *bench.Generator
	batch []event.Event
	clock atomic.Int64 // the aggregator's wall clock, Unix ms: just after the newest event
	token string       // sent by get, if set
}

// newLiveFixture simulates the boxes from start for dur. Their local time
// is taken to be 20:30 at start, whatever the hour, so that the curves have
// an evening audience.
func newLiveFixture(t *testing.T, model aggregator.Model, cfg Config, start time.Time, dur time.Duration) *liveFixture {
	t.Helper()
	key, err := sketch.KeyFromBytes([]byte("dashboard-test-k"))
	if err != nil {
		t.Fatal(err)
	}
	f := &liveFixture{}
	f.clock.Store(start.UnixMilli())
	f.agg, err = aggregator.New(aggregator.Config{
		Model:  model,
		Key:    key,
		Shards: 4,
		Now:    func() time.Time { return time.UnixMilli(f.clock.Load()).UTC() },
		OnSeal: func(m *aggregator.Minute) { f.srv.Publish(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.w = f.agg.NewWriter()
	cfg.Agg = f.agg
	f.srv = New(cfg)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(func() {
		f.srv.Close()
		f.ts.Close()
	})

	sod := start.Hour()*60 + start.Minute()
	off := (20*60 + 30 - sod + 1440) % 1440 // minutes to add to UTC
	if off > 720 {
		off -= 1440
	}
	gc := bench.Config{
		Seed:     42,
		Devices:  20000,
		Regions:  5,
		Channels: 30,
		Start:    start,
		Duration: dur,
		Zone:     time.FixedZone("evening", off*60),
	}
	if model == aggregator.Events {
		gc.Heartbeat = time.Minute // the events model's feed
	}
	if f.gen, err = bench.NewGenerator(gc); err != nil {
		t.Fatal(err)
	}
	return f
}

// feed ingests the generator's events until its event time reaches until.
func (f *liveFixture) feed(t *testing.T, until time.Time) {
	t.Helper()
	for f.gen.Now().Before(until) {
		if !f.gen.Next(context.Background(), &f.batch) {
			t.Fatalf("the simulation ended at %v, before %v", f.gen.Now(), until)
		}
		f.clock.Store(f.gen.Now().UnixMilli() + 1000)
		var rej event.Rejections
		if n := f.w.Write(f.batch, &rej); n != len(f.batch) {
			t.Fatalf("%d of %d events rejected, the first: %v", len(f.batch)-n, len(f.batch), rej.First)
		}
	}
}

// seal seals every minute that ends at or before end; the server publishes
// each to its event streams.
func (f *liveFixture) seal(end time.Time) { f.agg.SealThrough(end.UnixMilli()) }

// get GETs path, wants 200 and decodes the body into v.
func (f *liveFixture) get(t *testing.T, path string, v any) {
	t.Helper()
	req, err := http.NewRequest("GET", f.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body.Bytes())
	}
	if err := json.Unmarshal(body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body.Bytes())
	}
}

// rfcMinute formats a minute as the API and the page's data attributes do.
func rfcMinute(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// shown is a number as the page shows it ("9.88k") and as its data
// attribute holds it.
type shown struct {
	Text  string  `json:"text"`
	Value float64 `json:"value"`
}

var compactRE = regexp.MustCompile(`^(-?\d+(?:\.(\d+))?)([kMG]?)$`)

// shownErr says how s.Text fails to be s.Value written readably, in
// thousands (k) or millions (M) rounded to the digits shown; "" if it is.
func shownErr(s shown) string {
	m := compactRE.FindStringSubmatch(strings.TrimSpace(s.Text))
	if m == nil {
		return fmt.Sprintf("%q is not a count as the page writes them", s.Text)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m[3]]
	if m[3] == "" && math.Abs(s.Value) >= 1000 || m[3] == "k" && math.Abs(s.Value) < 1000 {
		return fmt.Sprintf("%q for %v: want thousands (k) from 1000 on, millions (M) from 1e6", s.Text, s.Value)
	}
	if tol := 0.5 * math.Pow(10, -float64(len(m[2]))) * unit; math.Abs(v*unit-s.Value) > tol+1e-9 {
		return fmt.Sprintf("shows %q, want %v to within %v", s.Text, s.Value, tol)
	}
	return ""
}

func checkShown(t *testing.T, what string, s shown) {
	t.Helper()
	if e := shownErr(s); e != "" {
		t.Errorf("%s: %s", what, e)
	}
}

func TestShownErr(t *testing.T) {
	f := func(text string, v float64, ok bool) {
		t.Helper()
		if e := shownErr(shown{text, v}); (e == "") != ok {
			t.Errorf("%q for %v: error %q, want ok=%v", text, v, e, ok)
		}
	}
	f("987", 987, true)
	f("9.88k", 9876, true)
	f("98.8k", 98765, true)
	f("988k", 987654, true)
	f("1.00M", 999999, true)
	f("0", 0, true)
	f("9.87k", 9876, false) // rounded the wrong way
	f("9876", 9876, false)  // not in thousands
	f("0.99k", 987, false)  // thousands below 1000
	f("12 %", 12, false)
}

// TestDashboardLive loads the dashboard fed by 75 minutes of simulated
// viewing, checks that its figures are the API's, then seals a minute while
// the page is open and checks that the page follows without a reload.
func TestDashboardLive(t *testing.T) {
	// 75 minutes of history: the hour the page shows by default is past
	// the simulation's start-up.
	start := time.Now().UTC().Truncate(time.Minute).Add(-75 * time.Minute)
	f := newLiveFixture(t, aggregator.Tuning, Config{}, start, 85*time.Minute)
	f.feed(t, start.Add(75*time.Minute+30*time.Second))
	f.seal(start.Add(75 * time.Minute))
	newest := start.Add(74 * time.Minute)

	b := newBrowser(t, 1920, 1080, "")
	b.do(chromedp.Navigate(f.ts.URL + "/"))
	b.waitFor("the now board", `document.querySelector("#board-rows tr[data-channel]")`)
	if s := eval[string](b, `document.getElementById("status").dataset.state`); s != "live" && s != "connecting" {
		t.Errorf("status %q, want live", s)
	}
	b.do(chromedp.Click(chromedp.CSS("#curves-table summary")))
	checkBoard(t, b, f)
	checkCurves(t, b, f, newest.Add(time.Minute))
	b.waitFor("the flow and capacity panels", `document.getElementById("flow-head") && document.getElementById("capacity-stats")`)
	b.waitFor("the status", `document.getElementById("status").dataset.state === "live"`)
	if banners := eval[int](b, `document.querySelectorAll(".banner:not([hidden])").length`); banners != 0 {
		t.Errorf("%d banners on a healthy page:\n%s", banners, b.pageState())
	}

	// A minute seals while the page is open: it appears without a reload.
	b.do(chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	f.feed(t, start.Add(76*time.Minute+30*time.Second))
	f.seal(start.Add(76 * time.Minute))
	newest = newest.Add(time.Minute)
	b.waitFor("the new minute on the board", fmt.Sprintf(`document.getElementById("board-panel").dataset.minute === %q`, rfcMinute(newest)))
	if !eval[bool](b, `window.sameDocument === true`) {
		t.Error("the page reloaded to show the new minute")
	}
	checkBoard(t, b, f)
	checkCurves(t, b, f, newest.Add(time.Minute))
	b.waitFor("flow and capacity at the new minute", fmt.Sprintf(
		`document.getElementById("flow-head")?.dataset.minute === %[1]q && document.getElementById("capacity-stats")?.dataset.minute === %[1]q`,
		rfcMinute(newest)))

	checkFlow(t, b, f, "ch-002")
	checkCapacity(t, b, f, "r-02")
	// The presets ask for windows one tier counts: the last so many minutes,
	// unless they cross the day start (as near midnight UTC).
	day := keys.Calendar{}
	from, to := presetWindow(day, "15", newest.Add(time.Minute))
	checkReach(t, b, f, []string{"ch-001", "ch-003"}, "15", from, to)
	from, to = presetWindow(day, "60", newest.Add(time.Minute))
	checkReach(t, b, f, nil, "60", from, to)

	// A click on a channel of the board adds it to the curves (the first
	// five are there already).
	seventh := eval[string](b, `document.querySelector("#board-rows tr:nth-child(7)").dataset.channel`)
	b.do(chromedp.Click(chromedp.CSS(`#board-rows tr:nth-child(7)`)))
	b.waitFor(seventh+" in the curves", fmt.Sprintf(`document.getElementById("curves-panel").dataset.channels.split(",").includes(%q)`, seventh))
	checkCurves(t, b, f, newest.Add(time.Minute))

	// A click on the curves picks that minute for the flow panel.
	b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	at := eval[map[string]float64](b, `(() => { const r = document.querySelector("#curves-chart .u-over").getBoundingClientRect();
		return {x: r.left + r.width * 0.3, y: r.top + r.height / 2}; })()`)
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, input.DispatchMouseEvent, input.DispatchMouseEventParams{Type: chromedp.MouseMoved, X: at["x"], Y: at["y"]})
		return err
	}), chromedp.MouseClickXY(at["x"], at["y"]))
	hovered := eval[string](b, `document.getElementById("curves-readout").textContent`)
	b.waitFor("the flow at the clicked minute", fmt.Sprintf(`!document.getElementById("flow-follow").checked &&
		document.getElementById("flow-head")?.dataset.minute !== %q`, rfcMinute(newest)))
	picked, err := time.Parse(time.RFC3339, eval[string](b, `document.getElementById("flow-head").dataset.minute`))
	if err != nil || picked.Format("15:04") != hovered {
		t.Errorf("clicked the curves at %q, the flow panel shows %v (%v)", hovered, picked, err)
	}
	checkFlow(t, b, f, "ch-001")

	if *updateScreenshots {
		b.do(chromedp.Click(chromedp.CSS("#curves-table summary")))
		screenshot(t, b, "dashboard-1920x1080.png")
		b.do(chromedp.EmulateViewport(1366, 768))
		b.waitFor("the curves at laptop width", `Math.abs(document.querySelector("#curves-chart canvas").getBoundingClientRect().width -
			document.getElementById("curves-chart").clientWidth) < 2`)
		screenshot(t, b, "dashboard-1366x768.png")
	}
	b.noConsoleErrors(false)
}
