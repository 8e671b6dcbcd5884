package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
	"github.com/ratingsd/ratingsd/sketch"
)

var update = flag.Bool("update", false, "rewrite the golden responses in testdata/http")

// t0 is the first minute of the test scenario; the wall clock stands at
// t0+5m throughout.
var t0 = time.Date(2025, 11, 27, 20, 0, 0, 0, time.UTC)

// at returns t0 + "m:ss" (or "m:ss.mmm"), e.g. at("1:30").
func at(s string) time.Time {
	m, sec, _ := strings.Cut(s, ":")
	mi, err1 := strconv.Atoi(m)
	se, err2 := strconv.ParseFloat(sec, 64)
	if err1 != nil || err2 != nil {
		panic("BUG: test time " + s)
	}
	return t0.Add(time.Duration(mi)*time.Minute + time.Duration(se*float64(time.Second)))
}

// rfc formats a scenario time for a URL.
func rfc(s string) string { return at(s).Format(time.RFC3339) }

type fixture struct {
	agg *aggregator.Aggregator
	w   *aggregator.Writer
	srv *Server
	ts  *httptest.Server
	met *telemetry.Metrics
}

// newFixture starts a real aggregator behind a real HTTP server. The
// aggregator's sealed minutes are published to the server.
func newFixture(t testing.TB, model aggregator.Model, cfg Config) *fixture {
	t.Helper()
	key, err := sketch.KeyFromBytes([]byte("httpapi-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	clock := t0.Add(5 * time.Minute)
	acfg := aggregator.Config{
		Model:  model,
		Key:    key,
		Shards: 4,
		Now:    func() time.Time { return clock },
		OnSeal: func(m *aggregator.Minute) { f.srv.Publish(m) },
	}
	if f.agg, err = aggregator.New(acfg); err != nil {
		t.Fatal(err)
	}
	f.w = f.agg.NewWriter()
	cfg.Agg = f.agg
	if cfg.Metrics == nil {
		f.met = telemetry.New(f.agg)
		cfg.Metrics = f.met
	}
	f.srv = New(cfg)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(func() {
		f.srv.Close()
		f.ts.Close()
	})
	return f
}

// ingest writes one event, "m:ss device kind channel region", in its own
// batch, as a stream delivers events in time order.
func (f *fixture) ingest(t testing.TB, lines ...string) {
	t.Helper()
	for _, l := range lines {
		fs := strings.Fields(l)
		kind, ok := event.ParseKind([]byte(fs[2]))
		if !ok || len(fs) != 5 {
			t.Fatalf("bad test event %q", l)
		}
		ch := fs[3]
		if ch == "-" {
			ch = ""
		}
		e := event.Event{Device: []byte(fs[1]), Channel: []byte(ch), Region: []byte(fs[4]), TS: at(fs[0]).UnixMilli(), Kind: kind}
		var rej event.Rejections
		if n := f.w.Write([]event.Event{e}, &rej); n != 1 {
			t.Fatalf("event %q rejected: %v", l, rej.First)
		}
	}
}

func (f *fixture) seal(s string) { f.agg.SealThrough(at(s).UnixMilli()) }

// scenario is the small fixed viewing of the happy-path tests and golden
// files. Audiences (tuning model, min dwell 5 s):
//
//	minute  npo1      npo2    rtl4    total
//	19:59   -         -       -       0  (the first open minute: the watermark's)
//	20:00   d1 d2 d3  d5      d4      5
//	20:01   d1 d3     d2 d5   d4 d6   6
//	20:02   d1        d2 d5   d4 d6   5  (d3 in standby; d1 zapped to rtl4 for 2 s)
//
// Regions: d1 d2 d5 d6 ams-03, d3 d4 rtm-01.
var scenario = []string{
	"0:00 d1 tune npo1 ams-03",
	"0:00 d2 tune npo1 ams-03",
	"0:00 d3 tune npo1 rtm-01",
	"0:00 d4 tune rtl4 rtm-01",
	"0:10 d5 tune npo2 ams-03",
	"1:00 d2 tune npo2 ams-03",
	"1:30 d6 tune rtl4 ams-03",
	"2:00 d3 standby - rtm-01",
	"2:20 d1 tune rtl4 ams-03",
	"2:22 d1 tune npo1 ams-03",
	"3:10 d4 heartbeat rtl4 rtm-01",
}

// scenarioFixture is newFixture with the scenario ingested and sealed
// through 20:02.
func scenarioFixture(t testing.TB, cfg Config) *fixture {
	f := newFixture(t, aggregator.Tuning, cfg)
	f.ingest(t, scenario...)
	f.seal("3:00")
	return f
}

// minuteOut and nowOut decode minuteJSON and nowJSON, whose total is an
// embedded pointer on the way out.
type minuteOut struct {
	Minute    time.Time
	Total     *uint64
	TotalLow  uint64 `json:"total_low"`
	TotalHigh uint64 `json:"total_high"`
	Channels  []channelJSON
}

type nowOut struct {
	Sealed, Open *minuteOut
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (f *fixture) do(t testing.TB, method, path, token string) response {
	t.Helper()
	// A stream answered where none is expected must not hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// getJSON GETs path, wants 200 and decodes the body into v.
func (f *fixture) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	r := f.do(t, "GET", path, "")
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %s", path, r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
}

func TestChannels(t *testing.T) {
	f := scenarioFixture(t, Config{})
	var got channelsJSON
	f.getJSON(t, "/v1/channels", &got)
	if got.Minute == nil || !got.Minute.Equal(at("2:00")) {
		t.Errorf("minute %v, want %v", got.Minute, at("2:00"))
	}
	want := []channelJSON{
		{"npo2", 2, 2, 2, 0.4},
		{"rtl4", 2, 2, 2, 0.4},
		{"npo1", 1, 1, 1, 0.2},
	}
	if fmt.Sprint(got.Channels) != fmt.Sprint(want) {
		t.Errorf("channels\ngot  %v\nwant %v", got.Channels, want)
	}
}

func TestRegions(t *testing.T) {
	f := scenarioFixture(t, Config{})
	var got regionsJSON
	f.getJSON(t, "/v1/regions", &got)
	if fmt.Sprint(got.Regions) != "[ams-03 rtm-01]" {
		t.Errorf("regions %v, want [ams-03 rtm-01]", got.Regions)
	}
}

func TestAudience(t *testing.T) {
	f := scenarioFixture(t, Config{})
	check := func(path string, from, to time.Time, want []uint64, peakMinute time.Time, avg float64) {
		t.Helper()
		var got curveJSON
		f.getJSON(t, path, &got)
		if got.Channel != "npo1" || !got.From.Equal(from) || !got.To.Equal(to) {
			t.Errorf("%s: channel %q [%v, %v), want npo1 [%v, %v)", path, got.Channel, got.From, got.To, from, to)
		}
		var aud []uint64
		for i, p := range got.Points {
			aud = append(aud, p.Audience)
			if p.Low != p.Audience || p.High != p.Audience {
				t.Errorf("%s: point %d: [%d, %d] around %d, want exact (tuning)", path, i, p.Low, p.High, p.Audience)
			}
			if wantMin := from.Add(time.Duration(i) * time.Minute); !p.Minute.Equal(wantMin) {
				t.Errorf("%s: point %d at %v, want %v", path, i, p.Minute, wantMin)
			}
		}
		if fmt.Sprint(aud) != fmt.Sprint(want) {
			t.Errorf("%s: audiences %v, want %v", path, aud, want)
		}
		if !got.Peak.Minute.Equal(peakMinute) || got.Peak.Audience != 3 || got.Peak.Share != 0.6 {
			t.Errorf("%s: peak %+v, want 3 (share 0.6) at %v", path, got.Peak, peakMinute)
		}
		if got.Average != avg {
			t.Errorf("%s: average %v, want %v", path, got.Average, avg)
		}
	}
	check("/v1/audience?channel=npo1&from="+rfc("0:00")+"&to="+rfc("3:00"),
		at("0:00"), at("3:00"), []uint64{3, 2, 1}, at("0:00"), 2)
	// Unix milliseconds; to rounds up to the whole minute.
	check(fmt.Sprintf("/v1/audience?channel=npo1&from=%d&to=%d", at("0:00").UnixMilli(), at("2:30").UnixMilli()),
		at("0:00"), at("3:00"), []uint64{3, 2, 1}, at("0:00"), 2)
	// Default: the hour up to the newest sealed minute, clipped to what is kept.
	check("/v1/audience?channel=npo1", at("-1:00"), at("3:00"), []uint64{0, 3, 2, 1}, at("0:00"), 1.5)
	check("/v1/audience?channel=npo1&to="+rfc("2:00"), at("-1:00"), at("2:00"), []uint64{0, 3, 2}, at("0:00"), 5.0/3)
}

func TestNow(t *testing.T) {
	f := scenarioFixture(t, Config{})
	var got nowOut
	f.getJSON(t, "/v1/now", &got)
	if got.Sealed == nil || got.Open == nil {
		t.Fatalf("now %+v: want a sealed and an open minute", got)
	}
	if s := got.Sealed; !s.Minute.Equal(at("2:00")) || s.Total == nil || *s.Total != 5 || s.TotalLow != 5 || s.TotalHigh != 5 {
		t.Errorf("sealed %+v, want 20:02 total 5 (exact)", s)
	}
	// The open minute is the newest event's; on air now: d1 npo1, d2 d5 npo2, d4 d6 rtl4.
	if o := got.Open; !o.Minute.Equal(at("3:00")) || o.Total == nil || *o.Total != 5 || o.TotalLow != 5 || o.TotalHigh != 5 {
		t.Errorf("open %+v, want 20:03 total 5 (exact)", o)
	}
	want := []channelJSON{{"npo2", 2, 2, 2, 0.4}, {"rtl4", 2, 2, 2, 0.4}, {"npo1", 1, 1, 1, 0.2}}
	for _, m := range []*minuteOut{got.Sealed, got.Open} {
		if fmt.Sprint(m.Channels) != fmt.Sprint(want) {
			t.Errorf("minute %v: channels\ngot  %v\nwant %v", m.Minute, m.Channels, want)
		}
	}
}

func TestReach(t *testing.T) {
	f := scenarioFixture(t, Config{})
	window := "&from=" + rfc("0:00") + "&to=" + rfc("3:00")
	check := func(query string, chans []string, want uint64) {
		t.Helper()
		var got reachJSON
		f.getJSON(t, "/v1/reach?"+query, &got)
		// A handful of devices is counted exactly by the sparse sketch;
		// the interval still says ±1 or more.
		if got.Reach != want || got.Low > want || got.High < want || got.Low == got.High {
			t.Errorf("%s: reach %d [%d, %d], want %d inside a non-empty interval", query, got.Reach, got.Low, got.High, want)
		}
		if fmt.Sprint(got.Channels) != fmt.Sprint(chans) {
			t.Errorf("%s: channels %v, want %v", query, got.Channels, chans)
		}
	}
	check(window[1:], []string{}, 6)
	check("channel=npo1"+window, []string{"npo1"}, 3)                                   // d1 d2 d3
	check("channel=npo2&channel=rtl4&channel=npo2"+window, []string{"npo2", "rtl4"}, 4) // d2 d5 d4 d6
	check("channel=npo1", []string{"npo1"}, 3)                                          // the default window
	check("channel=npo1&from="+rfc("1:00")+"&to="+rfc("3:00"), []string{"npo1"}, 2)

	var got reachJSON
	f.getJSON(t, "/v1/reach?from="+rfc("0:30")+"&to="+rfc("2:10"), &got)
	if !got.From.Equal(at("0:00")) || !got.To.Equal(at("3:00")) {
		t.Errorf("window [%v, %v), want the whole minutes [%v, %v)", got.From, got.To, at("0:00"), at("3:00"))
	}
}

func TestFlow(t *testing.T) {
	f := scenarioFixture(t, Config{})
	check := func(query string, prev uint64, wantOut, wantIn string) {
		t.Helper()
		var got flowJSON
		f.getJSON(t, "/v1/flow?"+query, &got)
		var out, in []string
		for _, e := range got.Out {
			out = append(out, fmt.Sprintf("%s:%d", e.To, e.Devices))
		}
		for _, e := range got.In {
			in = append(in, fmt.Sprintf("%s:%d", e.From, e.Devices))
		}
		if g := strings.Join(out, " "); g != wantOut {
			t.Errorf("%s: out %q, want %q", query, g, wantOut)
		}
		if g := strings.Join(in, " "); g != wantIn {
			t.Errorf("%s: in %q, want %q", query, g, wantIn)
		}
		if got.Previous.Audience != prev || !got.Previous.Minute.Equal(got.Minute.Add(-time.Minute)) {
			t.Errorf("%s: previous minute %+v, want audience %d the minute before %v", query, got.Previous, prev, got.Minute)
		}
		var outSum, inSum uint64
		for _, e := range got.Out {
			outSum += e.Devices
		}
		for _, e := range got.In {
			inSum += e.Devices
		}
		if got.OutTotal != outSum || got.InTotal != inSum {
			t.Errorf("%s: totals out %d in %d, want the sums %d and %d", query, got.OutTotal, got.InTotal, outSum, inSum)
		}
	}
	check("from=npo1&minute="+rfc("0:00"), 0, "", "off:3")
	check("from=npo1&minute="+rfc("1:00"), 3, "npo2:1", "")
	check("from=npo1&minute="+rfc("2:00"), 2, "off:1", "") // d3's standby; d1's 2 s zap is no flow
	check("from=rtl4&minute="+strconv.FormatInt(at("1:45").UnixMilli(), 10), 1, "", "off:1")
	check("from=npo2", 2, "", "") // the default minute: the newest sealed, 20:02
}

func TestCapacity(t *testing.T) {
	f := scenarioFixture(t, Config{})
	type load struct {
		viewers, distinct int
		zaps              uint64
	}
	check := func(query string, want []load, peak time.Time, now string) {
		t.Helper()
		var got capacityJSON
		f.getJSON(t, "/v1/capacity?"+query, &got)
		var loads []load
		for _, m := range got.Minutes {
			loads = append(loads, load{int(m.Viewers), m.DistinctChannels, m.Zaps})
			if m.ViewersLow != m.Viewers || m.ViewersHigh != m.Viewers {
				t.Errorf("%s: %v: viewers %d [%d, %d], want exact", query, m.Minute, m.Viewers, m.ViewersLow, m.ViewersHigh)
			}
			var sum uint64
			for _, c := range m.PerChannel {
				sum += c.Viewers
			}
			if sum != m.Viewers || len(m.PerChannel) != m.DistinctChannels {
				t.Errorf("%s: %v: per channel %v does not add up to %d viewers on %d channels", query, m.Minute, m.PerChannel, m.Viewers, m.DistinctChannels)
			}
		}
		if fmt.Sprint(loads) != fmt.Sprint(want) {
			t.Errorf("%s: minutes (viewers distinct zaps) %v, want %v", query, loads, want)
		}
		if !got.Peak.Minute.Equal(peak) {
			t.Errorf("%s: peak at %v, want %v", query, got.Peak.Minute, peak)
		}
		var nowRows []string
		for _, c := range got.Now.Channels {
			nowRows = append(nowRows, fmt.Sprintf("%s:%d", c.Channel, c.Viewers))
		}
		if g := strings.Join(nowRows, " "); g != now || !got.Now.Minute.Equal(at("3:00")) {
			t.Errorf("%s: now %v %q, want 20:03 %q", query, got.Now.Minute, g, now)
		}
	}
	window := "&from=" + rfc("0:00") + "&to=" + rfc("3:00")
	check("region=ams-03"+window, []load{{3, 2, 3}, {4, 3, 2}, {4, 3, 2}}, at("1:00"), "npo2:2 npo1:1 rtl4:1")
	check("region=rtm-01"+window, []load{{2, 2, 2}, {2, 2, 0}, {1, 1, 0}}, at("0:00"), "rtl4:1")
	check("region=rtm-01", []load{{0, 0, 0}, {2, 2, 2}, {2, 2, 0}, {1, 1, 0}}, at("0:00"), "rtl4:1")
}

func TestServiceEndpoints(t *testing.T) {
	ready := fmt.Errorf("replaying the stream from sequence 42")
	f := scenarioFixture(t, Config{
		Ready:   func() error { return ready },
		Privacy: func() any { return map[string]any{"minute_retention": "48h0m0s"} },
	})
	check := func(path string, code int, contentType, bodyPart string) {
		t.Helper()
		r := f.do(t, "GET", path, "")
		if r.code != code || !strings.HasPrefix(r.header.Get("Content-Type"), contentType) || !bytes.Contains(r.body, []byte(bodyPart)) {
			t.Errorf("GET %s: %d %s %q, want %d %s containing %q", path, r.code, r.header.Get("Content-Type"), r.body, code, contentType, bodyPart)
		}
	}
	check("/healthz", 200, "application/json", `{"status":"ok"}`)
	check("/readyz", 503, "application/json", `{"error":"replaying the stream from sequence 42"}`)
	ready = nil
	check("/readyz", 200, "application/json", `{"status":"ready"}`)
	check("/v1/privacy", 200, "application/json", `{"minute_retention":"48h0m0s"}`)
	check("/v1/export", 501, "application/json", "this server has no counts archive configured")
	check("/", 200, "text/html", "<title>ratingsd</title>")
	check("/static/app.js", 200, "text/javascript", "import")
	check("/v1/now", 200, "application/json", `"sealed"`)
	check("/v1/nothing-here", 404, "application/json", `"error"`)
	check("/metrics", 200, "text/plain", `ratings_http_requests_total{route="GET /v1/now",code="200"} 1`)
	check("/metrics", 200, "text/plain", `ratings_http_requests_total{route="GET /readyz",code="503"} 1`)
	check("/metrics", 200, "text/plain", `ratings_http_requests_total{route="unmatched",code="404"} 1`)
	check("/metrics", 200, "text/plain", "ratings_http_stream_subscribers 0")
	check("/metrics", 200, "text/plain", "ratings_http_stream_dropped_total 0")
	if r := f.do(t, "GET", "/metrics", ""); bytes.Contains(r.body, []byte("nothing-here")) {
		t.Errorf("/metrics has a series for a raw path:\n%s", r.body)
	}

	// Without a privacy statement, the endpoint is not there yet.
	g := scenarioFixture(t, Config{})
	if r := g.do(t, "GET", "/v1/privacy", ""); r.code != 404 || !bytes.Contains(r.body, []byte("no privacy statement")) {
		t.Errorf("GET /v1/privacy without Config.Privacy: %d %s, want 404", r.code, r.body)
	}
}

// TestEventsModel: the open minute of the events model has no total (the
// channels' audiences do not add up to one), and every figure comes with
// its interval.
func TestEventsModel(t *testing.T) {
	f := newFixture(t, aggregator.Events, Config{})
	f.ingest(t, "0:00 d1 tune npo1 ams-03", "0:10 d2 heartbeat npo1 ams-03", "0:20 d3 tune npo2 ams-03", "1:30 d1 tune npo1 ams-03")
	f.seal("1:00")
	var now nowOut
	f.getJSON(t, "/v1/now", &now)
	if s := now.Sealed; s == nil || s.Total == nil || *s.Total != 3 || s.TotalLow > 3 || s.TotalHigh < 3 {
		t.Errorf("sealed %+v, want a total of 3 inside its interval", now.Sealed)
	}
	if now.Open == nil || now.Open.Total != nil || len(now.Open.Channels) != 1 {
		t.Errorf("open %+v, want an open minute with one channel and no total", now.Open)
	}
	var c curveJSON
	f.getJSON(t, "/v1/audience?channel=npo1&from="+rfc("0:00")+"&to="+rfc("1:00"), &c)
	if len(c.Points) != 1 || c.Points[0].Audience != 2 || c.Points[0].Low > 2 || c.Points[0].High < 2 {
		t.Errorf("points %+v, want one audience of 2 inside its interval", c.Points)
	}
}

// TestGolden freezes the JSON of every query for the scenario in
// testdata/http: each file holds the request, the status and the body. go test -run TestGolden -update rewrites them.
func TestGolden(t *testing.T) {
	f := scenarioFixture(t, Config{})
	window := "&from=" + rfc("0:00") + "&to=" + rfc("3:00")
	cases := []struct{ name, path string }{
		{"channels", "/v1/channels"},
		{"regions", "/v1/regions"},
		{"audience", "/v1/audience?channel=npo1" + window},
		{"audience_default", "/v1/audience?channel=rtl4"},
		{"now", "/v1/now"},
		{"reach", "/v1/reach?channel=npo2&channel=rtl4" + window},
		{"reach_all", "/v1/reach"},
		{"flow", "/v1/flow?from=npo1&minute=" + rfc("1:00")},
		{"capacity", "/v1/capacity?region=ams-03" + window},
		{"error_expired", "/v1/audience?channel=npo1&from=" + rfc("-60:00") + "&to=" + rfc("-30:00")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareGoldenResponse(t, c.name+".json", "GET "+c.path, f.do(t, "GET", c.path, ""))
		})
	}
}

// compareGoldenResponse compares the response r to request with the golden
// file name: the request, the status and the body, as indented JSON.
func compareGoldenResponse(t *testing.T, name, request string, r response) {
	t.Helper()
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(struct {
		Request string          `json:"request"`
		Status  int             `json:"status"`
		Body    json.RawMessage `json:"body"`
	}{request, r.code, r.body})
	if err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	compareGolden(t, name, got.Bytes())
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "http", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestNoDeviceData: responses are numbers and names only; nothing of the
// hash key or device identifiers reaches them.
func TestNoDeviceData(t *testing.T) {
	f := scenarioFixture(t, Config{})
	for _, path := range []string{
		"/v1/channels", "/v1/now", "/v1/regions",
		"/v1/audience?channel=npo1", "/v1/reach", "/v1/flow?from=npo1", "/v1/capacity?region=ams-03",
	} {
		r := f.do(t, "GET", path, "")
		for _, dev := range []string{`"d1"`, `"d2"`, "hash", "sketch", "httpapi-test-key"} {
			if bytes.Contains(r.body, []byte(dev)) {
				t.Errorf("GET %s contains %s: %s", path, dev, r.body)
			}
		}
	}
}
