package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/bench"
)

// RatingsdOptions configure one ratingsd run.
type RatingsdOptions struct {
	Model    bench.Model
	Lateness time.Duration // -lateness; 10s if 0
	// Window bounds the events published but not yet counted by ratingsd
	// (ratings_events_total), so the rate is sustained without overrunning
	// NATS's slow-consumer limits. It also bounds how far in event time one
	// of ratingsd's workers can run ahead of another while the stream is
	// replayed faster than real time: with a window of 1M events (minutes
	// of event time here) about 1% of events arrived after their minute
	// was sealed (late). If 0, 64k events.
	Window int64
	// Queries runs HTTP queries (/v1/audience, /v1/now, /v1/reach) one
	// after another for the whole ingest; reach over reachWindow.
	Queries bool
	// Seal waits until every minute is sealed and measures, per minute
	// sealed by the stream's own watermark, the delay from the publication
	// of the message that moved the watermark past it to the arrival of its
	// ratings.minute.<channel> message.
	Seal bool
	// Truth, with Seal, compares every (channel, minute) audience with it.
	Truth *bench.Truth
	// Timeout bounds the run.
	Timeout time.Duration
	// Args are more ratingsd flags, after the harness's own.
	Args []string
	// SampleAt are event times (Unix ms, ascending) at which the memory is
	// sampled: before the first message holding an event after one, the
	// publisher waits until ratingsd has counted everything published and
	// reads its VmRSS and sketch memory (RatingsdResult.Samples) once at
	// most two minutes are open: every minute up to the newest event time
	// less the lateness is sealed then.
	SampleAt []int64
}

// RatingsdResult is what one ratingsd run measured.
type RatingsdResult struct {
	Events        int64
	Seconds       float64 // from the first publication until ratingsd counted the last event
	EventsPerSec  float64
	CPUSeconds    float64 // ratingsd's user + system CPU over those seconds
	CPUPerMEvents float64
	RSS           int64 // VmRSS after ingest
	RSSSealed     int64 // VmRSS after every minute is sealed (Seal only)
	// PeakRSS is VmHWM, the most RSS the process ever had, read with the
	// last of RSS and RSSSealed: with Seal it covers the sealing too, which
	// allocates after the ingest.
	PeakRSS     int64
	SketchBytes float64
	HeapLive    float64 // go_gc_heap_live_bytes at the end (see MemorySample)
	GOGC        float64 // go_gc_gogc_percent: the collector's target it ran at
	Rejected    float64 // events rejected, any reason
	// RejectedBy is ratings_events_rejected_total by reason (those above 0).
	RejectedBy  map[string]float64 `json:",omitempty"`
	Dropped     float64            // messages the NATS client dropped, slow-consumer events
	Lost        int64              // events published but never counted
	SealDelays  []float64
	Queries     map[string][]float64 // seconds, per endpoint, during the ingest
	QueriesIdle map[string][]float64 // after it, while the last minutes seal
	QueryErrors map[string]int
	Accuracy    []Estimate
	Samples     []MemorySample // at RatingsdOptions.SampleAt
}

// MemorySample is a process's memory at a point of a stream.
type MemorySample struct {
	At          time.Time // event time the stream had reached: no event after it was published yet
	Events      int64     // events counted by then
	Bytes       int64     // ratingsd: VmRSS; exact counting: the sets' live heap after a GC
	SketchBytes float64   // ratingsd: ratings_sketch_memory_bytes; 0 for exact counting
	// HeapLive is ratingsd's go_gc_heap_live_bytes: the heap its collector
	// found live at its last cycle (resident memory is that plus the
	// collector's headroom, GOGC percent of it, and the runtime's own).
	HeapLive float64
	// Wait is how long the sample waited for ratingsd to count and seal.
	Wait time.Duration
}

// RunRatingsd starts a fresh ratingsd (empty data directory), publishes msgs
// to it through the NATS server, measures, and kills it.
func (e *Env) RunRatingsd(ctx context.Context, msgs *Messages, opt RatingsdOptions) (res RatingsdResult, err error) {
	if opt.Lateness == 0 {
		opt.Lateness = 10 * time.Second
	}
	if opt.Window == 0 {
		opt.Window = 64 << 10
	}
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()

	dir := e.next("ratingsd-" + opt.Model.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("ratingsd: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return res, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{
		"-nats", e.NATSURL, "-http", fmt.Sprintf("127.0.0.1:%d", port), "-data", dir,
		"-model", opt.Model.String(), "-lateness", opt.Lateness.String(),
		// Checkpoints are measured elsewhere (RESULTS.md, Checkpoints);
		// the child is killed at the end, so none is written.
		"-checkpoint-every", "0", "-log-level", "warn",
	}
	args = append(args, opt.Args...)
	c, err := StartChild("ratingsd", e.Tools.Ratingsd, args, dir+".log")
	if err != nil {
		return res, err
	}
	defer c.Stop(0)
	if err := waitHTTP(ctx, c, base+"/readyz", 30*time.Second); err != nil {
		return res, err
	}
	nc, err := nats.Connect(e.NATSURL, nats.Name("benchrun publisher"))
	if err != nil {
		return res, fmt.Errorf("ratingsd run: connect to %s: %w", e.NATSURL, err)
	}
	defer nc.Close()

	// Sealed minutes, by their start in Unix ms: first arrival.
	var sealMu sync.Mutex // guards sealedAt
	sealedAt := map[int64]time.Time{}
	if opt.Seal {
		sub, err := nc.Subscribe("ratings.minute.>", func(m *nats.Msg) {
			now := time.Now()
			var v struct {
				Minute time.Time `json:"minute"`
			}
			if json.Unmarshal(m.Data, &v) != nil {
				return
			}
			sealMu.Lock()
			if _, ok := sealedAt[v.Minute.UnixMilli()]; !ok {
				sealedAt[v.Minute.UnixMilli()] = now
			}
			sealMu.Unlock()
		})
		if err != nil {
			return res, fmt.Errorf("ratingsd run: subscribe: %w", err)
		}
		defer sub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			return res, fmt.Errorf("ratingsd run: flush: %w", err)
		}
	}

	// The poller scrapes /metrics for the events ratingsd has counted.
	var counted atomic.Int64
	var lastMetrics atomic.Pointer[map[string]float64]
	scrape := func() error {
		code, body, err := httpGet(ctx, base+"/metrics")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /metrics: status %d", code)
		}
		m, err := ParsePrometheus(body)
		if err != nil {
			return err
		}
		lastMetrics.Store(&m)
		counted.Store(int64(m[`ratings_events_total{result="accepted"}`] + m[`ratings_events_total{result="rejected"}`]))
		return nil
	}
	if err := scrape(); err != nil {
		return res, fmt.Errorf("ratingsd run: %w", err)
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopPoll()
	wg.Go(func() {
		for pollCtx.Err() == nil {
			_ = scrape()
			time.Sleep(5 * time.Millisecond)
		}
	})

	queries := map[string][]float64{}
	queriesIdle := map[string][]float64{}
	queryErrs := map[string]int{}
	var ingesting atomic.Bool
	ingesting.Store(true)
	queryCtx, stopQueries := context.WithCancel(ctx)
	var qwg sync.WaitGroup
	defer qwg.Wait()
	defer stopQueries()
	if opt.Queries {
		top := "ch-001"
		if opt.Truth != nil && len(opt.Truth.Channels()) > 0 {
			top = opt.Truth.Channels()[0]
		}
		from, to := reachWindow(time.UnixMilli(msgs.newest()))
		endpoints := []struct{ name, path string }{
			{"/v1/audience", "/v1/audience?channel=" + url.QueryEscape(top)},
			{"/v1/now", "/v1/now"},
			{"/v1/reach", "/v1/reach?" + url.Values{
				"channel": {top}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)},
			}.Encode()},
		}
		qwg.Go(func() {
			for i := 0; queryCtx.Err() == nil; i++ {
				ep := endpoints[i%len(endpoints)]
				load := ingesting.Load()
				t0 := time.Now()
				code, _, err := httpGet(queryCtx, base+ep.path)
				d := time.Since(t0).Seconds()
				switch {
				case queryCtx.Err() != nil:
					return
				case err != nil || code != http.StatusOK:
					queryErrs[ep.name]++ // before the first sealed minute: 404
				case load:
					queries[ep.name] = append(queries[ep.name], d)
				default:
					queriesIdle[ep.name] = append(queriesIdle[ep.name], d)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	cpu0, err := CPUSeconds(c.Pid())
	if err != nil {
		return res, err
	}
	start := counted.Load()
	lateMs := opt.Lateness.Milliseconds()
	crossedAt := map[int64]time.Time{} // minute start (Unix ms) → watermark crossing
	nextMinute := int64(-1)
	var published int64
	// drain waits until ratingsd has counted every event published; it
	// gives up after 10 s without progress (messages lost).
	drain := func() error {
		last, lastChange := counted.Load(), time.Now()
		for counted.Load()-start < published {
			if now := counted.Load(); now != last {
				last, lastChange = now, time.Now()
			}
			if done, err := c.Exited(); done {
				return fmt.Errorf("ratingsd exited during the run: %v (log %s.log)", err, dir)
			}
			if time.Since(lastChange) > 10*time.Second {
				return fmt.Errorf("ratingsd run: %d of %d events counted, none more for 10 s", counted.Load()-start, published)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("ratingsd run: %d of %d events counted: %w", counted.Load()-start, published, ctx.Err())
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	sampleAt := opt.SampleAt
	t0 := time.Now()
	for i := range msgs.Len() {
		subject, data, n, maxTS := msgs.msg(i)
		for len(sampleAt) > 0 && maxTS > sampleAt[0] {
			waitFrom := time.Now()
			if err := drain(); err != nil {
				return res, err
			}
			// Minutes are sealed by a ticker (every 250 ms), so those the
			// watermark passed during the last tick may still be open: wait
			// until only the newest one or two are. The watermark moves on
			// with the wall clock meanwhile, far less than the lateness.
			for deadline := time.Now().Add(10 * time.Second); ; {
				if err := scrape(); err != nil {
					return res, fmt.Errorf("ratingsd run: %w", err)
				}
				open := (*lastMetrics.Load())["ratings_open_minutes"]
				if open <= 2 {
					break
				}
				if time.Now().After(deadline) {
					return res, fmt.Errorf("ratingsd run: %v minutes still open 10 s after the events up to %s were counted", open, time.UnixMilli(sampleAt[0]).UTC().Format(time.TimeOnly))
				}
				time.Sleep(20 * time.Millisecond)
			}
			rss, _, err := Memory(c.Pid())
			if err != nil {
				return res, err
			}
			m := *lastMetrics.Load()
			res.Samples = append(res.Samples, MemorySample{At: time.UnixMilli(sampleAt[0]).UTC(), Events: counted.Load() - start,
				Bytes: rss, SketchBytes: m["ratings_sketch_memory_bytes"], HeapLive: m["go_gc_heap_live_bytes"], Wait: time.Since(waitFrom)})
			sampleAt = sampleAt[1:]
		}
		for published-(counted.Load()-start) > opt.Window {
			if done, err := c.Exited(); done {
				return res, fmt.Errorf("ratingsd exited during the run: %v (log %s.log)", err, dir)
			}
			if ctx.Err() != nil {
				return res, fmt.Errorf("ratingsd run: %d of %d events counted: %w", counted.Load()-start, published, ctx.Err())
			}
			time.Sleep(200 * time.Microsecond)
		}
		if err := nc.Publish(subject, data); err != nil {
			return res, fmt.Errorf("ratingsd run: publish: %w", err)
		}
		published += int64(n)
		if opt.Seal {
			if nextMinute < 0 {
				nextMinute = maxTS - maxTS%60000
			}
			for maxTS-lateMs >= nextMinute+60000 {
				crossedAt[nextMinute] = time.Now()
				nextMinute += 60000
			}
		}
	}
	if err := nc.Flush(); err != nil {
		return res, fmt.Errorf("ratingsd run: flush: %w", err)
	}
	// Wait until ratingsd has counted every event; give up after 10 s
	// without progress (messages lost).
	last, lastChange := counted.Load(), time.Now()
	for counted.Load()-start < published {
		if now := counted.Load(); now != last {
			last, lastChange = now, time.Now()
		}
		if time.Since(lastChange) > 10*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0).Seconds()
	ingesting.Store(false)
	cpu1, err := CPUSeconds(c.Pid())
	if err != nil {
		return res, err
	}
	res.Events = published
	res.Lost = published - (counted.Load() - start)
	res.Seconds = elapsed
	res.EventsPerSec = float64(counted.Load()-start) / elapsed
	res.CPUSeconds = cpu1 - cpu0
	res.CPUPerMEvents = res.CPUSeconds / (float64(published) / 1e6)
	if res.RSS, res.PeakRSS, err = Memory(c.Pid()); err != nil {
		return res, err
	}
	stopPoll()
	wg.Wait()
	if err := scrape(); err != nil {
		return res, fmt.Errorf("ratingsd run: %w", err)
	}

	if opt.Seal {
		// Every minute is sealed once the watermark, advanced by the wall
		// clock while the stream is idle, passes the last one.
		deadline := time.Now().Add(opt.Lateness + 90*time.Second)
		for {
			if err := scrape(); err != nil {
				return res, fmt.Errorf("ratingsd run: %w", err)
			}
			m := *lastMetrics.Load()
			if m["ratings_open_minutes"] == 0 && m["ratings_sealed_minutes_total"] > 0 {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("ratingsd run: %v minutes still open %s after the stream ended", m["ratings_open_minutes"], opt.Lateness+90*time.Second)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the last publications
		if res.RSSSealed, res.PeakRSS, err = Memory(c.Pid()); err != nil {
			return res, err
		}
		// The kernel updates VmHWM lazily (on unmap and exit, not on every
		// fault), so an RSS read earlier can be above it: the peak is at
		// least every RSS seen.
		res.PeakRSS = max(res.PeakRSS, res.RSS, res.RSSSealed)
		sealMu.Lock()
		for m, at := range crossedAt {
			if got, ok := sealedAt[m]; ok {
				res.SealDelays = append(res.SealDelays, got.Sub(at).Seconds())
			}
		}
		sealMu.Unlock()
		slices.Sort(res.SealDelays)
		if opt.Truth != nil {
			if res.Accuracy, err = audienceAccuracy(ctx, base, opt.Truth, opt.Model); err != nil {
				return res, err
			}
		}
	}
	stopQueries()
	qwg.Wait()
	res.Queries, res.QueriesIdle, res.QueryErrors = queries, queriesIdle, queryErrs
	m := *lastMetrics.Load()
	res.Rejected = SumPrefix(m, "ratings_events_rejected_total{")
	for k, v := range m {
		if reason, ok := strings.CutPrefix(k, `ratings_events_rejected_total{reason="`); ok && v > 0 {
			if res.RejectedBy == nil {
				res.RejectedBy = map[string]float64{}
			}
			res.RejectedBy[strings.TrimSuffix(reason, `"}`)] = v
		}
	}
	res.Dropped = m["ratings_nats_dropped_messages_total"] + m["ratings_nats_slow_consumer_events_total"]
	res.SketchBytes = m["ratings_sketch_memory_bytes"]
	res.HeapLive = m["go_gc_heap_live_bytes"]
	res.GOGC = m["go_gc_gogc_percent"]
	return res, nil
}

// reachWindow returns the window /v1/reach is asked for while a stream whose
// newest event is at newest is ingested: from the start of that event's day
// to the end of its minute. A day is a key epoch of the minute tier, which
// counts reach at minute resolution only within one; ratingsd's default
// window, the hour before the newest sealed minute, spans two days in the
// first hour of each (400: docs/semantics.md, Reach tiers). The runs use the
// default -day-start. Minutes not sealed yet are not counted.
func reachWindow(newest time.Time) (from, to time.Time) {
	var cal keys.Calendar
	from, _ = cal.Span(keys.Minute, cal.Epoch(keys.Minute, newest))
	return from, newest.UTC().Truncate(time.Minute).Add(time.Minute)
}

// audienceAccuracy compares every channel's minute curve from ratingsd with
// the truth.
func audienceAccuracy(ctx context.Context, base string, t *bench.Truth, model bench.Model) ([]Estimate, error) {
	info := t.Info()
	from := info.FirstMinute
	to := from.Add(time.Duration(info.Minutes) * time.Minute)
	var out []Estimate
	for _, ch := range t.Channels() {
		u := base + "/v1/audience?" + url.Values{
			"channel": {ch}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)},
		}.Encode()
		code, body, err := httpGet(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("accuracy: GET %s: %w", u, err)
		}
		got := map[int64][3]float64{}
		switch code {
		case http.StatusOK:
			var v struct {
				Points []struct {
					Minute              time.Time
					Audience, Low, High float64
				} `json:"points"`
			}
			if err := json.Unmarshal(body, &v); err != nil {
				return nil, fmt.Errorf("accuracy: GET %s: %w", u, err)
			}
			for _, p := range v.Points {
				got[p.Minute.UnixMilli()] = [3]float64{p.Audience, p.Low, p.High}
			}
		case http.StatusNotFound: // a channel never seen
		default:
			return nil, fmt.Errorf("accuracy: GET %s: status %d: %s", u, code, clip(body))
		}
		for i := range info.Minutes {
			m := from.Add(time.Duration(i) * time.Minute)
			truth := float64(t.Audience(model, ch, m))
			if truth == 0 {
				continue
			}
			g := got[m.UnixMilli()]
			out = append(out, Estimate{Truth: truth, Est: g[0], Low: g[1], High: g[2]})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("accuracy: the truth has no audience to compare")
	}
	return out, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
