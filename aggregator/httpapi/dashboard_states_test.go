package httpapi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ratingsd/ratingsd/aggregator"
)

// TestDashboardAuth: with tokens, the page asks for one before it shows
// anything, refuses an unknown token and one whose role may not read, and
// with a read token shows the figures and follows the stream, which it
// reads with the token (fetch, not EventSource).
func TestDashboardAuth(t *testing.T) {
	const (
		readToken   = "dashboard-read-token-0001"
		exportToken = "dashboard-export-token-01"
	)
	start := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	f := newLiveFixture(t, aggregator.Tuning, Config{Tokens: map[string]Role{readToken: RoleRead, exportToken: RoleExport}}, start, 30*time.Minute)
	f.token = readToken
	f.feed(t, start.Add(20*time.Minute+30*time.Second))
	f.seal(start.Add(20 * time.Minute))
	newest := start.Add(19 * time.Minute)

	b := newBrowser(t, 1366, 768, "")
	b.do(chromedp.Navigate(f.ts.URL + "/"))
	b.waitFor("the token dialog", `document.getElementById("token-dialog").open`)
	if n := eval[int](b, `document.querySelectorAll("#board-rows tr").length`); n != 0 {
		t.Errorf("%d board rows shown without a token", n)
	}
	if *updateScreenshots {
		screenshot(t, b, "dashboard-token.png")
	}

	enter := func(token string) {
		t.Helper()
		b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("token-input").value = ""; document.getElementById("token-error").hidden = true`),
			chromedp.SendKeys(chromedp.ID("token-input"), token),
			chromedp.Click(chromedp.ID("token-submit")))
	}
	enter("not-a-known-token-0000")
	b.waitFor("the refusal of an unknown token", `!document.getElementById("token-error").hidden &&
		document.getElementById("token-error").textContent.includes("refused: invalid bearer token")`)
	enter(exportToken)
	b.waitFor("the refusal of an export token", `!document.getElementById("token-error").hidden &&
		document.getElementById("token-error").textContent.includes("may not read ratings: role export")`)
	if !eval[bool](b, `document.getElementById("token-dialog").open`) {
		t.Error("the token dialog closed on a refused token")
	}

	enter(readToken)
	b.waitFor("the board behind a read token", `!document.getElementById("token-dialog").open && document.querySelector("#board-rows tr[data-channel]")`)
	checkBoard(t, b, f)
	b.waitFor("the stream", `document.getElementById("status").dataset.state === "live"`)
	if n := f.srv.subscribers(); n != 1 {
		t.Errorf("%d stream subscribers, want the page's", n)
	}
	f.feed(t, start.Add(21*time.Minute+30*time.Second))
	f.seal(start.Add(21 * time.Minute))
	b.waitFor("the new minute through the authenticated stream", fmt.Sprintf(`document.getElementById("board-panel").dataset.minute === %q`, rfcMinute(newest.Add(time.Minute))))
	checkBoard(t, b, f)

	// The token stays in this tab's session storage: not in the address,
	// not in storage that outlives the tab.
	where := eval[map[string]string](b, `({href: location.href, local: String(localStorage.getItem("ratingsd.token")),
		session: String(sessionStorage.getItem("ratingsd.token"))})`)
	if strings.Contains(where["href"], readToken) || where["local"] != "null" || where["session"] != readToken {
		t.Errorf("token kept at %v, want in session storage only", where)
	}
	b.noConsoleErrors(true) // the 401 and 403 that asked for a token are expected
}

// TestDashboardStates walks the page through the states a planner must be
// able to tell apart: nothing sealed yet while the service is not ready (as
// with NATS down), data that stopped arriving ten minutes ago, a window
// whose data has expired, and the stream going down.
func TestDashboardStates(t *testing.T) {
	const why = "nats: no servers available for connection"
	var down atomic.Bool
	down.Store(true)
	ready := func() error {
		if down.Load() {
			return errors.New(why)
		}
		return nil
	}
	start := time.Now().UTC().Truncate(time.Minute).Add(-40 * time.Minute)
	f := newLiveFixture(t, aggregator.Tuning, Config{Ready: ready}, start, 50*time.Minute)

	b := newBrowser(t, 1366, 768, "")
	b.do(chromedp.Navigate(f.ts.URL + "/"))
	b.waitFor("the waiting board", `document.getElementById("board-empty").dataset.state === "nodata"`)
	b.waitFor("the waiting status", `document.getElementById("status").dataset.state === "waiting"`)
	b.waitFor("the readiness banner", fmt.Sprintf(`!document.getElementById("banner-ready").hidden &&
		document.getElementById("banner-ready").textContent === %q`, "Service not ready: "+why))
	if s := eval[string](b, `document.getElementById("curves-state").dataset.state`); s != "nodata" {
		t.Errorf("curves state %q before the first minute, want nodata", s)
	}

	// Thirty minutes arrive at once, the newest ten minutes old: the page
	// shows them without a reload, and says that nothing newer came.
	down.Store(false)
	b.do(chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	f.feed(t, start.Add(30*time.Minute+30*time.Second))
	f.seal(start.Add(30 * time.Minute))
	newest := start.Add(29 * time.Minute)
	b.waitFor("the first minutes", fmt.Sprintf(`document.getElementById("board-panel").dataset.minute === %q`, rfcMinute(newest)))
	if !eval[bool](b, `window.sameDocument === true`) {
		t.Error("the page reloaded to show the first minute")
	}
	checkBoard(t, b, f)
	b.waitFor("the ready service", `document.getElementById("banner-ready").hidden`)
	b.waitFor("the stale-feed banner", `document.getElementById("banner-feed").dataset.state === "stale" && !document.getElementById("banner-feed").hidden`)
	b.waitFor("the curves", `document.getElementById("curves-panel").dataset.ready === "true"`)

	// Reach over a window three days back: expired.
	from := time.Now().UTC().Add(-72 * time.Hour)
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{const s = document.getElementById("reach-window");
		s.value = "custom"; s.dispatchEvent(new Event("change"));
		document.getElementById("reach-from").value = %q; document.getElementById("reach-to").value = %q;}`,
		from.Format("2006-01-02T15:04"), from.Add(time.Hour).Format("2006-01-02T15:04"))),
		chromedp.Click(chromedp.ID("reach-go")))
	b.waitFor("the expired reach", `document.querySelector("#reach-result [data-state]")?.dataset.state === "expired"`)
	if txt := eval[string](b, `document.getElementById("reach-result").textContent`); !strings.HasPrefix(txt, "Data expired: the window ends before") {
		t.Errorf("expired reach says %q", txt)
	}

	// The server shuts down: the stream ends, and the page says so and
	// keeps trying.
	f.srv.Close()
	b.waitFor("the interrupted stream", `document.getElementById("status").dataset.state === "down" &&
		document.getElementById("status").textContent.includes("the server is shutting down")`)
	if *updateScreenshots {
		// The whole page: the header's stream state and banners, and the
		// expired reach further down.
		b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`),
			chromedp.EmulateViewport(1366, int64(eval[float64](b, `document.documentElement.scrollHeight`))))
		screenshot(t, b, "dashboard-states.png")
	}
	b.noConsoleErrors(true) // the 404 "no data yet", the 410 and the 503 are expected
}

// TestDashboardEventsModel: with the events model the figures are
// estimates, drawn with their error bars, and flows are not available; the
// time zone toggle rewrites every time on the page.
func TestDashboardEventsModel(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	f := newLiveFixture(t, aggregator.Events, Config{}, start, 40*time.Minute)
	f.feed(t, start.Add(30*time.Minute+30*time.Second))
	f.seal(start.Add(30 * time.Minute))
	newest := start.Add(29 * time.Minute)

	b := newBrowser(t, 1366, 768, "Asia/Kolkata")
	b.do(chromedp.Navigate(f.ts.URL + "/"))
	b.waitFor("the now board", `document.querySelector("#board-rows tr[data-channel]")`)
	checkBoard(t, b, f)
	if n := eval[int](b, `[...document.querySelectorAll("#board-rows .whisker")].filter((w) => !w.hidden).length`); n == 0 {
		t.Error("no error bar on the board of estimates")
	}
	b.do(chromedp.Click(chromedp.CSS("#curves-table summary")))
	checkCurves(t, b, f, newest.Add(time.Minute))
	b.waitFor("flows refused", `document.querySelector("#flow-result [data-state]")?.dataset.state === "model"`)

	// UTC, then the browser's zone (+05:30 here).
	ist := time.FixedZone("IST", 5*3600+1800)
	label := func() string {
		return eval[string](b, `document.getElementById("board-minute").textContent`)
	}
	if got, want := label(), newest.Format("15:04")+" UTC"; !strings.HasPrefix(got, want) {
		t.Errorf("board minute %q in UTC, want %q…", got, want)
	}
	b.do(chromedp.Click(chromedp.ID("tz-local")))
	b.waitFor("local times", `document.getElementById("tz-local").getAttribute("aria-pressed") === "true"`)
	if got, want := label(), newest.In(ist).Format("15:04"); !strings.HasPrefix(got, want) || strings.Contains(got, "UTC") {
		t.Errorf("board minute %q in local time, want %s…", got, want)
	}
	peakAt := eval[string](b, `document.querySelector("#curves-summary tbody tr td:nth-child(4)").textContent`)
	peak := eval[string](b, `document.querySelector("#curves-summary tbody tr").dataset.peakMinute`)
	if pt, err := time.Parse(time.RFC3339, peak); err != nil || peakAt != pt.In(ist).Format("15:04") {
		t.Errorf("peak at %q in local time for %s, want %s", peakAt, peak, pt.In(ist).Format("15:04"))
	}
	b.do(chromedp.Click(chromedp.ID("tz-utc")))
	b.waitFor("UTC again", `document.getElementById("board-minute").textContent.includes("UTC")`)
	b.noConsoleErrors(true) // the 409 of the flow panel is expected
}

// TestVendoredUPlot checks that the vendored chart library is the version
// the Makefile pins, with its licence: `make vendor-uplot` wrote it.
func TestVendoredUPlot(t *testing.T) {
	dir := filepath.Join("static", "vendor", "uplot")
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^UPLOT_VERSION\s*\?=\s*(\S+)`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no UPLOT_VERSION")
	}
	version := string(m[1])
	js, err := os.ReadFile(filepath.Join(dir, "uPlot.iife.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/*! https://github.com/leeoniya/uPlot (v" + version + ") */"; !strings.HasPrefix(string(js), want) {
		t.Errorf("uPlot.iife.min.js starts %.60q, want %q (run make vendor-uplot)", js, want)
	}
	lic, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
	if err != nil || !strings.Contains(string(lic), "MIT License") {
		t.Errorf("uPlot's LICENSE: %v %.40q", err, lic)
	}
	stamp, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil || !strings.HasPrefix(string(stamp), "uplot "+version+" ") {
		t.Errorf("VERSION %q (%v), want uplot %s", stamp, err, version)
	}
	if _, err := os.Stat(filepath.Join(dir, "uPlot.min.css")); err != nil {
		t.Error(err)
	}
}
