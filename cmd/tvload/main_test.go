package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/ratingsd/ratingsd/bench"
)

func TestFlagErrors(t *testing.T) {
	f := func(args, want string) {
		t.Helper()
		var stderr bytes.Buffer
		err := run(context.Background(), strings.Fields(args), &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("tvload %s: %v, want a usage error with %q", args, err, want)
		}
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("tvload %s: stderr %q does not say %q", args, stderr.String(), want)
		}
	}
	f("", "-out FILE or -nats URL is required")
	f("-out x -nats nats://127.0.0.1:1", "-out and -nats exclude each other")
	f("-replay x", "-out FILE or -nats URL is required")
	f("-out x -pace 1", "-pace 1 paces publishing")
	f("-nats nats://127.0.0.1:1 -format json -s2", "-s2 compresses binary frames")
	f("-nats nats://127.0.0.1:1 -format xml", `-format: format "xml" is not one of json, json-array, binary`)
	f("-nats nats://127.0.0.1:1 -batch 0", "-batch 0 is less than 1")
	f("-nats nats://127.0.0.1:1 -stream S", "-stream S needs -jetstream")
	f("-nats nats://127.0.0.1:1 -replay x -devices 5", "-devices describes a generated workload")
	f("-out x -devices 0", "-devices 0 is outside 1..99999999")
	f("-out x -min-dwell 2m", "-min-dwell 2m0s is outside 0..1m")
	f("-out x -duration 1000h", "-duration 1000h0m0s is outside")
	f("-out x -jitter 1m", "-jitter 1m0s is outside")
	f("-out x -standby-share 2", "-standby-share 2 is not a share")
	f("-out x -start yesterday", `-start "yesterday" is neither an RFC 3339 time nor "now"`)
	f("-out x -zone Mars/Base", `-zone "Mars/Base"`)
	f("-out x -reach-slots 90s", "-reach-slots: 1m30s is not a whole number of minutes")
	f("-out x -reach-set ch-001,ch-999", `"ch-999" is not a channel`)
	f("-out x -zstd-level max", `-zstd-level: "max" is not fastest`)
	f("-out x stray", `unexpected argument "stray"`)

	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("tvload -h: %v", err)
	}
	for _, want := range []string{"Modes", "-devices", "-replay FILE", "docs/workload.md"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("tvload -h does not mention %q", want)
		}
	}
}

func TestOutThenReplay(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "s.tvs")
	var stderr bytes.Buffer
	ctx := context.Background()
	if err := run(ctx, strings.Fields("-out "+out+" -devices 500 -duration 10m -reach-set ch-001,ch-002"), &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	tr, err := bench.LoadTruth(out + ".truth")
	if err != nil {
		t.Fatal(err)
	}
	info := tr.Info()
	if info.Devices != 500 || info.Minutes != 10 || info.Events == 0 {
		t.Errorf("truth of the written stream: %+v", info)
	}
	if _, err := tr.Reach(bench.Tuning, []string{"ch-002", "ch-001"}, info.Start, info.End); err != nil {
		t.Error(err)
	}

	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS server did not start")
	}
	defer s.Shutdown()
	stderr.Reset()
	args := "-nats " + s.ClientURL() + " -jetstream -stream REPLAY -replay " + out + " -format json-array -batch 50"
	if err := run(ctx, strings.Fields(args), &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	si, err := js.StreamInfo("REPLAY")
	if err != nil {
		t.Fatal(err)
	}
	if si.Config.MaxAge != 24*time.Hour || si.State.Msgs == 0 {
		t.Errorf("stream REPLAY: max age %s, %d messages", si.Config.MaxAge, si.State.Msgs)
	}
	if !strings.Contains(stderr.String(), "published "+strconv.FormatInt(info.Events, 10)+" events") {
		t.Errorf("replay says %q, want all %d events published", stderr.String(), info.Events)
	}
}
