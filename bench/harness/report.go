package harness

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/bench"
)

// Markers delimit the harness's section of bench/RESULTS.md.
const (
	BeginMarker = "<!-- harness:begin -->"
	EndMarker   = "<!-- harness:end -->"
)

// Chart file names, written by Write.
var chartNames = []string{"e2e.png", "cpu.png", "latency.png", "accuracy.png", "scale-devices.png", "scale-channels.png", "retention.png"}

// Write renders the report's charts into outDir and returns its markdown
// section (with the markers). When outDir is imgDir (a full run for
// bench/RESULTS.md) the images are linked as img/NAME; otherwise
// results.md is also written into outDir, next to its images.
func Write(rep *Report, outDir, imgDir, module string) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	same := filepath.Clean(outDir) == filepath.Clean(imgDir)
	ref := ""
	if same {
		ref = "img/"
	}
	if err := writeCharts(rep, outDir); err != nil {
		return "", err
	}
	md := Markdown(rep, ref)
	if !same {
		if err := os.WriteFile(filepath.Join(outDir, "results.md"), []byte(md), 0o644); err != nil {
			return "", fmt.Errorf("report: %w", err)
		}
	}
	return md, nil
}

// UpdateResults replaces the text between the markers of path with
// section (which holds the markers), or appends section when the file has
// no markers yet. The hand-written rest of the file is kept as it is.
func UpdateResults(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	out, err := ReplaceSection(b, section)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// ReplaceSection returns doc with the text from BeginMarker to EndMarker
// (inclusive) replaced by section, or section appended when doc has no
// markers. One marker without the other is an error.
func ReplaceSection(doc []byte, section string) ([]byte, error) {
	i := bytes.Index(doc, []byte(BeginMarker))
	j := bytes.Index(doc, []byte(EndMarker))
	switch {
	case i < 0 && j < 0:
		out := bytes.TrimRight(doc, "\n")
		return append(append(out, "\n\n"...), strings.TrimRight(section, "\n")+"\n"...), nil
	case i < 0 || j < 0 || j < i:
		return nil, errors.New("the harness markers are not one begin marker followed by one end marker")
	}
	out := slices.Clone(doc[:i])
	out = append(out, strings.TrimRight(section, "\n")...)
	return append(out, doc[j+len(EndMarker):]...), nil
}

// Check lists what a run failed to produce: every part it ran must give
// figures.
func Check(rep *Report) []string {
	var p []string
	if rep.Config.Runs("main") {
		p = append(p, checkMain(rep)...)
	}
	if rep.Config.Runs("scale") {
		p = append(p, checkScale(rep)...)
	}
	if rep.Config.Runs("retention") {
		p = append(p, retentionCheck(rep.Retention)...)
	}
	return p
}

func checkMain(rep *Report) []string {
	var p []string
	for _, r := range rep.E2E {
		if len(r.Runs) == 0 {
			p = append(p, fmt.Sprintf("end to end %s %s: no run", r.Encoding, r.Model))
		}
		for i, x := range r.Runs {
			if !(x.EventsPerSec > 0) || !(x.CPUPerMEvents > 0) || x.RSS <= 0 {
				p = append(p, fmt.Sprintf("end to end %s %s rep %d: no rate, CPU or RSS (%+v)", r.Encoding, r.Model, i+1, x))
			}
			if x.Lost > 0 {
				p = append(p, fmt.Sprintf("end to end %s %s rep %d: %d events lost", r.Encoding, r.Model, i+1, x.Lost))
			}
		}
		if r.Model == bench.Tuning && SpreadOf(r.Ceiling).N == 0 {
			p = append(p, fmt.Sprintf("ceiling for %s (%d B): no nats bench result: %s", r.Encoding, r.MeanSize, strings.Join(r.CeilingErrors, "; ")))
		}
	}
	if len(rep.Redis) == 0 || !(rep.Redis[0].EventsPerSec > 0) || rep.Redis[0].UsedMemory <= 0 {
		p = append(p, "redis HyperLogLog: no figures")
	}
	if len(rep.Exact) == 0 || !(rep.Exact[0].EventsPerSec > 0) || rep.Exact[0].HeapBytes <= 0 {
		p = append(p, "exact counting: no figures")
	}
	for _, k := range []string{"ratingsd tuning", "ratingsd events", "redis"} {
		if len(rep.Accuracy[k]) == 0 {
			p = append(p, "accuracy of "+k+": no estimates")
		}
	}
	if len(rep.Seal) == 0 {
		p = append(p, "latency: no sealed minute was timed")
	}
	for _, k := range []string{"/v1/audience", "/v1/now", "/v1/reach"} {
		if len(rep.Queries[k])+len(rep.QueryIdl[k]) == 0 {
			p = append(p, "latency: no successful query of "+k)
		}
	}
	return p
}

func checkScale(rep *Report) []string {
	var p []string
	if len(rep.Scale) == 0 {
		p = append(p, "scale: no point")
	}
	for _, s := range rep.Scale {
		for i, x := range s.Runs {
			if x.RSSSealed <= 0 || !(x.EventsPerSec > 0) {
				p = append(p, fmt.Sprintf("scale %d devices %d channels %s rep %d: no RSS or rate", s.Devices, s.Channels, s.Model, i+1))
			}
			if x.PeakRSS < max(x.RSS, x.RSSSealed) {
				p = append(p, fmt.Sprintf("scale %d devices %d channels %s rep %d: peak RSS %d B below RSS %d B after ingest or %d B sealed: not read last", s.Devices, s.Channels, s.Model, i+1, x.PeakRSS, x.RSS, x.RSSSealed))
			}
		}
	}
	return p
}

// Figures the reading quotes.
type headline struct {
	cpuRatingsd, cpuRedis, cpuRatio    float64 // CPU s per M events; redis / ratingsd
	e2eBinary, ceilBinary, shareBinary float64
	e2eJSON, ceilJSON, shareJSON       float64
}

func headlines(rep *Report) headline {
	var h headline
	h.cpuRatingsd = SpreadOf(field(rep.Ratingsd, func(r RatingsdResult) float64 { return r.CPUPerMEvents })).Median
	h.cpuRedis = SpreadOf(fieldR(rep.Redis, func(r RedisResult) float64 { return r.ServerCPUPerM })).Median
	h.cpuRatio = h.cpuRedis / h.cpuRatingsd
	h.e2eBinary, h.ceilBinary, h.e2eJSON, h.ceilJSON = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	for _, r := range rep.E2E {
		if r.Model != bench.Tuning {
			continue
		}
		rate := SpreadOf(field(r.Runs, func(x RatingsdResult) float64 { return x.EventsPerSec })).Median
		ceil := SpreadOf(r.Ceiling).Median
		switch r.Encoding.String() {
		case "binary-256":
			h.e2eBinary, h.ceilBinary = rate, ceil
		case "json":
			h.e2eJSON, h.ceilJSON = rate, ceil
		}
	}
	h.shareBinary = h.e2eBinary / h.ceilBinary
	h.shareJSON = h.e2eJSON / h.ceilJSON
	return h
}

func field(rs []RatingsdResult, f func(RatingsdResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func fieldR(rs []RedisResult, f func(RedisResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func fieldE(rs []ExactResult, f func(ExactResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func mEvents(v float64) string { return fmt.Sprintf("%.2fM", v/1e6) }
func kEvents(v float64) string {
	if v >= 1e6 {
		return mEvents(v)
	}
	return fmt.Sprintf("%.0fk", v/1e3)
}
func secs(v float64) string { return fmt.Sprintf("%.2f", v) }
func mib(v float64) string  { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }
func ms(v float64) string   { return fmt.Sprintf("%.1f ms", v*1e3) }
func pct(v float64) string  { return fmt.Sprintf("%.0f%%", v*100) }
func pct2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", v*100)
}
func metNot(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// Markdown renders the report; images are linked as ref + name.
func Markdown(rep *Report, ref string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	cfg := rep.Config
	h := headlines(rep)
	spreadNote := fmt.Sprintf("median (min–max) of %d repetitions", cfg.Reps)
	if cfg.Reps == 1 {
		spreadNote = "one repetition (no spread)"
	}
	w("%s\n\n## Benchmark suite (bench/harness)\n\n", BeginMarker)
	w("Written by `%s` (bench/cmd/benchrun) on %s, in %s. Machine: %s. ", rep.Command, rep.Date.Format("2006-01-02 15:04 MST"), rep.Elapsed.Round(time.Second), rep.Machine)
	w("Every figure is the %s, except the retention scenario's (one run); each repetition is a fresh ratingsd process with an empty data directory. ", spreadNote)
	w("The machine is shared, so absolute figures move by up to 2× between runs; ratios measured in the same run hold better.\n\n")
	w("Setup: one `nats-server` child (the version go.mod pins) on loopback; the harness publishes pre-encoded messages over TCP to %d subjects `tv.events.pNN` (partitioned by device, like `bench.Publisher`), ", Partitions)
	w("keeping at most 64k events published but not yet counted by ratingsd (its `ratings_events_total`, polled every 5 ms), so rates are sustained, not buffered, and ratingsd's workers stay within the lateness of each other although the stream is replayed much faster than real time. ")
	w("ratingsd runs as a child (%s): `ratingsd -nats URL -model M -lateness %s -checkpoint-every 0`. ", rep.Tools.RatingsdFrom, cfg.Lateness)
	w("Ceilings: `nats bench sub` + `nats bench pub` (natscli %s, installed into bench/bin) on the same server, with the mean message size of each scenario, interleaved with the ratingsd runs. ", NATSCLIVersion)
	w("Redis: `%s`, a child on a free loopback port, no persistence.\n\n", rep.Tools.RedisVer)
	if cfg.Runs("main") {
		wl := rep.Workload
		w("Workload (the generator, seed %d): %d boxes, %d channels, %s of event time from 20:30 in the generator's local time, starting at a whole ad-break cycle (so every run gets the same stream but for its timestamps) and ending 2 to 17 minutes before the run: %d events (state report at the start, then zapping, sessions, ad breaks; no heartbeats), with the generator's exact truth.\n\n",
			cfg.Seed, wl.Devices, wl.Channels, wl.Duration, wl.Events)
	}

	// Reading.
	w("### Reading\n\n")
	if cfg.Runs("main") {
		w("- **Per-event CPU, ratingsd vs Redis HyperLogLog** (same stream, events model): ratingsd %.2f CPU s per million events, redis-server %.2f — Redis uses %.1f× ratingsd's CPU. Target ratingsd ≤ 1/5 of Redis: %s.\n",
			h.cpuRatingsd, h.cpuRedis, h.cpuRatio, metNot(h.cpuRatio >= 5))
	}
	b.WriteString(retentionReading(rep))
	if cfg.Runs("main") {
		w("- **End to end vs the NATS ceiling**: binary batches of 256 events %s events/s against a `nats bench` ceiling of %s events/s for that message size (%s); one JSON event per message %s events/s against %s (%s). DESIGN.md asks ≥ 5M events/s and ≥ 45%% of the ceiling for binary batches, ≥ 50%% for JSON.\n",
			mEvents(h.e2eBinary), mEvents(h.ceilBinary), pct(h.shareBinary), mEvents(h.e2eJSON), mEvents(h.ceilJSON), pct(h.shareJSON))
	}
	if rep.Config.Name == "smoke" {
		w("- This is a smoke run: tiny populations, one repetition. It shows that every part runs; its figures are not measurements.\n")
	}
	w("\n")

	if cfg.Runs("main") {
		// End to end.
		w("### End to end through NATS, and the ceiling\n\n")
		w("`%s` — %s. Share = ratingsd's rate / the ceiling's. CPU is ratingsd's own (`/proc/<pid>/stat`, user + system) from the first publication to the last event counted; the NATS server's and the publisher's CPU are not in it. Rejected = `ratings_events_rejected_total`, dropped = NATS client drops and slow-consumer events, lost = published but never counted.\n\n", rep.Command, spreadNote)
		w("| messages | model | mean size | ratingsd events/s | ceiling events/s (`nats bench`) | share | CPU s / M events | RSS after ingest | rejected / dropped / lost |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rep.E2E {
			rate := SpreadOf(field(r.Runs, func(x RatingsdResult) float64 { return x.EventsPerSec }))
			cpu := SpreadOf(field(r.Runs, func(x RatingsdResult) float64 { return x.CPUPerMEvents }))
			rss := SpreadOf(field(r.Runs, func(x RatingsdResult) float64 { return float64(x.RSS) }))
			ceil, share := "(the tuning row's)", "–"
			if r.Model == bench.Tuning {
				c := SpreadOf(r.Ceiling)
				ceil = c.Format(mEvents)
				share = pct(rate.Median / c.Median)
			}
			var rej, drop, lost float64
			for _, x := range r.Runs {
				rej += x.Rejected
				drop += x.Dropped
				lost += float64(x.Lost)
			}
			w("| %s | %s | %d B | %s | %s | %s | %s | %s | %.0f / %.0f / %.0f |\n", r.Encoding, r.Model, r.MeanSize, rate.Format(mEvents), ceil, share, cpu.Format(secs), rss.Format(mib), rej, drop, lost)
		}
		w("\n![ratingsd end to end against the nats bench ceiling](%se2e.png)\n\n", ref)

		// Alternatives.
		w("### Alternatives on the same stream\n\n")
		w("The binary-256 stream of the workload, events model (a device counts on every channel it tuned to in a minute). `%s` — %s.\n\n", rep.Command, spreadNote)
		w("- ratingsd: a child process as above (`-model events`); CPU is its process's.\n")
		w("- Redis HyperLogLog: the harness decodes the same frames and sends, for every 16 frames, one pipelined variadic `PFADD hll:<channel>:<minute> dev…` per key (github.com/redis/go-redis/v9); server CPU is redis-server's, client CPU the harness's (decoding, grouping, RESP). Memory: `INFO memory` used_memory and the server's RSS.\n")
		w("- Exact counting: in the harness process, one Go hash set of 64-bit device hashes per (channel, minute) — the cheapest exact form; memory is the sets' live heap after a GC.\n\n")
		w("| system | events/s | CPU s / M events | memory |\n|---|---|---|---|\n")
		rr := rep.Ratingsd
		w("| ratingsd (events model) | %s | %s (process) | %s RSS, of which sketches %s |\n",
			SpreadOf(field(rr, func(x RatingsdResult) float64 { return x.EventsPerSec })).Format(mEvents),
			SpreadOf(field(rr, func(x RatingsdResult) float64 { return x.CPUPerMEvents })).Format(secs),
			SpreadOf(field(rr, func(x RatingsdResult) float64 { return float64(x.RSSSealed) })).Format(mib),
			SpreadOf(field(rr, func(x RatingsdResult) float64 { return x.SketchBytes })).Format(mib))
		w("| Redis HLL | %s | %s server + %s client | %s used_memory, %s RSS, %d keys |\n",
			SpreadOf(fieldR(rep.Redis, func(x RedisResult) float64 { return x.EventsPerSec })).Format(mEvents),
			SpreadOf(fieldR(rep.Redis, func(x RedisResult) float64 { return x.ServerCPUPerM })).Format(secs),
			SpreadOf(fieldR(rep.Redis, func(x RedisResult) float64 { return x.ClientCPUPerM })).Format(secs),
			SpreadOf(fieldR(rep.Redis, func(x RedisResult) float64 { return float64(x.UsedMemory) })).Format(mib),
			SpreadOf(fieldR(rep.Redis, func(x RedisResult) float64 { return float64(x.RSS) })).Format(mib),
			firstKeys(rep.Redis))
		w("| exact hash sets | %s | %s (in process) | %s heap, %s |\n\n",
			SpreadOf(fieldE(rep.Exact, func(x ExactResult) float64 { return x.EventsPerSec })).Format(mEvents),
			SpreadOf(fieldE(rep.Exact, func(x ExactResult) float64 { return x.CPUPerM })).Format(secs),
			SpreadOf(fieldE(rep.Exact, func(x ExactResult) float64 { return float64(x.HeapBytes) })).Format(mib),
			firstSets(rep.Exact))
		w("![CPU per million events](%scpu.png)\n\n", ref)

		// Latency.
		w("### Latency\n\n")
		w("From the binary-256 tuning-model runs (`%s`, all repetitions pooled). **Sealed minute**: for each minute the stream's own watermark sealed, the time from the publication of the first message whose newest event moved the watermark (newest event time − %s lateness) past the minute's end, to the arrival of its first `ratings.minute.<channel>` message at a subscriber — under full ingest load, so it includes the queue of up to 64k events ahead. **Queries**: one HTTP GET after another (5 ms apart, endpoints in turn) during the ingest (under load), and then while the last minutes seal (idle); errors are mostly 404s before the first minute is sealed.\n\n", rep.Command, cfg.Lateness)
		w("| what | n | p50 | p99 | max | errors |\n|---|---|---|---|---|---|\n")
		seal := slices.Clone(rep.Seal)
		slices.Sort(seal)
		if len(seal) > 0 {
			w("| minute sealed → published | %d | %s | %s | %s | |\n", len(seal), ms(Quantile(seal, 0.5)), ms(Quantile(seal, 0.99)), ms(seal[len(seal)-1]))
		}
		for _, k := range []string{"/v1/audience", "/v1/now", "/v1/reach"} {
			for _, phase := range []struct {
				name string
				qs   map[string][]float64
			}{{"under load", rep.Queries}, {"idle", rep.QueryIdl}} {
				q := slices.Clone(phase.qs[k])
				slices.Sort(q)
				if len(q) == 0 {
					w("| `GET %s`, %s | 0 | | | | |\n", k, phase.name)
					continue
				}
				errs := ""
				if phase.name == "under load" {
					errs = fmt.Sprint(rep.QueryErr[k])
				}
				w("| `GET %s`, %s | %d | %s | %s | %s | %s |\n", k, phase.name, len(q), ms(Quantile(q, 0.5)), ms(Quantile(q, 0.99)), ms(q[len(q)-1]), errs)
			}
		}
		w("\n![latency](%slatency.png)\n\n", ref)

		// Accuracy.
		w("### Accuracy against the exact truth\n\n")
		w("Every (channel, minute) with a non-zero true audience, from `/v1/audience` (ratingsd, all repetitions pooled: each has its own random sketch key) and `PFCOUNT` (Redis, events model), against the generator's exact truth for the same model. Relative error |est − truth| / truth; coverage = fraction of truths inside the served [low, high] (Redis serves no interval). In the tuning model ratingsd keeps exact counts, so its error is 0 by design.\n\n")
		w("| system | audience | n | mean rel | p99 rel | max rel | max abs | coverage |\n|---|---|---|---|---|---|---|---|\n")
		for _, k := range []string{"ratingsd events", "ratingsd tuning", "redis"} {
			for i, bucket := range ByBucket(rep.Accuracy[k]) {
				if len(bucket) == 0 {
					continue
				}
				s := ErrorsOf(bucket)
				cov := pct2(s.Covered)
				if k == "redis" {
					cov = "–"
				}
				w("| %s | %s | %d | %s | %s | %s | %.0f | %s |\n", k, SizeBuckets[i].Name, s.N, pct2(s.MeanRel), pct2(s.P99Rel), pct2(s.MaxRel), s.MaxAbs, cov)
			}
		}
		w("\n![accuracy by audience size](%saccuracy.png)\n\n", ref)
	}

	if cfg.Runs("scale") {
		// Scale.
		w("### Scale\n\n")
		w("Binary-256 streams of %s of event time; devices grow at 300 channels, then channels grow at %d devices. RSS is ratingsd's VmRSS once every minute is sealed, peak its VmHWM then (the most it held during ingest and sealing); exact is the hash-set baseline's heap on the same stream. Five minutes show how the cost grows with the population, not what the product keeps (48 h of minutes): memory with retention is compared in the next section. `%s` — %s.\n\n", cfg.ScaleDuration, cfg.ScaleChannelDevices, rep.Command, spreadNote)
		w("| devices | channels | model | events | events/s | RSS sealed | peak RSS | sketches | exact heap |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range rep.Scale {
			ex := ""
			if s.Exact != nil {
				ex = mib(float64(s.Exact.HeapBytes))
			}
			w("| %d | %d | %s | %d | %s | %s | %s | %s | %s |\n", s.Devices, s.Channels, s.Model, s.Events,
				SpreadOf(field(s.Runs, func(x RatingsdResult) float64 { return x.EventsPerSec })).Format(mEvents),
				SpreadOf(field(s.Runs, func(x RatingsdResult) float64 { return float64(x.RSSSealed) })).Format(mib),
				SpreadOf(field(s.Runs, func(x RatingsdResult) float64 { return float64(x.PeakRSS) })).Format(mib),
				SpreadOf(field(s.Runs, func(x RatingsdResult) float64 { return x.SketchBytes })).Format(mib), ex)
		}
		w("\n![scale with devices](%sscale-devices.png)\n![scale with channels](%sscale-channels.png)\n\n", ref, ref)
	}
	b.WriteString(retentionMarkdown(rep, ref))
	w("%s\n", EndMarker)
	return b.String()
}

func firstKeys(rs []RedisResult) int {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].Keys
}

func firstSets(rs []ExactResult) string {
	if len(rs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d sets, %d entries", rs[0].Sets, rs[0].Entries)
}

// caption is the second line of every chart's title: command, date,
// machine and spread.
func caption(rep *Report) string { return captionOf(rep, rep.Config.Reps) }

// captionOf is caption for a chart of reps repetitions.
func captionOf(rep *Report, reps int) string {
	spread := fmt.Sprintf("median, min–max of %d", reps)
	if reps == 1 {
		spread = "1 repetition"
	}
	return fmt.Sprintf("%s, %s, %d cores / %.0f GiB, %s", rep.Command, rep.Date.Format("2006-01-02"), rep.Machine.Cores, float64(rep.Machine.Memory)/(1<<30), spread)
}

func writeCharts(rep *Report, dir string) error {
	if rep.Config.Runs("main") {
		if err := mainCharts(rep, dir); err != nil {
			return err
		}
	}
	if rep.Config.Runs("scale") {
		if err := scaleCharts(rep, dir); err != nil {
			return err
		}
	}
	if rep.Config.Runs("retention") && rep.Retention != nil {
		return retentionChart(rep, dir)
	}
	return nil
}

func mainCharts(rep *Report, dir string) error {
	cpt := caption(rep)
	// End to end vs ceiling.
	var cats []string
	var e2e, ceil []float64
	for _, r := range rep.E2E {
		cats = append(cats, r.Encoding.String()+" "+r.Model.String())
		e2e = append(e2e, SpreadOf(field(r.Runs, func(x RatingsdResult) float64 { return x.EventsPerSec })).Median/1e6)
		c := math.NaN()
		if r.Model == bench.Tuning {
			c = SpreadOf(r.Ceiling).Median / 1e6
		}
		ceil = append(ceil, c)
	}
	if err := barChart(filepath.Join(dir, "e2e.png"), "ratingsd end to end vs nats bench ceiling, M events/s\n"+cpt,
		"M events/s", cats, []series{{"ratingsd", e2e}, {"nats bench ceiling", ceil}}); err != nil {
		return err
	}
	// CPU per event.
	med := func(xs []float64) float64 { return SpreadOf(xs).Median }
	if err := barChart(filepath.Join(dir, "cpu.png"), "CPU seconds per million events, same stream, events model\n"+cpt, "CPU s / M events",
		[]string{"ratingsd process", "redis-server", "redis client (harness)", "exact sets (in process)"},
		[]series{{"CPU s / M events", []float64{
			med(field(rep.Ratingsd, func(x RatingsdResult) float64 { return x.CPUPerMEvents })),
			med(fieldR(rep.Redis, func(x RedisResult) float64 { return x.ServerCPUPerM })),
			med(fieldR(rep.Redis, func(x RedisResult) float64 { return x.ClientCPUPerM })),
			med(fieldE(rep.Exact, func(x ExactResult) float64 { return x.CPUPerM })),
		}}}); err != nil {
		return err
	}
	// Latency.
	seal := slices.Clone(rep.Seal)
	slices.Sort(seal)
	lcats := []string{"minute sealed → published"}
	p50 := []float64{Quantile(seal, 0.5) * 1e3}
	p99 := []float64{Quantile(seal, 0.99) * 1e3}
	for _, k := range []string{"/v1/audience", "/v1/now", "/v1/reach"} {
		q := slices.Clone(rep.Queries[k])
		slices.Sort(q)
		lcats = append(lcats, "GET "+k)
		p50 = append(p50, Quantile(q, 0.5)*1e3)
		p99 = append(p99, Quantile(q, 0.99)*1e3)
	}
	if err := barChart(filepath.Join(dir, "latency.png"), "latency under ingest load, ms\n"+cpt, "ms", lcats,
		[]series{{"p50", p50}, {"p99", p99}}); err != nil {
		return err
	}
	// Accuracy.
	var bcats []string
	for _, b := range SizeBuckets {
		bcats = append(bcats, b.Name)
	}
	var ss []series
	for _, k := range []string{"ratingsd events", "redis"} {
		mean, p99 := make([]float64, len(SizeBuckets)), make([]float64, len(SizeBuckets))
		for i, bucket := range ByBucket(rep.Accuracy[k]) {
			mean[i], p99[i] = math.NaN(), math.NaN()
			if len(bucket) > 0 {
				s := ErrorsOf(bucket)
				mean[i], p99[i] = s.MeanRel*100, s.P99Rel*100
			}
		}
		ss = append(ss, series{k + " mean", mean}, series{k + " p99", p99})
	}
	return barChart(filepath.Join(dir, "accuracy.png"), "relative error by true audience size, % (events model; tuning is exact)\n"+cpt, "% error", bcats, ss)
}

func scaleCharts(rep *Report, dir string) error {
	cpt := caption(rep)
	var devTun, devEv line
	devTun.name, devEv.name = "ratingsd tuning RSS", "ratingsd events RSS"
	exact := line{name: "exact sets heap"}
	rateTun := line{name: "ratingsd tuning ingest rate (100 = 1M events/s)"}
	chn := line{name: "ratingsd tuning RSS"}
	chRate := line{name: "ratingsd tuning ingest rate (100 = 1M events/s)"}
	for _, s := range rep.Scale {
		rss := field(s.Runs, func(x RatingsdResult) float64 { return float64(x.RSSSealed) / (1 << 20) })
		rate := field(s.Runs, func(x RatingsdResult) float64 { return x.EventsPerSec / 1e6 * 100 })
		switch {
		case s.Channels == 300 && s.Model == bench.Tuning:
			devTun.xs, devTun.reps = append(devTun.xs, float64(s.Devices)), append(devTun.reps, rss)
			rateTun.xs, rateTun.reps = append(rateTun.xs, float64(s.Devices)), append(rateTun.reps, rate)
			if s.Exact != nil {
				exact.xs = append(exact.xs, float64(s.Devices))
				exact.reps = append(exact.reps, []float64{float64(s.Exact.HeapBytes) / (1 << 20)})
			}
		case s.Channels == 300:
			devEv.xs, devEv.reps = append(devEv.xs, float64(s.Devices)), append(devEv.reps, rss)
		default:
			chn.xs, chn.reps = append(chn.xs, float64(s.Channels)), append(chn.reps, rss)
			chRate.xs, chRate.reps = append(chRate.xs, float64(s.Channels)), append(chRate.reps, rate)
		}
	}
	if err := lineChart(filepath.Join(dir, "scale-devices.png"), "memory (MiB) and ingest rate as devices grow, 300 channels\n"+cpt, "devices (log)", "MiB", []line{devTun, devEv, exact, rateTun}); err != nil {
		return err
	}
	return lineChart(filepath.Join(dir, "scale-channels.png"), fmt.Sprintf("memory (MiB) and ingest rate as channels grow, %d devices\n", rep.Config.ScaleChannelDevices)+cpt, "channels (log)", "MiB", []line{chn, chRate})
}
