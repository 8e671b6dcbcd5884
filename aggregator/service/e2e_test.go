package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/bench"
)

// streamDir holds the committed test stream: a stream file and its truth,
// <name> and <name>.truth (bench.OpenStream, bench.LoadTruth).
var streamDir = filepath.Join("..", "..", "testdata", "stream")

// missing fails in CI and skips elsewhere: a test of a component that is not
// there must not pass silently where it counts.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// testStream is the committed stream, read into memory once.
type testStream struct {
	name    string
	batches [][]event.Event // as the stream file frames them, deep copies
	truth   *bench.Truth
}

var (
	streamOnce sync.Once
	streams    []*testStream
	streamErr  error
)

func loadStreams(t *testing.T) []*testStream {
	t.Helper()
	streamOnce.Do(func() {
		truths, _ := filepath.Glob(filepath.Join(streamDir, "*.truth"))
		for _, tp := range truths {
			s := &testStream{name: filepath.Base(strings.TrimSuffix(tp, ".truth"))}
			if s.truth, streamErr = bench.LoadTruth(tp); streamErr != nil {
				return
			}
			r, err := bench.OpenStream(strings.TrimSuffix(tp, ".truth"))
			if err != nil {
				streamErr = err
				return
			}
			var evs []event.Event
			for {
				evs, err = r.Next(evs[:0])
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					r.Close()
					streamErr = err
					return
				}
				s.batches = append(s.batches, cloneEvents(evs))
			}
			r.Close()
			streams = append(streams, s)
		}
	})
	if streamErr != nil {
		t.Fatal(streamErr)
	}
	if len(streams) == 0 {
		missing(t, "no stream with a truth in %s (bench writes it; see its README)", streamDir)
	}
	return streams
}

func cloneEvents(evs []event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		out[i] = event.Event{
			Device: slices.Clone(e.Device), Channel: slices.Clone(e.Channel), Region: slices.Clone(e.Region),
			TS: e.TS, Kind: e.Kind,
		}
	}
	return out
}

// accuracy collects estimate errors against exact counts and checks them
// against DESIGN.md's targets at p=14: for truths of at least 1000, mean
// relative error ≤ 1% and p99 ≤ 3%; below 1000, within ±1.
type accuracy struct {
	what  string
	rel   []float64
	small []string // failures below 1000
}

func (a *accuracy) add(label string, got, want int) {
	if want < 1000 {
		if d := got - want; d < -1 || d > 1 {
			a.small = append(a.small, fmt.Sprintf("%s: %d, want %d±1", label, got, want))
		}
		return
	}
	a.rel = append(a.rel, math.Abs(float64(got-want))/float64(want))
}

func (a *accuracy) check(t *testing.T) {
	t.Helper()
	for i, s := range a.small {
		if i == 10 {
			t.Errorf("%s: … %d more", a.what, len(a.small)-10)
			break
		}
		t.Errorf("%s: %s", a.what, s)
	}
	if len(a.rel) == 0 {
		return
	}
	slices.Sort(a.rel)
	var sum float64
	for _, r := range a.rel {
		sum += r
	}
	mean, p99 := sum/float64(len(a.rel)), a.rel[(len(a.rel)*99)/100]
	if mean > 0.01 || p99 > 0.03 {
		t.Errorf("%s: mean relative error %.4f (max 0.01), p99 %.4f (max 0.03) over %d values ≥ 1000", a.what, mean, p99, len(a.rel))
	}
	t.Logf("%s: %d values ≥ 1000, mean relative error %.4f, p99 %.4f; %d below 1000", a.what, len(a.rel), mean, p99, len(a.small))
}

// TestEndToEnd publishes the committed stream over NATS in every encoding,
// in both models, seals the run and compares what the HTTP API and the
// sealed-minute publications say with the stream's exact ground truth.
func TestEndToEnd(t *testing.T) {
	formats := []struct {
		name   string
		format bench.Format
		s2, js bool
	}{
		{"binary", bench.FormatBinary, false, false},
		{"binary-s2", bench.FormatBinary, true, false},
		{"json-array", bench.FormatJSONArray, false, false},
		{"json", bench.FormatJSON, false, false},
		{"jetstream-binary-s2", bench.FormatBinary, true, true},
	}
	for _, st := range loadStreams(t) {
		for _, model := range []aggregator.Model{aggregator.Tuning, aggregator.Events} {
			for i, f := range formats {
				// -short: each format once, in one of the models.
				if testing.Short() && i%2 != int(model) {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s", st.name, model, f.name), func(t *testing.T) {
					runEndToEnd(t, st, model, bench.PublishConfig{Format: f.format, S2: f.s2, JetStream: f.js})
				})
			}
		}
	}
}

func runEndToEnd(t *testing.T, st *testStream, model aggregator.Model, pc bench.PublishConfig) {
	info := st.truth.Info()
	first := info.FirstMinute
	end := first.Add(time.Duration(info.Minutes) * time.Minute)
	// The wall clock stands just after the run while it is replayed, and
	// the ticker is off: the test seals, so that no minute seals while the
	// workers still hold its events.
	clk := &clock{t: info.End.Add(time.Second)}
	cfg := testConfig(t)
	cfg.Model = model
	cfg.Now = clk.Now
	cfg.TickInterval = -1
	cfg.MinDwell = info.MinDwell
	cfg.Inactivity = info.Inactivity
	if pc.JetStream {
		cfg.JetStream = "TV" // created by the service, on cfg.Subject
	}
	s := start(t, cfg)

	nc := producer(t, s)
	published := make(map[time.Time]natsio.MinuteSummary)
	var pubMu sync.Mutex
	sub, err := nc.Subscribe(natsio.MinuteSubject, func(m *nats.Msg) {
		var sum natsio.MinuteSummary
		if err := json.Unmarshal(m.Data, &sum); err != nil {
			t.Errorf("sealed minute: %v", err)
			return
		}
		pubMu.Lock()
		published[sum.Minute] = sum
		pubMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pub, err := bench.NewPublisher(nc, pc)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.batches {
		if err := pub.Publish(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	flushCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := pub.Flush(flushCtx); err != nil {
		t.Fatal(err)
	}
	_, sent := pub.Published()
	if sent != info.Events {
		t.Fatalf("published %d events, the stream has %d", sent, info.Events)
	}
	m := s.Metrics()
	waitFor(t, "every event counted", 60*time.Second, func() bool {
		return int64(m.Accepted()) >= info.Events
	})
	for r := event.Reason(1); r < event.NumReasons; r++ {
		if n := m.Rejected(r); n > 0 {
			t.Errorf("%d events rejected as %s; the stream is valid", n, r)
		}
	}

	// Seal exactly the run's minutes: the newest sealed minute is then the
	// run's last, which is what /v1/now shows.
	s.Aggregator().SealThrough(end.UnixMilli())

	tm := bench.Model(model)
	exact := model == aggregator.Tuning
	aud := &accuracy{what: "minute audiences"}
	for _, ch := range st.truth.Channels() {
		var curve struct {
			Points []struct {
				Minute   time.Time
				Audience int
			}
		}
		q := url.Values{"channel": {ch}, "from": {first.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}}
		code := getJSON(t, s, "/v1/audience?"+q.Encode(), &curve)
		got := make(map[time.Time]int)
		switch code {
		case http.StatusOK:
			for _, p := range curve.Points {
				got[p.Minute] = p.Audience
			}
		case http.StatusNotFound: // a channel nobody watched is unknown
		default:
			t.Fatalf("GET /v1/audience for %s: %d", ch, code)
		}
		for _, min := range st.truth.Minutes() {
			want := st.truth.Audience(tm, ch, min)
			if exact {
				if got[min] != want {
					t.Errorf("audience of %s at %s: %d, want exactly %d", ch, min.Format("15:04"), got[min], want)
				}
				continue
			}
			aud.add(ch+" at "+min.Format("15:04"), got[min], want)
		}
	}
	aud.check(t)

	// The now board: the run's last minute.
	var now struct {
		Sealed struct {
			Minute   time.Time
			Total    int
			Channels []struct {
				Channel  string
				Audience int
			}
		}
	}
	if code := getJSON(t, s, "/v1/now", &now); code != http.StatusOK {
		t.Fatalf("GET /v1/now: %d", code)
	}
	last := end.Add(-time.Minute)
	if !now.Sealed.Minute.Equal(last) {
		t.Errorf("now: sealed minute %s, want %s", now.Sealed.Minute, last)
	}
	nowAcc := &accuracy{what: "now board"}
	nowAcc.add("total", now.Sealed.Total, st.truth.Total(tm, last))
	for _, c := range now.Sealed.Channels {
		if want := st.truth.Audience(tm, c.Channel, last); exact && c.Audience != want {
			t.Errorf("now: %s %d, want exactly %d", c.Channel, c.Audience, want)
		} else if !exact {
			nowAcc.add(c.Channel, c.Audience, want)
		}
	}
	nowAcc.check(t)

	// Reach over every window the truth knows: all channels, the named sets
	// and each channel. The encodings give the same sketches, so only the
	// plain binary run asks for every channel in every window; the others
	// ask for each channel over the whole run.
	reach := &accuracy{what: "reach"}
	every := pc.Format == bench.FormatBinary && !pc.S2 && !pc.JetStream
	for _, w := range st.truth.ReachWindows() {
		sets := append([][]string{nil}, st.truth.ReachSets()...)
		if every || (w.From.Equal(info.Start) && w.To.Equal(info.End)) {
			for _, ch := range st.truth.Channels() {
				sets = append(sets, []string{ch})
			}
		}
		for _, set := range sets {
			want, err := st.truth.Reach(tm, set, w.From, w.To)
			if err != nil {
				t.Fatal(err)
			}
			q := url.Values{"channel": set, "from": {w.From.Format(time.RFC3339)}, "to": {w.To.Format(time.RFC3339)}}
			var r struct{ Reach int }
			code := getJSON(t, s, "/v1/reach?"+q.Encode(), &r)
			if code == http.StatusNotFound && want == 0 {
				continue // a channel nobody watched
			}
			if code != http.StatusOK {
				t.Fatalf("GET /v1/reach?%s: %d", q.Encode(), code)
			}
			reach.add(fmt.Sprintf("%v over [%s, %s)", set, w.From.Format("15:04"), w.To.Format("15:04")), r.Reach, want)
		}
	}
	reach.check(t)

	// Every minute of the run was published on NATS, with the same numbers.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every sealed minute published", 10*time.Second, func() bool {
		pubMu.Lock()
		defer pubMu.Unlock()
		_, ok := published[last]
		return ok
	})
	pubAcc := &accuracy{what: "published minutes"}
	pubMu.Lock()
	defer pubMu.Unlock()
	for _, min := range st.truth.Minutes() {
		sum, ok := published[min]
		if !ok {
			t.Errorf("minute %s was not published on %s", min.Format("15:04"), natsio.MinuteSubject)
			continue
		}
		seen := 0
		for _, c := range sum.Channels {
			want := st.truth.Audience(tm, c.Channel, min)
			if exact && int(c.Audience) != want {
				t.Errorf("published %s at %s: %d, want exactly %d", c.Channel, min.Format("15:04"), c.Audience, want)
			} else if !exact {
				pubAcc.add(c.Channel+" at "+min.Format("15:04"), int(c.Audience), want)
			}
			seen++
		}
		for _, ch := range st.truth.Channels() {
			if st.truth.Audience(tm, ch, min) > 0 && !slices.ContainsFunc(sum.Channels, func(c natsio.SummaryChannel) bool { return c.Channel == ch }) {
				t.Errorf("published minute %s lacks %s", min.Format("15:04"), ch)
			}
		}
		if exact && int(sum.Total) != st.truth.Total(tm, min) {
			t.Errorf("published total at %s: %d, want %d", min.Format("15:04"), sum.Total, st.truth.Total(tm, min))
		}
	}
	pubAcc.check(t)
}
