package bench

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// generate runs cfg to its end and returns deep copies of its events and
// its truth (after a round trip through the truth file format).
func generate(t testing.TB, cfg Config) ([]event.Event, *Truth) {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var all []event.Event
	var batch []event.Event
	for g.Next(context.Background(), &batch) {
		for _, e := range batch {
			e.Device = bytes.Clone(e.Device)
			all = append(all, e) // channel and region names are the Generator's constants
		}
	}
	tr := g.Truth()
	if tr == nil {
		return all, nil
	}
	var buf bytes.Buffer
	if _, err := tr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTruth(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return all, back
}

// brute is docs/semantics.md applied literally to a list of events, as a
// person would with pencil and paper: each box's whole history, its
// segments, then every (minute, box) pair. It shares no code with the
// truth builder.
type brute struct {
	first     int64 // Unix ms of the first minute
	minutes   int
	audience  [2]map[[2]int64]int  // {minute, channel} → boxes
	total     [2]map[int64]int     // minute → boxes
	cells     [2]map[[3]string]int // {minute, channel, region} → boxes
	zaps      map[[2]string]int    // {minute, region} → tune events
	flows     map[[3]string]int    // {minute, from, to}
	credited  map[string]map[int64]string
	seenOn    map[string]map[int64][]string
	expiries  int
	shortSegs int
}

func minuteKey(ts int64) int64 { return ts - ((ts%60000)+60000)%60000 }

func bruteForce(evs []event.Event, minDwell, inact time.Duration, first int64, minutes int) *brute {
	dwell, idle := minDwell.Milliseconds(), inact.Milliseconds()
	b := &brute{
		first: first, minutes: minutes,
		audience: [2]map[[2]int64]int{{}, {}}, total: [2]map[int64]int{{}, {}},
		cells: [2]map[[3]string]int{{}, {}}, zaps: map[[2]string]int{}, flows: map[[3]string]int{},
		credited: map[string]map[int64]string{}, seenOn: map[string]map[int64][]string{},
	}
	inRun := func(m int64) bool { return m >= first && m < first+int64(minutes)*60000 }
	minuteName := func(m int64) string { return time.UnixMilli(m).UTC().Format(time.RFC3339) }

	type seg struct {
		ch   string
		s, e int64
	}
	type change struct {
		state string // "" = off
		at    int64
	}
	byDevice := map[string][]event.Event{}
	var order []string
	events := map[[2]string]map[string]bool{} // {minute, channel} → devices (events model)
	eventTotal := map[int64]map[string]bool{}
	for _, e := range evs {
		d := string(e.Device)
		if _, ok := byDevice[d]; !ok {
			order = append(order, d)
		}
		byDevice[d] = append(byDevice[d], e)
		m := minuteKey(e.TS)
		if e.Kind == event.Tune {
			b.zaps[[2]string{minuteName(m), string(e.Region)}]++
		}
		if e.Kind != event.Standby {
			k := [2]string{minuteName(m), string(e.Channel)}
			if events[k] == nil {
				events[k] = map[string]bool{}
			}
			if !events[k][d] {
				events[k][d] = true
				b.audience[Events][[2]int64{m, int64(channelNum(string(e.Channel)))}]++
				b.cells[Events][[3]string{minuteName(m), string(e.Channel), string(e.Region)}]++
				if b.seenOn[d] == nil {
					b.seenOn[d] = map[int64][]string{}
				}
				b.seenOn[d][m] = append(b.seenOn[d][m], string(e.Channel))
			}
			if eventTotal[m] == nil {
				eventTotal[m] = map[string]bool{}
			}
			eventTotal[m][d] = true
		}
	}
	for m, set := range eventTotal {
		b.total[Events][m] = len(set)
	}

	for _, d := range order {
		var segs []seg
		var changes []change
		var cur string
		var start, last int64
		seen := false
		end := func(at int64) {
			if at-start >= dwell {
				segs = append(segs, seg{cur, start, at})
				changes = append(changes, change{cur, start})
			} else {
				b.shortSegs++
			}
			cur = ""
		}
		region := ""
		for _, e := range byDevice[d] {
			t := e.TS
			if seen && t < last {
				t = last
			}
			if cur != "" && t-last >= idle {
				end(last + idle)
				changes = append(changes, change{"", last + idle})
				b.expiries++
			}
			switch e.Kind {
			case event.Tune, event.Heartbeat:
				if string(e.Channel) != cur {
					if cur != "" {
						end(t)
					}
					cur, start = string(e.Channel), t
				}
			case event.Standby:
				if cur != "" {
					end(t)
				}
				changes = append(changes, change{"", t})
			}
			last, seen, region = t, true, string(e.Region)
		}
		if cur != "" {
			end(last + idle)
			changes = append(changes, change{"", last + idle})
		}
		state := ""
		for _, c := range changes {
			if c.state != state {
				if m := minuteKey(c.at); inRun(m) {
					b.flows[[3]string{minuteName(m), state, c.state}]++
				}
				state = c.state
			}
		}
		for k := range minutes {
			ms := first + int64(k)*60000
			me := ms + 60000
			sum, lastEnd := map[string]int64{}, map[string]int64{}
			for _, s := range segs {
				lo, hi := max(s.s, ms), min(s.e, me)
				if hi > lo {
					sum[s.ch] += hi - lo
					lastEnd[s.ch] = max(lastEnd[s.ch], hi)
				}
			}
			best := ""
			for ch, v := range sum {
				if best == "" || v > sum[best] || v == sum[best] && lastEnd[ch] > lastEnd[best] {
					best = ch
				}
			}
			if best == "" {
				continue
			}
			b.audience[Tuning][[2]int64{ms, int64(channelNum(best))}]++
			b.total[Tuning][ms]++
			b.cells[Tuning][[3]string{minuteName(ms), best, region}]++
			if b.credited[d] == nil {
				b.credited[d] = map[int64]string{}
			}
			b.credited[d][ms] = best
		}
	}
	return b
}

// reach counts the boxes credited (tuning) or seen (events) on any channel
// of set (nil = all) in a minute of [from, to).
func (b *brute) reach(model Model, set []string, from, to int64) int {
	in := func(ch string) bool { return set == nil || slices.Contains(set, ch) }
	n := 0
	if model == Tuning {
		for _, minutes := range b.credited {
			for m, ch := range minutes {
				if m >= from && m < to && in(ch) {
					n++
					break
				}
			}
		}
		return n
	}
outer:
	for _, minutes := range b.seenOn {
		for m, chs := range minutes {
			if m >= from && m < to && slices.ContainsFunc(chs, in) {
				n++
				continue outer
			}
		}
	}
	return n
}

func channelNum(name string) int {
	n := 0
	for _, c := range name[3:] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestTruthMatchesBruteForce is the honesty test of the truth: on small
// populations, every number the truth file holds equals a literal
// re-derivation from the generated events.
func TestTruthMatchesBruteForce(t *testing.T) {
	base := Config{
		Seed: 1, Devices: 200, Channels: 40, Regions: 5, Truth: true,
		Start: time.Date(2025, 3, 14, 19, 0, 0, 0, time.UTC), Duration: 2 * time.Hour,
		ReachSlots: []time.Duration{15 * time.Minute, time.Hour},
		ReachSets:  [][]string{{"ch-001", "ch-002"}, {"ch-003", "ch-010", "ch-033"}},
	}
	tests := []struct {
		name  string
		tweak func(*Config)
		check func(t *testing.T, b *brute, evs []event.Event)
	}{
		{"defaults", func(*Config) {}, nil},
		{"heartbeats", func(c *Config) { c.Heartbeat = time.Minute; c.Seed = 2 }, func(t *testing.T, _ *brute, evs []event.Event) {
			if !slices.ContainsFunc(evs, func(e event.Event) bool { return e.Kind == event.Heartbeat }) {
				t.Error("no heartbeat in the stream")
			}
		}},
		{"jitter and duplicates", func(c *Config) {
			c.Jitter, c.Duplicates, c.Seed = 20*time.Second, 0.05, 3
		}, func(t *testing.T, _ *brute, evs []event.Event) {
			if slices.IsSortedFunc(evs, func(a, b event.Event) int { return int(a.TS - b.TS) }) {
				t.Error("jitter left the stream sorted by ts")
			}
		}},
		{"short inactivity expires segments", func(c *Config) {
			c.Inactivity, c.MinDwell, c.Seed = 10*time.Minute, 15*time.Second, 4
		}, func(t *testing.T, b *brute, _ []event.Event) {
			if b.expiries == 0 {
				t.Error("no segment expired: the case tests nothing")
			}
		}},
		{"no min dwell", func(c *Config) { c.MinDwell = 0 }, nil},
		{"odd start and duration, local zone", func(c *Config) {
			c.Start = c.Start.Add(17*time.Second + 500*time.Millisecond)
			c.Duration = 90*time.Minute + 10*time.Second
			c.Zone = time.FixedZone("UTC+1", 3600)
			c.Seed = 5
		}, nil},
		{"many devices few channels", func(c *Config) {
			c.Devices, c.Channels, c.Duration = 1000, 5, 40*time.Minute
			c.ReachSets = [][]string{{"ch-001", "ch-005"}}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.tweak(&cfg)
			evs, tr := generate(t, cfg)
			info := tr.Info()
			b := bruteForce(evs, info.MinDwell, info.Inactivity, info.FirstMinute.UnixMilli(), info.Minutes)
			if b.shortSegs == 0 && cfg.MinDwell > 0 {
				t.Error("no segment was shorter than min dwell: zapping is not exercised")
			}
			if tc.check != nil {
				tc.check(t, b, evs)
			}
			compareTruth(t, tr, b, evs)
		})
	}
}

func compareTruth(t *testing.T, tr *Truth, b *brute, evs []event.Event) {
	t.Helper()
	info := tr.Info()
	if info.Events != int64(len(evs)) {
		t.Errorf("truth counts %d events, the stream has %d", info.Events, len(evs))
	}
	var credits int
	errs := 0
	report := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, m := range tr.Minutes() {
		ms := m.UnixMilli()
		for model := range 2 {
			mo := Model(model)
			if got, want := tr.Total(mo, m), b.total[mo][ms]; got != want {
				report("%s total %s = %d, brute force %d", mo, m.Format("15:04"), got, want)
			}
			for c, name := range tr.Channels() {
				got, want := tr.Audience(mo, name, m), b.audience[mo][[2]int64{ms, int64(c + 1)}]
				if got != want {
					report("%s audience %s %s = %d, brute force %d", mo, name, m.Format("15:04"), got, want)
				}
				credits += got
				for _, r := range tr.Regions() {
					got, want := tr.RegionAudience(mo, name, r, m), b.cells[mo][[3]string{m.Format(time.RFC3339), name, r}]
					if got != want {
						report("%s audience %s %s %s = %d, brute force %d", mo, name, r, m.Format("15:04"), got, want)
					}
				}
			}
		}
		for _, r := range tr.Regions() {
			if got, want := tr.Zaps(r, m), b.zaps[[2]string{m.Format(time.RFC3339), r}]; got != want {
				report("zaps %s %s = %d, brute force %d", r, m.Format("15:04"), got, want)
			}
		}
		got := map[[3]string]int{}
		for _, f := range tr.Flows(m) {
			got[[3]string{m.Format(time.RFC3339), f.From, f.To}] = f.N
			if f.N != tr.Flow(f.From, f.To, m) {
				report("Flow(%q, %q, %s) = %d, Flows says %d", f.From, f.To, m.Format("15:04"), tr.Flow(f.From, f.To, m), f.N)
			}
		}
		want := map[[3]string]int{}
		for k, n := range b.flows {
			if k[0] == m.Format(time.RFC3339) {
				want[k] = n
			}
		}
		if !maps.Equal(got, want) {
			report("flows at %s = %v, brute force %v", m.Format("15:04"), got, want)
		}
	}
	if credits == 0 {
		t.Fatal("the truth credits nobody")
	}
	sets := append([][]string{nil}, tr.ReachSets()...)
	for _, c := range tr.Channels() {
		sets = append(sets, []string{c})
	}
	windows := tr.ReachWindows()
	if len(windows) < 3 {
		t.Errorf("only %d reach windows", len(windows))
	}
	for _, w := range windows {
		for _, set := range sets {
			for model := range 2 {
				got, err := tr.Reach(Model(model), set, w.From, w.To)
				if err != nil {
					t.Fatal(err)
				}
				if want := b.reach(Model(model), set, w.From.UnixMilli(), w.To.UnixMilli()); got != want {
					report("%s reach %v [%s, %s) = %d, brute force %d", Model(model), set,
						w.From.Format("15:04"), w.To.Format("15:04"), got, want)
				}
			}
		}
	}
}

func TestTruthQueries(t *testing.T) {
	_, tr := generate(t, Config{Seed: 7, Devices: 300, Channels: 20, Regions: 3, Duration: 30 * time.Minute, Truth: true,
		ReachSets: [][]string{{"ch-002", "ch-001"}}})
	info := tr.Info()
	first := info.FirstMinute
	out := first.Add(-time.Minute)
	f := func(name string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	f("Audience before the run", tr.Audience(Tuning, "ch-001", out), 0)
	f("Audience of an unknown channel", tr.Audience(Tuning, "nope", first), 0)
	f("Audience mid-minute", tr.Audience(Tuning, "ch-001", first.Add(59*time.Second)), tr.Audience(Tuning, "ch-001", first))
	f("Zaps of an unknown region", tr.Zaps("r-99", first), 0)
	f("Flow A→A", tr.Flow("ch-001", "ch-001", first), 0)
	if tr.Total(Tuning, first) == 0 || tr.Zaps("", first) == 0 || tr.Flow("", "ch-001", first) == 0 {
		t.Errorf("first minute: total %d, zaps %d, flow off→ch-001 %d; want all > 0 after the state report",
			tr.Total(Tuning, first), tr.Zaps("", first), tr.Flow("", "ch-001", first))
	}
	run := [2]time.Time{first, first.Add(time.Duration(info.Minutes) * time.Minute)}
	a, err := tr.Reach(Tuning, []string{"ch-001", "ch-002"}, run[0], run[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tr.Reach(Tuning, []string{"ch-002", "ch-001", "ch-002"}, run[0], run[1])
	f("Reach of a set in another order", b, a)
	if _, err := tr.Reach(Tuning, []string{"ch-001", "ch-003"}, run[0], run[1]); err == nil {
		t.Error("Reach of a set the truth was not built for: no error")
	}
	if _, err := tr.Reach(Tuning, nil, run[0], run[1].Add(-time.Minute)); err == nil {
		t.Error("Reach of a window the truth was not built for: no error")
	}
	if _, err := tr.Reach(Events, []string{"ch-xyz"}, run[0], run[1]); err == nil {
		t.Error("Reach of an unknown channel: no error")
	}
}

func TestReadTruthRejectsGarbage(t *testing.T) {
	_, tr := generate(t, Config{Seed: 7, Devices: 50, Channels: 5, Regions: 2, Duration: 5 * time.Minute, Truth: true})
	var good bytes.Buffer
	if _, err := tr.WriteTo(&good); err != nil {
		t.Fatal(err)
	}
	for _, in := range truthGarbage(good.Bytes()) {
		if _, err := ReadTruth(bytes.NewReader(in)); err == nil {
			t.Errorf("ReadTruth(% x…) = nil error", in[:min(len(in), 16)])
		}
	}
}

// truthGarbage returns malformed truth files made from a good one.
func truthGarbage(good []byte) [][]byte {
	var out [][]byte
	out = append(out, nil, []byte("ratingsd truth v1\n"), good[:len(good)/2], good[:len(good)-1])
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	out = append(out, flipped)
	// Valid zstd around bad content.
	for _, content := range [][]byte{
		[]byte("ratingsd truth v2\n"),
		[]byte("ratingsd truth v1\nnot gob"),
		append([]byte(truthMagic), 0xff, 0xff, 0xff, 0xff),
	} {
		out = append(out, zstdBytes(content))
	}
	return out
}

func FuzzReadTruth(f *testing.F) {
	g, err := NewGenerator(Config{Seed: 7, Devices: 50, Channels: 5, Regions: 2, Duration: 5 * time.Minute, Truth: true})
	if err != nil {
		f.Fatal(err)
	}
	var batch []event.Event
	for g.Next(context.Background(), &batch) {
	}
	var good bytes.Buffer
	if _, err := g.Truth().WriteTo(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	for _, in := range truthGarbage(good.Bytes()) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ReadTruth(bytes.NewReader(in))
		if err != nil {
			return
		}
		// A truth that loads answers every query without panicking.
		for _, m := range tr.Minutes() {
			for _, c := range tr.Channels() {
				tr.Audience(Tuning, c, m)
				tr.Audience(Events, c, m)
				for _, r := range tr.Regions() {
					tr.RegionAudience(Tuning, c, r, m)
				}
			}
			tr.Flows(m)
			tr.Zaps("", m)
		}
		for _, w := range tr.ReachWindows() {
			tr.Reach(Tuning, nil, w.From, w.To)
		}
	})
}

func zstdBytes(content []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	return w.EncodeAll(content, nil)
}

// TestTruthSpecCases feeds hand-made streams to the truth builder: the rules
// of docs/semantics.md whose edge cases random streams rarely hit.
func TestTruthSpecCases(t *testing.T) {
	type ev struct {
		dev  uint32
		ch   uint16 // 1-based; 0 for standby
		at   time.Duration
		kind event.Kind
	}
	start := time.Date(2025, 3, 14, 20, 0, 0, 0, time.UTC)
	tune := func(dev uint32, ch uint16, at time.Duration) ev { return ev{dev, ch, at, event.Tune} }
	standby := func(dev uint32, at time.Duration) ev { return ev{dev, 0, at, event.Standby} }
	run := func(t *testing.T, inactivity time.Duration, evs ...ev) *Truth {
		t.Helper()
		cfg := Config{Devices: 3, Channels: 4, Regions: 1, Start: start, Duration: 10 * time.Minute,
			Inactivity: inactivity, Truth: true}.withDefaults()
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		b := newTruthBuilder(&cfg)
		for _, e := range evs {
			b.observe(e.dev, e.ch, 0, start.Add(e.at).UnixMilli(), e.kind)
		}
		return b.finish(start.Add(cfg.Duration).UnixMilli())
	}
	m := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	f := func(t *testing.T, what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}

	t.Run("tie goes to the channel watched later", func(t *testing.T) {
		tr := run(t, 0, tune(0, 1, 0), tune(0, 2, 30*time.Second), tune(0, 3, 60*time.Second))
		f(t, "ch-001 at 20:00", tr.Audience(Tuning, "ch-001", m(0)), 0)
		f(t, "ch-002 at 20:00", tr.Audience(Tuning, "ch-002", m(0)), 1)
	})
	t.Run("a segment of exactly min dwell qualifies, shorter does not", func(t *testing.T) {
		tr := run(t, 0,
			tune(0, 1, 0), tune(0, 2, 40*time.Second), tune(0, 3, 45*time.Second), tune(0, 1, 90*time.Second),
			tune(1, 4, 0), tune(1, 3, 40*time.Second), tune(1, 2, 44999*time.Millisecond))
		f(t, "flow ch-002→ch-003 (5 s on ch-002)", tr.Flow("ch-002", "ch-003", m(0)), 1)
		f(t, "flow ch-003→ch-002 (4.999 s on ch-003)", tr.Flow("ch-003", "ch-002", m(0)), 0)
		f(t, "flow ch-004→ch-002", tr.Flow("ch-004", "ch-002", m(0)), 1)
	})
	t.Run("a zap away and back is not a flow", func(t *testing.T) {
		tr := run(t, 0, tune(0, 1, 0), tune(0, 2, 30*time.Second), tune(0, 1, 32*time.Second))
		f(t, "flow ch-001→ch-002", tr.Flow("ch-001", "ch-002", m(0)), 0)
		f(t, "flow ch-002→ch-001", tr.Flow("ch-002", "ch-001", m(0)), 0)
		f(t, "ch-001 at 20:05", tr.Audience(Tuning, "ch-001", m(5)), 1)
		f(t, "zaps at 20:00", tr.Zaps("", m(0)), 3)
	})
	t.Run("a tune to the same channel does not split its segment", func(t *testing.T) {
		tr := run(t, 0, tune(0, 1, 0), tune(0, 1, 58*time.Second), tune(0, 2, 61*time.Second), standby(0, 63*time.Second))
		f(t, "ch-001 at 20:00", tr.Audience(Tuning, "ch-001", m(0)), 1)
		f(t, "ch-001 at 20:01 (its last second; ch-002 is a zap)", tr.Audience(Tuning, "ch-001", m(1)), 1)
		f(t, "flow ch-001→off at 20:01", tr.Flow("ch-001", "", m(1)), 1)
		f(t, "total at 20:02", tr.Total(Tuning, m(2)), 0)
		f(t, "events-model ch-002 at 20:01", tr.Audience(Events, "ch-002", m(1)), 1)
	})
	t.Run("inactivity ends a segment at last event + inactivity", func(t *testing.T) {
		tr := run(t, 3*time.Minute, tune(0, 1, 10*time.Second), tune(1, 2, 0), tune(1, 2, 150*time.Second))
		f(t, "box 0 at 20:02 (expires 20:03:10)", tr.Audience(Tuning, "ch-001", m(2)), 1)
		f(t, "box 0 at 20:03 (10 s left)", tr.Audience(Tuning, "ch-001", m(3)), 1)
		f(t, "box 0 at 20:04", tr.Audience(Tuning, "ch-001", m(4)), 0)
		f(t, "flow ch-001→off at 20:03", tr.Flow("ch-001", "", m(3)), 1)
		f(t, "box 1 at 20:05 (activity at 20:02:30)", tr.Audience(Tuning, "ch-002", m(5)), 1)
		f(t, "box 1 at 20:06", tr.Audience(Tuning, "ch-002", m(6)), 0)
	})
	t.Run("an event earlier than its box's last applies at the last ts", func(t *testing.T) {
		tr := run(t, 0, tune(0, 1, 0), tune(0, 2, 90*time.Second), tune(0, 3, 30*time.Second))
		// ch-003 starts at 20:01:30 (not 20:00:30) and ch-002 lasted 0 s.
		f(t, "ch-001 at 20:00", tr.Audience(Tuning, "ch-001", m(0)), 1)
		f(t, "ch-003 at 20:01 (30 s vs ch-001's 30 s, later)", tr.Audience(Tuning, "ch-003", m(1)), 1)
		f(t, "flow ch-001→ch-002", tr.Flow("ch-001", "ch-002", m(1)), 0)
		f(t, "events-model ch-003 at 20:00 (its own ts)", tr.Audience(Events, "ch-003", m(0)), 1)
	})
}
