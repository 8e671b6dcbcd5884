package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/bench"
	"github.com/ratingsd/ratingsd/sketch"
)

// restartConfig is the configuration of the restart tests: the committed
// stream's settings, the ticker and the checkpoint loop off (the tests seal
// and checkpoint), the wall clock just after the run.
func restartConfig(t *testing.T, st *testStream) Config {
	info := st.truth.Info()
	clk := &clock{t: info.End.Add(time.Second)}
	cfg := testConfig(t)
	cfg.Model = aggregator.Tuning
	cfg.Now = clk.Now
	cfg.TickInterval = -1
	cfg.CheckpointEvery = -1
	cfg.MinDwell = info.MinDwell
	cfg.Inactivity = info.Inactivity
	return cfg
}

// feed publishes batches to s and returns the messages sent.
func feed(t *testing.T, s *Service, batches [][]event.Event, js bool) int64 {
	t.Helper()
	pub, err := bench.NewPublisher(producer(t, s), bench.PublishConfig{Format: bench.FormatBinary, JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := pub.Publish(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, _ := pub.Published()
	return msgs
}

func countEvents(batches [][]event.Event) (n int64) {
	for _, b := range batches {
		n += int64(len(b))
	}
	return n
}

// checkSealed seals the run and requires every minute's audience of every
// channel to be exactly the truth's (tuning model).
func checkSealed(t *testing.T, s *Service, st *testStream) {
	t.Helper()
	info := st.truth.Info()
	first := info.FirstMinute
	end := first.Add(time.Duration(info.Minutes) * time.Minute)
	s.Aggregator().SealThrough(end.UnixMilli())
	tm := bench.Model(aggregator.Tuning)
	for _, ch := range st.truth.Channels() {
		var curve struct {
			Points []struct {
				Minute   time.Time
				Audience int
			}
		}
		q := url.Values{"channel": {ch}, "from": {first.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}}
		got := make(map[time.Time]int)
		switch code := getJSON(t, s, "/v1/audience?"+q.Encode(), &curve); code {
		case http.StatusOK:
			for _, p := range curve.Points {
				got[p.Minute] = p.Audience
			}
		case http.StatusNotFound:
		default:
			t.Fatalf("GET /v1/audience for %s: %d", ch, code)
		}
		for _, min := range st.truth.Minutes() {
			if want := st.truth.Audience(tm, ch, min); got[min] != want {
				t.Errorf("audience of %s at %s after a restart: %d, want exactly %d", ch, min.Format("15:04"), got[min], want)
			}
		}
	}
}

// TestRestartLosesNothing feeds half the committed stream over core NATS,
// shuts the service down, starts a new one on the same data directory, feeds
// the rest and requires every sealed minute to be exactly the stream's truth
// (tuning model), which is what an uninterrupted run gives (TestEndToEnd).
func TestRestartLosesNothing(t *testing.T) {
	st := loadStreams(t)[0]
	info := st.truth.Info()
	cfg := restartConfig(t, st)
	half := len(st.batches) / 2
	firstHalf := countEvents(st.batches[:half])

	s1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, s1, st.batches[:half], false)
	waitFor(t, "the first half counted", 30*time.Second, func() bool { return int64(s1.Aggregator().Accepted()) >= firstHalf })
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	s2 := start(t, cfg)
	if got := int64(s2.Aggregator().Accepted()); got != firstHalf {
		t.Fatalf("restored %d accepted events, want %d", got, firstHalf)
	}
	feed(t, s2, st.batches[half:], false)
	waitFor(t, "every event counted", 30*time.Second, func() bool { return int64(s2.Aggregator().Accepted()) >= info.Events })
	if got := int64(s2.Aggregator().Accepted()); got != info.Events {
		t.Errorf("accepted %d events over the restart, want %d", got, info.Events)
	}
	checkSealed(t, s2, st)
}

// TestJetStreamResumesFromCheckpoint stands for a crash with JetStream:
// a checkpoint after the first third of the stream, the second third
// processed and acknowledged, then the newer checkpoints lost, as if the
// process had died right after the first. The next start must resume the
// stream after the checkpoint's position, not after the consumer's
// acknowledgements, and end with every minute exact.
func TestJetStreamResumesFromCheckpoint(t *testing.T) {
	st := loadStreams(t)[0]
	cfg := restartConfig(t, st)
	cfg.JetStream = "TV"
	third := len(st.batches) / 3

	s1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sent := feed(t, s1, st.batches[:third], true)
	waitFor(t, "the first third processed", 30*time.Second, func() bool { return int64(s1.StreamSequence()) >= sent })
	if err := s1.checkpoint(); err != nil {
		t.Fatal(err)
	}
	sent += feed(t, s1, st.batches[third:2*third], true)
	waitFor(t, "the second third processed", 30*time.Second, func() bool { return int64(s1.StreamSequence()) >= sent })
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, checkpointDir, "checkpoint-*.rtck"))
	if len(files) != 2 {
		t.Fatalf("checkpoint files %v, want 2", files)
	}
	if err := os.Remove(files[1]); err != nil {
		t.Fatal(err)
	}

	// The restored state is read from the start's log: once Start returns,
	// the consumer is already replaying the second third.
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s2 := start(t, cfg)
	if want := fmt.Sprintf("accepted_events=%d", countEvents(st.batches[:third])); !strings.Contains(logs.String(), "restored checkpoint") || !strings.Contains(logs.String(), want) {
		t.Fatalf("the restore did not log %s (the first third's events):\n%s", want, logs.String())
	}
	sent += feed(t, s2, st.batches[2*third:], true)
	waitFor(t, "the whole stream processed", 30*time.Second, func() bool { return int64(s2.StreamSequence()) >= sent })
	checkSealed(t, s2, st)
}

// ingest writes n events of distinct devices straight into s's aggregator.
func ingest(t *testing.T, s *Service, at time.Time, from, n int) {
	t.Helper()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Device: fmt.Appendf(nil, "stb-%d", from+i), Channel: []byte("npo1"), TS: at.UnixMilli(), Kind: event.Tune}
	}
	var rej event.Rejections
	if got := s.Aggregator().NewWriter().Write(evs, &rej); got != n {
		t.Fatalf("accepted %d of %d events", got, n)
	}
}

// TestCorruptNewestCheckpoint truncates the newest checkpoint: the next
// start logs what is wrong with it and restores the one before.
func TestCorruptNewestCheckpoint(t *testing.T) {
	now := time.Now().UTC()
	cfg := testConfig(t)
	cfg.TickInterval = -1
	cfg.CheckpointEvery = -1
	s1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s1, now, 0, 10)
	if err := s1.checkpoint(); err != nil {
		t.Fatal(err)
	}
	ingest(t, s1, now, 10, 5)
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, checkpointDir, "checkpoint-*.rtck"))
	if len(files) != 2 {
		t.Fatalf("checkpoint files %v, want 2", files)
	}
	newest := files[len(files)-1] // names sort like sequence numbers
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(newest, fi.Size()/2); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s2 := start(t, cfg)
	if got := s2.Aggregator().Accepted(); got != 10 {
		t.Errorf("restored %d accepted events, want the older checkpoint's 10", got)
	}
	if l := logs.String(); !strings.Contains(l, filepath.Base(newest)) || !strings.Contains(l, store.ErrTruncated.Error()) {
		t.Errorf("the truncated file is not logged with its cause:\n%s", l)
	}
}

// TestKeyFile: the key is created 0600 in a 0700 directory and read back on
// the next start; a key file of the wrong size or one that cannot be read
// stops the start with an error naming it; a checkpoint written under
// another model stops it too, naming the setting.
func TestKeyFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.Key = nil
	cfg.CheckpointEvery = -1
	s1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fp := s1.cfg.Key.Fingerprint()
	ingest(t, s1, time.Now(), 0, 3)
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, keyDir, keyFile)
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{path, 0o600}, {filepath.Dir(path), 0o700 | os.ModeDir}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	if b, err := os.ReadFile(path); err != nil || len(b) != sketch.KeySize {
		t.Fatalf("key file: %d bytes, %v", len(b), err)
	}

	s2 := start(t, cfg)
	if s2.cfg.Key.Fingerprint() != fp {
		t.Error("the second start made a new key instead of reading the file")
	}
	if got := s2.Aggregator().Accepted(); got != 3 {
		t.Errorf("restored %d accepted events under the key file, want 3", got)
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	other := cfg
	other.Model = aggregator.Events
	if _, err := Start(t.Context(), other); !errors.Is(err, aggregator.ErrCheckpointConfig) || !strings.Contains(err.Error(), "model") {
		t.Errorf("start under another model: %v, want ErrCheckpointConfig naming the model", err)
	}

	bad := func(name string, setup func(dir string), want string) {
		t.Helper()
		c := testConfig(t)
		c.Key = nil
		setup(c.DataDir)
		_, err := Start(t.Context(), c)
		if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), filepath.Join(c.DataDir, keyDir, keyFile)) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrKeyFile naming the file and %q", name, err, want)
		}
	}
	writeKey := func(b []byte) func(string) {
		return func(dir string) {
			if err := os.MkdirAll(filepath.Join(dir, keyDir), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, keyDir, keyFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	bad("short", writeKey(make([]byte, 15)), "15 bytes, want 16")
	bad("long", writeKey(make([]byte, 17)), "17 bytes, want 16")
	bad("empty", writeKey(nil), "0 bytes, want 16")
	bad("unreadable", func(dir string) { // a directory: unreadable even as root
		if err := os.MkdirAll(filepath.Join(dir, keyDir, keyFile), 0o700); err != nil {
			t.Fatal(err)
		}
	}, "is a directory")

	// An unusable data directory: a regular file.
	c := testConfig(t)
	c.DataDir = filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(c.DataDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), c); err == nil || !strings.Contains(err.Error(), c.DataDir) {
		t.Errorf("data directory is a file: %v", err)
	}
}

// TestCheckpointFailureAndRecovery replaces the checkpoint directory with a
// regular file while the service runs (which stops writes even as root):
// /readyz turns 503 naming the checkpoint, ingest goes on, the failure is
// logged once for the streak and counted each time; once the directory is
// back, a write succeeds and /readyz is ready again.
func TestCheckpointFailureAndRecovery(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig(t)
	cfg.TickInterval = -1
	cfg.CheckpointEvery = 20 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := start(t, cfg)
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "a checkpoint", 5*time.Second, func() bool {
		return scrape(t, s)["ratings_checkpoint_last_success_timestamp_seconds"] > 0
	})
	m := scrape(t, s)
	if m["ratings_checkpoint_bytes"] <= 0 || m["ratings_checkpoint_seconds_count"] < 1 {
		t.Errorf("checkpoint metrics after a write: bytes %v, count %v", m["ratings_checkpoint_bytes"], m["ratings_checkpoint_seconds_count"])
	}

	dir := filepath.Join(cfg.DataDir, checkpointDir)
	// Renamed rather than removed: a write may be creating a file in it.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three failed checkpoints", 5*time.Second, func() bool { return s.Metrics().CheckpointFailures() >= 3 })
	code, body := readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "checkpoint failing") || !strings.Contains(body, dir) {
		t.Errorf("/readyz while checkpoints fail: %d %s", code, body)
	}
	if n := strings.Count(logs.String(), "checkpoint failing"); n != 1 {
		t.Errorf("the failure streak was logged %d times, want once:\n%s", n, logs.String())
	}
	// Ingest goes on over NATS.
	nc := producer(t, s)
	ts := time.Now().UnixMilli()
	if err := nc.Publish("tv.events.x", []byte(`{"device":"stb-1","channel":"npo1","ts":`+strconv.FormatInt(ts, 10)+`}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an event accepted while checkpoints fail", 5*time.Second, func() bool { return s.Aggregator().Accepted() == 1 })

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz ready again", 5*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	if !strings.Contains(logs.String(), "checkpoint recovered") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*.rtck"))
	if len(files) == 0 || len(files) > store.DefaultKeep {
		t.Errorf("%d checkpoint files after recovery, want 1..%d", len(files), store.DefaultKeep)
	}
}

// TestForgetTuning: with -persist-tuning=false the checkpoint has no tuning
// section, and a restart from it restores the rest.
func TestForgetTuning(t *testing.T) {
	for _, forget := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.CheckpointEvery = -1
		cfg.ForgetTuning = forget
		s1, err := Start(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ingest(t, s1, time.Now(), 0, 4)
		if err := s1.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		d, err := store.Open(filepath.Join(cfg.DataDir, checkpointDir))
		if err != nil {
			t.Fatal(err)
		}
		cp, bad, err := d.LoadNewest(aggregator.CheckpointKeys(testKey))
		d.Close()
		if err != nil || cp == nil || len(bad) > 0 {
			t.Fatalf("load: %v, %v, %v", cp, bad, err)
		}
		if _, ok := cp.Section("tuning"); ok == forget {
			t.Errorf("ForgetTuning %v: tuning section present = %v", forget, ok)
		}
		s2 := start(t, cfg)
		if got := s2.Aggregator().Accepted(); got != 4 {
			t.Errorf("ForgetTuning %v: restored %d accepted events, want 4", forget, got)
		}
		if got, want := s2.Aggregator().TuningTableSize(), map[bool]int{false: 4, true: 0}[forget]; got != want {
			t.Errorf("ForgetTuning %v: tuning table of %d devices after restart, want %d", forget, got, want)
		}
	}
}
