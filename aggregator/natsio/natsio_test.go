package natsio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
	"github.com/ratingsd/ratingsd/sketch"
)

// clock is a settable wall clock for the aggregator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// t0 is the event time the tests start at.
var t0 = time.Date(2025, 3, 14, 20, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is an embedded server, an aggregator on a fake clock and its
// metrics; the intake is up to the test.
type fixture struct {
	srv     *Server
	nc      *nats.Conn // the service's in-process connection
	prod    *nats.Conn // a producer over TCP
	agg     *aggregator.Aggregator
	metrics *telemetry.Metrics
	clock   *clock
	sealed  chan *aggregator.Minute
}

func newFixture(t testing.TB, model aggregator.Model, jetStream bool) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: t0.Add(10 * time.Minute)}, sealed: make(chan *aggregator.Minute, 1000)}
	cfg := ServerConfig{Listen: "127.0.0.1:-1", MaxPayload: 2 << 20, Logger: quietLogger()}
	if jetStream {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	f.srv = srv
	key, err := sketch.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f.agg, err = aggregator.New(aggregator.Config{
		Model: model, Key: key, Now: f.clock.Now, MaxChannels: 50,
		OnSeal: func(m *aggregator.Minute) { f.sealed <- m },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.metrics = telemetry.New(f.agg)
	if f.nc, err = srv.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.nc.Close)
	if f.prod, err = nats.Connect(srv.ClientURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.prod.Close)
	return f
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ev(device, channel string, ts time.Time) event.Event {
	return event.Event{Device: []byte(device), Channel: []byte(channel), TS: ts.UnixMilli(), Kind: event.Tune}
}

func frame(t testing.TB, compress bool, evs ...event.Event) []byte {
	t.Helper()
	var enc event.BatchEncoder
	for i := range evs {
		if err := enc.Add(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return enc.AppendFrame(nil, compress)
}

// scrape returns the Prometheus text of m as a map from series to value.
func scrape(t testing.TB, m *telemetry.Metrics) map[string]float64 {
	t.Helper()
	var b bytes.Buffer
	m.WritePrometheus(&b)
	out := make(map[string]float64)
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestIntakeCountsEveryEventByResult(t *testing.T) {
	for _, model := range []aggregator.Model{aggregator.Tuning, aggregator.Events} {
		t.Run(model.String(), func(t *testing.T) {
			f := newFixture(t, model, false)
			in, err := StartIntake(IntakeConfig{
				Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Workers: 3,
				MaxMessageBytes: 64 << 10, Logger: quietLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			at := t0.Add(5 * time.Second)
			var one []byte
			e := ev("stb-1", "npo1", at)
			one = event.AppendJSON(one, &e)
			arr := event.AppendJSONArray(nil, []event.Event{ev("stb-2", "npo1", at), ev("stb-3", "npo2", at)})
			bin := frame(t, false, ev("stb-4", "npo1", at), ev("stb-5", "npo2", at), ev("stb-6", "npo3", at))
			s2 := frame(t, true, ev("stb-7", "npo1", at), ev("stb-8", "npo1", at))
			huge := frame(t, false, func() (evs []event.Event) {
				for i := range 3000 {
					evs = append(evs, ev(fmt.Sprintf("stb-huge-%06d-%s", i, strings.Repeat("x", 20)), "npo1", at))
				}
				return evs
			}()...)
			if len(huge) <= 64<<10 {
				t.Fatalf("oversized frame is only %d bytes", len(huge))
			}
			msgs := []struct {
				subject string
				data    []byte
			}{
				{"tv.events.a", one},
				{"tv.events.b", arr},
				{"tv.events.c", bin},
				{"tv.events.d", s2},
				{"tv.events.e", []byte("garbage\x00\x01")}, // malformed
				{"tv.events.e", bin[:len(bin)-3]},          // truncated: the last record
				{"tv.events.e", huge},                      // too_large
				{"tv.events.e", []byte(`{"device":"","channel":"npo1","ts":1}`)},                       // bad_device
				{"tv.events.e", []byte(`{"device":"stb-9","channel":"no spaces","ts":1741982405000}`)}, // bad_channel
				{"tv.events.e", []byte(`{"device":"stb-9","channel":"npo1","ts":4102444800000}`)},      // future
			}
			for _, m := range msgs {
				if err := f.prod.Publish(m.subject, m.data); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.prod.Flush(); err != nil {
				t.Fatal(err)
			}
			wantAccepted := uint64(1 + 2 + 3 + 2 + 2) // the truncated frame keeps two
			waitFor(t, "all messages counted", func() bool {
				got := scrape(t, f.metrics)
				n := 0.0
				for _, fm := range []string{"json", "binary", "binary_s2", "unknown"} {
					n += got[`ratings_messages_total{format="`+fm+`"}`]
				}
				return n == float64(len(msgs))
			})
			if err := in.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := scrape(t, f.metrics)
			want := map[string]float64{
				`ratings_events_total{result="accepted"}`:               float64(wantAccepted),
				`ratings_events_rejected_total{reason="malformed"}`:     2, // garbage, the truncated record
				`ratings_events_rejected_total{reason="too_large"}`:     1,
				`ratings_events_rejected_total{reason="bad_device"}`:    1,
				`ratings_events_rejected_total{reason="bad_channel"}`:   1,
				`ratings_events_rejected_total{reason="future"}`:        1,
				`ratings_events_rejected_total{reason="late"}`:          0,
				`ratings_events_rejected_total{reason="channel_limit"}`: 0,
				`ratings_events_total{result="rejected"}`:               6,
				`ratings_messages_total{format="json"}`:                 5,
				`ratings_messages_total{format="binary"}`:               3,
				`ratings_messages_total{format="binary_s2"}`:            1,
				`ratings_messages_total{format="unknown"}`:              1,
				`ratings_channels`: 3,
			}
			for series, w := range want {
				if got[series] != w {
					t.Errorf("%s = %v, want %v", series, got[series], w)
				}
			}
			if a := f.agg.Accepted(); a != wantAccepted {
				t.Errorf("aggregator accepted %d, want %d", a, wantAccepted)
			}
		})
	}
}

func TestIntakeKeepsSubjectOrderInTuningModel(t *testing.T) {
	// One device tunes through 200 channels, one event per message on one
	// subject: with any reordering between the workers the device would
	// end on another channel.
	f := newFixture(t, aggregator.Tuning, false)
	in, err := StartIntake(IntakeConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Workers: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(t.Context())
	const n = 40 // within MaxChannels 50
	for i := range n {
		e := ev("stb-1", fmt.Sprintf("ch-%02d", i), t0.Add(time.Duration(i)*time.Second))
		if err := f.prod.Publish("tv.events.p1", event.AppendJSON(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	// A long stay on the last channel, so that it is minute 0's winner.
	waitFor(t, "events ingested", func() bool { return f.agg.Accepted() == n })
	b := f.agg.Now()
	if len(b.Open) != 1 || b.Open[0].Channel != fmt.Sprintf("ch-%02d", n-1) {
		t.Fatalf("device is on %+v, want ch-%02d (the last event)", b.Open, n-1)
	}
}

func TestIntakeSpreadsSubjectsEvenly(t *testing.T) {
	// A producer's 16 partitions on 2 workers: 8 each, every subject on
	// the same worker each time; past maxRoutes subjects, the rest are
	// hashed without growing the table.
	f := newFixture(t, aggregator.Tuning, false)
	in, err := StartIntake(IntakeConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Workers: 2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(t.Context())
	per := make([]int, 2)
	first := map[string]int{}
	for range 3 {
		for p := range 16 {
			s := fmt.Sprintf("tv.events.p%d", p)
			w := in.route(s)
			if v, ok := first[s]; ok && v != w {
				t.Fatalf("%s went to worker %d, then %d", s, v, w)
			} else if !ok {
				first[s] = w
				per[w]++
			}
		}
	}
	if per[0] != 8 || per[1] != 8 {
		t.Fatalf("subjects per worker %v, want [8 8]", per)
	}
	for i := range 2 * maxRoutes {
		if w := in.route(fmt.Sprintf("tv.events.x%d", i)); w < 0 || w > 1 {
			t.Fatalf("worker %d", w)
		}
	}
	if len(in.routes) != maxRoutes {
		t.Fatalf("%d routes kept, want at most %d", len(in.routes), maxRoutes)
	}
}

func TestPublisherSendsEverySealedMinute(t *testing.T) {
	f := newFixture(t, aggregator.Tuning, false)
	pub := NewPublisher(f.nc, f.agg, f.metrics)
	chans, err := f.prod.SubscribeSync(MinuteSubject + ".>")
	if err != nil {
		t.Fatal(err)
	}
	summaries, err := f.prod.SubscribeSync(MinuteSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.prod.Flush(); err != nil {
		t.Fatal(err)
	}
	w := f.agg.NewWriter()
	evs := []event.Event{ev("a", "npo1", t0.Add(time.Second)), ev("b", "npo1", t0.Add(time.Second)), ev("c", "npo2.hd", t0.Add(time.Second))}
	if n := w.Write(evs, nil); n != 3 {
		t.Fatalf("accepted %d of 3", n)
	}
	f.agg.SealThrough(t0.Add(time.Minute).UnixMilli())
	// The first open minute is the one the watermark was in (19:59); it is
	// empty and goes out as a summary without channels.
	for m := range f.sealed {
		if err := pub.Publish(m); err != nil {
			t.Fatal(err)
		}
		if m.Start.Equal(t0) {
			break
		}
	}
	if msg, err := summaries.NextMsg(5 * time.Second); err != nil || !strings.Contains(string(msg.Data), `"channels":[]`) {
		t.Fatalf("summary of the empty minute: %v %s", err, msg.Data)
	}
	got := map[string]ChannelMinute{}
	for range 2 {
		msg, err := chans.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var cm ChannelMinute
		if err := json.Unmarshal(msg.Data, &cm); err != nil {
			t.Fatal(err)
		}
		if want := MinuteSubject + "." + cm.Channel; msg.Subject != want {
			t.Errorf("subject %s, want %s", msg.Subject, want)
		}
		got[cm.Channel] = cm
	}
	want := map[string]ChannelMinute{
		"npo1":    {Minute: t0, Channel: "npo1", Audience: 2, Low: 2, High: 2, Share: 2.0 / 3, Total: 3},
		"npo2.hd": {Minute: t0, Channel: "npo2.hd", Audience: 1, Low: 1, High: 1, Share: 1.0 / 3, Total: 3},
	}
	for ch, w := range want {
		if g := got[ch]; !g.Minute.Equal(w.Minute) || g.Audience != w.Audience || g.Low != w.Low || g.High != w.High || g.Total != w.Total || g.Share != w.Share {
			t.Errorf("%s: got %+v, want %+v", ch, g, w)
		}
	}
	msg, err := summaries.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var sum MinuteSummary
	if err := json.Unmarshal(msg.Data, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Total != 3 || len(sum.Channels) != 2 || sum.Channels[0].Channel != "npo1" || !sum.Minute.Equal(t0) {
		t.Errorf("summary %+v, want total 3 and npo1 then npo2.hd in minute %s", sum, t0)
	}
	if got := scrape(t, f.metrics)[`ratings_minutes_published_total`]; got != 2 {
		t.Errorf("ratings_minutes_published_total = %v, want 2", got)
	}
}

func TestMicroAnswersLikeHTTP(t *testing.T) {
	f := newFixture(t, aggregator.Tuning, false)
	// A stand-in for the HTTP API: it echoes the route and the query, and
	// fails as the real one does.
	queries := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("channel") {
		case "missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"unknown channel: \"missing\""}`)
			return
		case "old":
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, `{"error":"data expired"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "query": r.URL.Query()})
	})
	svc, err := StartMicro(MicroConfig{Conn: f.nc, Queries: queries, Metrics: f.metrics})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	type reply struct {
		Path  string              `json:"path"`
		Query map[string][]string `json:"query"`
	}
	ok := func(endpoint, body string, want reply) {
		t.Helper()
		msg, err := f.prod.Request(QueryPrefix+"."+endpoint, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s %s: error %s %s", endpoint, body, code, msg.Header.Get(micro.ErrorHeader))
		}
		var got reply
		if err := json.Unmarshal(msg.Data, &got); err != nil {
			t.Fatalf("%s: %v in %q", endpoint, err, msg.Data)
		}
		if got.Path != want.Path || fmt.Sprint(got.Query) != fmt.Sprint(want.Query) {
			t.Errorf("%s %s: got %+v, want %+v", endpoint, body, got, want)
		}
	}
	ok("channels", "", reply{Path: "/v1/channels", Query: map[string][]string{}})
	ok("now", "{}", reply{Path: "/v1/now", Query: map[string][]string{}})
	ok("audience", `{"channel":"npo1","from":"2025-03-14T20:00:00Z","to":"2025-03-14T21:00:00Z"}`,
		reply{Path: "/v1/audience", Query: map[string][]string{"channel": {"npo1"}, "from": {"2025-03-14T20:00:00Z"}, "to": {"2025-03-14T21:00:00Z"}}})
	ok("reach", `{"channel":["npo1","npo2"],"from":"2025-03-14T20:00:00Z","to":"2025-03-14T21:00:00Z"}`,
		reply{Path: "/v1/reach", Query: map[string][]string{"channel": {"npo1", "npo2"}, "from": {"2025-03-14T20:00:00Z"}, "to": {"2025-03-14T21:00:00Z"}}})
	ok("capacity", `{"region":"r-01","limit":5}`, reply{Path: "/v1/capacity", Query: map[string][]string{"region": {"r-01"}, "limit": {"5"}}})

	fail := func(endpoint, body, wantCode, wantDesc string) {
		t.Helper()
		msg, err := f.prod.Request(QueryPrefix+"."+endpoint, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code, desc := msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader); code != wantCode || !strings.Contains(desc, wantDesc) {
			t.Errorf("%s %s: error %q %q, want %s containing %q", endpoint, body, code, desc, wantCode, wantDesc)
		}
	}
	fail("audience", `{"channel":"missing"}`, "404", `unknown channel: "missing"`)
	fail("flow", `{"channel":"old"}`, "410", "data expired")
	fail("reach", `["not","an","object"]`, "400", "not a JSON object")
	fail("reach", `{"channel":{"nested":1}}`, "400", `parameter "channel"`)

	var infos []string
	for _, e := range svc.Info().Endpoints {
		infos = append(infos, e.Subject)
	}
	if got, want := strings.Join(infos, " "), "ratings.channels ratings.audience ratings.now ratings.reach ratings.flow ratings.capacity ratings.epochs"; got != want {
		t.Errorf("endpoints %s, want %s", got, want)
	}
}

func TestJetStreamIntakeResumesAfterAck(t *testing.T) {
	f := newFixture(t, aggregator.Events, true)
	cfg := JetStreamConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Stream: "TV", Logger: quietLogger()}
	j, err := StartJetStream(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(f.prod)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			b := frame(t, i%2 == 0, ev(fmt.Sprintf("stb-%d", i), "npo1", t0.Add(time.Second)))
			if _, err := js.Publish(t.Context(), fmt.Sprintf("tv.events.p%d", i%4), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 50)
	waitFor(t, "50 events", func() bool { return f.agg.Accepted() == 50 })
	if err := j.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if seq := j.Sequence(); seq != 50 {
		t.Errorf("sequence %d after 50 messages, want 50", seq)
	}
	// While the intake is down, 30 more; a new intake on the same durable
	// gets exactly those.
	publish(50, 30)
	j, err = StartJetStream(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Stop(t.Context())
	waitFor(t, "80 events", func() bool { return f.agg.Accepted() >= 80 && j.Sequence() == 80 })
	time.Sleep(50 * time.Millisecond)
	if got := f.agg.Accepted(); got != 80 {
		t.Errorf("accepted %d, want 80 (50 before the restart, 30 after; none twice)", got)
	}
	s, err := js.Stream(t.Context(), "TV")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != DefaultMaxAge {
		t.Errorf("created stream's max age %s, want %s", got, DefaultMaxAge)
	}
}

func TestJetStreamRefusesLongRetention(t *testing.T) {
	f := newFixture(t, aggregator.Events, true)
	js, err := jetstream.New(f.prod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "FOREVER", Subjects: []string{"tv.events.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err = StartJetStream(t.Context(), JetStreamConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Stream: "FOREVER", Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), `stream "FOREVER"`) || !strings.Contains(err.Error(), "unlimited") {
		t.Fatalf("err = %v, want a refusal of the unlimited stream FOREVER", err)
	}
}

func TestCheckMaxAge(t *testing.T) {
	f := func(age time.Duration, wantWarn, wantErr bool) {
		t.Helper()
		warn, err := CheckMaxAge(age)
		if warn != wantWarn || (err != nil) != wantErr {
			t.Errorf("CheckMaxAge(%s) = %v, %v; want warn %v, error %v", age, warn, err, wantWarn, wantErr)
		}
	}
	f(time.Hour, false, false)
	f(24*time.Hour, false, false)
	f(25*time.Hour, true, false)
	f(30*24*time.Hour-time.Second, true, false)
	f(30*24*time.Hour, false, true)
	f(0, false, true)
}

func TestFormatOf(t *testing.T) {
	f := func(msg []byte, want telemetry.Format) {
		t.Helper()
		if got := formatOf(msg); got != want {
			t.Errorf("formatOf(%q) = %s, want %s", msg, got, want)
		}
	}
	e := ev("stb-1", "npo1", t0)
	f(event.AppendJSON(nil, &e), telemetry.JSON)
	f([]byte("  \n[{}]"), telemetry.JSON)
	f(frame(t, false, e), telemetry.Binary)
	f(frame(t, true, e), telemetry.BinaryS2)
	f(nil, telemetry.Unknown)
	f([]byte("   "), telemetry.Unknown)
	f([]byte("x{"), telemetry.Unknown)
	f([]byte("\xF5RT"), telemetry.Unknown)
}

func TestIntakeStopsWhenItsContextEnds(t *testing.T) {
	f := newFixture(t, aggregator.Events, false)
	in, err := StartIntake(IntakeConfig{Conn: f.nc, Agg: f.agg, Metrics: f.metrics, Workers: 2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for i := range n {
		e := ev(fmt.Sprintf("stb-%d", i), "npo1", t0.Add(time.Second))
		if err := f.prod.Publish(fmt.Sprintf("tv.events.p%d", i%8), event.AppendJSON(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.prod.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Stopping with no time left drops what the client buffers; it must
	// return, with or without an error, and the workers must be gone.
	err = in.Stop(ctx)
	got := f.agg.Accepted()
	time.Sleep(20 * time.Millisecond)
	if again := f.agg.Accepted(); again != got || got > n {
		t.Errorf("accepted %d, then %d after Stop returned (of %d)", got, again, n)
	}
	t.Logf("stopped after %d of %d events: %v", got, n, err)
}

func TestIntakeCountsSlowConsumerDrops(t *testing.T) {
	f := newFixture(t, aggregator.Events, false)
	var in atomic.Pointer[Intake]
	nc, err := f.srv.Connect(nats.ErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		if i := in.Load(); i != nil {
			i.AsyncError(c, s, err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A pending limit of 8 messages: a burst overflows it.
	i, err := StartIntake(IntakeConfig{Conn: nc, Agg: f.agg, Metrics: f.metrics, Workers: 1, PendingMessages: 8, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in.Store(i)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for k := range n {
		e := ev(fmt.Sprintf("stb-%d", k), "npo1", t0.Add(time.Second))
		if err := f.prod.Publish("tv.events.p0", event.AppendJSON(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.prod.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := i.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, f.metrics)
	slow, dropped := got["ratings_nats_slow_consumer_events_total"], got["ratings_nats_dropped_messages_total"]
	if slow < 1 || dropped < 1 {
		t.Fatalf("slow consumer events %v, dropped %v: want both counted after a burst of %d into a pending limit of 8", slow, dropped, n)
	}
	if accepted := float64(f.agg.Accepted()); accepted+dropped != n {
		t.Errorf("accepted %v + dropped %v = %v, want the %d published", accepted, dropped, accepted+dropped, n)
	}
}
