// Command ratingsd turns live set-top-box channel-change events from NATS into
// TV ratings: minute audience curves, the now board, reach, flow and capacity,
// over HTTP, Server-Sent Events and NATS.
//
// With no -nats URL it starts an embedded NATS server, so one command runs it
// all; -demo adds a simulated audience. Every flag can also be set as an
// environment variable RATINGS_<NAME> (e.g. RATINGS_HTTP=127.0.0.1:9090 for
// -http); a flag on the command line wins. Run ratingsd -h for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/service"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is main with its inputs and output passed in; it returns the exit
// code: 0, 1 when the service fails, 2 for bad flags or settings.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, logLevel, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errPrivacyStatement) {
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "ratingsd: %v\n", err)
			return 2
		}
		if _, err := os.Stdout.Write(service.PrivacyMarkdown(cfg)); err != nil {
			fmt.Fprintf(stderr, "ratingsd: %v\n", err)
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ratingsd: %v\n", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "ratingsd: %v\n", err)
		return 2
	}
	if pct := tuneGC(getenv); pct > 0 {
		cfg.Logger.Debug("garbage collector target set", "gogc", pct)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := service.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("ratingsd stopped", "err", err)
		return 1
	}
	return 0
}

// defaultGOGC is the collector's target percentage unless GOGC is set.
// ratingsd's heap is mostly sealed data kept for the minute retention (packed
// sketches, compact count rows: few pointers, cheap to mark), and at Go's
// default of 100 the heap may grow to twice that data between collections —
// a second copy of the retained state in resident memory. 50 halves the
// headroom for a collector that runs twice as often (measured in
// bench/RESULTS.md: resident memory with retention, CPU per event).
const defaultGOGC = 50

// tuneGC sets the collector's target to defaultGOGC unless the environment
// sets GOGC (which the runtime has applied), and returns the percentage it
// set, or 0.
func tuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		return 0
	}
	debug.SetGCPercent(defaultGOGC)
	return defaultGOGC
}

// parse turns the environment and the command line into a service.Config.
func parse(args []string, getenv func(string) string, out io.Writer) (service.Config, slog.Level, error) {
	d := service.DefaultConfig()
	cfg := d
	fs := flag.NewFlagSet("ratingsd", flag.ContinueOnError)
	fs.SetOutput(out)

	fs.StringVar(&cfg.NATSURL, "nats", "", "external NATS server `URL` (comma-separated for several); empty starts an embedded server")
	fs.StringVar(&cfg.NATSListen, "nats-listen", d.NATSListen, "embedded NATS server's `address` for producers")
	fs.StringVar(&cfg.Subject, "subject", d.Subject, "NATS `subject` the events arrive on")
	fs.StringVar(&cfg.JetStream, "jetstream", "", "consume this JetStream `stream` (created if absent) instead of core NATS")
	fs.Var(days{&cfg.JetStreamMaxAge}, "jetstream-max-age", "how long (a `duration`) a stream the service creates keeps raw events; warned above 24h, refused at 30d")
	fs.StringVar(&cfg.HTTPAddr, "http", d.HTTPAddr, "HTTP API `address`; without -tokens it must be loopback")
	fs.StringVar(&cfg.DataDir, "data", d.DataDir, "data `directory`: the key files (keys/: the pseudonym key, one key per day and per ISO week, each deleted when its data expires), the checkpoints and the embedded server's JetStream store")
	fs.DurationVar(&cfg.CheckpointEvery, "checkpoint-every", d.CheckpointEvery, "how often the state is checkpointed to -data; 0 checkpoints only at shutdown")
	persistTuning := true
	fs.BoolVar(&persistTuning, "persist-tuning", true, "keep the tuning table (each device's current channel) in checkpoints; false restarts every device's viewing at its next event")
	fs.Var(model{&cfg.Model}, "model", "audience `model`: tuning (each device credited to the channel it watched longest in a minute) or events (stateless)")
	fs.DurationVar(&cfg.Lateness, "lateness", d.Lateness, "how long after a minute's end (in event time) it stays open for late events")
	fs.Var(precision{&cfg.Precision}, "precision", "HyperLogLog `precision`, 4..18 (14: 0.81% standard error)")
	fs.Var(days{&cfg.MinuteRetention}, "minute-retention", "how long (a `duration`) minute sketches (the minute tier, a key per day) are kept; at most 7d")
	fs.Var(days{&cfg.Retention}, "retention", "how long (a `duration`) hourly reach sketches (the reach tier, a key per ISO week) are kept; under 30d")
	fs.DurationVar(&cfg.DayStart, "day-start", d.DayStart, "when a day starts after 00:00 UTC, whole hours 0h..23h: daily keys change then, weekly keys on Monday then, and minute-resolution reach stays within a day")
	fs.StringVar(&cfg.TokensFile, "tokens", "", "bearer token `file` (token and role per line); without it the HTTP API binds to loopback only")
	fs.BoolVar(&cfg.Demo, "demo", false, "publish a simulated live audience to the subject")
	fs.IntVar(&cfg.DemoDevices, "demo-devices", d.DemoDevices, "set-top boxes of the -demo audience")
	fs.IntVar(&cfg.Workers, "workers", d.Workers, "decode workers; the default is the number of CPUs")
	fs.IntVar(&cfg.MaxChannels, "max-channels", d.MaxChannels, "distinct channels (and regions) kept; events for more are rejected as channel_limit")
	fs.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", d.MaxClockSkew, "events further ahead of the clock are rejected as future")
	fs.DurationVar(&cfg.MinDwell, "min-dwell", d.MinDwell, "viewing shorter than this is zapping and credited nowhere")
	fs.Var(days{&cfg.Inactivity}, "inactivity", "a device silent for this `duration` is taken to have stopped watching")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", d.MaxMessageBytes, "largest NATS message decoded; larger ones are rejected as too_large")
	fs.Var(days{&cfg.CountsRetention}, "counts-retention", "how long (a `duration`) per-minute counts are kept in the counts archive (-data/counts); longer than -embargo")
	fs.Var(days{&cfg.Embargo}, "embargo", "GET /v1/export serves only minutes older than this `duration` (and whose sketch keys are deleted); at least 1d")
	fs.Uint64Var(&cfg.MinAudience, "min-audience", d.MinAudience, "exported counts below this are suppressed")
	fs.Float64Var(&cfg.ExportNoise, "export-noise", 0, "`epsilon` of the two-sided geometric noise added to every exported count, 0.01..10; 0 adds none")
	printPrivacy := false
	fs.BoolVar(&printPrivacy, "privacy-statement", false, "print the privacy statement of this configuration as Markdown on standard output, and exit")
	var logLevel slog.Level
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")

	fs.Usage = func() {
		fmt.Fprint(out, `Usage: ratingsd [flags]

ratingsd turns set-top-box channel-change events from NATS into live TV
ratings, served over HTTP (dashboard at /, JSON under /v1/, /metrics), as
sealed minutes on NATS (ratings.minute.<channel>) and as the NATS micro
service "ratings". Without -nats it runs an embedded NATS server.

Every flag can also be set as an environment variable RATINGS_<NAME>, e.g.
RATINGS_HTTP for -http or RATINGS_NATS_LISTEN for -nats-listen; a flag on
the command line wins. Durations take Go syntax (90s, 48h) or days (28d).

Flags:
`)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  -%s", f.Name)
			if name != "" {
				fmt.Fprintf(out, " %s", name)
			}
			fmt.Fprintf(out, "\t[%s]\n    \t%s", envName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q (-%s): %w", envName(f.Name), v, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return cfg, 0, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected argument %q: ratingsd takes flags only (see ratingsd -h)", fs.Arg(0))
	}
	if cfg.CheckpointEvery < 0 {
		return cfg, 0, fmt.Errorf("-checkpoint-every %s is negative; 0 turns the periodic checkpoint off", cfg.CheckpointEvery)
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = -1 // service.Config: negative is off, zero the default
	}
	cfg.ForgetTuning = !persistTuning
	if printPrivacy {
		return cfg, logLevel, errPrivacyStatement
	}
	return cfg, logLevel, nil
}

// errPrivacyStatement: -privacy-statement was given; run prints the
// statement instead of starting.
var errPrivacyStatement = errors.New("print the privacy statement")

// envName is the environment variable of a flag: -nats-listen → RATINGS_NATS_LISTEN.
func envName(flagName string) string {
	return "RATINGS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// days is a duration flag that also takes whole days ("28d").
type days struct{ d *time.Duration }

func (v days) String() string {
	if v.d == nil {
		return ""
	}
	if *v.d >= 24*time.Hour && *v.d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(*v.d/(24*time.Hour)), 10) + "d"
	}
	// 4h0m0s reads better as 4h.
	s := v.d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (v days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		k, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a whole number of days", s)
		}
		*v.d = time.Duration(k) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 90s, 48h or 28d", s)
	}
	*v.d = d
	return nil
}

type model struct{ m *aggregator.Model }

func (v model) String() string {
	if v.m == nil {
		return ""
	}
	return v.m.String()
}

func (v model) Set(s string) error {
	m, err := aggregator.ParseModel(s)
	if err != nil {
		return err
	}
	*v.m = m
	return nil
}

type precision struct{ p *uint8 }

func (v precision) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(int(*v.p))
}

func (v precision) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return fmt.Errorf("%q is not a number 4..18", s)
	}
	*v.p = uint8(n)
	return nil
}
