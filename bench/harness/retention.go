package harness

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/bench"
)

// The retention scenario compares the memory of ratingsd and of exact
// counting as the retained event time grows: one long stream, sampled
// every RetentionSample of event time. The 5-minute scale streams measure
// how the cost grows with the population; they leave out what the product
// keeps for 48 h, so there ratingsd's fixed costs (Go runtime, tuning
// table) face five minutes of hash sets. Here both are sampled along
// hours of the same stream, a line is fitted to each, and the ratio at
// the product's retention is extrapolated from the fitted lines.

// ProductMinuteRetention is ratingsd's default -minute-retention: how long
// minute sketches are kept (DESIGN.md, 48 h); the retention scenario
// extrapolates to it.
const ProductMinuteRetention = 48 * time.Hour

// RetentionResult is what the retention scenario measured.
type RetentionResult struct {
	Devices, Channels int
	Start             time.Time     // event time of the stream's first events
	Duration          time.Duration // event time the stream covers
	LocalFrom         time.Duration // the stream's start in the generator's local time of day
	Events            int
	Messages          int
	Args              []string // ratingsd flags besides the harness's own
	Window            int64    // RatingsdOptions.Window: events in flight
	Tuning, EventsRun RatingsdResult
	Exact             ExactResult
	Seconds           float64 // wall time of the scenario, generation included
}

// Series of the retention scenario, in the order of its table.
const (
	seriesExact = iota
	seriesEvents
	seriesTuning
	seriesEventsSketch
	seriesTuningSketch
	seriesEventsHeap // the heap live at the last GC
	seriesTuningHeap
	nSeries
)

var seriesNames = [nSeries]string{"exact sets (heap)", "ratingsd events (RSS)", "ratingsd tuning (RSS)", "ratingsd events sketches", "ratingsd tuning sketches",
	"ratingsd events live heap", "ratingsd tuning live heap"}

// samples returns the samples of series k: x in hours of event time
// retained (from the stream's start), y in bytes.
func (r *RetentionResult) samples(k int) (xs, ys []float64) {
	var ss []MemorySample
	switch k {
	case seriesExact:
		ss = r.Exact.Samples
	case seriesEvents, seriesEventsSketch, seriesEventsHeap:
		ss = r.EventsRun.Samples
	default:
		ss = r.Tuning.Samples
	}
	for _, s := range ss {
		xs = append(xs, s.At.Sub(r.Start).Hours())
		y := float64(s.Bytes)
		switch k {
		case seriesEventsSketch, seriesTuningSketch:
			y = s.SketchBytes
		case seriesEventsHeap, seriesTuningHeap:
			y = s.HeapLive
		}
		ys = append(ys, y)
	}
	return xs, ys
}

// Line is y = Intercept + Slope·x.
type Line struct{ Intercept, Slope float64 }

// At is the line's y at x.
func (l Line) At(x float64) float64 { return l.Intercept + l.Slope*x }

// FitLine returns the least-squares line through the points (xs[i], ys[i]),
// ignoring NaNs. ok is false with fewer than two distinct xs.
func FitLine(xs, ys []float64) (l Line, ok bool) {
	var n, sx, sy float64
	for i := range xs {
		if math.IsNaN(xs[i]) || math.IsNaN(ys[i]) {
			continue
		}
		n++
		sx += xs[i]
		sy += ys[i]
	}
	if n < 2 {
		return Line{}, false
	}
	mx, my := sx/n, sy/n
	var sxx, sxy float64
	for i := range xs {
		if math.IsNaN(xs[i]) || math.IsNaN(ys[i]) {
			continue
		}
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return Line{}, false
	}
	slope := sxy / sxx
	return Line{Intercept: my - slope*mx, Slope: slope}, true
}

// fits returns the least-squares line of every series (bytes against
// hours retained) and whether each could be fitted.
func (r *RetentionResult) fits() (ls [nSeries]Line, ok [nSeries]bool) {
	for k := range nSeries {
		ls[k], ok[k] = FitLine(r.samples(k))
	}
	return ls, ok
}

// runRetention generates the retention stream, encodes it as binary
// batches of 256 events, and measures exact counting and ratingsd (events,
// then tuning model) on it, sampling every cfg.RetentionSample of event
// time. The stream ends 2 minutes before now at cfg.RetentionEnd local
// time (the generator's daily curve follows its zone).
func runRetention(ctx context.Context, env *Env, cfg Config, logf func(string, ...any)) (*RetentionResult, error) {
	t0 := time.Now()
	end := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	start := end.Add(-cfg.RetentionDuration)
	localFrom := cfg.RetentionEnd - cfg.RetentionDuration
	r := &RetentionResult{Devices: cfg.RetentionDevices, Channels: cfg.RetentionChannels, Start: start, Duration: cfg.RetentionDuration,
		LocalFrom: ((localFrom % (24 * time.Hour)) + 24*time.Hour) % (24 * time.Hour),
		// The product's retention, stated rather than defaulted, so that
		// the report shows it: the stream lies well inside both.
		Args: []string{"-minute-retention", "48h", "-retention", "28d"}}
	logf("retention: generating %d devices, %d channels × %s (local %s)", r.Devices, r.Channels, r.Duration, r.window())
	w, err := Generate(ctx, bench.Config{Seed: cfg.Seed, Devices: r.Devices, Channels: r.Channels, Start: start,
		Zone: zoneAt(start, localFrom, "local"), Duration: r.Duration}, 0)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	msgs, err := w.Encode(Encoding{Format: bench.FormatBinary, Batch: 256}, 0)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	r.Events, r.Messages = w.Len(), msgs.Len()
	w = nil
	runtime.GC()
	var sampleAt []int64
	for at := start.Add(cfg.RetentionSample); at.Before(end); at = at.Add(cfg.RetentionSample) {
		sampleAt = append(sampleAt, at.UnixMilli())
	}
	logf("retention: %d events in %d messages of %d B (%.0f MiB), %d samples", r.Events, r.Messages, msgs.MeanSize(), float64(msgs.Bytes)/(1<<20), len(sampleAt)+1)

	if r.Exact, err = runExact(msgs, sampleAt); err != nil {
		return nil, fmt.Errorf("retention: exact counting: %w", err)
	}
	r.Exact.Samples = append(r.Exact.Samples, MemorySample{At: end, Events: r.Exact.Events, Bytes: r.Exact.HeapBytes})
	logf("  exact: %.0f MiB of sets after %s (%d sets, %d entries)", float64(r.Exact.HeapBytes)/(1<<20), r.Duration, r.Exact.Sets, r.Exact.Entries)
	debug.FreeOSMemory() // the sets are garbage now: give the children the room

	// Events in flight span less event time than half the lateness, so
	// that no worker of ratingsd lags another by more than the lateness
	// (with the default 64k, 15 s at 2M devices, about 0.02% of the tuning
	// model's events arrived late).
	r.Window = min(max(int64(float64(r.Events)/r.Duration.Seconds()*cfg.Lateness.Seconds()/2), 4<<10), 64<<10)
	for _, model := range []bench.Model{bench.Events, bench.Tuning} {
		res, err := env.RunRatingsd(ctx, msgs, RatingsdOptions{Model: model, Lateness: cfg.Lateness, Seal: true,
			Timeout: cfg.Timeout, Args: r.Args, SampleAt: sampleAt, Window: r.Window})
		if err != nil {
			return nil, fmt.Errorf("retention, %s model: %w", model, err)
		}
		var wait time.Duration
		for _, s := range res.Samples {
			wait = max(wait, s.Wait)
		}
		res.Samples = append(res.Samples, MemorySample{At: end, Events: res.Events - res.Lost, Bytes: res.RSSSealed, SketchBytes: res.SketchBytes, HeapLive: res.HeapLive})
		logf("  ratingsd %s: %.2fM events/s, RSS %.0f MiB sealed (peak %.0f), sketches %.0f MiB, rejected %v, lost %d; longest wait of a sample %s",
			model, res.EventsPerSec/1e6, float64(res.RSSSealed)/(1<<20), float64(res.PeakRSS)/(1<<20), res.SketchBytes/(1<<20), res.RejectedBy, res.Lost, wait.Round(time.Millisecond))
		if model == bench.Events {
			r.EventsRun = res
		} else {
			r.Tuning = res
		}
	}
	r.Seconds = time.Since(t0).Seconds()
	return r, nil
}

// window is the stream's span in local time, "18:00–21:00".
func (r *RetentionResult) window() string {
	hm := func(d time.Duration) string {
		d = ((d % (24 * time.Hour)) + 24*time.Hour) % (24 * time.Hour)
		return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
	}
	return hm(r.LocalFrom) + "–" + hm(r.LocalFrom+r.Duration)
}

// rejected prints the events a run rejected, with the reasons: "0" or
// "12 (late 12)".
func rejected(res RatingsdResult) string {
	if res.Rejected == 0 {
		return "0"
	}
	var why []string
	for _, k := range slices.Sorted(maps.Keys(res.RejectedBy)) {
		why = append(why, fmt.Sprintf("%s %.0f", k, res.RejectedBy[k]))
	}
	return fmt.Sprintf("%.0f (%s)", res.Rejected, strings.Join(why, ", "))
}

// hoursMinutes prints d as 45m, 2h or 2h15m.
func hoursMinutes(d time.Duration) string {
	d = d.Round(time.Minute)
	switch h, m := int(d/time.Hour), int(d%time.Hour/time.Minute); {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	default:
		return fmt.Sprintf("%dh%02dm", h, m)
	}
}

// mibPerHour prints a slope in bytes per hour as "+12 MiB/h".
func mibPerHour(v float64) string {
	if math.Abs(v) < 10<<20 {
		return fmt.Sprintf("%+.1f MiB/h", v/(1<<20))
	}
	return fmt.Sprintf("%+.0f MiB/h", v/(1<<20))
}

// zoneAt returns a fixed zone named name in which start is at local time
// of day local (so that a run's load follows the generator's daily curve
// at the same hours whenever it is run). Its offset is in (-12h, 12h].
func zoneAt(start time.Time, local time.Duration, name string) *time.Location {
	const day = 24 * time.Hour
	sinceMidnight := start.Sub(start.Truncate(day))
	off := (local - sinceMidnight) % day
	if off > 12*time.Hour {
		off -= day
	} else if off <= -12*time.Hour {
		off += day
	}
	return time.FixedZone(name, int(off/time.Second))
}

// retentionRatios are the figures the reading quotes.
type retentionRatios struct {
	span                        float64 // hours measured
	exact, events, tuning       float64 // bytes at the measured span (last sample)
	atSpan, atSpanTuning        float64 // exact ÷ ratingsd at the measured span
	at48, at48Tuning            float64 // exact ÷ ratingsd at 48 h, extrapolated
	fits                        [nSeries]Line
	ok                          bool // every series fitted
	exact48, events48, tuning48 float64
	heap48, heap48Tuning        float64 // exact ÷ ratingsd's live heap at 48 h, extrapolated
	heapSpan, heapSpanTuning    float64 // exact ÷ ratingsd's live heap at the measured span
}

func (r *RetentionResult) ratios() retentionRatios {
	q := retentionRatios{span: r.Duration.Hours()}
	last := func(ss []MemorySample) float64 {
		if len(ss) == 0 {
			return math.NaN()
		}
		return float64(ss[len(ss)-1].Bytes)
	}
	q.exact, q.events, q.tuning = last(r.Exact.Samples), last(r.EventsRun.Samples), last(r.Tuning.Samples)
	q.atSpan, q.atSpanTuning = q.exact/q.events, q.exact/q.tuning
	fits, ok := r.fits()
	q.fits, q.ok = fits, ok[seriesExact] && ok[seriesEvents] && ok[seriesTuning]
	h := ProductMinuteRetention.Hours()
	q.exact48, q.events48, q.tuning48 = fits[seriesExact].At(h), fits[seriesEvents].At(h), fits[seriesTuning].At(h)
	q.at48, q.at48Tuning = q.exact48/q.events48, q.exact48/q.tuning48
	q.heap48, q.heap48Tuning = q.exact48/fits[seriesEventsHeap].At(h), q.exact48/fits[seriesTuningHeap].At(h)
	lastLive := func(ss []MemorySample) float64 {
		if len(ss) == 0 {
			return math.NaN()
		}
		return ss[len(ss)-1].HeapLive
	}
	q.heapSpan, q.heapSpanTuning = q.exact/lastLive(r.EventsRun.Samples), q.exact/lastLive(r.Tuning.Samples)
	if !q.ok {
		q.at48, q.at48Tuning = math.NaN(), math.NaN()
	}
	return q
}

// retentionReading is the reading's bullet on memory against exact
// counting.
func retentionReading(rep *Report) string {
	r := rep.Retention
	if r == nil {
		return ""
	}
	q := r.ratios()
	f := q.fits
	h := ProductMinuteRetention.Hours()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	span := hoursMinutes(r.Duration)
	w("- **Memory at %d devices vs exact counting, with retention** (one %s stream, %s local event time, %d channels, %d events, every minute kept; table below): ",
		r.Devices, span, r.window(), r.Channels, r.Events)
	w("after %s retained, ratingsd resident %s in the events model (like for like), exact hash sets %s of live heap — exact uses **%.1f×** ratingsd's memory (tuning model: ratingsd %s, %.1f×). ",
		span, mib(q.events), mib(q.exact), q.atSpan, mib(q.tuning), q.atSpanTuning)
	w("Per retained hour (least-squares slope over the samples): exact %s, ratingsd events %s (of which sketches %s), tuning %s. ",
		mibPerHour(f[seriesExact].Slope), mibPerHour(f[seriesEvents].Slope), mibPerHour(f[seriesEventsSketch].Slope), mibPerHour(f[seriesTuning].Slope))
	w("**Extrapolated** to the product's %.0f h of minutes along those lines, exact ÷ ratingsd = (%s + %.0f h × %s) ÷ (%s + %.0f h × %s) = **%.1f×** (tuning model %.1f×). ",
		h, mib(f[seriesExact].Intercept), h, mibPerHour(f[seriesExact].Slope), mib(f[seriesEvents].Intercept), h, mibPerHour(f[seriesEvents].Slope), q.at48, q.at48Tuning)
	w("Target ratingsd ≤ 1/5 of exact: at %s measured %s; at %.0f h extrapolated %s. ", span, metNot(q.atSpan >= 5), h, metNot(q.at48 >= 5))
	w("Heap against heap instead (ratingsd's live heap, `go_gc_heap_live_bytes`, without the collector's headroom and the runtime's other memory, against the sets' live heap): at %s measured %.1f× (tuning model %.1f×), at %.0f h extrapolated %.1f× (tuning model %.1f×). ", span, q.heapSpan, q.heapSpanTuning, h, q.heap48, q.heap48Tuning)
	w("ratingsd's figure is its whole process (Go runtime, tuning table, sealed and open minutes, hourly rollups and reach tier), exact counting's only its sets' heap; the tuning model's exact counterpart would also need the per-device tuning state ratingsd keeps, so only the events-model ratio is like for like. ")
	w("The slopes are measured in the evening (%s), when more boxes are on than on the day's average: other hours add less to both — to the hash sets in proportion to the devices counted, to the sketches less than in proportion (a dense sketch has a fixed size) — so the extrapolation probably favours ratingsd; a whole day is not measured.\n", r.window())
	return b.String()
}

// retentionMarkdown is the retention scenario's section.
func retentionMarkdown(rep *Report, ref string) string {
	r := rep.Retention
	if r == nil {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	q := r.ratios()
	w("### Memory with retention, vs exact counting\n\n")
	w("One stream of %d devices, %d channels, %s of event time (%s in the generator's local time, ending 2 minutes before the run; %d events in %d binary-256 messages), replayed once into each system (at most %d events in flight, so that ratingsd's workers stay within the lateness of each other): ", r.Devices, r.Channels, hoursMinutes(r.Duration), r.window(), r.Events, r.Messages, r.Window)
	w("exact counting (events model, one hash set per (channel, minute), in the harness), then ratingsd in the events and the tuning model (`%s`, the product's retention, which keeps the whole stream). ", strings.Join(r.Args, " "))
	w("Every %s of event time the publisher waits until ratingsd has counted every event published, then reads its VmRSS and `ratings_sketch_memory_bytes` (sealed minutes, hourly rollups and reach tier, open hours) once at most two minutes are open (the %s lateness); exact counting is sampled at the same points, as the sets' live heap after a GC. ", hoursMinutes(rep.Config.RetentionSample), rep.Config.Lateness)
	w("The last row is after every minute is sealed. One run (`%s`), %s in all.\n\n", rep.Command, (time.Duration(r.Seconds) * time.Second).Round(time.Second))
	w("| event time retained | events | exact sets heap | ratingsd events RSS | sketches | ratingsd tuning RSS | sketches | exact ÷ ratingsd events | exact ÷ ratingsd tuning |\n|---|---|---|---|---|---|---|---|---|\n")
	n := min(len(r.Exact.Samples), len(r.EventsRun.Samples), len(r.Tuning.Samples))
	for i := range n {
		x, e, t := r.Exact.Samples[i], r.EventsRun.Samples[i], r.Tuning.Samples[i]
		span := hoursMinutes(x.At.Sub(r.Start))
		if i == n-1 {
			span += ", all sealed"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %.1f× | %.1f× |\n", span, kEvents(float64(e.Events)), mib(float64(x.Bytes)),
			mib(float64(e.Bytes)), mib(e.SketchBytes), mib(float64(t.Bytes)), mib(t.SketchBytes),
			float64(x.Bytes)/float64(e.Bytes), float64(x.Bytes)/float64(t.Bytes))
	}
	f := q.fits
	w("| slope per hour (least squares) | | %s | %s | %s | %s | %s | | |\n", mibPerHour(f[seriesExact].Slope), mibPerHour(f[seriesEvents].Slope), mibPerHour(f[seriesEventsSketch].Slope), mibPerHour(f[seriesTuning].Slope), mibPerHour(f[seriesTuningSketch].Slope))
	w("| intercept (0 h) | | %s | %s | %s | %s | %s | | |\n", mib(f[seriesExact].Intercept), mib(f[seriesEvents].Intercept), mib(f[seriesEventsSketch].Intercept), mib(f[seriesTuning].Intercept), mib(f[seriesTuningSketch].Intercept))
	h := ProductMinuteRetention.Hours()
	w("| **%.0f h, extrapolated** (intercept + %.0f × slope) | | %s | %s | %s | %s | %s | **%.1f×** | **%.1f×** |\n\n", h, h,
		mib(q.exact48), mib(q.events48), mib(f[seriesEventsSketch].At(h)), mib(q.tuning48), mib(f[seriesTuningSketch].At(h)), q.at48, q.at48Tuning)
	w("The %.0f h row is not measured: it extends the fitted lines of the %s actually streamed, assuming every further hour costs what the measured ones did (they are evening hours). ", h, hoursMinutes(r.Duration))
	w("Where ratingsd's resident memory grows, per retained hour: events model RSS %s, of which Go heap live at the last GC %s (`go_gc_heap_live_bytes`), of which sketches %s; tuning model RSS %s, live heap %s, sketches %s. The rest of the RSS is the collector's headroom (GOGC percent of the live heap: ratingsd ran at %.0f) and memory not yet returned to the OS. ",
		mibPerHour(f[seriesEvents].Slope), mibPerHour(f[seriesEventsHeap].Slope), mibPerHour(f[seriesEventsSketch].Slope),
		mibPerHour(f[seriesTuning].Slope), mibPerHour(f[seriesTuningHeap].Slope), mibPerHour(f[seriesTuningSketch].Slope), r.EventsRun.GOGC)
	w("ratingsd: %.2fM events/s in the events model and %.2fM in the tuning model, rejected %s / %s, lost %d / %d; peak RSS %s / %s. Exact counting: %d sets, %d entries.\n\n",
		r.EventsRun.EventsPerSec/1e6, r.Tuning.EventsPerSec/1e6, rejected(r.EventsRun), rejected(r.Tuning), r.EventsRun.Lost, r.Tuning.Lost,
		mib(float64(r.EventsRun.PeakRSS)), mib(float64(r.Tuning.PeakRSS)), r.Exact.Sets, r.Exact.Entries)
	w("![memory as retained event time grows](%sretention.png)\n\n", ref)
	return b.String()
}

// retentionChart draws the samples of every series against hours retained.
func retentionChart(rep *Report, dir string) error {
	r := rep.Retention
	var ls []line
	for k := range seriesEventsHeap {
		xs, ys := r.samples(k)
		l := line{name: seriesNames[k]}
		for i := range xs {
			l.xs = append(l.xs, xs[i])
			l.reps = append(l.reps, []float64{ys[i] / (1 << 20)})
		}
		ls = append(ls, l)
	}
	title := fmt.Sprintf("memory (MiB) as retained event time grows, %d devices, %d channels, %s local\n", r.Devices, r.Channels, r.window()) + captionOf(rep, 1)
	return lineChartScale(filepath.Join(dir, "retention.png"), title, "event time retained (h)", "MiB", false, ls)
}

// retentionCheck lists what the retention scenario failed to produce.
func retentionCheck(r *RetentionResult) []string {
	if r == nil {
		return []string{"retention: no result"}
	}
	var p []string
	for k := range seriesEventsHeap { // the heap goal is a diagnosis, not a figure
		xs, ys := r.samples(k)
		if len(xs) < 2 {
			p = append(p, fmt.Sprintf("retention: %s: %d samples, want at least 2", seriesNames[k], len(xs)))
			continue
		}
		for i := range ys {
			if !(ys[i] > 0) {
				p = append(p, fmt.Sprintf("retention: %s: sample %d at %.2f h is %v", seriesNames[k], i+1, xs[i], ys[i]))
			}
		}
	}
	for _, x := range []struct {
		name string
		res  RatingsdResult
	}{{"events", r.EventsRun}, {"tuning", r.Tuning}} {
		if x.res.Lost > 0 {
			p = append(p, fmt.Sprintf("retention: ratingsd %s model: %d events lost", x.name, x.res.Lost))
		}
	}
	if q := r.ratios(); !q.ok || !(q.atSpan > 0) || !(q.at48 > 0) || math.IsInf(q.at48, 0) {
		p = append(p, fmt.Sprintf("retention: no ratio (measured %v, extrapolated to 48 h %v)", q.atSpan, q.at48))
	}
	return p
}
