package harness

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/bench"
)

// Config is one run of the suite. FullConfig and SmokeConfig give the two
// sizes `make bench` and `make bench-smoke` run.
type Config struct {
	Name string // "full" or "smoke"
	Reps int    // repetitions of every measured scenario
	Seed uint64

	// The main workload: end to end, alternatives, latency, accuracy.
	Devices, Channels int
	Duration          time.Duration
	Encodings         []Encoding
	JSONEvents        int // bound on the events of JSON scenarios (they are large in memory)

	// Scale: devices grow at 300 channels, then channels grow at
	// ScaleChannelDevices devices; every point simulates ScaleDuration.
	ScaleDevices        []int
	ScaleChannels       []int
	ScaleChannelDevices int
	ScaleDuration       time.Duration

	// Retention: the memory of ratingsd and of exact counting as one long
	// stream of RetentionDevices (DESIGN.md's target: 2M) and
	// RetentionChannels is retained, sampled every RetentionSample of
	// event time. The stream covers RetentionDuration and ends at
	// RetentionEnd in the generator's local time (its daily curve).
	RetentionDevices, RetentionChannels int
	RetentionDuration                   time.Duration
	RetentionEnd                        time.Duration // time of day, e.g. 21h
	RetentionSample                     time.Duration

	// Only, if set, runs one part of the suite: "main" (end to end,
	// alternatives, latency, accuracy), "scale" or "retention".
	Only string

	Lateness time.Duration // ratingsd -lateness
	// CeilingBytes bounds the bytes of one `nats bench` run.
	CeilingBytes int
	Timeout      time.Duration // of the whole run
	// Ratingsd, if set, is the ratingsd binary to measure instead of one
	// built from the tree.
	Ratingsd string
}

// FullConfig is `make bench`: about 15 minutes on a 2-core machine.
func FullConfig() Config {
	return Config{
		Name: "full", Reps: 3, Seed: 1,
		Devices: 1_000_000, Channels: 300, Duration: 10 * time.Minute,
		Encodings: []Encoding{
			{Format: bench.FormatBinary, Batch: 64}, {Format: bench.FormatBinary, Batch: 256},
			{Format: bench.FormatBinary, Batch: 1024}, {Format: bench.FormatBinary, Batch: 256, S2: true},
			{Format: bench.FormatBinary, Batch: 1024, S2: true},
			{Format: bench.FormatJSON}, {Format: bench.FormatJSONArray, Batch: 64}, {Format: bench.FormatJSONArray, Batch: 256},
		},
		JSONEvents:          1_000_000,
		ScaleDevices:        []int{200_000, 2_000_000, 10_000_000},
		ScaleChannels:       []int{50, 500, 5000},
		ScaleChannelDevices: 1_000_000,
		ScaleDuration:       5 * time.Minute,
		RetentionDevices:    2_000_000,
		RetentionChannels:   300,
		RetentionDuration:   6 * time.Hour,
		RetentionEnd:        21 * time.Hour,
		RetentionSample:     15 * time.Minute,
		Lateness:            10 * time.Second,
		CeilingBytes:        1 << 30,
		Timeout:             40 * time.Minute,
	}
}

// SmokeConfig is `make bench-smoke`: every part once, small, in under two
// minutes; its figures only show that each part runs.
func SmokeConfig() Config {
	return Config{
		Name: "smoke", Reps: 1, Seed: 1,
		Devices: 20_000, Channels: 50, Duration: 3 * time.Minute,
		Encodings: []Encoding{
			{Format: bench.FormatBinary, Batch: 256}, {Format: bench.FormatBinary, Batch: 256, S2: true},
			{Format: bench.FormatJSON}, {Format: bench.FormatJSONArray, Batch: 256},
		},
		JSONEvents:          30_000,
		ScaleDevices:        []int{5_000, 20_000},
		ScaleChannels:       []int{50, 500},
		ScaleChannelDevices: 5_000,
		ScaleDuration:       2 * time.Minute,
		RetentionDevices:    20_000,
		RetentionChannels:   300,
		RetentionDuration:   20 * time.Minute,
		RetentionEnd:        21 * time.Hour,
		RetentionSample:     5 * time.Minute,
		Lateness:            5 * time.Second, // at least -min-dwell
		CeilingBytes:        32 << 20,
		Timeout:             5 * time.Minute,
	}
}

// Report is everything a run measured.
type Report struct {
	Config   Config
	Command  string
	Machine  Machine
	Date     time.Time
	Elapsed  time.Duration
	Tools    Tools
	Workload WorkloadInfo

	E2E      []E2ERow
	Redis    []RedisResult
	Exact    []ExactResult
	Ratingsd []RatingsdResult // binary-256 in the events model: the like-for-like row
	Accuracy map[string][]Estimate
	Seal     []float64
	Queries  map[string][]float64 // during the ingest
	QueryIdl map[string][]float64 // after it
	QueryErr map[string]int
	Scale    []ScaleRow
	// Retention is the retention scenario's result (nil if not run).
	Retention *RetentionResult `json:",omitempty"`
}

// Parts of the suite, for Config.Only.
var Parts = []string{"main", "scale", "retention"}

// Runs reports whether the run of cfg includes part.
func (c Config) Runs(part string) bool { return c.Only == "" || c.Only == part }

// WorkloadInfo describes the main workload.
type WorkloadInfo struct {
	Devices, Channels int
	Duration          time.Duration
	Events            int
	Start             time.Time
}

// E2ERow is one encoding and model end to end, with the ceiling for its
// message size, per repetition.
type E2ERow struct {
	Encoding      Encoding
	Model         bench.Model
	MeanSize      int
	EventsPerMsg  float64
	Runs          []RatingsdResult
	Ceiling       []float64 // events/s: nats bench subscriber msgs/s × events per message
	CeilingMsgs   []float64
	CeilingErrors []string
}

// ScaleRow is one point of the scale scenario.
type ScaleRow struct {
	Devices, Channels int
	Model             bench.Model
	Events            int
	Runs              []RatingsdResult
	Exact             *ExactResult // at the devices points, the baseline's memory
}

// Run runs every scenario of cfg. The work directory keeps logs and data
// of the children; every child is stopped before Run returns.
func Run(ctx context.Context, cfg Config, module, binDir, workDir, command string, logf func(string, ...any)) (*Report, error) {
	if cfg.Only != "" && !slices.Contains(Parts, cfg.Only) {
		return nil, fmt.Errorf("harness: no part %q to run only, want one of %s", cfg.Only, strings.Join(Parts, ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	defer KillChildren()
	rep := &Report{Config: cfg, Command: command, Machine: ThisMachine(), Date: time.Now().UTC(),
		Accuracy: map[string][]Estimate{}, Queries: map[string][]float64{}, QueryIdl: map[string][]float64{}, QueryErr: map[string]int{}}
	t0 := time.Now()
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	tools, err := InstallTools(ctx, module, binDir, workDir, cfg.Ratingsd, logf)
	if err != nil {
		return nil, err
	}
	rep.Tools = tools
	env, err := StartEnv(ctx, tools, workDir, logf)
	if err != nil {
		return nil, err
	}
	defer env.Close()

	if cfg.Runs("main") {
		if err := runMain(ctx, env, cfg, rep, logf); err != nil {
			return nil, err
		}
	}

	if cfg.Runs("scale") {
		if err := runScale(ctx, env, cfg, rep, logf); err != nil {
			return nil, err
		}
	}
	if cfg.Runs("retention") {
		if rep.Retention, err = runRetention(ctx, env, cfg, logf); err != nil {
			return nil, err
		}
	}
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

// runMain runs the main workload's scenarios: end to end with the
// ceilings, the alternatives, latency and accuracy.
func runMain(ctx context.Context, env *Env, cfg Config, rep *Report, logf func(string, ...any)) error {
	tools := env.Tools
	// The stream ends a few minutes before now: every event is in the past
	// (not "future") and inside the 48 h minute retention (not "too_old").
	start := windowStart(cfg.Duration)
	logf("generating %d devices × %s with exact truth", cfg.Devices, cfg.Duration)
	w, err := Generate(ctx, bench.Config{Seed: cfg.Seed, Devices: cfg.Devices, Channels: cfg.Channels,
		Start: start, Zone: primeTime(start), Duration: cfg.Duration, Truth: true, ReachSlots: []time.Duration{}}, 0)
	if err != nil {
		return err
	}
	rep.Workload = WorkloadInfo{Devices: cfg.Devices, Channels: cfg.Channels, Duration: cfg.Duration, Events: w.Len(), Start: start}

	for _, enc := range cfg.Encodings {
		limit := 0
		if enc.Format != bench.FormatBinary {
			limit = cfg.JSONEvents
		}
		msgs, err := w.Encode(enc, limit)
		if err != nil {
			return err
		}
		models := []bench.Model{bench.Tuning}
		main := enc.Format == bench.FormatBinary && enc.Batch == 256 && !enc.S2
		if main {
			models = append(models, bench.Events)
		}
		for _, model := range models {
			row := E2ERow{Encoding: enc, Model: model, MeanSize: msgs.MeanSize(), EventsPerMsg: float64(msgs.Events) / float64(msgs.Len())}
			for r := range cfg.Reps {
				logf("end to end %s, %s model, rep %d/%d: %d events in %d messages of %d B", enc, model, r+1, cfg.Reps, msgs.Events, msgs.Len(), msgs.MeanSize())
				if model == bench.Tuning {
					n := min(max(cfg.CeilingBytes/max(msgs.MeanSize(), 1), 20_000), 2_000_000)
					nb, err := Ceiling(ctx, tools.NATS, env.NATSURL, msgs.MeanSize(), n, time.Minute)
					if err != nil {
						logf("ceiling: %v", err)
						row.CeilingErrors = append(row.CeilingErrors, err.Error())
						row.Ceiling = append(row.Ceiling, math.NaN())
						row.CeilingMsgs = append(row.CeilingMsgs, math.NaN())
					} else {
						row.Ceiling = append(row.Ceiling, nb.MsgsPerSec*row.EventsPerMsg)
						row.CeilingMsgs = append(row.CeilingMsgs, nb.MsgsPerSec)
					}
				}
				opt := RatingsdOptions{Model: model, Lateness: cfg.Lateness, Timeout: 5 * time.Minute}
				if main {
					opt.Seal, opt.Queries, opt.Truth = true, true, w.Truth
				}
				res, err := env.RunRatingsd(ctx, msgs, opt)
				if err != nil {
					return fmt.Errorf("end to end %s, %s model: %w", enc, model, err)
				}
				logf("  %.2fM events/s, %.2f CPU s per M events, lost %d, rejected %.0f", res.EventsPerSec/1e6, res.CPUPerMEvents, res.Lost, res.Rejected)
				row.Runs = append(row.Runs, res)
				if main {
					key := "ratingsd " + model.String()
					rep.Accuracy[key] = append(rep.Accuracy[key], res.Accuracy...)
					if model == bench.Tuning {
						rep.Seal = append(rep.Seal, res.SealDelays...)
						for k, v := range res.Queries {
							rep.Queries[k] = append(rep.Queries[k], v...)
						}
						for k, v := range res.QueriesIdle {
							rep.QueryIdl[k] = append(rep.QueryIdl[k], v...)
						}
						for k, v := range res.QueryErrors {
							rep.QueryErr[k] += v
						}
					} else {
						rep.Ratingsd = append(rep.Ratingsd, res)
					}
				}
			}
			rep.E2E = append(rep.E2E, row)
		}
		if main {
			for r := range cfg.Reps {
				logf("redis HyperLogLog, rep %d/%d", r+1, cfg.Reps)
				res, err := env.RunRedis(ctx, msgs, w.Truth, 5*time.Minute)
				if err != nil {
					return err
				}
				logf("  %.2fM events/s, server %.2f CPU s per M events, %d keys, %d B", res.EventsPerSec/1e6, res.ServerCPUPerM, res.Keys, res.UsedMemory)
				rep.Redis = append(rep.Redis, res)
				rep.Accuracy["redis"] = append(rep.Accuracy["redis"], res.Accuracy...)
				logf("exact counting, rep %d/%d", r+1, cfg.Reps)
				ex, err := RunExact(msgs)
				if err != nil {
					return err
				}
				rep.Exact = append(rep.Exact, ex)
			}
		}
	}
	return nil
}

// runScale runs the scale scenario: devices grow at 300 channels, then
// channels grow at cfg.ScaleChannelDevices devices.
func runScale(ctx context.Context, env *Env, cfg Config, rep *Report, logf func(string, ...any)) error {
	scale := func(devices, channels int, models []bench.Model, exact bool) error {
		start := windowStart(cfg.ScaleDuration)
		logf("scale: generating %d devices, %d channels × %s", devices, channels, cfg.ScaleDuration)
		sw, err := Generate(ctx, bench.Config{Seed: cfg.Seed, Devices: devices, Channels: channels, Start: start, Zone: primeTime(start), Duration: cfg.ScaleDuration}, 0)
		if err != nil {
			return err
		}
		msgs, err := sw.Encode(Encoding{Format: bench.FormatBinary, Batch: 256}, 0)
		if err != nil {
			return err
		}
		n := sw.Len()
		sw = nil
		var ex *ExactResult
		if exact {
			e, err := RunExact(msgs)
			if err != nil {
				return err
			}
			ex = &e
		}
		for _, model := range models {
			row := ScaleRow{Devices: devices, Channels: channels, Model: model, Events: n, Exact: ex}
			for r := range cfg.Reps {
				res, err := env.RunRatingsd(ctx, msgs, RatingsdOptions{Model: model, Lateness: cfg.Lateness, Seal: true, Timeout: 10 * time.Minute})
				if err != nil {
					return fmt.Errorf("scale %d devices, %d channels, %s model: %w", devices, channels, model, err)
				}
				logf("  %s model rep %d/%d: %.2fM events/s, RSS %.0f MiB sealed", model, r+1, cfg.Reps, res.EventsPerSec/1e6, float64(res.RSSSealed)/(1<<20))
				row.Runs = append(row.Runs, res)
			}
			rep.Scale = append(rep.Scale, row)
		}
		return nil
	}
	for _, d := range cfg.ScaleDevices {
		if err := scale(d, 300, []bench.Model{bench.Tuning, bench.Events}, true); err != nil {
			return err
		}
	}
	for _, c := range cfg.ScaleChannels {
		if err := scale(cfg.ScaleChannelDevices, c, []bench.Model{bench.Tuning}, false); err != nil {
			return err
		}
	}
	return nil
}

// windowStart returns the start of a stream of duration d that ends 2 to
// 17 minutes before now, at a whole number of the generator's ad-break
// cycles since the Unix epoch. The channels' breaks are phased in absolute
// time, so every run's window then holds the same part of their cycle, as
// primeTime makes it hold the same hours of the daily curve: two runs of
// a scenario get the same stream but for its timestamps. (At whole minutes
// instead, two runs' 10-minute windows differed by 10% in events, the
// zapping at breaks, and by 7% in the mean size of a frame.)
func windowStart(d time.Duration) time.Time {
	cycle := bench.DefaultBehaviour().BreakEvery
	return time.Now().UTC().Add(-d - 2*time.Minute).Truncate(cycle)
}

// primeTime returns a zone in which start is 20:30 local time, half an hour
// into prime time, so that a run's load does not depend on the hour it is
// run at (the generator follows the daily viewing curve of its zone).
func primeTime(start time.Time) *time.Location {
	return zoneAt(start, 20*time.Hour+30*time.Minute, "prime")
}

// DefaultDirs returns the bench-local GOBIN and image directory of module.
func DefaultDirs(module string) (binDir, imgDir string) {
	return filepath.Join(module, "bench", "bin"), filepath.Join(module, "bench", "img")
}
