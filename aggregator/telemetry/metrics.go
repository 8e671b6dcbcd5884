// Package telemetry declares every metric ratingsd exports, in this one file,
// and writes them in the Prometheus text format for GET /metrics.
//
// Each Metrics owns its own github.com/VictoriaMetrics/metrics Set, so that
// several services in one process (as in tests) never share a counter and
// nothing registers globally. Counters are fed by their owners: intake workers
// flush a local Intake tally (so the per-event path touches no shared cache
// line), the HTTP server calls ObserveHTTP, the NATS side reports slow
// consumers, drops and publish latency. Gauges about the engine (watermark
// lag, open minutes, tuning table, channels) are read from the Aggregator by
// callbacks at scrape time. A Metrics is safe for concurrent use.
package telemetry

import (
	"fmt"
	"io"
	"math"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// Format is the wire format of a received message, a label of
// ratings_messages_total.
type Format uint8

const (
	// JSON is one JSON object or an array of objects.
	JSON Format = iota
	// Binary is an uncompressed binary batch frame.
	Binary
	// BinaryS2 is an S2-compressed binary batch frame.
	BinaryS2
	// Unknown is neither (such a message is rejected as malformed).
	Unknown
	numFormats
)

var formatNames = [numFormats]string{"json", "binary", "binary_s2", "unknown"}

func (f Format) String() string {
	if f < numFormats {
		return formatNames[f]
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Intake is one intake worker's tally since its last flush. Workers count
// into their own Intake without synchronization and hand it to AddIntake
// every so often, which keeps per-message atomics off the hot path.
type Intake struct {
	Messages [numFormats]uint64
	Bytes    uint64
	Accepted uint64
	// Rejected counts rejected events (and undecodable messages) by reason,
	// from the decoder and the aggregator alike.
	Rejected [event.NumReasons]uint64
	Decode   time.Duration // time spent decoding messages
	Ingest   time.Duration // time spent in aggregator writes
}

// AddRejections adds the counts of r.
func (t *Intake) AddRejections(r *event.Rejections) {
	for i, n := range r.Count {
		t.Rejected[i] += uint64(n)
	}
}

// Metrics is the set of ratingsd's metrics. See the package doc.
type Metrics struct {
	set *metrics.Set
	agg atomic.Pointer[aggregator.Aggregator]
	now func() time.Time

	eventsAccepted *metrics.Counter
	eventsRejected *metrics.Counter
	rejected       [event.NumReasons]*metrics.Counter
	messages       [numFormats]*metrics.Counter
	messageBytes   *metrics.Counter
	decodeSeconds  *metrics.FloatCounter
	ingestSeconds  *metrics.FloatCounter

	slowConsumer  *metrics.Counter
	dropped       *metrics.Counter
	jsSequence    *metrics.Counter
	published     *metrics.Counter
	publishErrors *metrics.Counter
	publishDelay  *metrics.PrometheusHistogram
	microRequests *metrics.Counter
	microErrors   *metrics.Counter
	demoEvents    *metrics.Counter

	checkpointSeconds  *metrics.PrometheusHistogram
	checkpointBytes    *metrics.Gauge
	checkpointFailures *metrics.Counter
	countsFailures     *metrics.Counter
	checkpointPause    *metrics.Gauge
	checkpointLastOK   *metrics.Gauge
}

// httpBuckets are the upper bounds (seconds) of the HTTP latency histogram:
// queries are meant to answer in under 10 ms (a day's curve) and 100 ms (a
// week's reach), so the resolution is there.
var httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// publishBuckets are the upper bounds (seconds) of the sealed-minute publish
// latency: the promise is under 1 s.
var publishBuckets = []float64{.05, .1, .25, .5, .75, 1, 1.5, 2.5, 5, 10, 30}

// checkpointBuckets are the upper bounds (seconds) of a checkpoint's
// duration (snapshot, encode, write, prune): well under the 30 s period.
var checkpointBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns the Metrics of a service. agg may be nil and set later with
// SetAggregator; until then the engine gauges read 0.
func New(agg *aggregator.Aggregator) *Metrics {
	s := metrics.NewSet()
	m := &Metrics{set: s, now: time.Now}
	m.agg.Store(agg)

	// Intake: what arrived and what became of it.
	m.eventsAccepted = s.NewCounter(`ratings_events_total{result="accepted"}`)
	m.eventsRejected = s.NewCounter(`ratings_events_total{result="rejected"}`)
	for r := event.Reason(1); r < event.NumReasons; r++ {
		m.rejected[r] = s.NewCounter(fmt.Sprintf(`ratings_events_rejected_total{reason=%q}`, r.String()))
	}
	for f := Format(0); f < numFormats; f++ {
		m.messages[f] = s.NewCounter(fmt.Sprintf(`ratings_messages_total{format=%q}`, f.String()))
	}
	m.messageBytes = s.NewCounter(`ratings_message_bytes_total`)
	m.decodeSeconds = s.NewFloatCounter(`ratings_decode_seconds_total`)
	m.ingestSeconds = s.NewFloatCounter(`ratings_ingest_seconds_total`)

	// The engine, read at scrape time.
	s.NewGauge(`ratings_watermark_lag_seconds`, m.watermarkLag)
	s.NewGauge(`ratings_open_minutes`, m.fromAgg(func(a *aggregator.Aggregator) float64 { return float64(a.OpenMinutes()) }))
	s.NewGauge(`ratings_sealed_minutes_total`, m.fromAgg(func(a *aggregator.Aggregator) float64 { return float64(a.SealedMinutes()) }))
	s.NewGauge(`ratings_tuning_table_devices`, m.fromAgg(func(a *aggregator.Aggregator) float64 { return float64(a.TuningTableSize()) }))
	s.NewGauge(`ratings_channels`, m.fromAgg(func(a *aggregator.Aggregator) float64 { return float64(a.ChannelCount()) }))
	s.NewGauge(`ratings_sketch_memory_bytes`, m.fromAgg(sketchBytes))

	// The collector: the heap it found live at its last cycle and its
	// target (GOGC; ratingsd sets 50 unless the environment sets it), from
	// which the heap goal follows: live × (1 + gogc/100).
	s.NewGauge(`go_gc_heap_live_bytes`, runtimeMetric("/gc/heap/live:bytes"))
	s.NewGauge(`go_gc_gogc_percent`, runtimeMetric("/gc/gogc:percent"))

	// NATS.
	m.slowConsumer = s.NewCounter(`ratings_nats_slow_consumer_events_total`)
	m.dropped = s.NewCounter(`ratings_nats_dropped_messages_total`)
	m.jsSequence = s.NewCounter(`ratings_jetstream_processed_sequence`)
	m.published = s.NewCounter(`ratings_minutes_published_total`)
	m.publishErrors = s.NewCounter(`ratings_minute_publish_errors_total`)
	m.publishDelay = s.NewPrometheusHistogramExt(`ratings_minute_publish_delay_seconds`, publishBuckets)
	m.microRequests = s.NewCounter(`ratings_micro_requests_total`)
	m.microErrors = s.NewCounter(`ratings_micro_errors_total`)
	m.demoEvents = s.NewCounter(`ratings_demo_events_published_total`)

	// Checkpoints.
	m.checkpointSeconds = s.NewPrometheusHistogramExt(`ratings_checkpoint_seconds`, checkpointBuckets)
	m.checkpointBytes = s.NewGauge(`ratings_checkpoint_bytes`, nil)
	m.checkpointFailures = s.NewCounter(`ratings_checkpoint_failures_total`)
	m.checkpointPause = s.NewGauge(`ratings_checkpoint_ingest_pause_seconds`, nil)
	m.checkpointLastOK = s.NewGauge(`ratings_checkpoint_last_success_timestamp_seconds`, nil)

	// Counts archive.
	m.countsFailures = s.NewCounter(`ratings_counts_archive_failures_total`)
	return m
}

// runtimeMetric returns a gauge function reading the runtime/metrics
// metric name (a uint64 kind).
func runtimeMetric(name string) func() float64 {
	return func() float64 {
		sample := []rtmetrics.Sample{{Name: name}}
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return float64(sample[0].Value.Uint64())
	}
}

// SetAggregator points the engine gauges at agg.
func (m *Metrics) SetAggregator(agg *aggregator.Aggregator) { m.agg.Store(agg) }

func (m *Metrics) fromAgg(f func(*aggregator.Aggregator) float64) func() float64 {
	return func() float64 {
		if a := m.agg.Load(); a != nil {
			return f(a)
		}
		return 0
	}
}

// watermarkLag is how far the watermark trails the wall clock: Lateness plus
// whatever the producers are behind. 0 before the first event.
func (m *Metrics) watermarkLag() float64 {
	a := m.agg.Load()
	if a == nil {
		return 0
	}
	w := a.Watermark()
	if w == 0 {
		return 0
	}
	return float64(m.now().UnixMilli()-w) / 1e3
}

// sketchBytes reads the aggregator's sketch memory where the engine reports
// it (an optional method, so that this gauge needs no change when it does).
func sketchBytes(a *aggregator.Aggregator) float64 {
	if s, ok := any(a).(interface{ SketchBytes() int64 }); ok {
		return float64(s.SketchBytes())
	}
	return math.NaN()
}

// AddIntake adds a worker's tally and clears it.
func (m *Metrics) AddIntake(t *Intake) {
	if t.Accepted > 0 {
		m.eventsAccepted.AddInt64(int64(t.Accepted))
	}
	var rejected uint64
	for r, n := range t.Rejected {
		if n > 0 && r > 0 {
			m.rejected[r].AddInt64(int64(n))
			rejected += n
		}
	}
	if rejected > 0 {
		m.eventsRejected.AddInt64(int64(rejected))
	}
	for f, n := range t.Messages {
		if n > 0 {
			m.messages[f].AddInt64(int64(n))
		}
	}
	if t.Bytes > 0 {
		m.messageBytes.AddInt64(int64(t.Bytes))
	}
	if t.Decode > 0 {
		m.decodeSeconds.Add(t.Decode.Seconds())
	}
	if t.Ingest > 0 {
		m.ingestSeconds.Add(t.Ingest.Seconds())
	}
	*t = Intake{}
}

// Accepted returns ratings_events_total{result="accepted"}.
func (m *Metrics) Accepted() uint64 { return m.eventsAccepted.Get() }

// Rejected returns ratings_events_rejected_total for reason r.
func (m *Metrics) Rejected(r event.Reason) uint64 {
	if r == event.OK || r >= event.NumReasons {
		return 0
	}
	return m.rejected[r].Get()
}

// SlowConsumer counts a NATS slow-consumer event.
func (m *Metrics) SlowConsumer() { m.slowConsumer.Inc() }

// SetDropped sets the messages the NATS client dropped so far (a running
// total read from the subscription).
func (m *Metrics) SetDropped(n uint64) { m.dropped.Set(n) }

// SetStreamSequence records the last JetStream stream sequence processed.
func (m *Metrics) SetStreamSequence(seq uint64) { m.jsSequence.Set(seq) }

// Published counts a sealed minute published, and how long after the
// watermark passed its end.
func (m *Metrics) Published(delay time.Duration) {
	m.published.Inc()
	m.publishDelay.Update(max(delay, 0).Seconds())
}

// PublishFailed counts a sealed minute that could not be published.
func (m *Metrics) PublishFailed() { m.publishErrors.Inc() }

// MicroRequest counts a NATS micro service request and whether it failed.
func (m *Metrics) MicroRequest(failed bool) {
	m.microRequests.Inc()
	if failed {
		m.microErrors.Inc()
	}
}

// DemoPublished counts events the built-in demo load published.
func (m *Metrics) DemoPublished(n int) { m.demoEvents.Add(n) }

// CheckpointWritten records a checkpoint written: how long it took in all,
// the file's size, how long ingest was held for the copy, and when it
// finished.
func (m *Metrics) CheckpointWritten(took time.Duration, size int64, pause time.Duration, at time.Time) {
	m.checkpointSeconds.Update(max(took, 0).Seconds())
	m.checkpointBytes.Set(float64(size))
	m.checkpointPause.Set(max(pause, 0).Seconds())
	m.checkpointLastOK.Set(float64(at.UnixNano()) / 1e9)
}

// CheckpointFailed counts a checkpoint that could not be written.
func (m *Metrics) CheckpointFailed() { m.checkpointFailures.Inc() }

// CheckpointSkipped counts a checkpoint file passed over at start-up, by
// the store's one-word reason (truncated, checksum, version, corrupt,
// unusable, segment, io).
func (m *Metrics) CheckpointSkipped(reason string) {
	m.set.GetOrCreateCounter(`ratings_checkpoint_skipped_total{reason="` + reason + `"}`).Inc()
}

// CountsArchiveFailed counts a sealed minute the counts archive could not
// append.
func (m *Metrics) CountsArchiveFailed() { m.countsFailures.Inc() }

// CheckpointFailures returns ratings_checkpoint_failures_total.
func (m *Metrics) CheckpointFailures() uint64 { return m.checkpointFailures.Get() }

// WatchStream exposes the HTTP event stream's figures, read from its owner
// when scraped: open subscribers, and sealed minutes dropped for subscribers
// that read too slowly. Call it once per Metrics.
func (m *Metrics) WatchStream(subscribers func() int, dropped func() uint64) {
	m.set.NewGauge(`ratings_http_stream_subscribers`, func() float64 { return float64(subscribers()) })
	m.set.NewGauge(`ratings_http_stream_dropped_total`, func() float64 { return float64(dropped()) })
}

// ObserveHTTP records one HTTP request: its route (the pattern, not the path,
// so that label values stay few), status code and duration.
func (m *Metrics) ObserveHTTP(route string, status int, d time.Duration) {
	route = labelValue(route)
	m.set.GetOrCreatePrometheusHistogramExt(`ratings_http_request_duration_seconds{route="`+route+`"}`, httpBuckets).Update(d.Seconds())
	m.set.GetOrCreateCounter(`ratings_http_requests_total{route="` + route + `",code="` + strconv.Itoa(status) + `"}`).Inc()
}

// labelValue makes s safe inside a quoted label value.
func labelValue(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	if strings.ContainsAny(s, "\"\\\n") {
		s = strings.NewReplacer(`"`, "_", `\`, "_", "\n", "_").Replace(s)
	}
	return s
}

// WritePrometheus writes every metric of m, then the Go runtime and process
// metrics, in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}
