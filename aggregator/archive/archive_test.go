package archive

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock       { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)        { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time         { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration)    { c.ns.Add(int64(d)) }
func exactEst(n uint64) sketch.Estimate { return sketch.Estimate{Value: n, Low: n, High: n} }

// sealed returns a sealed minute with the given channel audiences (name,
// count, name, count, ...), its total their sum.
func sealed(start time.Time, kv ...any) *aggregator.Minute {
	m := &aggregator.Minute{Start: start}
	var total uint64
	for i := 0; i < len(kv); i += 2 {
		n := uint64(kv[i+1].(int))
		m.Channels = append(m.Channels, aggregator.ChannelMinute{Channel: kv[i].(string), Audience: exactEst(n)})
		total += n
	}
	m.Total = exactEst(total)
	return m
}

// logBuffer collects the archive's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *logBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func openArchive(t testing.TB, dir string, c *clock, logs *logBuffer) *Archive {
	t.Helper()
	cfg := Config{Now: c.now, NoSync: true}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	a, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func collect(t testing.TB, a *Archive, from, to time.Time) []Minute {
	t.Helper()
	var out []Minute
	if err := a.Range(from, to, func(m *Minute) error { out = append(out, *m); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func files(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var day0 = time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC)

func TestAppendRange(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0.Add(36 * time.Hour))
	a := openArchive(t, dir, c, nil)
	in := []*aggregator.Minute{
		sealed(day0.Add(20*time.Hour), "npo1", 10, "rtl4", 3),
		sealed(day0.Add(20*time.Hour+time.Minute), "npo1", 12),
		sealed(day0.Add(23*time.Hour+59*time.Minute), "npo2", 7, "npo1", 1),
		sealed(day0.Add(24*time.Hour), "npo1", 4),
	}
	in[0].SetCells([]aggregator.Cell{{Channel: "npo1", Region: "ams-03", Audience: exactEst(10)}, {Channel: "rtl4", Region: "", Audience: exactEst(3)}})
	in[0].Zaps = []aggregator.RegionCount{{Region: "ams-03", Count: 5}}
	in[0].SetFlows([]aggregator.Flow{{From: "npo1", To: "rtl4", Devices: 2}})
	for _, m := range in {
		if err := a.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	// The first day was compacted when the second began.
	if got, want := files(t, dir), []string{"2025-11-27.rtca", "2025-11-28.rtcl"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	got := collect(t, a, day0, day0.Add(48*time.Hour))
	if len(got) != len(in) {
		t.Fatalf("%d minutes, want %d", len(got), len(in))
	}
	for i, m := range got {
		if want := FromSealed(in[i]); !reflect.DeepEqual(m, want) {
			t.Errorf("minute %d: got %+v, want %+v", i, m, want)
		}
	}
	if got[2].Channels[0].Name != "npo1" {
		t.Errorf("channels are not by name: %+v", got[2].Channels)
	}
	if n := len(collect(t, a, day0.Add(20*time.Hour+30*time.Second), day0.Add(23*time.Hour+59*time.Minute))); n != 1 {
		t.Errorf("[20:00:30, 23:59) holds %d minutes, want 1 (20:01)", n)
	}
	stop := errors.New("stop")
	calls := 0
	if err := a.Range(day0, day0.Add(48*time.Hour), func(*Minute) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Range returned %v after %d calls, want the callback's error after 1", err, calls)
	}
	if s := a.Stats(); s.Appended != 4 || s.Compactions != 1 || s.TornRecords != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestReplayLastWins: a minute appended again, in its log or after its day
// was compacted, replaces the first; nothing is duplicated, across reopens.
func TestReplayLastWins(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0.Add(48 * time.Hour))
	a := openArchive(t, dir, c, nil)
	m := day0.Add(23*time.Hour + 58*time.Minute)
	steps := []struct {
		name string
		min  *aggregator.Minute
	}{
		{"first", sealed(m, "npo1", 10)},
		{"replayed in the log", sealed(m, "npo1", 11)},
		{"next minute", sealed(m.Add(time.Minute), "npo1", 20)},
		{"next day compacts", sealed(m.Add(2*time.Minute), "npo1", 30)},
		{"replayed after compaction", sealed(m, "npo1", 12, "npo2", 1)},
		{"replayed again", sealed(m.Add(time.Minute), "npo1", 21)},
	}
	for _, s := range steps {
		if err := a.Append(s.min); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	check := func(when string, a *Archive) {
		t.Helper()
		got := collect(t, a, day0, day0.Add(48*time.Hour))
		var summary []string
		for _, m := range got {
			summary = append(summary, fmt.Sprintf("%s %v", m.Start.Format("15:04"), m.Channels))
		}
		want := []string{"23:58 [{npo1 12} {npo2 1}]", "23:59 [{npo1 21}]", "00:00 [{npo1 30}]"}
		if !reflect.DeepEqual(summary, want) {
			t.Errorf("%s: got %q, want %q", when, summary, want)
		}
	}
	check("with an overlay log", a)
	if got := files(t, dir); !reflect.DeepEqual(got, []string{"2025-11-27.rtca", "2025-11-27.rtcl", "2025-11-28.rtcl"}) {
		t.Errorf("files %v, want the day file, its overlay log and the new day's log", got)
	}
	// The next minute of the new day folds the overlay into the day file.
	if err := a.Append(sealed(m.Add(3*time.Minute), "npo1", 31)); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir); !reflect.DeepEqual(got, []string{"2025-11-27.rtca", "2025-11-28.rtcl"}) {
		t.Errorf("files %v after recompaction", got)
	}
	a.Close()
	b := openArchive(t, dir, c, nil)
	got := collect(t, b, day0, day0.Add(48*time.Hour))
	if len(got) != 4 || got[0].Channels[0].N != 12 || got[1].Channels[0].N != 21 {
		t.Errorf("after reopening: %+v", got)
	}
}

// TestTornTail: a crash in the middle of a record leaves a torn tail; Open
// cuts it off, says so in the log and the stats, and appends go on.
func TestTornTail(t *testing.T) {
	c := newClock(day0.Add(22 * time.Hour))
	for _, tc := range []struct {
		name     string
		damage   func(b []byte) []byte
		kept     int
		wantLog  string
		wantFile bool
	}{
		{"half a record", func(b []byte) []byte { return b[:len(b)-7] }, 2, "cut a torn or damaged record", true},
		{"half a record header", func(b []byte) []byte { return append(b, 0, 0) }, 3, "counts file truncated: 2 of its 8 header bytes", true},
		{"a flipped byte in the last record", func(b []byte) []byte { b[len(b)-2] ^= 1; return b }, 2, "checksum mismatch", true},
		{"garbage appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0xee}, 40)...) }, 3, "bytes_dropped=40", true},
		{"a torn header", func(b []byte) []byte { return b[:9] }, 0, "removed a day log with a torn or damaged header", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := openArchive(t, dir, c, nil)
			for i := range 3 {
				if err := a.Append(sealed(day0.Add(20*time.Hour+time.Duration(i)*time.Minute), "npo1", 100+i)); err != nil {
					t.Fatal(err)
				}
			}
			a.Close()
			path := filepath.Join(dir, "2025-11-27.rtcl")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			var logs logBuffer
			a = openArchive(t, dir, c, &logs)
			if s := a.Stats(); s.TornRecords != 1 || s.DroppedBytes == 0 {
				t.Errorf("stats %+v, want one torn record", s)
			}
			if !strings.Contains(logs.String(), tc.wantLog) || !strings.Contains(logs.String(), "2025-11-27.rtcl") {
				t.Errorf("log %q, want it to name the file and say %q", logs.String(), tc.wantLog)
			}
			if _, err := os.Stat(path); (err == nil) != tc.wantFile {
				t.Errorf("log file exists: %v, want %v", err == nil, tc.wantFile)
			}
			if got := collect(t, a, day0, day0.Add(24*time.Hour)); len(got) != tc.kept {
				t.Fatalf("%d minutes kept, want %d", len(got), tc.kept)
			}
			// Appending goes on after the cut, and everything reads back.
			if err := a.Append(sealed(day0.Add(21*time.Hour), "npo1", 7)); err != nil {
				t.Fatal(err)
			}
			got := collect(t, a, day0, day0.Add(24*time.Hour))
			if len(got) != tc.kept+1 || got[len(got)-1].Channels[0].N != 7 {
				t.Errorf("after an append: %+v", got)
			}
			a.Close()
			if a := openArchive(t, dir, c, nil); a.Stats().TornRecords != 0 {
				t.Errorf("the repaired log is torn again")
			}
		})
	}
}

// TestDamagedDayFile: a damaged day file fails Range with an error naming
// it, after the days before it; Open and Append are unaffected.
func TestDamagedDayFile(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0.Add(72 * time.Hour))
	a := openArchive(t, dir, c, nil)
	for d := range 3 {
		if err := a.Append(sealed(day0.Add(time.Duration(d)*24*time.Hour), "npo1", 10+d)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	path := filepath.Join(dir, "2025-11-28.rtca")
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 0xff
	os.WriteFile(path, b, 0o600)

	var logs logBuffer
	a = openArchive(t, dir, c, &logs)
	var seen int
	err := a.Range(day0, day0.Add(72*time.Hour), func(*Minute) error { seen++; return nil })
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "2025-11-28.rtca") || seen != 1 {
		t.Errorf("Range: %v after %d minutes; want a checksum error naming the file after 1", err, seen)
	}
	if !strings.Contains(logs.String(), "2025-11-28") {
		t.Errorf("the damage is not logged: %q", logs.String())
	}
	if err := a.Append(sealed(day0.Add(48*time.Hour+time.Minute), "npo1", 1)); err != nil {
		t.Errorf("Append: %v", err)
	}
}

// TestRetention: files of days that ended before now - Retention go, and
// Range never returns a minute older than that.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0)
	a, err := Open(dir, Config{Now: c.now, NoSync: true, Retention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for d := range 4 {
		c.set(day0.Add(time.Duration(d)*24*time.Hour + 12*time.Hour))
		for _, h := range []int{0, 12} {
			if err := a.Append(sealed(day0.Add(time.Duration(d*24+h)*time.Hour), "npo1", d*100+h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Now: day 3, 12:00. The horizon is day 1, 12:00: day 0 is gone, day
	// 1's file stays, its 00:00 minute is hidden.
	if got, want := files(t, dir), []string{"2025-11-28.rtca", "2025-11-29.rtca", "2025-11-30.rtcl"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	got := collect(t, a, time.Unix(0, 0), day0.Add(100*time.Hour))
	if len(got) != 5 || !got[0].Start.Equal(day0.Add(36*time.Hour)) {
		t.Errorf("got %d minutes from %v, want 5 from day 1 12:00", len(got), got[0].Start)
	}
	if want := day0.Add(36 * time.Hour); !a.Oldest().Equal(want) {
		t.Errorf("Oldest %s, want %s", a.Oldest(), want)
	}
	c.add(30 * time.Second) // the 12:00 minute ends after the horizon still
	if want := day0.Add(36 * time.Hour); !a.Oldest().Equal(want) {
		t.Errorf("Oldest %s half a minute later, want %s", a.Oldest(), want)
	}
	c.add(30 * time.Second)
	if want := day0.Add(36*time.Hour + time.Minute); !a.Oldest().Equal(want) {
		t.Errorf("Oldest %s a minute later, want %s", a.Oldest(), want)
	}
	// A minute older than the retention is not kept.
	if err := a.Append(sealed(day0.Add(time.Hour), "npo1", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "2025-11-27.rtcl")); err == nil {
		t.Errorf("a minute beyond the retention was written")
	}
	// Two days later, prune takes day 1 and day 2.
	c.add(48 * time.Hour)
	a.Prune()
	if got, want := files(t, dir), []string{"2025-11-30.rtcl"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if s := a.Stats(); s.PrunedFiles != 3 {
		t.Errorf("pruned %d files, want 3", s.PrunedFiles)
	}
}

func TestAppendRefuses(t *testing.T) {
	a := openArchive(t, t.TempDir(), newClock(day0), nil)
	f := func(m *aggregator.Minute, want string) {
		t.Helper()
		err := a.Append(m)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	f(sealed(day0.Add(time.Second), "npo1", 1), "is not a whole UTC minute")
	f(sealed(day0, "npo 1", 1), `channel "npo 1" is not`)
	f(sealed(day0, "npo1", 1, "npo1", 2), `channel "npo1" is out of order or repeated`)
	f(&aggregator.Minute{Start: day0, Total: exactEst(1 << 62)}, "total 4611686018427387904 is beyond")
	a.Close()
	if err := a.Append(sealed(day0, "npo1", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if got := files(t, a.dir); len(got) != 0 {
		t.Errorf("refused minutes left files %v", got)
	}
}

// TestConcurrentRange: reads during appends and compactions see whole
// minutes only.
func TestConcurrentRange(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir, newClock(day0.Add(100*time.Hour)), nil)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range 3 * minutesPerDay / 10 {
			if err := a.Append(sealed(day0.Add(time.Duration(i*10)*time.Minute), "npo1", i, "npo2", 1)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				prev := time.Time{}
				err := a.Range(day0, day0.Add(72*time.Hour), func(m *Minute) error {
					if !m.Start.After(prev) || len(m.Channels) != 2 || m.Total != m.Channels[0].N+1 {
						return fmt.Errorf("bad minute %+v after %s", m, prev)
					}
					prev = m.Start
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := len(collect(t, a, day0, day0.Add(72*time.Hour))); got != 3*minutesPerDay/10 {
		t.Errorf("%d minutes, want %d", got, 3*minutesPerDay/10)
	}
}

// TestFromAggregator: the minutes a real aggregator seals are archived as
// they are, through OnSeal.
func TestFromAggregator(t *testing.T) {
	c := newClock(day0.Add(20 * time.Hour))
	a := openArchive(t, t.TempDir(), c, nil)
	key, err := sketch.KeyFromBytes([]byte("archive-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	var sealedMins []*aggregator.Minute
	agg, err := aggregator.New(aggregator.Config{Key: key, Now: c.now, OnSeal: func(m *aggregator.Minute) {
		sealedMins = append(sealedMins, m)
		if err := a.Append(m); err != nil {
			t.Error(err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := agg.NewWriter()
	start := day0.Add(20 * time.Hour)
	rng := rand.New(rand.NewPCG(7, 7))
	channels := []string{"npo1", "npo2", "rtl4", "sbs6"}
	var evs []event.Event
	for dev := range 300 {
		for k := range 3 {
			evs = append(evs, event.Event{
				Device:  []byte(fmt.Sprintf("stb-%04d", dev)),
				Channel: []byte(channels[rng.IntN(len(channels))]),
				Region:  []byte(fmt.Sprintf("r%d", dev%3)),
				TS:      start.Add(time.Duration(k)*time.Minute + time.Duration(rng.IntN(50))*time.Second).UnixMilli(),
			})
		}
	}
	w.Write(evs, nil)
	c.set(start.Add(10 * time.Minute))
	agg.SealThrough(start.Add(4 * time.Minute).UnixMilli())
	if len(sealedMins) < 3 {
		t.Fatalf("%d minutes sealed", len(sealedMins))
	}
	got := collect(t, a, day0, day0.Add(24*time.Hour))
	if len(got) != len(sealedMins) {
		t.Fatalf("%d minutes archived, %d sealed", len(got), len(sealedMins))
	}
	for i, m := range got {
		s := sealedMins[i]
		if !m.Start.Equal(s.Start) || m.Total != s.Total.Value || len(m.Channels) != len(s.Channels) || len(m.Cells) != s.NumCells() || len(m.Zaps) != len(s.Zaps) {
			t.Fatalf("minute %s: archived %+v, sealed %+v", s.Start, m, *s)
		}
		var sum uint64
		for _, ch := range m.Channels {
			cm, _ := s.Channel(ch.Name)
			if ch.N != cm.Audience.Value {
				t.Errorf("minute %s channel %s: %d, sealed %d", s.Start, ch.Name, ch.N, cm.Audience.Value)
			}
			sum += ch.N
		}
		if sum != m.Total {
			t.Errorf("minute %s: channels add up to %d, total %d (tuning model)", s.Start, sum, m.Total)
		}
	}
}

// realisticDay returns a day of sealed minutes of channels channels: a
// Zipf-like popularity over 2M boxes, a daily curve with a prime-time peak,
// and Poisson-sized changes from minute to minute.
func realisticDay(day time.Time, channels int, seed uint64) []*aggregator.Minute {
	rng := rand.New(rand.NewPCG(seed, seed))
	names := make([]string, channels)
	base := make([]float64, channels)
	for i := range names {
		names[i] = fmt.Sprintf("channel-%03d", i)
		base[i] = 2e6 * 0.4 / (float64(i+1) * 7.5) // 1/rank, summing to ~40% of 2M at the peak
	}
	out := make([]*aggregator.Minute, 0, minutesPerDay)
	for mod := range minutesPerDay {
		h := float64(mod) / 60
		curve := 0.05 + 0.95*math.Exp(-math.Pow((h-21)/2.5, 2)) + 0.15*math.Exp(-math.Pow((h-8)/1.5, 2))
		m := &aggregator.Minute{Start: day.Add(time.Duration(mod) * time.Minute)}
		var total uint64
		for i, name := range names {
			mean := base[i] * curve
			v := mean + rng.NormFloat64()*math.Sqrt(mean) // Poisson, by its normal approximation
			if v < 0.5 {
				continue
			}
			n := uint64(v + 0.5)
			m.Channels = append(m.Channels, aggregator.ChannelMinute{Channel: name, Audience: exactEst(n)})
			total += n
		}
		m.Total = exactEst(total)
		out = append(out, m)
	}
	return out
}

// TestDaySize: a day of 500 channels takes well under 2 MiB compacted. The
// size is the figure docs/wire-format.md quotes.
func TestDaySize(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir, newClock(day0.Add(50*time.Hour)), nil)
	entries := 0
	for _, m := range realisticDay(day0, 500, 1) {
		entries += len(m.Channels)
		if err := a.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	logInfo, err := os.Stat(filepath.Join(dir, "2025-11-27.rtcl"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Append(sealed(day0.Add(24*time.Hour), "npo1", 1)); err != nil { // compacts the day
		t.Fatal(err)
	}
	took := time.Since(start)
	dayInfo, err := os.Stat(filepath.Join(dir, "2025-11-27.rtca"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("500 channels x 1440 minutes (%d counts): log %d bytes, day file %d bytes (%.2f bytes per count; %.0f MiB per 400 days); compaction took %s",
		entries, logInfo.Size(), dayInfo.Size(), float64(dayInfo.Size())/float64(entries), float64(dayInfo.Size())*400/(1<<20), took)
	if dayInfo.Size() > 2<<20 {
		t.Errorf("day file %d bytes, want under 2 MiB", dayInfo.Size())
	}
	if dayInfo.Size() > logInfo.Size()/2 {
		t.Errorf("day file %d bytes is not half the log's %d", dayInfo.Size(), logInfo.Size())
	}
}
