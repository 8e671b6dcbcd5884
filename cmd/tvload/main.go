// Command tvload generates a seeded set-top-box workload with its exact
// ground truth (package bench): it writes a stream file and its truth, or
// publishes the events to NATS, live or as fast as possible, or replays a
// recorded stream file to NATS. Run tvload -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "tvload:", err)
		os.Exit(1)
	}
}

// errUsage marks an error in the command line (exit status 2).
var errUsage = errors.New("usage")

// options are the parsed command line.
type options struct {
	cfg      bench.Config
	out      string
	frame    int
	level    zstd.EncoderLevel
	natsURL  string
	pub      bench.PublishConfig
	stream   string
	replay   string
	progress bool
}

const usageHead = `tvload generates a seeded set-top-box workload with its exact ground truth.

Modes (exactly one):
  tvload -out FILE [flags]            write the stream to FILE and its truth to FILE.truth
  tvload -nats URL [flags]            publish the generated events to NATS
  tvload -nats URL -replay FILE       publish a recorded stream file to NATS

Examples:
  tvload -out day.tvs -devices 1000000 -start 2025-03-14T00:00:00Z -duration 24h
  tvload -nats nats://127.0.0.1:4222 -start now -pace 1 -format binary -s2
  tvload -nats nats://127.0.0.1:4222 -jetstream -replay day.tvs

The viewing model and the source of every default are in docs/workload.md.

Flags:
`

// parse turns the command line into options, with an error naming the
// flag at fault and why.
func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	b := bench.DefaultBehaviour()
	fs := flag.NewFlagSet("tvload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	seed := fs.Uint64("seed", 1, "random `seed`: the same seed and flags give byte-identical events and truth")
	fs.IntVar(&o.cfg.Devices, "devices", 200_000, "number of set-top boxes (1..99999999)")
	fs.IntVar(&o.cfg.Regions, "regions", 40, "number of access nodes (regions r-01, r-02, …)")
	fs.IntVar(&o.cfg.Channels, "channels", 300, "size of the channel line-up (ch-001, ch-002, …, in order of popularity)")
	start := fs.String("start", bench.DefaultStart.Format(time.RFC3339),
		"event `time` of the first event (RFC 3339), or \"now\"")
	fs.DurationVar(&o.cfg.Duration, "duration", time.Hour, "simulated event time to generate (1s..720h)")
	zone := fs.String("zone", "UTC", "the population's local time `zone` (IANA name) for the daily curve and prime time")
	fs.DurationVar(&o.cfg.MinDwell, "min-dwell", 5*time.Second, "truth: the aggregator's minimum dwell")
	fs.DurationVar(&o.cfg.Inactivity, "inactivity", 4*time.Hour, "truth: the aggregator's inactivity timeout")
	fs.DurationVar(&o.cfg.Heartbeat, "heartbeat", 0, "heartbeat interval of boxes in a session; 0 = none (60s feeds the events model)")
	fs.Float64Var(&o.cfg.Duplicates, "duplicates", 0, "fraction of events delivered twice (redelivery), 0..0.5")
	fs.DurationVar(&o.cfg.Jitter, "jitter", 0, "make event ts up to this much earlier than its true time, each box's order kept (0..30s)")
	fs.Float64Var(&b.Zipf, "zipf", b.Zipf, "channel popularity exponent: channel k has weight k^-zipf")
	fs.Float64Var(&b.PrimeBoost, "prime-boost", b.PrimeBoost, "prime-time weight factor of the top 3 channels")
	fs.Float64Var(&b.StandbyShare, "standby-share", b.StandbyShare, "share of sessions that end with a standby event (the rest go silent)")
	fs.Float64Var(&b.LinearShare, "linear-share", b.LinearShare, "share of zaps to the next or previous channel")
	fs.Float64Var(&b.DormantShare, "dormant-share", b.DormantShare, "share of boxes that stay off for the whole run")
	reachSlots := fs.String("reach-slots", "15m,1h", "truth: comma-separated reach window lengths (whole minutes); the whole run is always one")
	var reachSets stringsFlag
	fs.Var(&reachSets, "reach-set", "truth: a comma-separated channel set to compute reach for (repeatable)")
	noTruth := fs.Bool("no-truth", false, "with -out: do not compute the truth (saves memory and time)")
	fs.Float64Var(&o.cfg.Pace, "pace", 0, "event time per wall-clock time when publishing: 1 = live, 60 = a minute a second; 0 = as fast as possible")

	fs.StringVar(&o.out, "out", "", "write the stream to `FILE` (zstd binary frames) and the truth to FILE.truth")
	fs.IntVar(&o.frame, "frame-events", 4096, "with -out: events per frame in the file")
	level := fs.String("zstd-level", "default", "with -out: zstd level: fastest, default, better or best")
	fs.StringVar(&o.natsURL, "nats", "", "publish to the NATS server at `URL`")
	fs.StringVar(&o.pub.Subject, "subject", "tv.events", "subject prefix: events go to <subject>.p<partition>")
	fs.IntVar(&o.pub.Partitions, "partitions", 16, "number of partitions; a box always goes to the same one (FNV-1a of its id)")
	format := fs.String("format", "binary", "message format: json (one event), json-array or binary (a batch frame)")
	fs.IntVar(&o.pub.Batch, "batch", 256, "events per json-array or binary message")
	fs.BoolVar(&o.pub.S2, "s2", false, "S2-compress binary frames")
	fs.BoolVar(&o.pub.JetStream, "jetstream", false, "publish to JetStream (async, with flow control) instead of core NATS")
	fs.StringVar(&o.stream, "stream", "TVEVENTS", "with -jetstream: the stream to publish to, created for <subject>.> with MaxAge 24h if missing")
	fs.IntVar(&o.pub.MaxPending, "max-pending", 4000, "with -jetstream: async publishes awaiting acknowledgement at most")
	fs.StringVar(&o.replay, "replay", "", "publish the recorded stream `FILE` instead of generating")
	fs.BoolVar(&o.progress, "progress", false, "show progress on stderr even when it is not a terminal")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	bad := func(format string, args ...any) (options, error) {
		return o, fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q: every setting is a flag (tvload -h)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch {
	case o.out == "" && o.natsURL == "":
		return bad("-out FILE or -nats URL is required: say where the events go")
	case o.out != "" && o.natsURL != "":
		return bad("-out and -nats exclude each other: write a file, then -replay it")
	case o.replay != "" && o.natsURL == "":
		return bad("-replay needs -nats: a recorded stream is replayed to NATS")
	case o.out != "" && o.cfg.Pace != 0:
		return bad("-pace %g paces publishing; -out writes as fast as possible", o.cfg.Pace)
	case o.pub.S2 && *format != "binary":
		return bad("-s2 compresses binary frames; -format is %s", *format)
	case set["stream"] && !o.pub.JetStream:
		return bad("-stream %s needs -jetstream", o.stream)
	case o.pub.Batch < 1:
		return bad("-batch %d is less than 1", o.pub.Batch)
	case o.pub.Partitions < 1:
		return bad("-partitions %d is less than 1", o.pub.Partitions)
	case o.pub.MaxPending < 1:
		return bad("-max-pending %d is less than 1", o.pub.MaxPending)
	case o.frame < 1 || o.frame > event.DefaultMaxBatchEvents:
		return bad("-frame-events %d is outside 1..%d", o.frame, event.DefaultMaxBatchEvents)
	}
	if o.replay != "" {
		for _, name := range []string{"seed", "devices", "regions", "channels", "start", "duration", "heartbeat",
			"duplicates", "jitter", "zipf", "prime-boost", "standby-share", "linear-share", "dormant-share", "zone"} {
			if set[name] {
				return bad("-%s describes a generated workload; -replay publishes a recorded one", name)
			}
		}
	}
	var err error
	if o.pub.Format, err = bench.ParseFormat(*format); err != nil {
		return bad("-format: %v", err)
	}
	if o.level, err = parseLevel(*level); err != nil {
		return bad("-zstd-level: %v", err)
	}
	o.cfg.Seed = *seed
	o.cfg.Behaviour = &b
	o.progress = o.progress || isTerminal(os.Stderr)
	if *start == "now" {
		o.cfg.Start = time.Now().UTC().Truncate(time.Millisecond)
	} else if o.cfg.Start, err = time.Parse(time.RFC3339Nano, *start); err != nil {
		return bad("-start %q is neither an RFC 3339 time nor \"now\"", *start)
	}
	if o.cfg.Zone, err = time.LoadLocation(*zone); err != nil {
		return bad("-zone %q: %v", *zone, err)
	}
	o.cfg.ReachSlots = []time.Duration{}
	for _, s := range strings.Split(*reachSlots, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad("-reach-slots: %q is not a duration", s)
		}
		o.cfg.ReachSlots = append(o.cfg.ReachSlots, d)
	}
	for _, s := range reachSets {
		o.cfg.ReachSets = append(o.cfg.ReachSets, strings.Split(s, ","))
	}
	o.cfg.Truth = o.out != "" && !*noTruth
	if o.replay == "" {
		// Check the generator's settings now, to name the flag at fault.
		if _, err := bench.NewGenerator(bench.Config{
			Devices: 1, Regions: o.cfg.Regions, Channels: o.cfg.Channels, Start: o.cfg.Start,
			Duration: o.cfg.Duration, MinDwell: o.cfg.MinDwell, Inactivity: o.cfg.Inactivity,
			Heartbeat: o.cfg.Heartbeat, Duplicates: o.cfg.Duplicates, Jitter: o.cfg.Jitter, Pace: o.cfg.Pace,
			Behaviour: &b, ReachSlots: o.cfg.ReachSlots, ReachSets: o.cfg.ReachSets,
		}); err != nil {
			// bench names a setting as its flag: "bench: min-dwell 2m0s is …".
			return bad("-%s", strings.TrimPrefix(err.Error(), "bench: "))
		}
		if o.cfg.Devices < 1 || o.cfg.Devices > bench.MaxDevices {
			return bad("-devices %d is outside 1..%d", o.cfg.Devices, bench.MaxDevices)
		}
	}
	check := o.pub
	check.JetStream = false // checks the settings without a connection
	if _, err := bench.NewPublisher(nil, check); o.natsURL != "" && err != nil {
		// "publish: batch 0 is outside …"
		return bad("-%s", strings.TrimPrefix(err.Error(), "publish: "))
	}
	return o, nil
}

func parseLevel(s string) (zstd.EncoderLevel, error) {
	switch s {
	case "fastest":
		return zstd.SpeedFastest, nil
	case "default":
		return zstd.SpeedDefault, nil
	case "better":
		return zstd.SpeedBetterCompression, nil
	case "best":
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("%q is not fastest, default, better or best", s)
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "tvload:", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
			fmt.Fprintln(stderr, "Run tvload -h for every flag.")
		}
		return err
	}
	if o.out != "" {
		return writeFile(ctx, o, stderr)
	}
	return publish(ctx, o, stderr)
}

func writeFile(ctx context.Context, o options, stderr io.Writer) error {
	g, err := bench.NewGenerator(o.cfg)
	if err != nil {
		return err
	}
	bar := newProgress(o.progress, stderr, g.Config().Start, g.End())
	st, err := bench.WriteStream(ctx, o.out, g, bench.StreamOptions{FrameEvents: o.frame, Level: o.level},
		func(p bench.Progress) { bar.update(p.Events, p.Now) })
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "tvload: wrote %d events in %d frames to %s (%d bytes)", st.Events, st.Frames, o.out, st.Bytes)
	if st.TruthBytes > 0 {
		fmt.Fprintf(stderr, " and the truth to %s.truth (%d bytes)", o.out, st.TruthBytes)
	}
	fmt.Fprintln(stderr)
	return nil
}

func publish(ctx context.Context, o options, stderr io.Writer) error {
	nc, err := nats.Connect(o.natsURL, nats.Name("tvload"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	if o.pub.JetStream {
		if err := bench.EnsureStream(ctx, nc, o.stream, o.pub.Subject); err != nil {
			return err
		}
	}
	pub, err := bench.NewPublisher(nc, o.pub)
	if err != nil {
		return err
	}
	if o.replay != "" {
		err = replay(ctx, o, pub, stderr)
	} else {
		err = generate(ctx, o, pub, stderr)
	}
	if err != nil {
		return err
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	msgs, events := pub.Published()
	fmt.Fprintf(stderr, "tvload: published %d events in %d messages to %s.p*\n", events, msgs, o.pub.Subject)
	return nil
}

func generate(ctx context.Context, o options, pub *bench.Publisher, stderr io.Writer) error {
	g, err := bench.NewGenerator(o.cfg)
	if err != nil {
		return err
	}
	bar := newProgress(o.progress, stderr, g.Config().Start, g.End())
	defer bar.finish()
	var batch []event.Event
	for g.Next(ctx, &batch) {
		if err := pub.Publish(ctx, batch); err != nil {
			return err
		}
		if o.cfg.Pace > 0 {
			// Live: what is due goes out now, not when a batch fills.
			if err := pub.Flush(ctx); err != nil {
				return err
			}
		}
		bar.update(g.Events(), g.Now())
	}
	return g.Err()
}

// replay publishes a stream file, paced by its events' ts if -pace is set.
func replay(ctx context.Context, o options, pub *bench.Publisher, stderr io.Writer) error {
	s, err := bench.OpenStream(o.replay)
	if err != nil {
		return err
	}
	defer s.Close()
	bar := newProgress(o.progress, stderr, time.Time{}, time.Time{})
	defer bar.finish()
	var evs []event.Event
	var n int64
	var wall0 time.Time
	var ts0 int64
	for {
		evs, err = s.Next(evs[:0])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay %s: %w", o.replay, err)
		}
		if len(evs) == 0 {
			continue
		}
		if o.cfg.Pace > 0 {
			if wall0.IsZero() {
				wall0, ts0 = time.Now(), evs[0].TS
			}
			due := wall0.Add(time.Duration(float64(evs[0].TS-ts0)/o.cfg.Pace) * time.Millisecond)
			if err := sleepUntil(ctx, due); err != nil {
				return err
			}
		}
		if err := pub.Publish(ctx, evs); err != nil {
			return err
		}
		if o.cfg.Pace > 0 {
			if err := pub.Flush(ctx); err != nil {
				return err
			}
		}
		n += int64(len(evs))
		bar.update(n, time.UnixMilli(evs[len(evs)-1].TS))
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
