package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestRunRefusesBadSettingsClearly(t *testing.T) {
	f := func(args []string, getenv func(string) string, want string) {
		t.Helper()
		var out bytes.Buffer
		code := run(args, getenv, &out)
		if code != 2 || !strings.Contains(out.String(), want) {
			t.Errorf("ratingsd %s: exit %d, output %q; want exit 2 and %q", strings.Join(args, " "), code, out.String(), want)
		}
	}
	f([]string{"-http", "0.0.0.0:8080"}, env(), `-http "0.0.0.0:8080" is not a loopback address and no -tokens file is set`)
	f(nil, env("RATINGS_HTTP", ":8080"), `-http ":8080" is not a loopback address`)
	f([]string{"-model", "ratings"}, env(), `invalid value "ratings" for flag -model: model "ratings" is not tuning or events`)
	f([]string{"-retention", "30d"}, env(), "-retention 720h0m0s: must be under")
	f([]string{"-lateness", "soon"}, env(), `invalid value "soon" for flag -lateness`)
	f([]string{"-precision", "99"}, env(), "-precision 99: want 4..18")
	f(nil, env("RATINGS_LATENESS", "2s"), "-lateness 2s is shorter than -min-dwell 5s")
	f(nil, env("RATINGS_MAX_CHANNELS", "many"), `RATINGS_MAX_CHANNELS="many" (-max-channels)`)
	f([]string{"extra"}, env(), `unexpected argument "extra"`)
	f([]string{"-no-such-flag"}, env(), "flag provided but not defined: -no-such-flag")
	f([]string{"-checkpoint-every", "-1s"}, env(), "-checkpoint-every -1s is negative")
}

func TestParseCheckpointFlags(t *testing.T) {
	f := func(args []string, every time.Duration, forget bool) {
		t.Helper()
		cfg, _, err := parse(args, env(), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.CheckpointEvery != every || cfg.ForgetTuning != forget {
			t.Errorf("%v: CheckpointEvery %s, ForgetTuning %v; want %s, %v", args, cfg.CheckpointEvery, cfg.ForgetTuning, every, forget)
		}
	}
	f(nil, 30*time.Second, false)
	f([]string{"-checkpoint-every", "5s"}, 5*time.Second, false)
	f([]string{"-checkpoint-every", "0"}, -1, false) // off: negative in service.Config
	f([]string{"-persist-tuning=false"}, 30*time.Second, true)
}

func TestParseFlagsWinOverEnvironment(t *testing.T) {
	cfg, _, err := parse(
		[]string{"-http", "127.0.0.1:9000", "-retention", "14d"},
		env("RATINGS_HTTP", "127.0.0.1:7000", "RATINGS_MODEL", "events", "RATINGS_NATS_LISTEN", "127.0.0.1:5222",
			"RATINGS_DEMO", "true", "RATINGS_MINUTE_RETENTION", "36h"),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	f("HTTPAddr", cfg.HTTPAddr, "127.0.0.1:9000")
	f("Model", cfg.Model, aggregator.Events)
	f("NATSListen", cfg.NATSListen, "127.0.0.1:5222")
	f("Demo", cfg.Demo, true)
	f("Retention", cfg.Retention, 14*24*time.Hour)
	f("MinuteRetention", cfg.MinuteRetention, 36*time.Hour)
	f("Lateness", cfg.Lateness, time.Minute)
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, env(), &out); code != 0 {
		t.Fatalf("ratingsd -h: exit %d", code)
	}
	help := out.String()
	// DESIGN.md's list, and the rest.
	for _, name := range []string{
		"nats", "nats-listen", "subject", "jetstream", "jetstream-max-age", "http", "data", "model", "lateness",
		"precision", "minute-retention", "retention", "tokens", "demo", "demo-devices", "workers", "max-channels",
		"max-clock-skew", "min-dwell", "inactivity", "max-message-bytes", "log-level",
		"checkpoint-every", "persist-tuning",
	} {
		if !strings.Contains(help, "  -"+name+" ") && !strings.Contains(help, "  -"+name+"\t") {
			t.Errorf("-h does not document -%s", name)
		}
		if !strings.Contains(help, "["+envName(name)+"]") {
			t.Errorf("-h does not name %s", envName(name))
		}
	}
	if n := strings.Count(help, "\n  -"); n != 24 {
		t.Errorf("-h lists %d flags, the test knows 24: document the new ones here", n)
	}
}
