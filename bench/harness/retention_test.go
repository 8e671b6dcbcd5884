package harness

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestFitLine(t *testing.T) {
	f := func(xs, ys []float64, want Line, wantOK bool) {
		t.Helper()
		got, ok := FitLine(xs, ys)
		if ok != wantOK || math.Abs(got.Intercept-want.Intercept) > 1e-9 || math.Abs(got.Slope-want.Slope) > 1e-9 {
			t.Errorf("FitLine(%v, %v) = %+v, %v; want %+v, %v", xs, ys, got, ok, want, wantOK)
		}
	}
	f([]float64{0, 1, 2}, []float64{1, 3, 5}, Line{1, 2}, true)
	f([]float64{1, 2}, []float64{10, 10}, Line{10, 0}, true)
	// Least squares through (0,0), (1,2), (2,1): slope 0.5, intercept 0.5.
	f([]float64{0, 1, 2}, []float64{0, 2, 1}, Line{0.5, 0.5}, true)
	f([]float64{0, 1, math.NaN(), 2}, []float64{1, 3, 100, 5}, Line{1, 2}, true)
	f([]float64{0, 1, 2}, []float64{1, math.NaN(), 5}, Line{1, 2}, true)
	f([]float64{3}, []float64{1}, Line{}, false)
	f([]float64{2, 2, 2}, []float64{1, 2, 3}, Line{}, false)
	f(nil, nil, Line{}, false)
	if got := (Line{Intercept: 100, Slope: 10}).At(48); got != 580 {
		t.Errorf("Line{100, 10}.At(48) = %v, want 580", got)
	}
}

func TestZoneAt(t *testing.T) {
	for _, start := range []time.Time{
		time.Date(2026, 11, 27, 5, 13, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
	} {
		for _, local := range []time.Duration{0, 18 * time.Hour, 20*time.Hour + 40*time.Minute, -3 * time.Hour} {
			got := start.In(zoneAt(start, local, "local"))
			want := (local%(24*time.Hour) + 24*time.Hour) % (24 * time.Hour)
			if sinceMidnight := time.Duration(got.Hour())*time.Hour + time.Duration(got.Minute())*time.Minute; sinceMidnight != want {
				t.Errorf("%s in zoneAt(%s) is %s local, want %s", start.Format(time.TimeOnly), local, got.Format(time.TimeOnly), want)
			}
			if _, off := got.Zone(); off > 12*3600 || off <= -12*3600 {
				t.Errorf("zoneAt(%s, %s): offset %ds is outside (-12h, 12h]", start.Format(time.TimeOnly), local, off)
			}
		}
	}
}

func TestHoursMinutes(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := hoursMinutes(d); got != want {
			t.Errorf("hoursMinutes(%s) = %q, want %q", d, got, want)
		}
	}
	f(15*time.Minute, "15m")
	f(time.Hour, "1h")
	f(2*time.Hour+15*time.Minute, "2h15m")
	f(3*time.Hour+5*time.Minute, "3h05m")
	f(0, "0m")
}

// retentionFixture is a retention result whose memory grows on exact
// lines: exact 10 + 100·h MiB, ratingsd events 200 + 10·h, tuning
// 400 + 12·h, sketches 1·h and 2·h, live heaps 50 + 5·h and 100 + 8·h,
// sampled every 30 min over 3 h.
func retentionFixture() *RetentionResult {
	start := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	r := &RetentionResult{Devices: 2_000_000, Channels: 300, Start: start, Duration: 3 * time.Hour, LocalFrom: 18 * time.Hour,
		Events: 50_000_000, Messages: 200_000, Args: []string{"-minute-retention", "48h"}}
	const mb = 1 << 20
	for i := 1; i <= 6; i++ {
		h := float64(i) / 2
		at := start.Add(time.Duration(i) * 30 * time.Minute)
		ev := int64(i) * 8_000_000
		r.Exact.Samples = append(r.Exact.Samples, MemorySample{At: at, Events: ev, Bytes: int64((10 + 100*h) * mb)})
		r.EventsRun.Samples = append(r.EventsRun.Samples, MemorySample{At: at, Events: ev, Bytes: int64((200 + 10*h) * mb), SketchBytes: h * mb, HeapLive: (50 + 5*h) * mb})
		r.Tuning.Samples = append(r.Tuning.Samples, MemorySample{At: at, Events: ev, Bytes: int64((400 + 12*h) * mb), SketchBytes: 2 * h * mb, HeapLive: (100 + 8*h) * mb})
	}
	return r
}

// TestRetentionRatios: the ratio at the measured span is that of the last
// samples, the 48 h one that of the fitted lines at 48 h, and the report
// shows both and labels the second as extrapolated.
func TestRetentionRatios(t *testing.T) {
	r := retentionFixture()
	r.Tuning.Rejected, r.Tuning.RejectedBy = 12, map[string]float64{"late": 12}
	q := r.ratios()
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("ratio at 3 h", q.atSpan, 310.0/230)
	near("tuning ratio at 3 h", q.atSpanTuning, 310.0/436)
	near("ratio at 48 h", q.at48, (10+100*48.0)/(200+10*48.0))
	near("tuning ratio at 48 h", q.at48Tuning, (10+100*48.0)/(400+12*48.0))
	near("heap ratio at 48 h", q.heap48, (10+100*48.0)/(50+5*48.0))
	near("tuning heap ratio at 48 h", q.heap48Tuning, (10+100*48.0)/(100+8*48.0))
	near("exact slope", q.fits[seriesExact].Slope, 100<<20)
	near("sketch slope", q.fits[seriesTuningSketch].Slope, 2<<20)
	if !q.ok {
		t.Error("ratios: fits not ok")
	}
	if p := retentionCheck(r); len(p) > 0 {
		t.Errorf("retentionCheck of a complete result: %q", p)
	}

	rep := &Report{Config: Config{Only: "retention", Lateness: 10 * time.Second, RetentionSample: 30 * time.Minute}, Command: "test", Retention: r}
	md := Markdown(rep, "img/")
	for _, want := range []string{
		"**Extrapolated** to the product's 48 h",
		"(10 MiB + 48 h × +100 MiB/h) ÷ (200 MiB + 48 h × +10 MiB/h) = **7.1×**",
		"at 3h measured **not met**; at 48 h extrapolated **met**",
		"at 48 h extrapolated 16.6× (tuning model 9.9×)",
		"of which Go heap live at the last GC +5.0 MiB/h",
		"rejected 0 / 12 (late 12)",
		"| 30m | 8.00M | 60 MiB | 205 MiB |",
		"| 3h, all sealed |",
		"| **48 h, extrapolated** (intercept + 48 × slope) | | 4810 MiB | 680 MiB |",
		"18:00–21:00",
		"img/retention.png",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for _, absent := range []string{"### Scale", "### End to end", "Per-event CPU"} {
		if strings.Contains(md, absent) {
			t.Errorf("markdown of a retention-only run holds %q", absent)
		}
	}
	if p := Check(rep); len(p) > 0 {
		t.Errorf("Check of a retention-only run: %q", p)
	}
}

// TestRetentionCheck: a missing scenario, missing samples, zero sketch
// memory or lost events are each reported.
func TestRetentionCheck(t *testing.T) {
	f := func(name string, change func(r *RetentionResult), want string) {
		t.Helper()
		r := retentionFixture()
		change(r)
		if p := strings.Join(retentionCheck(r), "\n"); !strings.Contains(p, want) {
			t.Errorf("%s: retentionCheck = %q, want a problem containing %q", name, p, want)
		}
	}
	f("one exact sample", func(r *RetentionResult) { r.Exact.Samples = r.Exact.Samples[:1] }, "exact sets (heap): 1 samples")
	f("no sketch memory", func(r *RetentionResult) { r.Tuning.Samples[2].SketchBytes = 0 }, "ratingsd tuning sketches: sample 3")
	f("lost events", func(r *RetentionResult) { r.EventsRun.Lost = 7 }, "events model: 7 events lost")
	f("no samples", func(r *RetentionResult) { r.EventsRun.Samples = nil }, "no ratio")
	if p := retentionCheck(nil); len(p) != 1 {
		t.Errorf("retentionCheck(nil) = %q, want one problem", p)
	}
	rep := &Report{Config: Config{Only: "retention"}}
	if p := strings.Join(Check(rep), "\n"); !strings.Contains(p, "retention: no result") || strings.Contains(p, "scale") {
		t.Errorf("Check of a retention-only run without result = %q, want only the retention problem", p)
	}
}
