package service

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/sketch"
)

// clock is a settable wall clock.
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

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testKey makes estimates reproducible from run to run.
var testKey = func() *sketch.Key {
	k, err := sketch.KeyFromBytes([]byte("ratingsd-test-k1"))
	if err != nil {
		panic(err)
	}
	return k
}()

// testConfig is a Config on free ports and a temporary directory.
func testConfig(t testing.TB) Config {
	return Config{
		NATSListen: "127.0.0.1:-1",
		HTTPAddr:   "127.0.0.1:0",
		DataDir:    t.TempDir(),
		Logger:     quietLogger(),
		Key:        testKey,
	}
}

// start starts a service and stops it at the end of the test.
func start(t testing.TB, cfg Config) *Service {
	t.Helper()
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func producer(t testing.TB, s *Service) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// getJSON fetches path from the service's HTTP API into v and returns the
// status code.
func getJSON(t testing.TB, s *Service, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// scrape returns GET /metrics as a map from series to value.
func scrape(t testing.TB, s *Service) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
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

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	f := func(mutate func(*Config), want string) {
		t.Helper()
		cfg := DefaultConfig()
		mutate(&cfg)
		err := cfg.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("Validate: %v, want nil", err)
			}
			return
		}
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want an ErrConfig containing %q", err, want)
		}
	}
	f(func(c *Config) {}, "")
	f(func(c *Config) { *c = Config{} }, "") // every zero means its default
	f(func(c *Config) { c.HTTPAddr = "0.0.0.0:8080" }, `-http "0.0.0.0:8080" is not a loopback address and no -tokens file is set`)
	f(func(c *Config) { c.HTTPAddr = ":8080" }, "not a loopback address")
	f(func(c *Config) { c.HTTPAddr = "0.0.0.0:8080"; c.TokensFile = "tokens.txt" }, "")
	f(func(c *Config) { c.HTTPAddr = "[::1]:8080" }, "")
	f(func(c *Config) { c.HTTPAddr = "localhost:8080" }, "")
	f(func(c *Config) { c.HTTPAddr = "127.0.0.1" }, `-http "127.0.0.1": want host:port`)
	f(func(c *Config) { c.NATSURL = "localhost:4222" }, `-nats "localhost:4222": want a URL such as nats://host:4222`)
	f(func(c *Config) { c.NATSURL = "nats://a:4222,nats://b:4222" }, "")
	f(func(c *Config) { c.NATSListen = "127.0.0.1:99999" }, "-nats-listen")
	f(func(c *Config) { c.Subject = "tv.>.x" }, `-subject "tv.>.x": '>' is allowed only as the last token`)
	f(func(c *Config) { c.Subject = "tv..x" }, "empty token")
	f(func(c *Config) { c.Lateness = 2 * time.Second }, "-lateness 2s is shorter than -min-dwell 5s")
	f(func(c *Config) { c.Lateness = 2 * time.Second; c.Model = aggregator.Events }, "")
	f(func(c *Config) { c.Precision = 20 }, "-precision 20: want 4..18")
	f(func(c *Config) { c.Retention = 30 * 24 * time.Hour }, "-retention 720h0m0s: must be under")
	f(func(c *Config) { c.Retention = 29 * 24 * time.Hour }, "")
	f(func(c *Config) { c.MinuteRetention = 8 * 24 * time.Hour }, "-minute-retention 192h0m0s: want 1h..168h")
	f(func(c *Config) { c.JetStream = "TV"; c.JetStreamMaxAge = 31 * 24 * time.Hour }, "-jetstream-max-age 744h0m0s")
	f(func(c *Config) { c.JetStream = "tv.events" }, `-jetstream "tv.events": a stream name cannot contain`)
	f(func(c *Config) { c.MaxChannels = -1 }, "-max-channels -1")
	f(func(c *Config) { c.Inactivity = time.Second }, "-inactivity 1s: want at least 1m")
	f(func(c *Config) { c.MaxMessageBytes = 100 }, "-max-message-bytes 100")
}

func TestStartFailsClearly(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = "0.0.0.0:0"
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "not a loopback address and no -tokens file is set") {
		t.Errorf("non-loopback without tokens: %v", err)
	}
	cfg = testConfig(t)
	cfg.TokensFile = filepath.Join(t.TempDir(), "missing")
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "-tokens") {
		t.Errorf("missing tokens file: %v", err)
	}
	// A port in use is named.
	s := start(t, testConfig(t))
	cfg = testConfig(t)
	cfg.HTTPAddr = s.HTTPAddr()
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "-http "+s.HTTPAddr()) {
		t.Errorf("http address in use: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg = testConfig(t)
	cfg.NATSListen = ln.Addr().String()
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "-nats-listen "+ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("nats address in use: %v", err)
	}
}

// TestSealedMinutePublishedWithinASecond moves the watermark past a minute's
// end at a known instant and measures, with a subscriber, when the sealed
// minute arrives on NATS.
func TestSealedMinutePublishedWithinASecond(t *testing.T) {
	m0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	clk := &clock{t: m0.Add(30 * time.Second)}
	cfg := testConfig(t)
	cfg.Now = clk.Now
	s := start(t, cfg)
	nc := producer(t, s)
	sums, err := nc.SubscribeSync(natsio.MinuteSubject)
	if err != nil {
		t.Fatal(err)
	}
	chans, err := nc.SubscribeSync(natsio.MinuteSubject + ".>")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		e := event.Event{Device: fmt.Appendf(nil, "stb-%d", i), Channel: []byte("npo1"), TS: m0.Add(30 * time.Second).UnixMilli()}
		if err := nc.Publish("tv.events.p1", event.AppendJSON(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "100 events", 10*time.Second, func() bool { return s.Aggregator().Accepted() == 100 })

	// The first minute opened is the one before m0: it seals (empty) once
	// the watermark (clock - 60 s) passes m0.
	clk.Set(m0.Add(90 * time.Second))
	if sum := nextSummary(t, sums); !sum.Minute.Equal(m0.Add(-time.Minute)) || sum.Total != 0 {
		t.Fatalf("first sealed minute %+v, want %s, empty", sum, m0.Add(-time.Minute))
	}
	// Minute m0 must not seal before its end passes.
	if msg, err := sums.NextMsg(600 * time.Millisecond); err == nil {
		t.Fatalf("a minute sealed before the watermark passed its end: %s", msg.Data)
	}

	// Now the watermark passes m0's end, at passed.
	passed := time.Now()
	clk.Set(m0.Add(2*time.Minute + time.Millisecond))
	sum := nextSummary(t, sums)
	delay := time.Since(passed)
	if !sum.Minute.Equal(m0) || sum.Total != 100 || len(sum.Channels) != 1 || sum.Channels[0].Audience != 100 {
		t.Fatalf("sealed minute %+v, want %s with 100 on npo1", sum, m0)
	}
	if delay > time.Second {
		t.Errorf("minute %s published %s after the watermark passed its end, want within 1s", m0, delay)
	}
	t.Logf("published %s after the watermark passed", delay)
	msg, err := chans.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var cm natsio.ChannelMinute
	if err := json.Unmarshal(msg.Data, &cm); err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "ratings.minute.npo1" || cm.Audience != 100 || !cm.Minute.Equal(m0) || cm.Share != 1 {
		t.Errorf("on %s: %+v, want npo1's 100 viewers of %s", msg.Subject, cm, m0)
	}
	// The publisher observes the delay once it has published the minute,
	// which a subscriber may see first.
	var got float64
	waitFor(t, "the publish delay of both minutes observed", 5*time.Second, func() bool {
		got = scrape(t, s)["ratings_minute_publish_delay_seconds_count"]
		return got >= 2
	})
	if got != 2 {
		t.Errorf("ratings_minute_publish_delay_seconds_count = %v, want 2", got)
	}
}

func nextSummary(t testing.TB, sub *nats.Subscription) natsio.MinuteSummary {
	t.Helper()
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for a sealed minute on %s: %v", natsio.MinuteSubject, err)
	}
	var sum natsio.MinuteSummary
	if err := json.Unmarshal(msg.Data, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestBadInputOverNATS sends every kind of bad input a producer can, mixed
// with valid events, and checks that each rejection is counted by its reason,
// every valid event is counted, the channel table stays at its limit and the
// service keeps serving.
func TestBadInputOverNATS(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	clk := &clock{t: now}
	logs := &syncBuffer{}
	cfg := testConfig(t)
	cfg.Now = clk.Now
	cfg.MaxChannels = 20
	cfg.MaxMessageBytes = 64 << 10
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := start(t, cfg)
	nc := producer(t, s)

	// Device identifiers carry a marker that must never reach a log line.
	const secret = "stb-secret-"
	at := now.Add(-10 * time.Second).UnixMilli()
	valid := func(i int, channel string) event.Event {
		return event.Event{Device: fmt.Appendf(nil, "%s%d", secret, i), Channel: []byte(channel), TS: at}
	}
	frameOf := func(compress bool, evs ...event.Event) []byte {
		var enc event.BatchEncoder
		for i := range evs {
			if err := enc.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		return enc.AppendFrame(nil, compress)
	}

	var msgs [][]byte
	// Ten channels are known first.
	var first []event.Event
	for i := range 10 {
		first = append(first, valid(i, fmt.Sprintf("ch-%02d", i)))
	}
	msgs = append(msgs, frameOf(false, first...))
	send := func(subject string, batch [][]byte) {
		t.Helper()
		for _, m := range batch {
			if err := nc.Publish(subject, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	send("tv.events.p0", msgs)
	waitFor(t, "the first 10 events", 10*time.Second, func() bool { return s.Aggregator().Accepted() == 10 })

	var bad [][]byte
	rng := uint64(7)
	for i := range 50 { // garbage
		b := make([]byte, 1+i*7%300)
		for j := range b {
			rng = rng*6364136223846793005 + 1442695040888963407
			b[j] = byte(rng >> 56)
		}
		b[0] = 0x01
		bad = append(bad, b)
	}
	full := frameOf(true, valid(100, "ch-01"), valid(101, "ch-02"), valid(102, "ch-03"), valid(103, "ch-04"))
	bad = append(bad, full[:len(full)/2], full[:7], frameOf(false, valid(104, "ch-01"), valid(105, "ch-02"))[:30]) // truncated
	var huge []event.Event
	for i := range 4000 {
		huge = append(huge, valid(1000+i, "ch-01"))
	}
	bad = append(bad, frameOf(false, huge...)) // too large
	bad = append(bad, []byte(`[`+
		`{"device":"","channel":"ch-01","ts":1741982405000},`+
		`{"device":"`+secret+`x","channel":"no spaces","ts":1741982405000},`+
		`{"device":"`+secret+`x","channel":"ch-01","ts":1741982405000,"kind":"zap"},`+
		`{"device":"`+secret+`x","channel":"ch-01","ts":"yesterday"},`+
		`{"device":"`+secret+`x","channel":"ch-01","ts":1741982405000,"region":"a b"},`+
		`{"device":"`+secret+`y","channel":"ch-05","ts":`+strconv.FormatInt(at, 10)+`}]`)) // one valid among them
	far := valid(200, "ch-01")
	far.TS = now.Add(time.Hour).UnixMilli()
	bad = append(bad, event.AppendJSON(nil, &far), frameOf(false, far, valid(201, "ch-06"))) // future, with a valid one

	// What the decoder rejects is the reference for decode-level reasons.
	var want [event.NumReasons]int
	var dec event.Decoder
	dec.MaxMessageBytes = cfg.MaxMessageBytes
	decoded := 0
	for _, m := range bad {
		var rej event.Rejections
		decoded += len(dec.Decode(nil, m, &rej))
		for r, n := range rej.Count {
			want[r] += n
		}
	}
	want[event.Future] += 2 // the far event, twice
	decoded -= 2

	// A flood of random channel names beyond -max-channels.
	var flood [][]byte
	for i := range 2000 {
		e := valid(5000+i, fmt.Sprintf("flood-%04d", i))
		flood = append(flood, event.AppendJSON(nil, &e))
	}
	want[event.ChannelLimit] += 2000 - 10 // 10 known channels leave room for 10
	send("tv.events.p1", bad)
	send("tv.events.p2", flood)
	wantAccepted := 10 + decoded + 10

	total := wantAccepted
	for _, n := range want {
		total += n
	}
	waitFor(t, "every event counted", 10*time.Second, func() bool {
		m := scrape(t, s)
		return int(m[`ratings_events_total{result="accepted"}`]+m[`ratings_events_total{result="rejected"}`]) >= total
	})
	time.Sleep(50 * time.Millisecond) // nothing more arrives
	t.Logf("want rejections %v, accepted %d", want, wantAccepted)
	got := scrape(t, s)
	for r := event.Reason(1); r < event.NumReasons; r++ {
		series := fmt.Sprintf(`ratings_events_rejected_total{reason=%q}`, r)
		if int(got[series]) != want[r] {
			t.Errorf("%s = %v, want %d", series, got[series], want[r])
		}
	}
	if a := int(got[`ratings_events_total{result="accepted"}`]); a != wantAccepted {
		t.Errorf("accepted %d, want %d", a, wantAccepted)
	}
	if n := got["ratings_channels"]; n != 20 {
		t.Errorf("ratings_channels = %v after the flood, want the limit 20", n)
	}
	if got[`ratings_messages_total{format="unknown"}`] != 50 {
		t.Errorf(`ratings_messages_total{format="unknown"} = %v, want 50`, got[`ratings_messages_total{format="unknown"}`])
	}

	// Still serving, still ingesting.
	if code := getJSON(t, s, "/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	e := valid(9999, "ch-07")
	send("tv.events.p3", [][]byte{event.AppendJSON(nil, &e)})
	waitFor(t, "a valid event after the flood", 5*time.Second, func() bool {
		return s.Aggregator().Accepted() == uint64(wantAccepted+1)
	})

	log := logs.String()
	for _, reason := range []string{"malformed", "too_large", "bad_device", "future", "channel_limit"} {
		if !strings.Contains(log, "reason="+reason) {
			t.Errorf("no log line says why events were rejected as %s", reason)
		}
	}
	if strings.Contains(log, secret) {
		t.Errorf("a device identifier reached the log:\n%s", log)
	}
}

// TestMicroAnswersAsHTTP asks the same questions over HTTP and over the NATS
// micro service and wants the same bytes back, errors included.
func TestMicroAnswersAsHTTP(t *testing.T) {
	m0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	clk := &clock{t: m0.Add(30 * time.Second)}
	cfg := testConfig(t)
	cfg.Now = clk.Now
	cfg.TickInterval = -1
	s := start(t, cfg)
	nc := producer(t, s)
	var batch []event.Event
	for i := range 50 {
		batch = append(batch, event.Event{Device: fmt.Appendf(nil, "stb-%d", i), Channel: fmt.Appendf(nil, "ch-%d", i%3), Region: []byte("r-1"), TS: m0.Add(time.Duration(i) * time.Second / 2).UnixMilli()})
	}
	if err := nc.Publish("tv.events.p0", event.AppendJSONArray(nil, batch)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "50 events", 10*time.Second, func() bool { return s.Aggregator().Accepted() == 50 })
	s.Aggregator().SealThrough(m0.Add(2 * time.Minute).UnixMilli())

	from, to := m0.Format(time.RFC3339), m0.Add(2*time.Minute).Format(time.RFC3339)
	f := func(endpoint, query, body string, wantCode int) {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/" + endpoint + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		httpBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Fatalf("GET /v1/%s?%s: %d %s, want %d", endpoint, query, resp.StatusCode, httpBody, wantCode)
		}
		msg, err := nc.Request(natsio.QueryPrefix+"."+endpoint, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg.Data) != string(httpBody) {
			t.Errorf("%s %s: NATS answered\n%s\nHTTP answered\n%s", endpoint, body, msg.Data, httpBody)
		}
		code := msg.Header.Get("Nats-Service-Error-Code")
		if (wantCode == http.StatusOK) != (code == "") || (code != "" && code != strconv.Itoa(wantCode)) {
			t.Errorf("%s %s: micro error code %q, want %d", endpoint, body, code, wantCode)
		}
	}
	f("channels", "", "", http.StatusOK)
	f("now", "", "{}", http.StatusOK)
	f("audience", "channel=ch-1&from="+from+"&to="+to, `{"channel":"ch-1","from":"`+from+`","to":"`+to+`"}`, http.StatusOK)
	f("reach", "channel=ch-1&channel=ch-2&from="+from+"&to="+to, `{"channel":["ch-1","ch-2"],"from":"`+from+`","to":"`+to+`"}`, http.StatusOK)
	f("flow", "from=ch-1&minute="+from, `{"from":"ch-1","minute":"`+from+`"}`, http.StatusOK)
	f("capacity", "region=r-1&from="+from+"&to="+to, `{"region":"r-1","from":"`+from+`","to":"`+to+`"}`, http.StatusOK)
	f("audience", "channel=nope&from="+from+"&to="+to, `{"channel":"nope","from":"`+from+`","to":"`+to+`"}`, http.StatusNotFound)
	f("audience", "channel=ch-1&from="+to+"&to="+from, `{"channel":"ch-1","from":"`+to+`","to":"`+from+`"}`, http.StatusBadRequest)
}

// TestReadyzReportsNATSDown: while the connection to an external NATS server
// is lost, /readyz answers 503 saying so (the dashboard shows it); after the
// server is back and the client has reconnected, 200 again.
func TestReadyzReportsNATSDown(t *testing.T) {
	srv, err := natsio.StartServer(natsio.ServerConfig{Listen: "127.0.0.1:-1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	var back *natsio.Server // the server restarted on the same address
	t.Cleanup(func() {      // after the service's own shutdown (cleanups run last-in first-out)
		if back != nil {
			back.Shutdown()
		}
	})
	cfg := testConfig(t)
	cfg.NATSURL = url
	s := start(t, cfg)
	ready := func() (int, string) {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, msg := ready(); code != http.StatusOK {
		t.Fatalf("readyz %d %q before the outage", code, msg)
	}
	srv.Shutdown()
	waitFor(t, "readyz to report NATS down", 10*time.Second, func() bool {
		code, msg := ready()
		return code == http.StatusServiceUnavailable && strings.Contains(msg, "NATS disconnected")
	})
	listen := strings.TrimPrefix(url, "nats://")
	if back, err = natsio.StartServer(natsio.ServerConfig{Listen: listen, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readyz after NATS is back", 15*time.Second, func() bool {
		code, _ := ready()
		return code == http.StatusOK
	})
}
