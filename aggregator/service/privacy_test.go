package service

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dchest/siphash"
	metro "github.com/dgryski/go-metro"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// TestNoDeviceIdentifierLeaves ingests known device identifiers over NATS,
// runs through a checkpoint and a shutdown, and then searches every file the
// service wrote under -data, every log line and every API response for the
// identifiers and for unkeyed hashes of them (SipHash with a zero key, or the
// pseudonym function under a zero key, as a careless implementation might
// use): nothing may be found. The keyed hashes
// the engine does keep are only inside sealed (encrypted) checkpoint sections.
// zeroKey is the pseudonym function under an all-zero key.
var zeroKey = func() *sketch.Key {
	k, err := sketch.KeyFromBytes(make([]byte, sketch.KeySize))
	if err != nil {
		panic(err)
	}
	return k
}()

func TestNoDeviceIdentifierLeaves(t *testing.T) {
	var logs syncBuffer
	now := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	clk := &clock{t: now.Add(150 * time.Second)}
	cfg := testConfig(t)
	cfg.Now = clk.Now
	cfg.TickInterval = -1
	cfg.CheckpointEvery = -1
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Known identifiers, valid and invalid (a bad channel makes the event be
	// rejected and logged).
	var ids [][]byte
	var enc event.BatchEncoder
	for i := range 300 {
		id := fmt.Appendf(nil, "leak-probe-%06d-box", i)
		ids = append(ids, id)
		ev := event.Event{Device: id, Channel: fmt.Appendf(nil, "ch-%d", i%7), Region: []byte("r-1"),
			TS: now.Add(time.Duration(i) * 200 * time.Millisecond).UnixMilli()}
		if err := enc.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	nc := producer(t, s)
	if err := nc.Publish("tv.events.p0", enc.AppendFrame(nil, false)); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:20] {
		msg := fmt.Appendf(nil, `{"device":%q,"channel":"bad channel!","ts":%d}`, id, now.UnixMilli())
		if err := nc.Publish("tv.events.p1", msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probes", 10*time.Second, func() bool { return s.Aggregator().Accepted() == 300 })
	s.Aggregator().SealThrough(now.Add(2 * time.Minute).UnixMilli())

	// Every answer of the API.
	var responses bytes.Buffer
	for _, path := range []string{"/v1/channels", "/v1/now", "/v1/regions", "/v1/privacy", "/metrics",
		"/v1/audience?channel=ch-1", "/v1/reach", "/v1/flow?from=ch-1&minute=" + now.Add(time.Minute).Format(time.RFC3339),
		"/v1/capacity?region=r-1", "/readyz"} {
		resp, err := http.Get("http://" + s.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(&responses, resp.Body)
		resp.Body.Close()
	}
	if err := s.Shutdown(context.Background()); err != nil { // writes the final checkpoint
		t.Fatal(err)
	}

	needles := map[string][]byte{}
	for i, id := range ids {
		needles[fmt.Sprintf("id %d", i)] = id
		for what, h := range map[string]uint64{
			"unkeyed SipHash":    siphash.Hash(0, 0, id),
			"zero-key pseudonym": zeroKey.Hash(id),
		} {
			needles[fmt.Sprintf("%s of id %d (LE)", what, i)] = binary.LittleEndian.AppendUint64(nil, h)
			needles[fmt.Sprintf("%s of id %d (BE)", what, i)] = binary.BigEndian.AppendUint64(nil, h)
			needles[fmt.Sprintf("%s of id %d (hex)", what, i)] = fmt.Appendf(nil, "%016x", h)
		}
	}
	search := func(where string, data []byte) {
		t.Helper()
		for what, needle := range needles {
			if bytes.Contains(data, needle) {
				t.Errorf("%s contains %s", where, what)
			}
		}
	}
	files := searchFiles(t, cfg.DataDir, needles)
	if files == 0 {
		t.Fatal("the service wrote no file under -data: nothing was searched")
	}
	if logs.String() == "" || responses.Len() == 0 {
		t.Fatal("no logs or no responses: nothing was searched")
	}
	// Positive controls: the search does find what is there.
	if !bytes.Contains(responses.Bytes(), []byte(`"ch-1"`)) || !bytes.Contains([]byte(logs.String()), []byte("bad_channel")) {
		t.Fatalf("the responses lack a channel name or the log lacks the rejections: the search proves nothing\n%s", logs.String())
	}
	search("the log", []byte(logs.String()))
	search("the API responses", responses.Bytes())
	t.Logf("searched %d files, %d bytes of logs, %d bytes of responses", files, len(logs.String()), responses.Len())
}

// TestNoDeviceIdentifierLeavesAcrossRotation runs the service with its real
// key files (no test key) through a day-key rotation at midnight,
// checkpoints, a restart, the expiry of both days' minute tier (their key
// files deleted), the expiry of the week (its key deleted too) and the
// export of the counts. At every stage it collects the API's answers; at
// the end it searches every file under -data, every log line and every
// response for the identifiers, their unkeyed SipHash and zero-key
// pseudonym, the hash the sketch
// library uses with its public seed (MetroHash64, seed 1337), and their
// pseudonyms (the keyed hashes the engine routes by) in plain bytes:
// nothing may be found. It also checks that each horizon shreds what it
// should: key files gone, queries answer "expired", not zeros.
func TestNoDeviceIdentifierLeavesAcrossRotation(t *testing.T) {
	var logs syncBuffer
	var ids [][]byte
	day := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC) // a Friday: its ISO week ends Sunday 16th
	midnight := day.Add(24 * time.Hour)
	clk := &clock{t: midnight.Add(-6 * time.Minute)}
	cfg := testConfig(t)
	cfg.Key = nil // the real key ring under -data/keys
	cfg.Now = clk.Now
	cfg.TickInterval = -1
	cfg.CheckpointEvery = -1
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var responses bytes.Buffer
	get := func(s *Service, path string, want int) []byte {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		responses.Write(body)
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
		return body
	}
	keyFiles := func() map[string]bool {
		ents, err := os.ReadDir(filepath.Join(cfg.DataDir, keyDir))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range ents {
			m[e.Name()] = true
		}
		return m
	}

	// live is the stream going on after a restart: one event of a known
	// box at the clock's now moves the watermark, and the minutes before
	// it seal.
	live := func(s *Service) {
		t.Helper()
		id := fmt.Appendf(nil, "rotation-probe-live-%d", clk.Now().Unix())
		ids = append(ids, id)
		before := s.Aggregator().Accepted()
		msg := fmt.Appendf(nil, `{"device":%q,"channel":"ch-live","ts":%d}`, id, clk.Now().Add(-time.Second).UnixMilli())
		nc := producer(t, s)
		if err := nc.Publish("tv.events.live", msg); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the live event", 10*time.Second, func() bool { return s.Aggregator().Accepted() > before })
		s.Aggregator().Tick()
	}

	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 300 known boxes on 6 channels, from 23:55 to 00:04: across the day
	// boundary, so two daily keys are used.
	var enc event.BatchEncoder
	for i := range 300 {
		id := fmt.Appendf(nil, "rotation-probe-%06d", i)
		ids = append(ids, id)
		for k, at := range []time.Duration{-5 * time.Minute, -2 * time.Minute, time.Minute, 4 * time.Minute} {
			ev := event.Event{Device: id, Channel: fmt.Appendf(nil, "ch-%d", (i+k)%6), Region: []byte("r-1"),
				TS: midnight.Add(at + time.Duration(i)*100*time.Millisecond).UnixMilli()}
			if err := enc.Add(&ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	nc := producer(t, s)
	frame := enc.AppendFrame(nil, false)
	clk.Set(midnight.Add(5 * time.Minute))
	if err := nc.Publish("tv.events.p0", frame); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probes", 10*time.Second, func() bool { return s.Aggregator().Accepted() == 1200 })
	clk.Set(midnight.Add(7 * time.Minute))
	s.Aggregator().SealThrough(midnight.Add(6 * time.Minute).UnixMilli())
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"day-2025-03-14.key", "day-2025-03-15.key", "week-2025-W11.key", "pseudonym.key"} {
		if !keyFiles()[name] {
			t.Errorf("key file %s missing after events of both days: %v", name, keyFiles())
		}
	}
	before := "&from=" + midnight.Add(-5*time.Minute).Format(time.RFC3339) + "&to=" + midnight.Format(time.RFC3339)
	get(s, "/v1/audience?channel=ch-1"+before, 200)
	get(s, "/v1/reach?from="+midnight.Add(-5*time.Minute).Format(time.RFC3339)+"&to="+midnight.Format(time.RFC3339), 200)
	get(s, "/v1/reach?from="+midnight.Add(-5*time.Minute).Format(time.RFC3339)+"&to="+midnight.Add(5*time.Minute).Format(time.RFC3339), 400)
	for _, path := range []string{"/v1/channels", "/v1/now", "/v1/regions", "/v1/privacy", "/v1/privacy?format=markdown", "/metrics",
		"/v1/flow?from=ch-1&minute=" + midnight.Add(time.Minute).Format(time.RFC3339), "/v1/capacity?region=r-1", "/readyz"} {
		get(s, path, 200)
	}
	get(s, "/v1/export?from=2025-03-14T23:00:00Z&to=2025-03-15T01:00:00Z", 403) // embargo
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Three days later both days are past the 48h minute retention: their
	// keys go at the restart, and their minutes answer "expired".
	clk.Set(midnight.Add(72 * time.Hour))
	s = start(t, cfg)
	live(s)
	kf := keyFiles()
	if kf["day-2025-03-14.key"] || kf["day-2025-03-15.key"] || !kf["week-2025-W11.key"] {
		t.Errorf("after the minute retention: key files %v, want both day keys deleted and the week key kept", kf)
	}
	get(s, "/v1/audience?channel=ch-1"+before, 410)
	get(s, "/v1/reach?from=2025-03-14T23:00:00Z&to=2025-03-15T01:00:00Z", 200) // the reach tier, whole hours of one week
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// 40 days on the week is past the 28-day retention and its key gone too:
	// the counts are past the embargo and exportable.
	clk.Set(midnight.Add(40 * 24 * time.Hour))
	s = start(t, cfg)
	live(s)
	if kf := keyFiles(); kf["week-2025-W11.key"] {
		t.Errorf("after the retention: key files %v, want the week key deleted", kf)
	}
	get(s, "/v1/reach?from=2025-03-14T23:00:00Z&to=2025-03-15T01:00:00Z", 410)
	csv := get(s, "/v1/export?from=2025-03-14T23:00:00Z&to=2025-03-15T01:00:00Z", 200)
	if !bytes.Contains(csv, []byte("2025-03-14T23:56:00Z,ch-")) || !bytes.Contains(csv, []byte("2025-03-15T00:02:00Z,ch-")) {
		t.Errorf("the export lacks the minutes of both days:\n%s", csv)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	pkey, err := os.ReadFile(filepath.Join(cfg.DataDir, keyDir, "pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	pseudonyms, err := sketch.KeyFromBytes(pkey)
	if err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{}
	for i, id := range ids {
		needles[fmt.Sprintf("id %d", i)] = id
		for what, h := range map[string]uint64{
			"unkeyed SipHash":         siphash.Hash(0, 0, id),
			"zero-key pseudonym":      zeroKey.Hash(id),
			"public-seed MetroHash64": metro.Hash64(id, 1337),
			"pseudonym":               pseudonyms.Hash(id),
		} {
			needles[fmt.Sprintf("%s of id %d (LE)", what, i)] = binary.LittleEndian.AppendUint64(nil, h)
			needles[fmt.Sprintf("%s of id %d (BE)", what, i)] = binary.BigEndian.AppendUint64(nil, h)
			needles[fmt.Sprintf("%s of id %d (hex)", what, i)] = fmt.Appendf(nil, "%016x", h)
		}
	}
	files := searchFiles(t, cfg.DataDir, needles)
	if files < 3 || len(logs.String()) == 0 || responses.Len() == 0 {
		t.Fatalf("searched %d files, %d bytes of log, %d bytes of responses: too little to prove anything", files, len(logs.String()), responses.Len())
	}
	for what, needle := range needles {
		if bytes.Contains([]byte(logs.String()), needle) {
			t.Errorf("the log contains the %s", what)
		}
		if bytes.Contains(responses.Bytes(), needle) {
			t.Errorf("an API response contains the %s", what)
		}
	}
	t.Logf("searched %d files, %d bytes of logs, %d bytes of responses for %d needles", files, len(logs.String()), responses.Len(), len(needles))
}

// searchFiles reports, as test errors, every file under dir that contains
// one of the needles (named by what they are), and returns how many files
// it searched.
func searchFiles(t *testing.T, dir string, needles map[string][]byte) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for what, needle := range needles {
			if bytes.Contains(data, needle) {
				t.Errorf("%s contains the %s", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
