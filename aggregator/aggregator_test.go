package aggregator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/sketch"
)

func Example() {
	key, _ := sketch.KeyFromBytes([]byte("example-key-0016"))
	start := time.Date(2025, 3, 14, 20, 0, 0, 0, time.UTC)
	a, _ := New(Config{Key: key, Now: func() time.Time { return start.Add(time.Hour) }})
	at := func(d time.Duration) int64 { return start.Add(d).UnixMilli() }
	a.NewWriter().Write([]event.Event{
		{Device: []byte("stb-1"), Channel: []byte("npo1"), TS: at(0)},
		{Device: []byte("stb-2"), Channel: []byte("npo1"), TS: at(10 * time.Second)},
		{Device: []byte("stb-3"), Channel: []byte("npo2"), TS: at(20 * time.Second)},
		{Device: []byte("stb-2"), Channel: []byte("npo2"), TS: at(90 * time.Second)},
	}, nil)
	a.SealThrough(at(2 * time.Minute))
	for _, m := range a.Minutes(start, start.Add(2*time.Minute)) {
		fmt.Print(m.Start.Format("15:04"))
		for _, c := range m.Channels {
			fmt.Printf(" %s=%d", c.Channel, c.Audience.Value)
		}
		fmt.Println()
	}
	// Output:
	// 20:00 npo1=2 npo2=1
	// 20:01 npo2=2 npo1=1
}

func TestConfigErrors(t *testing.T) {
	key, err := sketch.KeyFromBytes([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, mod func(*Config), want string) {
		t.Helper()
		cfg := Config{Key: key}
		mod(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, want)
		}
	}
	f("no key", func(c *Config) { c.Key = nil }, "Keys (or, for tests, Key) is required")
	f("two keys", func(c *Config) { c.Keys, _ = keys.NewMemory() }, "set Keys or Key, not both")
	f("precision", func(c *Config) { c.Precision = 19 }, "precision 19")
	f("lateness under dwell", func(c *Config) { c.Lateness, c.MinDwell = 2*time.Second, 5*time.Second }, "at least min dwell")
	f("retention", func(c *Config) { c.MinuteRetention = 8 * 24 * time.Hour }, "minute retention")
	f("reach retention", func(c *Config) { c.Retention = 30 * 24 * time.Hour }, "retention 720h0m0s is outside the minute retention 48h0m0s..720h0m0s")
	f("reach under minute retention", func(c *Config) { c.Retention = 24 * time.Hour }, "retention 24h0m0s is outside")
	f("day start", func(c *Config) { c.DayStart = 90 * time.Minute }, "day start 1h30m0s is not a whole number of hours")
	f("shards", func(c *Config) { c.Shards = 3 }, "power of two")
	f("inactivity", func(c *Config) { c.Inactivity = time.Second }, "inactivity")
}

// TestConcurrentIngestAndQuery runs writers, the sealer and queries at once
// (meant for -race), then checks that nothing was lost: every accepted
// event's device is in the sealed minutes exactly once per minute.
func TestConcurrentIngestAndQuery(t *testing.T) {
	for _, model := range []Model{Events, Tuning} {
		t.Run(model.String(), func(t *testing.T) {
			const writers, perWriter, devices = 4, 20_000, 5_000
			var clock atomic.Int64
			clock.Store(benchStart.UnixNano())
			cfg := Config{Model: model, Key: benchKey(t), Shards: 8,
				Now: func() time.Time { return time.Unix(0, clock.Load()) }}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			evs := synthetic(writers*perWriter, devices, 50, 20, 9)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // queries while ingesting
				defer wg.Done()
				for ctx.Err() == nil {
					a.Now()
					a.Channels()
					if _, err := a.Reach(nil, benchStart, benchStart.Add(time.Hour)); err != nil && !errors.Is(err, ErrNoData) {
						t.Error(err)
						return
					}
					if _, err := a.Capacity("r-01", benchStart, benchStart.Add(time.Hour)); err != nil &&
						!errors.Is(err, ErrNoData) && !errors.Is(err, ErrUnknownRegion) {
						t.Error(err)
						return
					}
				}
			}()
			wg.Add(1)
			go func() { // the sealer, with a clock far ahead so that it seals eagerly
				defer wg.Done()
				for ctx.Err() == nil {
					a.SealThrough(a.maxTS.Load() - 2*msPerMinute)
				}
			}()
			var accepted atomic.Int64
			var ww sync.WaitGroup
			for w := 0; w < writers; w++ {
				ww.Add(1)
				go func() {
					defer ww.Done()
					wr := a.NewWriter()
					for i := w; i < len(evs); i += writers * 100 {
						end := min(i+100, len(evs))
						var rej event.Rejections
						accepted.Add(int64(wr.Write(evs[i:end], &rej)))
					}
				}()
			}
			ww.Wait()
			cancel()
			wg.Wait()
			a.SealThrough(benchStart.Add(time.Hour).UnixMilli())
			if got := int64(a.Accepted()); got != accepted.Load() {
				t.Errorf("Accepted() = %d, writers counted %d", got, accepted.Load())
			}
			if accepted.Load() == 0 {
				t.Fatal("nothing accepted")
			}
			if model == Tuning {
				// Every minute's total is the sum over its channels.
				for _, m := range a.Minutes(benchStart, benchStart.Add(time.Hour)) {
					var sum uint64
					for _, c := range m.Channels {
						sum += c.Audience.Value
					}
					if sum != m.Total.Value {
						t.Errorf("%s: channels sum to %d, total %d", m.Start, sum, m.Total.Value)
					}
				}
			}
		})
	}
}

// TestSketchBytes checks that the memory figure grows with sealed minutes
// and shrinks when retention forgets them.
func TestSketchBytes(t *testing.T) {
	now := benchStart.Add(10 * time.Minute)
	cfg := Config{Model: Events, Key: benchKey(t), MinuteRetention: time.Hour, Now: func() time.Time { return now }}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := a.SketchBytes(); n != 0 {
		t.Fatalf("empty aggregator holds %d sketch bytes", n)
	}
	w := a.NewWriter()
	w.Write(synthetic(20_000, 5_000, 50, 10, 5), nil)
	a.SealThrough(benchStart.Add(10 * time.Minute).UnixMilli())
	ten := a.SketchBytes()
	if ten <= 0 {
		t.Fatalf("10 sealed minutes hold %d sketch bytes", ten)
	}
	// Two hours later, with one box: retention (1 h) has dropped the ten.
	now = benchStart.Add(2*time.Hour + time.Minute)
	w.Write([]event.Event{{Device: []byte("late-box"), Channel: []byte("ch-000"), TS: benchStart.Add(2 * time.Hour).UnixMilli()}}, nil)
	a.SealThrough(benchStart.Add(2*time.Hour + time.Minute).UnixMilli())
	if later := a.SketchBytes(); later >= ten {
		t.Errorf("after retention: %d sketch bytes, not below the %d of ten busy minutes", later, ten)
	}
}
