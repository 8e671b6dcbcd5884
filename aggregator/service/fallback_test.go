package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/store"
)

// checkpointFile is the path of checkpoint seq in dir (store's file names:
// 20 decimal digits, so that names sort like sequence numbers).
func checkpointFile(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("checkpoint-%020d.rtck", seq))
}

// TestCheckpointFallback damages the newest checkpoints in every way a start
// meets them — cut short, a flipped byte, a future format version, sections
// sealed under a key that is gone, sections damaged behind valid checksums —
// and requires the start to restore the newest good one, to log every file
// passed over with its name and a reason, and to keep that good file while
// only damaged files are newer. With nothing usable it starts empty and says
// so.
func TestCheckpointFallback(t *testing.T) {
	now := time.Now().UTC()
	cfg := testConfig(t)
	cfg.TickInterval = -1
	cfg.CheckpointEvery = -1
	dir := filepath.Join(cfg.DataDir, checkpointDir)

	s1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s1, now, 0, 10)
	if err := s1.checkpoint(); err != nil { // 1: 10 events
		t.Fatal(err)
	}
	ingest(t, s1, now, 10, 5)
	if err := s1.Shutdown(context.Background()); err != nil { // 2: 15 events
		t.Fatal(err)
	}
	good, err := os.ReadFile(checkpointFile(dir, 2))
	if err != nil {
		t.Fatal(err)
	}

	// 3 and 4 decode, but the engine cannot restore them.
	d, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := aggregator.CheckpointKeys(testKey)
	cp, bad, err := d.LoadNewest(keys)
	if err != nil || cp == nil || cp.Seq != 2 || len(bad) > 0 {
		t.Fatalf("load the shutdown checkpoint: %v %v %v", cp, bad, err)
	}
	gone := *cp
	gone.Sections = nil
	sealed := 0
	for _, sec := range cp.Sections {
		if sec.Epoch != "" {
			sec.Epoch, sealed = "shredded", sealed+1
		}
		gone.Sections = append(gone.Sections, sec)
	}
	if sealed == 0 {
		t.Fatal("the checkpoint has no sealed section to make unreadable")
	}
	shredded := make([]byte, 32)
	rand.Read(shredded)
	if _, err := d.Write(&gone, func(string) ([]byte, bool) { return shredded, true }); err != nil {
		t.Fatal(err)
	}
	cut := *cp
	cut.Sections = nil
	for _, sec := range cp.Sections {
		sec.Data = sec.Data[:len(sec.Data)/2]
		cut.Sections = append(cut.Sections, sec)
	}
	if _, err := d.Write(&cut, keys); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// 5, 6 and 7 are copies of 2 that do not decode.
	damaged := func(seq uint64, edit func([]byte) []byte) {
		t.Helper()
		if err := os.WriteFile(checkpointFile(dir, seq), edit(append([]byte(nil), good...)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	damaged(5, func(b []byte) []byte { // format version 9, header checksum made right
		binary.BigEndian.PutUint16(b[4:6], 9)
		binary.BigEndian.PutUint32(b[48:52], crc32.Checksum(b[:48], crc32.MakeTable(crc32.Castagnoli)))
		return b
	})
	damaged(6, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
	damaged(7, func(b []byte) []byte { return b[:len(b)/2] })

	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s2 := start(t, cfg)
	if got := s2.Aggregator().Accepted(); got != 15 {
		t.Errorf("restored %d accepted events, want checkpoint 2's 15", got)
	}
	for _, w := range []struct {
		seq    uint64
		reason string
		text   string
	}{
		{7, "truncated", store.ErrTruncated.Error()},
		{6, "checksum", store.ErrChecksum.Error()},
		{5, "version", "format version 9"},
		{4, "unusable", store.ErrUnusable.Error()},
		{3, "unusable", store.ErrKeyGone.Error()},
	} {
		name := filepath.Base(checkpointFile(dir, w.seq))
		line := logLine(logs.String(), name)
		if !strings.Contains(line, "checkpoint skipped") || !strings.Contains(line, "reason="+w.reason) || !strings.Contains(line, w.text) {
			t.Errorf("checkpoint %d: log line %q; want it skipped as %s, saying %q", w.seq, line, w.reason, w.text)
		}
	}
	if strings.Contains(logs.String(), "starting empty") {
		t.Errorf("a good checkpoint was left, yet the start says it starts empty:\n%s", logs.String())
	}

	// Only damaged files are newer than 2: the next checkpoint's pruning
	// keeps 1 and 2 (three good files: the new one, 2 and 1).
	if err := s2.checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 2, 8} {
		if _, err := os.Stat(checkpointFile(dir, seq)); err != nil {
			t.Errorf("checkpoint %d after a prune: %v", seq, err)
		}
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Nothing usable: every file cut short. The start logs each one and
	// starts empty.
	files, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*.rtck"))
	for _, f := range files {
		if err := os.Truncate(f, 40); err != nil {
			t.Fatal(err)
		}
	}
	var logs3 syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs3, nil))
	s3 := start(t, cfg)
	if got := s3.Aggregator().Accepted(); got != 0 {
		t.Errorf("nothing usable, yet %d accepted events restored", got)
	}
	l := logs3.String()
	if n := strings.Count(l, "checkpoint skipped"); n != len(files) {
		t.Errorf("%d files skipped in the log, want %d:\n%s", n, len(files), l)
	}
	if !strings.Contains(l, "no usable checkpoint: starting empty") || !strings.Contains(l, fmt.Sprintf("skipped_files=%d", len(files))) {
		t.Errorf("the empty start is not logged with the number of files skipped:\n%s", l)
	}
}

// logLine returns the first line of logs that contains s, or "".
func logLine(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
