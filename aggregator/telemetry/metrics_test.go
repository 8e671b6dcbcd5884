package telemetry_test

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
	"github.com/ratingsd/ratingsd/sketch"
)

func newAggregator(t testing.TB) *aggregator.Aggregator {
	t.Helper()
	key, err := sketch.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := aggregator.New(aggregator.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// series matches one sample line of the Prometheus text format: a metric
// name, optional labels with quoted values, a value.
var series = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",? ?)*\})? (-?[0-9.e+-]+|NaN|\+Inf)$`)

func scrape(t *testing.T, m *telemetry.Metrics) (lines []string, values map[string]string) {
	t.Helper()
	var b bytes.Buffer
	m.WritePrometheus(&b)
	values = make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if !series.MatchString(line) {
			t.Errorf("not a Prometheus sample line: %q", line)
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		values[line[:i]] = line[i+1:]
		lines = append(lines, line)
	}
	return lines, values
}

func TestMetricsNamesAndLabels(t *testing.T) {
	m := telemetry.New(newAggregator(t))
	var in telemetry.Intake
	in.Messages[telemetry.JSON] = 3
	in.Messages[telemetry.BinaryS2] = 1
	in.Accepted = 40
	in.Rejected[event.BadChannel] = 2
	in.Rejected[event.Late] = 1
	in.Bytes = 1000
	in.Decode = 2 * time.Millisecond
	m.AddIntake(&in)
	if in.Accepted != 0 || in.Messages[telemetry.JSON] != 0 {
		t.Errorf("AddIntake left the tally %+v, want it cleared", in)
	}
	m.ObserveHTTP("GET /v1/now", 200, 3*time.Millisecond)
	m.ObserveHTTP("GET /v1/now", 200, time.Millisecond)
	m.ObserveHTTP(`GET /v1/"odd"`, 404, time.Millisecond)
	m.SlowConsumer()
	m.SetDropped(17)
	m.Published(300 * time.Millisecond)

	lines, got := scrape(t, m)
	want := map[string]string{
		`ratings_events_total{result="accepted"}`:                                      "40",
		`ratings_events_total{result="rejected"}`:                                      "3",
		`ratings_events_rejected_total{reason="bad_channel"}`:                          "2",
		`ratings_events_rejected_total{reason="late"}`:                                 "1",
		`ratings_events_rejected_total{reason="channel_limit"}`:                        "0",
		`ratings_messages_total{format="json"}`:                                        "3",
		`ratings_messages_total{format="binary"}`:                                      "0",
		`ratings_messages_total{format="binary_s2"}`:                                   "1",
		`ratings_message_bytes_total`:                                                  "1000",
		`ratings_http_requests_total{route="GET /v1/now",code="200"}`:                  "2",
		`ratings_http_requests_total{route="GET /v1/_odd_",code="404"}`:                "1",
		`ratings_http_request_duration_seconds_count{route="GET /v1/now"}`:             "2",
		`ratings_http_request_duration_seconds_bucket{route="GET /v1/now",le="0.005"}`: "2",
		`ratings_nats_slow_consumer_events_total`:                                      "1",
		`ratings_nats_dropped_messages_total`:                                          "17",
		`ratings_minutes_published_total`:                                              "1",
		`ratings_minute_publish_delay_seconds_bucket{le="0.5"}`:                        "1",
		`ratings_minute_publish_delay_seconds_bucket{le="0.25"}`:                       "0",
		`ratings_open_minutes`:                                                         "0",
		`ratings_sealed_minutes_total`:                                                 "0",
		`ratings_tuning_table_devices`:                                                 "0",
		`ratings_channels`:                                                             "0",
		`ratings_watermark_lag_seconds`:                                                "0",
	}
	for s, w := range want {
		if got[s] != w {
			t.Errorf("%s = %q, want %q", s, got[s], w)
		}
	}
	// Every reason but "ok" is there from the start, so that a dashboard
	// can rate() it before the first rejection.
	for r := event.Reason(1); r < event.NumReasons; r++ {
		if _, ok := got[fmt.Sprintf(`ratings_events_rejected_total{reason=%q}`, r)]; !ok {
			t.Errorf("no series for reason %s", r)
		}
	}
	if _, ok := got[`ratings_events_rejected_total{reason="ok"}`]; ok {
		t.Error(`ratings_events_rejected_total{reason="ok"} exists`)
	}
	// Conventions: ours are ratings_*, counters end in _total, durations
	// are in seconds, sizes in bytes.
	for _, line := range lines {
		name := series.FindStringSubmatch(line)[1]
		if !strings.HasPrefix(name, "ratings_") {
			continue // Go runtime and process metrics
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if strings.Contains(base, "second") && !strings.HasSuffix(strings.TrimSuffix(base, "_total"), "_seconds") {
			t.Errorf("%s: a duration not in _seconds", name)
		}
		if strings.Contains(base, "byte") && !strings.HasSuffix(strings.TrimSuffix(base, "_total"), "_bytes") {
			t.Errorf("%s: a size not in _bytes", name)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics (go_goroutines)")
	}
	// The collector's live heap and target, read from runtime/metrics.
	runtime.GC()
	_, got = scrape(t, m)
	pct := debug.SetGCPercent(-1)
	debug.SetGCPercent(pct)
	if got["go_gc_gogc_percent"] != strconv.Itoa(pct) {
		t.Errorf("go_gc_gogc_percent = %q, want the runtime's %d", got["go_gc_gogc_percent"], pct)
	}
	if live, err := strconv.ParseFloat(got["go_gc_heap_live_bytes"], 64); err != nil || live <= 0 {
		t.Errorf("go_gc_heap_live_bytes = %q, want a positive size", got["go_gc_heap_live_bytes"])
	}
}

func TestMetricsAreNotShared(t *testing.T) {
	a, b := telemetry.New(nil), telemetry.New(nil)
	a.AddIntake(&telemetry.Intake{Accepted: 5})
	if a.Accepted() != 5 || b.Accepted() != 0 {
		t.Errorf("accepted %d and %d, want 5 and 0: two services in one process share no counter", a.Accepted(), b.Accepted())
	}
}

func TestEngineGaugesFollowTheAggregator(t *testing.T) {
	agg := newAggregator(t)
	m := telemetry.New(nil)
	m.SetAggregator(agg)
	now := time.Now()
	evs := []event.Event{
		{Device: []byte("stb-1"), Channel: []byte("npo1"), TS: now.Add(-90 * time.Second).UnixMilli()},
		{Device: []byte("stb-2"), Channel: []byte("npo2"), TS: now.Add(-90 * time.Second).UnixMilli()},
	}
	if n := agg.NewWriter().Write(evs, nil); n != 2 {
		t.Fatalf("accepted %d of 2", n)
	}
	_, got := scrape(t, m)
	if got["ratings_channels"] != "2" || got["ratings_tuning_table_devices"] != "2" {
		t.Errorf("channels %s, tuning table %s; want 2 and 2", got["ratings_channels"], got["ratings_tuning_table_devices"])
	}
	var lag float64
	fmt.Sscan(got["ratings_watermark_lag_seconds"], &lag)
	// The newest event is 90 s old and the lateness 60 s.
	if lag < 149 || lag > 160 {
		t.Errorf("ratings_watermark_lag_seconds = %v, want ≈150", lag)
	}
}

func Example() {
	m := telemetry.New(nil)
	var in telemetry.Intake // one worker's tally
	in.Messages[telemetry.Binary]++
	in.Accepted += 255
	in.Rejected[event.BadChannel]++
	m.AddIntake(&in)
	m.ObserveHTTP("GET /v1/now", 200, 2*time.Millisecond)

	var b bytes.Buffer
	m.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "ratings_events_total") || strings.Contains(line, `"bad_channel"`) ||
			strings.HasPrefix(line, "ratings_http_requests_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// ratings_events_rejected_total{reason="bad_channel"} 1
	// ratings_events_total{result="accepted"} 255
	// ratings_events_total{result="rejected"} 1
	// ratings_http_requests_total{route="GET /v1/now",code="200"} 1
}
