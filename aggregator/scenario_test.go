package aggregator

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

// TestScenarios runs the scripts in testdata/scenarios. A script is a list of
// commands, one per line (# starts a comment):
//
//	config model=tuning lateness=60s min-dwell=5s inactivity=4h max-channels=10 skew=5m
//	       minute-retention=48h retention=672h day-start=6h shards=4
//	date 2025-03-14                      the day of the times below
//	clock 20:30:00                       the wall clock (until set: the newest event ingested)
//	ingest 20:00:05 d1 tune npo1 [region=r1]   one event (kind standby takes no channel)
//	seal 20:05:00                        seal every minute ending at or before this time
//	tick                                 seal what the watermark allows at the clock's now
//	want audience npo1 20:00 3           exact (tuning) or within the estimate's interval
//	want total 20:00 5
//	want cell npo1 r1 20:00 2
//	want flow npo1 npo2 20:01 1          "off" names the off state
//	want zaps r1 20:00 4                 "-" names events without a region
//	want reach npo1,npo2 20:00 20:05 4   "*" for all channels
//	want reach * 23:00 2025-03-15T01:00 9 reach   and the tier that counted it
//	want keys minute 2025-03-14,2025-03-15   the key epochs held ("-": none)
//	want rejected late 1                 counted by the aggregator, by reason
//	want accepted 12
//	want sealed 20:04                    the newest sealed minute
//	want error audience npo1 20:00 20:05 ErrExpired
//
// A time is HH:MM[:SS[.mmm]] on the date, or a whole 2006-01-02T15:04.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in ../testdata/scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

type scenario struct {
	t     *testing.T
	file  string
	line  int
	a     *Aggregator
	w     *Writer
	day   time.Time
	clock time.Time
	// clockSet: a clock command set the clock; before one, it follows the
	// newest event ingested.
	clockSet bool
}

var errNames = map[string]error{
	"ErrUnknownChannel": ErrUnknownChannel, "ErrUnknownRegion": ErrUnknownRegion,
	"ErrBadRange": ErrBadRange, "ErrWindowTooLarge": ErrWindowTooLarge,
	"ErrExpired": ErrExpired, "ErrNoData": ErrNoData, "ErrModel": ErrModel,
	"ErrCrossEpoch": ErrCrossEpoch,
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := &scenario{t: t, file: file}
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		sc.line++
		line := strings.TrimSpace(lines.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		sc.do(strings.Fields(line))
	}
	if sc.a == nil {
		t.Fatalf("%s: no commands", file)
	}
}

func (sc *scenario) fatalf(format string, args ...any) {
	sc.t.Helper()
	sc.t.Fatalf("%s:%d: %s", filepath.Base(sc.file), sc.line, fmt.Sprintf(format, args...))
}

func (sc *scenario) errorf(format string, args ...any) {
	sc.t.Helper()
	sc.t.Errorf("%s:%d: %s", filepath.Base(sc.file), sc.line, fmt.Sprintf(format, args...))
}

func (sc *scenario) time(s string) time.Time {
	sc.t.Helper()
	if tm, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return tm
	}
	for _, layout := range []string{"15:04:05.000", "15:04:05", "15:04"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return sc.day.Add(time.Duration(tm.Hour())*time.Hour + time.Duration(tm.Minute())*time.Minute +
				time.Duration(tm.Second())*time.Second + time.Duration(tm.Nanosecond()))
		}
	}
	sc.fatalf("bad time %q", s)
	return time.Time{}
}

func (sc *scenario) num(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		sc.fatalf("bad number %q", s)
	}
	return n
}

func (sc *scenario) configure(args []string) {
	cfg := DefaultConfig()
	key, err := sketch.KeyFromBytes([]byte("scenario-key-016"))
	if err != nil {
		sc.fatalf("key: %v", err)
	}
	cfg.Key = key
	cfg.Shards = 4
	cfg.Now = func() time.Time { return sc.clock }
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			sc.fatalf("config: %q is not key=value", kv)
		}
		dur := func() time.Duration {
			d, err := time.ParseDuration(v)
			if err != nil {
				sc.fatalf("config %s: %v", k, err)
			}
			return d
		}
		switch k {
		case "model":
			if cfg.Model, err = ParseModel(v); err != nil {
				sc.fatalf("config: %v", err)
			}
		case "lateness":
			cfg.Lateness = dur()
		case "min-dwell":
			cfg.MinDwell = dur()
		case "inactivity":
			cfg.Inactivity = dur()
		case "skew":
			cfg.MaxClockSkew = dur()
		case "minute-retention":
			cfg.MinuteRetention = dur()
		case "retention":
			cfg.Retention = dur()
		case "day-start":
			cfg.DayStart = dur()
		case "max-channels":
			cfg.MaxChannels = int(sc.num(v))
		case "shards":
			cfg.Shards = int(sc.num(v))
		default:
			sc.fatalf("config: unknown key %q", k)
		}
	}
	if sc.a, err = New(cfg); err != nil {
		sc.fatalf("config: %v", err)
	}
	sc.w = sc.a.NewWriter()
}

func (sc *scenario) do(f []string) {
	sc.t.Helper()
	if sc.a == nil && f[0] != "config" {
		sc.configure(nil)
	}
	switch f[0] {
	case "config":
		sc.configure(f[1:])
	case "date":
		d, err := time.Parse("2006-01-02", f[1])
		if err != nil {
			sc.fatalf("date: %v", err)
		}
		sc.day = d
	case "clock":
		sc.clock, sc.clockSet = sc.time(f[1]), true
	case "ingest":
		sc.ingest(f[1:])
	case "seal":
		sc.a.SealThrough(sc.time(f[1]).UnixMilli())
	case "tick":
		sc.a.Tick()
	case "want":
		sc.want(f[1:])
	default:
		sc.fatalf("unknown command %q", f[0])
	}
}

func (sc *scenario) ingest(f []string) {
	if len(f) < 3 {
		sc.fatalf("ingest TIME DEVICE KIND [CHANNEL] [region=R]")
	}
	kind, ok := event.ParseKind([]byte(f[2]))
	if !ok {
		sc.fatalf("bad kind %q", f[2])
	}
	e := event.Event{TS: sc.time(f[0]).UnixMilli(), Device: []byte(f[1]), Kind: kind}
	for _, arg := range f[3:] {
		if r, ok := strings.CutPrefix(arg, "region="); ok {
			e.Region = []byte(r)
		} else {
			e.Channel = []byte(arg)
		}
	}
	if err := e.Validate(); err != nil {
		sc.fatalf("ingest: %v", err)
	}
	if t := time.UnixMilli(e.TS); !sc.clockSet && t.After(sc.clock) {
		sc.clock = t
	}
	sc.w.Write([]event.Event{e}, nil)
}

// stateName maps the script's "off" to the off state's empty name.
func stateName(s string) string {
	if s == "off" {
		return ""
	}
	return s
}

func (sc *scenario) minute(s string) *Minute {
	m := sc.time(s)
	mins := sc.a.Minutes(m, m.Add(time.Minute))
	if len(mins) == 0 {
		return nil
	}
	return mins[0]
}

// check compares an estimate with an exact want: equal for exact counts,
// inside [Low, High] for estimates.
func (sc *scenario) check(what string, got sketch.Estimate, want uint64) {
	sc.t.Helper()
	if got.Low == got.High {
		if got.Value != want {
			sc.errorf("%s = %d, want %d", what, got.Value, want)
		}
		return
	}
	if want < got.Low || want > got.High {
		sc.errorf("%s = %d [%d, %d], want %d inside", what, got.Value, got.Low, got.High, want)
	}
}

func (sc *scenario) want(f []string) {
	sc.t.Helper()
	need := func(n int) {
		if len(f) != n {
			sc.fatalf("want %s takes %d arguments, have %d", f[0], n-1, len(f)-1)
		}
	}
	switch f[0] {
	case "audience": // CH MIN N
		need(4)
		var got sketch.Estimate
		if m := sc.minute(f[2]); m != nil {
			cm, _ := m.Channel(f[1])
			got = cm.Audience
		} else {
			sc.errorf("minute %s is not sealed", f[2])
		}
		sc.check("audience "+f[1]+" "+f[2], got, sc.num(f[3]))
	case "total": // MIN N
		need(3)
		var got sketch.Estimate
		if m := sc.minute(f[1]); m != nil {
			got = m.Total
		} else {
			sc.errorf("minute %s is not sealed", f[1])
		}
		sc.check("total "+f[1], got, sc.num(f[2]))
	case "cell": // CH REGION MIN N
		need(5)
		var got sketch.Estimate
		if m := sc.minute(f[3]); m != nil {
			for _, c := range m.Cells() {
				if c.Channel == f[1] && c.Region == f[2] {
					got = c.Audience
				}
			}
		}
		sc.check("cell "+f[1]+"/"+f[2]+" "+f[3], got, sc.num(f[4]))
	case "flow": // FROM TO MIN N
		need(5)
		from, to := stateName(f[1]), stateName(f[2])
		var got uint64
		if m := sc.minute(f[3]); m != nil {
			for _, fl := range m.Flows() {
				if fl.From == from && fl.To == to {
					got = fl.Devices
				}
			}
		}
		if want := sc.num(f[4]); got != want {
			sc.errorf("flow %s→%s %s = %d, want %d", f[1], f[2], f[3], got, want)
		}
	case "zaps": // REGION MIN N
		need(4)
		region := f[1]
		if region == "-" {
			region = ""
		}
		var got uint64
		if m := sc.minute(f[2]); m != nil {
			for _, z := range m.Zaps {
				if z.Region == region {
					got = z.Count
				}
			}
		}
		if want := sc.num(f[3]); got != want {
			sc.errorf("zaps %s %s = %d, want %d", f[1], f[2], got, want)
		}
	case "reach": // CHANNELS FROM TO N [TIER]
		if len(f) != 6 {
			need(5)
		}
		var chans []string
		if f[1] != "*" {
			chans = strings.Split(f[1], ",")
		}
		got, err := sc.a.Reach(chans, sc.time(f[2]), sc.time(f[3]))
		if err != nil {
			sc.errorf("reach: %v", err)
			return
		}
		sc.check("reach "+f[1], got.Estimate, sc.num(f[4]))
		if len(f) == 6 && got.Tier.String() != f[5] {
			sc.errorf("reach %s %s..%s counted by the %s tier (%s), want the %s tier", f[1], f[2], f[3], got.Tier, got.Epoch, f[5])
		}
	case "keys": // TIER IDS
		need(3)
		t := keys.Minute
		if f[1] == "reach" {
			t = keys.Reach
		}
		var held []string
		for _, n := range sc.a.cfg.Keys.Epochs(t) {
			held = append(held, keys.Label(t, n))
		}
		want := f[2]
		if want == "-" {
			want = ""
		}
		if got := strings.Join(held, ","); got != want {
			sc.errorf("%s keys held: %q, want %q", f[1], got, want)
		}
	case "rejected": // REASON N
		need(3)
		var r event.Reason
		for r = 0; r < event.NumReasons && r.String() != f[1]; r++ {
		}
		if r == event.NumReasons {
			sc.fatalf("unknown reason %q", f[1])
		}
		if got, want := sc.a.Rejected(r), sc.num(f[2]); got != want {
			sc.errorf("rejected %s = %d, want %d", f[1], got, want)
		}
	case "accepted":
		need(2)
		if got, want := sc.a.Accepted(), sc.num(f[1]); got != want {
			sc.errorf("accepted = %d, want %d", got, want)
		}
	case "sealed": // MIN or "none"
		need(2)
		got := "none"
		if m := sc.a.Latest(); m != nil {
			got = m.Start.Format("15:04")
		}
		if got != f[1] {
			sc.errorf("newest sealed minute = %s, want %s", got, f[1])
		}
	case "channels":
		need(2)
		if got, want := sc.a.ChannelCount(), int(sc.num(f[1])); got != want {
			sc.errorf("channels = %d, want %d", got, want)
		}
	case "error": // QUERY ARGS... ERR
		want, ok := errNames[f[len(f)-1]]
		if !ok {
			sc.fatalf("unknown error %q", f[len(f)-1])
		}
		var err error
		switch f[1] {
		case "audience": // CH FROM TO
			_, err = sc.a.Audience(f[2], sc.time(f[3]), sc.time(f[4]))
		case "reach":
			var chans []string
			if f[2] != "*" {
				chans = strings.Split(f[2], ",")
			}
			_, err = sc.a.Reach(chans, sc.time(f[3]), sc.time(f[4]))
		case "flow": // CH MIN
			_, err = sc.a.Flow(f[2], sc.time(f[3]))
		case "capacity": // REGION FROM TO
			_, err = sc.a.Capacity(f[2], sc.time(f[3]), sc.time(f[4]))
		default:
			sc.fatalf("want error: unknown query %q", f[1])
		}
		if !errors.Is(err, want) {
			sc.errorf("%s: error %v, want %v", f[1], err, want)
		}
	default:
		sc.fatalf("unknown want %q", f[0])
	}
}
