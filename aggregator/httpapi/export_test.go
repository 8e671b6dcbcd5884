package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/archive"
	"github.com/ratingsd/ratingsd/sketch"
)

const (
	expReadToken   = "exp-read-0123456789"
	expExportToken = "exp-export-0123456789"
	expAdminToken  = "exp-admin-0123456789"
)

// exportNow is the fixture's clock: with the default 30-day embargo,
// minutes before 2025-10-28T12:00:00Z are exportable.
var exportNow = time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)

type exportFixture struct {
	srv     *httptest.Server
	archive *archive.Archive
	dir     string
}

// newExportFixture serves an archive in a temporary directory, filled by
// fill, through a real HTTP server with tokens of every role.
func newExportFixture(t *testing.T, cfg ExportConfig, fill func(a *archive.Archive)) *exportFixture {
	t.Helper()
	dir := t.TempDir()
	a, err := archive.Open(dir, archive.Config{Now: func() time.Time { return exportNow }, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if fill != nil {
		fill(a)
	}
	cfg.Archive = a
	cfg.Now = func() time.Time { return exportNow }
	ex, err := NewExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sketch.KeyFromBytes([]byte("export-test-key!"))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregator.New(aggregator.Config{Key: key, Now: func() time.Time { return exportNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{
		Agg:    agg,
		Tokens: map[string]Role{expReadToken: RoleRead, expExportToken: RoleExport, expAdminToken: RoleAdmin},
		Export: ex,
	}))
	t.Cleanup(srv.Close)
	return &exportFixture{srv: srv, archive: a, dir: dir}
}

type exportResponse struct {
	code   int
	header http.Header
	body   string
	err    error // reading the body
}

func (f *exportFixture) get(t *testing.T, query, token string) exportResponse {
	t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+"/v1/export"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return exportResponse{resp.StatusCode, resp.Header, string(b), err}
}

// errorOf returns the message of a JSON error body.
func errorOf(t *testing.T, r exportResponse) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("status %d, body %q is not a JSON error", r.code, r.body)
	}
	return e.Error
}

// parseCSV parses an export with encoding/csv, checks its header and that
// every row has four fields.
func parseCSV(t *testing.T, body string) [][]string {
	t.Helper()
	rd := csv.NewReader(strings.NewReader(body))
	rd.FieldsPerRecord = 4
	rows, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("the export is not well-formed CSV: %v", err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != "minute,channel,audience,total" {
		t.Fatalf("header %v", rows)
	}
	return rows[1:]
}

func exactCount(n uint64) sketch.Estimate { return sketch.Estimate{Value: n, Low: n, High: n} }

// minuteOf returns a sealed minute with channel audiences (name, count, ...)
// and their sum as the total.
func minuteOf(start time.Time, kv ...any) *aggregator.Minute {
	m := &aggregator.Minute{Start: start}
	var total uint64
	for i := 0; i < len(kv); i += 2 {
		n := uint64(kv[i+1].(int))
		m.Channels = append(m.Channels, aggregator.ChannelMinute{Channel: kv[i].(string), Audience: exactCount(n)})
		total += n
	}
	m.Total = exactCount(total)
	return m
}

func appendAll(t *testing.T, a *archive.Archive, ms ...*aggregator.Minute) {
	t.Helper()
	for _, m := range ms {
		if err := a.Append(m); err != nil {
			t.Fatal(err)
		}
	}
}

var oct1 = time.Date(2025, 10, 1, 20, 0, 0, 0, time.UTC)

func TestExportRoles(t *testing.T) {
	f := newExportFixture(t, ExportConfig{}, func(a *archive.Archive) { appendAll(t, a, minuteOf(oct1, "npo1", 10)) })
	q := "?from=2025-10-01T20:00:00Z&to=2025-10-01T20:01:00Z"
	check := func(token string, code int, msg string) {
		t.Helper()
		r := f.get(t, q, token)
		if r.code != code {
			t.Fatalf("token %q: status %d, want %d: %s", token, r.code, code, r.body)
		}
		if msg != "" && !strings.Contains(errorOf(t, r), msg) {
			t.Errorf("token %q: %q, want it to say %q", token, r.body, msg)
		}
	}
	check("", 401, "missing bearer token")
	check(expReadToken, 403, "role read may not use GET /v1/export: it needs role export or admin")
	check(expExportToken, 200, "")
	check(expAdminToken, 200, "")
}

// TestExportCSV: rows per (minute, channel) by channel name, the minute's
// total on each, counts below the minimum audience suppressed.
func TestExportCSV(t *testing.T) {
	f := newExportFixture(t, ExportConfig{}, func(a *archive.Archive) {
		m := minuteOf(oct1, "rtl4", 4, "npo1", 1000, "npo2", 5)
		m.SetCells([]aggregator.Cell{{Channel: "npo1", Region: "ams-03", Audience: exactCount(3)}})
		appendAll(t, a, m,
			minuteOf(oct1.Add(time.Minute), "npo1", 2, "npo2", 1), // the total, 3, is suppressed too
			minuteOf(oct1.Add(2*time.Minute)),                     // nobody watched
			minuteOf(oct1.Add(24*time.Hour), "npo1", 7))           // the next day
	})
	r := f.get(t, "?from=2025-10-01T20:00:00Z&to=2025-10-02T21:00:00Z", expExportToken)
	if r.code != 200 || r.err != nil {
		t.Fatalf("status %d (%v): %s", r.code, r.err, r.body)
	}
	got := parseCSV(t, r.body)
	want := [][]string{
		{"2025-10-01T20:00:00Z", "npo1", "1000", "1009"},
		{"2025-10-01T20:00:00Z", "npo2", "5", "1009"},
		{"2025-10-01T20:00:00Z", "rtl4", "suppressed", "1009"},
		{"2025-10-01T20:01:00Z", "npo1", "suppressed", "suppressed"},
		{"2025-10-01T20:01:00Z", "npo2", "suppressed", "suppressed"},
		{"2025-10-02T20:00:00Z", "npo1", "7", "7"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows\n%v\nwant\n%v", got, want)
	}
	for h, want := range map[string]string{
		"Content-Type":           "text/csv; charset=utf-8; header=present",
		"Content-Disposition":    `attachment; filename="ratings-20251001T2000Z-20251002T2100Z.csv"`,
		"Cache-Control":          "no-store",
		"X-Ratings-Min-Audience": "5",
		"X-Ratings-Noise":        "none",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if strings.Contains(r.body, "ams-03") {
		t.Errorf("a region row was exported: %s", r.body)
	}
	// Times round to whole minutes: from down, to up.
	r = f.get(t, "?from=2025-10-01T20:00:59Z&to=2025-10-01T20:01:01Z", expExportToken)
	if rows := parseCSV(t, r.body); len(rows) != 5 {
		t.Errorf("[20:00:59, 20:01:01) gave %d rows, want the 5 of minutes 20:00 and 20:01", len(rows))
	}
	f = newExportFixture(t, ExportConfig{MinAudience: 1}, func(a *archive.Archive) { appendAll(t, a, minuteOf(oct1, "rtl4", 1)) })
	if rows := parseCSV(t, f.get(t, "?from=2025-10-01T20:00:00Z&to=2025-10-01T20:01:00Z", expExportToken).body); fmt.Sprint(rows) != "[[2025-10-01T20:00:00Z rtl4 1 1]]" {
		t.Errorf("min audience 1: %v", rows)
	}
}

// TestExportEmbargo: a window reaching into the embargo is refused with
// when its end becomes exportable; one ending at the limit is served.
func TestExportEmbargo(t *testing.T) {
	f := newExportFixture(t, ExportConfig{}, func(a *archive.Archive) {
		appendAll(t, a, minuteOf(time.Date(2025, 10, 28, 11, 59, 0, 0, time.UTC), "npo1", 50))
	})
	r := f.get(t, "?from=2025-10-28T11:00:00Z&to=2025-10-28T12:00:01Z", expExportToken)
	want := "the window reaches into the 30-day embargo: minutes before 2025-10-28T12:00:00Z are exportable now; to=2025-10-28T12:01:00Z becomes exportable at 2025-11-27T12:01:00Z"
	if r.code != 403 || errorOf(t, r) != want {
		t.Errorf("status %d %q, want 403 %q", r.code, r.body, want)
	}
	r = f.get(t, "?from=2025-10-28T11:00:00Z&to=2025-10-28T12:00:00Z", expAdminToken)
	if rows := parseCSV(t, r.body); r.code != 200 || len(rows) != 1 || rows[0][2] != "50" {
		t.Errorf("up to the limit: status %d, %s", r.code, r.body)
	}
	g := newExportFixture(t, ExportConfig{Embargo: 36 * time.Hour}, nil)
	r = g.get(t, "?from=2025-11-01T00:00:00Z&to=2025-11-27T00:00:00Z", expExportToken)
	if r.code != 403 || !strings.Contains(errorOf(t, r), "36h0m0s embargo: minutes before 2025-11-26T00:00:00Z are exportable now") {
		t.Errorf("36h embargo: status %d %s", r.code, r.body)
	}
}

// TestExportBadRequests: every malformed request is a 4xx naming what is
// wrong; an empty window is a header and nothing else.
func TestExportBadRequests(t *testing.T) {
	f := newExportFixture(t, ExportConfig{}, func(a *archive.Archive) { appendAll(t, a, minuteOf(oct1, "npo1", 10)) })
	check := func(query string, code int, msg string) {
		t.Helper()
		r := f.get(t, query, expExportToken)
		if r.code != code || !strings.Contains(errorOf(t, r), msg) {
			t.Errorf("%s: status %d %q, want %d saying %q", query, r.code, r.body, code, msg)
		}
	}
	check("", 400, "parameters from and to are both required")
	check("?from=2025-10-01T00:00:00Z", 400, "parameters from and to are both required")
	check("?to=2025-10-01T00:00:00Z", 400, "parameters from and to are both required")
	check("?from=2025-10-02T00:00:00Z&to=2025-10-01T00:00:00Z", 400, "bad time range: from 2025-10-02T00:00:00Z is not before to 2025-10-01T00:00:00Z")
	check("?from=2025-10-01T00:00:00Z&to=2025-10-01T00:00:00Z", 400, "is not before to")
	check("?from=yesterday&to=2025-10-01T00:00:00Z", 400, `parameter from: "yesterday" is neither an RFC 3339 time nor Unix milliseconds`)
	check("?from=2025-10-01T00:00:00Z&to=2025-10-02T00:00:00Z&channel=npo1", 400, `unknown parameter "channel": GET /v1/export takes from, to`)
	check("?from=1&from=2&to=3", 400, "parameter from is given 2 times")
	check("?from=2025-10-01T00:00:00Z&to=2025-10-02T00:00:00Z&epsilon=5", 400, `unknown parameter "epsilon"`)
	check("?from=2023-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", 410, "data expired: the window ends before 2024-10-23T12:00:00Z, the oldest minute the counts archive keeps")

	r := f.get(t, "?from=2025-09-01T00:00:00Z&to=2025-09-02T00:00:00Z", expExportToken)
	if r.code != 200 || r.body != "minute,channel,audience,total\n" {
		t.Errorf("empty window: status %d %q, want the header only", r.code, r.body)
	}
}

func TestExportNotConfigured(t *testing.T) {
	key, _ := sketch.KeyFromBytes([]byte("export-test-key!"))
	agg, err := aggregator.New(aggregator.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Agg: agg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/export?from=1&to=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 501 {
		t.Errorf("status %d, want 501", resp.StatusCode)
	}
}

// TestNewExporter: the settings are checked, with the flag names.
func TestNewExporter(t *testing.T) {
	a, err := archive.Open(t.TempDir(), archive.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f := func(cfg ExportConfig, want string) {
		t.Helper()
		cfg.Archive = a
		_, err := NewExporter(cfg)
		if want == "" {
			if err != nil {
				t.Errorf("%+v: %v", cfg, err)
			}
			return
		}
		if err == nil || err.Error() != want {
			t.Errorf("%+v: got %v, want %q", cfg, err, want)
		}
	}
	f(ExportConfig{}, "")
	f(ExportConfig{Embargo: 24 * time.Hour, MinAudience: 1, Epsilon: MinEpsilon}, "")
	f(ExportConfig{Epsilon: MaxEpsilon, MinAudience: MaxMinAudience}, "")
	f(ExportConfig{Embargo: time.Hour}, "-embargo 1h0m0s is under 24h0m0s: third parties get no recent data")
	f(ExportConfig{Embargo: -time.Hour}, "-embargo -1h0m0s is under 24h0m0s: third parties get no recent data")
	f(ExportConfig{MinAudience: MaxMinAudience + 1}, "-min-audience 1000001 is beyond 1000000: it would suppress every count")
	f(ExportConfig{Epsilon: -1}, "-export-noise -1: want an epsilon in [0.01, 10], or 0 for no noise")
	f(ExportConfig{Epsilon: math.NaN()}, "-export-noise NaN: want an epsilon in [0.01, 10], or 0 for no noise")
	f(ExportConfig{Epsilon: 0.001}, "-export-noise 0.001 is under 0.01: noise of standard deviation 1414 would drown the counts")
	f(ExportConfig{Epsilon: math.Inf(1)}, "-export-noise +Inf is over 10: the noise would almost never change a count, protecting nothing")
	if _, err := NewExporter(ExportConfig{}); err == nil || err.Error() != "export: no counts archive" {
		t.Errorf("without an archive: %v", err)
	}
}

// TestExportNoise: with epsilon 0.5 the noise has the mean (0) and variance
// (2α/(1-α)², α = e^-0.5) of the two-sided geometric distribution, within
// 5 standard errors; the total is drawn once per minute; the suppression
// tests the noisy count; a seed reproduces an export.
func TestExportNoise(t *testing.T) {
	const eps = 0.5
	const channels = 20
	fill := func(a *archive.Archive) {
		for i := range 24 * 60 {
			kv := []any{"five", 5}
			for c := range channels {
				kv = append(kv, fmt.Sprintf("ch%02d", c), 1000)
			}
			appendAll(t, a, minuteOf(oct1.Add(time.Duration(i)*time.Minute), kv...))
		}
	}
	export := func(seed uint64) (string, *exportFixture) {
		f := newExportFixture(t, ExportConfig{Epsilon: eps, Rand: rand.NewChaCha8([32]byte{byte(seed)})}, fill)
		r := f.get(t, "?from=2025-10-01T20:00:00Z&to=2025-10-02T20:00:00Z", expExportToken)
		if r.code != 200 {
			t.Fatalf("status %d: %s", r.code, r.body)
		}
		if got := r.header.Get("X-Ratings-Noise"); got != "two-sided-geometric; epsilon=0.5" {
			t.Errorf("X-Ratings-Noise %q", got)
		}
		return r.body, f
	}
	body, _ := export(1)
	rows := parseCSV(t, body)
	var sum, sumSq float64
	var n, fiveRows, fiveSuppressed int
	totals := make(map[string]string)
	for _, row := range rows {
		if prev, ok := totals[row[0]]; ok && prev != row[3] {
			t.Fatalf("minute %s has totals %s and %s: one draw per minute", row[0], prev, row[3])
		}
		totals[row[0]] = row[3]
		if row[1] == "five" {
			fiveRows++
			if row[2] == SuppressedMarker {
				fiveSuppressed++
			}
			continue
		}
		v, err := strconv.Atoi(row[2])
		if err != nil {
			t.Fatalf("row %v: %v", row, err)
		}
		z := float64(v - 1000)
		sum += z
		sumSq += z * z
		n++
	}
	alpha := math.Exp(-eps)
	variance := 2 * alpha / ((1 - alpha) * (1 - alpha))
	mean := sum / float64(n)
	gotVar := sumSq/float64(n) - mean*mean
	// The fourth moment of the distribution bounds the standard error of
	// the sample variance: E[Z⁴] = 2α(1+10α+α²)/(1-α)⁴ (by the moment
	// generating function).
	m4 := 2 * alpha * (1 + 10*alpha + alpha*alpha) / math.Pow(1-alpha, 4)
	seMean, seVar := math.Sqrt(variance/float64(n)), math.Sqrt((m4-variance*variance)/float64(n))
	if math.Abs(mean) > 5*seMean || math.Abs(gotVar-variance) > 5*seVar {
		t.Errorf("noise over %d counts: mean %.3f (want 0 ± %.3f), variance %.3f (want %.3f ± %.3f)", n, mean, 5*seMean, gotVar, variance, 5*seVar)
	}
	// A true count of 5 is suppressed when its noise is negative:
	// P(Z < 0) = α/(1+α).
	p := alpha / (1 + alpha)
	frac := float64(fiveSuppressed) / float64(fiveRows)
	if se := math.Sqrt(p * (1 - p) / float64(fiveRows)); math.Abs(frac-p) > 5*se {
		t.Errorf("a true 5 is suppressed in %.3f of %d minutes, want %.3f ± %.3f", frac, fiveRows, p, 5*se)
	}
	if again, _ := export(1); again != body {
		t.Errorf("the same seed gave another export")
	}
	if other, _ := export(2); other == body {
		t.Errorf("another seed gave the same export")
	}
}

// TestExportDamagedArchive: a damaged day before anything is sent is a
// JSON 500; after rows are sent, the connection is cut, so the CSV cannot
// pass for a whole one.
func TestExportDamagedArchive(t *testing.T) {
	f := newExportFixture(t, ExportConfig{}, func(a *archive.Archive) {
		// The first day is more than the response's 64 KiB buffer, so
		// that its rows are on the wire when the second day fails.
		for i := range 24 * 60 {
			appendAll(t, a, minuteOf(time.Date(2025, 10, 1, 0, i, 0, 0, time.UTC), "npo1", 10, "npo2", 20))
		}
		appendAll(t, a, minuteOf(oct1.Add(24*time.Hour), "npo1", 11), minuteOf(oct1.Add(48*time.Hour), "npo1", 12))
	})
	path := filepath.Join(f.dir, "2025-10-02.rtca")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.get(t, "?from=2025-10-02T00:00:00Z&to=2025-10-03T00:00:00Z", expExportToken)
	if msg := errorOf(t, r); r.code != 500 || msg != "export: the archived counts of 2025-10-02 cannot be read; the service log says why" {
		t.Errorf("status %d %q, want 500 naming the day (and no server path)", r.code, r.body)
	}
	r = f.get(t, "?from=2025-10-01T00:00:00Z&to=2025-10-04T00:00:00Z", expExportToken)
	if r.code != 200 || r.err == nil || !strings.HasPrefix(r.body, "minute,channel,audience,total\n2025-10-01T00:00:00Z,npo1,10,30\n") {
		t.Errorf("status %d, read error %v, %d bytes: want the first day's rows, then a cut connection", r.code, r.err, len(r.body))
	}
}

// BenchmarkExportDay: a day of 500 channels streamed as CSV.
func BenchmarkExportDay(b *testing.B) {
	dir := b.TempDir()
	a, err := archive.Open(dir, archive.Config{Now: func() time.Time { return exportNow }, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 24 * 60 {
		m := &aggregator.Minute{Start: oct1.Add(time.Duration(i) * time.Minute)}
		for c := range 500 {
			m.Channels = append(m.Channels, aggregator.ChannelMinute{Channel: fmt.Sprintf("channel-%03d", c), Audience: exactCount(rng.Uint64N(20000))})
		}
		if err := a.Append(m); err != nil {
			b.Fatal(err)
		}
	}
	a.Append(&aggregator.Minute{Start: oct1.Add(48 * time.Hour)}) // compacts
	for _, eps := range []float64{0, 1} {
		b.Run(fmt.Sprintf("epsilon=%v", eps), func(b *testing.B) {
			ex, err := NewExporter(ExportConfig{Archive: a, Epsilon: eps, Now: func() time.Time { return exportNow }})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/v1/export?from=2025-10-01T20:00:00Z&to=2025-10-02T20:00:00Z", nil)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				w := &countingWriter{h: http.Header{}}
				from, to, err := ex.window(req)
				if err != nil {
					b.Fatal(err)
				}
				ex.stream(w, req, from, to)
				size = w.n
			}
			b.ReportMetric(float64(size)/float64(24*60*500), "bytes/row")
		})
	}
}

// countingWriter is a ResponseWriter that counts the body.
type countingWriter struct {
	h http.Header
	n int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *countingWriter) WriteHeader(int)             {}

// TestExportWaitsForKeys: a minute past the embargo whose sketch keys still
// exist is not exported yet; once the oldest key held starts after it, it is.
func TestExportWaitsForKeys(t *testing.T) {
	keysFrom := time.Date(2025, 10, 20, 0, 0, 0, 0, time.UTC)
	f := newExportFixture(t, ExportConfig{KeysFrom: func() time.Time { return keysFrom }}, func(a *archive.Archive) {
		appendAll(t, a,
			minuteOf(time.Date(2025, 10, 19, 23, 59, 0, 0, time.UTC), "npo1", 40),
			minuteOf(time.Date(2025, 10, 20, 0, 0, 0, 0, time.UTC), "npo1", 50))
	})
	r := f.get(t, "?from=2025-10-19T23:00:00Z&to=2025-10-20T01:00:00Z", expExportToken)
	want := "the window reaches minutes whose sketch keys are not deleted yet: minutes before 2025-10-20T00:00:00Z are exportable now"
	if r.code != 403 || !strings.HasPrefix(errorOf(t, r), want) {
		t.Errorf("status %d %q, want 403 starting %q", r.code, r.body, want)
	}
	r = f.get(t, "?from=2025-10-19T23:00:00Z&to=2025-10-20T00:00:00Z", expExportToken)
	if rows := parseCSV(t, r.body); r.code != 200 || len(rows) != 1 || rows[0][2] != "40" {
		t.Errorf("before the oldest key: status %d, %s", r.code, r.body)
	}
	// Keys older than the embargo leave the embargo in charge.
	keysFrom = time.Date(2025, 11, 20, 0, 0, 0, 0, time.UTC)
	r = f.get(t, "?from=2025-10-19T23:00:00Z&to=2025-10-20T01:00:00Z", expExportToken)
	if rows := parseCSV(t, r.body); r.code != 200 || len(rows) != 2 {
		t.Errorf("keys gone: status %d, %s", r.code, r.body)
	}
}
