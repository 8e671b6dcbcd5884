package main

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"slices"
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

// TestHelpDocumentsEveryFlag requires -h to list every flag of the flag set,
// each with a usage line and the environment variable that sets it, and
// nothing else. The flag set is the one parse reads the environment for:
// it asks getenv for RATINGS_<NAME> of every flag.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	var asked []string
	getenv := func(k string) string { asked = append(asked, k); return "" }
	if _, _, err := parse(nil, getenv, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"-h"}, env(), &out); code != 0 {
		t.Fatalf("ratingsd -h: exit %d", code)
	}
	flags, err := helpFlags(out.String())
	if err != nil {
		t.Fatalf("ratingsd -h: %v\n%s", err, out.String())
	}
	var listed []string
	for _, f := range flags {
		listed = append(listed, envName(f.name))
		if f.env != envName(f.name) {
			t.Errorf("-h names %s for -%s, want [%s]", f.env, f.name, envName(f.name))
		}
		if len(strings.Fields(f.usage)) < 3 {
			t.Errorf("-h documents -%s with %q: say what it does", f.name, f.usage)
		}
	}
	for _, v := range asked {
		if !slices.Contains(listed, v) {
			t.Errorf("-h does not list the flag set by %s", v)
		}
	}
	for _, v := range listed {
		if !slices.Contains(asked, v) {
			t.Errorf("-h lists a flag set by %s, which the flag set does not read", v)
		}
	}
	// DESIGN.md's list, at least.
	for _, name := range []string{
		"nats", "nats-listen", "subject", "jetstream", "jetstream-max-age", "http", "data", "model", "lateness",
		"precision", "minute-retention", "retention", "tokens", "demo", "demo-devices", "workers", "max-channels",
		"max-clock-skew", "min-dwell", "inactivity", "max-message-bytes", "log-level",
	} {
		if !slices.ContainsFunc(flags, func(f helpFlag) bool { return f.name == name }) {
			t.Errorf("-h does not document -%s", name)
		}
	}
}

// helpFlag is one flag as -h documents it.
type helpFlag struct {
	name  string // without the dash
	env   string // the variable named in brackets
	usage string // the usage line(s), trimmed
}

var helpFlagRE = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: [a-zA-Z]+)?\t\[([A-Z0-9_]+)\]$`)

// helpFlags parses the flag list of -h: after "Flags:", for each flag a line
// "  -name [value]\t[RATINGS_NAME]" and usage lines starting "    \t".
func helpFlags(help string) ([]helpFlag, error) {
	_, list, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		return nil, errors.New(`no "Flags:" line`)
	}
	var flags []helpFlag
	for _, line := range strings.Split(strings.TrimRight(list, "\n"), "\n") {
		if usage, ok := strings.CutPrefix(line, "    \t"); ok && len(flags) > 0 {
			f := &flags[len(flags)-1]
			f.usage = strings.TrimSpace(f.usage + " " + usage)
			continue
		}
		m := helpFlagRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %q is neither a flag nor its usage", line)
		}
		flags = append(flags, helpFlag{name: m[1], env: m[2]})
	}
	return flags, nil
}

func TestHelpFlags(t *testing.T) {
	f := func(help string, want []helpFlag, wantErr string) {
		t.Helper()
		got, err := helpFlags(help)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("helpFlags(%q): %v, want an error with %q", help, err, wantErr)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("helpFlags(%q) = %+v, %v; want %+v", help, got, err, want)
		}
	}
	f("Usage\n\nFlags:\n  -a URL\t[RATINGS_A]\n    \tthe a (default x)\n  -b-c\t[RATINGS_B_C]\n    \t\n",
		[]helpFlag{{"a", "RATINGS_A", "the a (default x)"}, {"b-c", "RATINGS_B_C", ""}}, "")
	f("Usage\n", nil, `no "Flags:" line`)
	f("Usage\nFlags:\n  -a\n    \tusage\n", nil, `"  -a" is neither`)
	f("Usage\nFlags:\n  -a\t[RATINGS_A]\nstray\n", nil, `"stray" is neither`)
}

// TestTuneGC: without GOGC in the environment the collector's target is
// defaultGOGC; with it, the runtime's (the environment's) is left alone.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	if got := tuneGC(func(string) string { return "" }); got != defaultGOGC {
		t.Errorf("tuneGC without GOGC = %d, want %d", got, defaultGOGC)
	}
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Errorf("GC percent after tuneGC = %d, want %d", got, defaultGOGC)
	}
	if got := tuneGC(func(k string) string { return map[string]string{"GOGC": "200"}[k] }); got != 0 {
		t.Errorf("tuneGC with GOGC=200 = %d, want 0 (left to the runtime)", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after tuneGC with GOGC set = %d, want unchanged 100", got)
	}
}
