package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows events/s, the simulated clock and the time left on stderr.
// A nil *progress shows nothing.
type progress struct {
	bar        *progressbar.ProgressBar
	start      time.Time // of the run; zero when the end is unknown (replay)
	wall0      time.Time
	lastUpdate time.Time
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// newProgress returns a progress bar over the simulated time [start, end),
// or a spinner if start is zero; nil unless enabled.
func newProgress(enabled bool, w io.Writer, start, end time.Time) *progress {
	if !enabled {
		return nil
	}
	max := int64(-1)
	if !start.IsZero() {
		max = end.Sub(start).Milliseconds() / 1000
	}
	return &progress{
		start: start,
		wall0: time.Now(),
		bar: progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetItsString("s simulated"),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		),
	}
}

// update reports events generated so far with the simulated clock at now.
func (p *progress) update(events int64, now time.Time) {
	if p == nil || time.Since(p.lastUpdate) < 200*time.Millisecond {
		return
	}
	p.lastUpdate = time.Now()
	rate := float64(events) / time.Since(p.wall0).Seconds()
	p.bar.Describe(fmt.Sprintf("%s events %s/s, clock %s", si(float64(events)), si(rate), now.UTC().Format("2006-01-02 15:04:05")))
	if !p.start.IsZero() {
		p.bar.Set64(now.Sub(p.start).Milliseconds() / 1000)
	} else {
		p.bar.Set64(events)
	}
}

func (p *progress) finish() {
	if p != nil {
		p.bar.Finish()
	}
}

// si formats x with a k, M or G suffix.
func si(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
