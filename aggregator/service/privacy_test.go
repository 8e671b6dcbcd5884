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
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// TestNoDeviceIdentifierLeaves ingests known device identifiers over NATS,
// runs through a checkpoint and a shutdown, and then searches every file the
// service wrote under -data, every log line and every API response for the
// identifiers and for unkeyed hashes of them (SipHash with a zero key, as a
// careless implementation might use): nothing may be found. The keyed hashes
// the engine does keep are only inside sealed (encrypted) checkpoint sections.
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
		h := siphash.Hash(0, 0, id)
		needles[fmt.Sprintf("unkeyed hash of id %d (LE)", i)] = binary.LittleEndian.AppendUint64(nil, h)
		needles[fmt.Sprintf("unkeyed hash of id %d (BE)", i)] = binary.BigEndian.AppendUint64(nil, h)
		needles[fmt.Sprintf("unkeyed hash of id %d (hex)", i)] = fmt.Appendf(nil, "%016x", h)
	}
	search := func(where string, data []byte) {
		t.Helper()
		for what, needle := range needles {
			if bytes.Contains(data, needle) {
				t.Errorf("%s contains %s", where, what)
			}
		}
	}
	files := 0
	err = filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		search(path, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
