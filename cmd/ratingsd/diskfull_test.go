//go:build linux

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// TestCheckpointWritesFail makes every checkpoint write of a running ratingsd
// fail half-way, as on a full disk, and then succeed again. Its file size
// limit (RLIMIT_FSIZE, set from outside with prlimit) stops a write past a
// few KiB with EFBIG, for root too, where a read-only directory would not.
// Meanwhile the process must go on ingesting and answering, count every
// failed attempt, log the failure once, answer /readyz with 503 and the
// cause, and leave neither a partial file nor a temporary one; once the limit
// is lifted it must checkpoint again, be ready, and after SIGTERM a restart
// must restore every event.
func TestCheckpointWritesFail(t *testing.T) {
	bin := buildRatingsd(t)
	ns := startBroker(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	data := filepath.Join(t.TempDir(), "data")
	ckpts := filepath.Join(data, "checkpoints")
	args := []string{"-nats", ns.ClientURL(), "-data", data, "-http", "127.0.0.1:0",
		"-subject", "full.>", "-checkpoint-every", "100ms"}
	d := startDaemon(t, bin, args...)

	sent := 0
	send := func(n int) {
		t.Helper()
		ts := time.Now().UnixMilli()
		for i := range n {
			msg := fmt.Sprintf(`{"device":"stb-%d","channel":"ch-%d","ts":%d}`, sent+i, (sent+i)%7, ts)
			if err := nc.Publish("full.p0", []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	accepted := func() bool { return d.metric(`ratings_events_total{result="accepted"}`) >= float64(sent) }
	readyz := func() (int, string) { code, body := d.get("/readyz"); return code, string(body) }

	// 3000 devices: a checkpoint holds 3000 keyed hashes, encrypted, so it
	// cannot compress below the limit.
	send(3000)
	d.waitFor("3000 events accepted", 10*time.Second, accepted)
	written := d.metric("ratings_checkpoint_seconds_count")
	d.waitFor("a checkpoint with the events", 10*time.Second, func() bool {
		return d.metric("ratings_checkpoint_seconds_count") >= written+2
	})
	good, _ := filepath.Glob(filepath.Join(ckpts, "checkpoint-*.rtck"))
	if len(good) == 0 {
		t.Fatal("no checkpoint file after successful checkpoints")
	}

	limit := unix.Rlimit{Cur: 4096, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(d.cmd.Process.Pid, unix.RLIMIT_FSIZE, &limit, nil); err != nil {
		missing(t, "prlimit RLIMIT_FSIZE on the ratingsd process: %v", err)
	}
	d.waitFor("three failed checkpoints", 10*time.Second, func() bool {
		return d.metric("ratings_checkpoint_failures_total") >= 3
	})
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "checkpoint failing") || !strings.Contains(body, "file too large") {
		t.Errorf("/readyz while checkpoints fail: %d %s; want 503 naming the failure and its cause", code, body)
	}
	if n := strings.Count(d.logs.String(), "checkpoint failing"); n != 1 {
		t.Errorf("the failure streak was logged %d times, want once:\n%s", n, d.logs)
	}
	// Ingest and queries go on.
	send(500)
	d.waitFor("events accepted while checkpoints fail", 10*time.Second, accepted)
	if code, body := d.get("/v1/channels"); code != http.StatusOK {
		t.Errorf("GET /v1/channels while checkpoints fail: %d %s", code, body)
	}
	// A failed write leaves nothing behind: the files are the good ones of
	// before (a prune may have run), no temporary file, no partial one.
	entries, err := os.ReadDir(ckpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); name != "LOCK" && !checkpointName.MatchString(name) {
			t.Errorf("left in %s after failed writes: %s", ckpts, name)
		}
	}

	limit.Cur = unix.RLIM_INFINITY
	if err := unix.Prlimit(d.cmd.Process.Pid, unix.RLIMIT_FSIZE, &limit, nil); err != nil {
		t.Fatal(err)
	}
	d.waitFor("/readyz ready again", 10*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	if !strings.Contains(d.logs.String(), "checkpoint recovered") {
		t.Errorf("the recovery is not logged:\n%s", d.logs)
	}
	d.term()

	d = startDaemon(t, bin, args...)
	if !strings.Contains(d.logs.String(), fmt.Sprintf("accepted_events=%d", sent)) {
		t.Errorf("the restart does not restore the %d events:\n%s", sent, d.logs)
	}
}

var checkpointName = regexp.MustCompile(`^(checkpoint-[0-9]{20}\.rtck|segment-[A-Za-z0-9-]+\.rtsg)$`)
