package service

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

// demoSpan is how much event time one demo generator simulates before the
// next one takes over; its state grows with it only by a few KiB a day.
const demoSpan = 7 * 24 * time.Hour

// demoFrameBytes cuts the demo's binary batches near the fastest message
// size through NATS (DESIGN.md, NATS facts).
const demoFrameBytes = 16 << 10

// startDemo publishes a simulated audience, live: event time is the wall
// clock, so minutes seal and curves grow as they would with real boxes.
func (s *Service) startDemo(ctx context.Context) error {
	subjects := demoSubjects(s.cfg.Subject, s.cfg.Workers)
	ctx, cancel := context.WithCancel(ctx)
	s.demoCancel = cancel
	s.demoDone = make(chan struct{})
	first, err := s.newDemoGenerator(1)
	if err != nil {
		cancel()
		return fmt.Errorf("demo: %w", err)
	}
	go func() {
		defer close(s.demoDone)
		g := first
		for seed := uint64(2); ; seed++ {
			s.runDemo(ctx, g, subjects)
			if ctx.Err() != nil {
				return
			}
			if g, err = s.newDemoGenerator(seed); err != nil {
				s.log.Error("demo stopped", "err", err)
				return
			}
		}
	}()
	s.log.Info("demo: publishing a simulated live audience", "devices", s.cfg.DemoDevices, "subjects", strings.Join(subjects, ","))
	return nil
}

func (s *Service) newDemoGenerator(seed uint64) (*bench.Generator, error) {
	now := s.cfg.Now()
	cfg := bench.Config{
		Seed:     seed,
		Devices:  s.cfg.DemoDevices,
		Channels: 40,
		Regions:  12,
		Start:    now,
		Duration: demoSpan,
		Zone:     primeTimeZone(now),
		MinDwell: s.cfg.MinDwell,
		Pace:     1,
	}
	if s.cfg.Model == aggregator.Events {
		// The events model wants boxes that report every minute.
		cfg.Heartbeat = time.Minute
	}
	return bench.NewGenerator(cfg)
}

// primeTimeZone returns the time zone in which it is 20:30 at now, so that
// the demo audience starts at its evening peak whenever the service starts.
func primeTimeZone(now time.Time) *time.Location {
	u := now.UTC()
	minutes := u.Hour()*60 + u.Minute()
	off := (20*60 + 30 - minutes) % (24 * 60)
	if off > 12*60 {
		off -= 24 * 60
	} else if off < -12*60 {
		off += 24 * 60
	}
	return time.FixedZone("demo", off*60)
}

// runDemo publishes g's events until it ends or ctx does. Events of one
// device always go to the same subject, so the tuning model sees each
// device's events in order.
func (s *Service) runDemo(ctx context.Context, g *bench.Generator, subjects []string) {
	encs := make([]event.BatchEncoder, len(subjects))
	seed := maphash.MakeSeed()
	var buf []byte
	send := func(i int) {
		if encs[i].Len() == 0 {
			return
		}
		buf = encs[i].AppendFrame(buf[:0], false)
		if err := s.nc.Publish(subjects[i], buf); err != nil {
			s.log.Warn("demo publish", "subject", subjects[i], "err", err)
		} else {
			s.metrics.DemoPublished(encs[i].Len())
		}
		encs[i].Reset()
	}
	var batch []event.Event
	for g.Next(ctx, &batch) {
		for k := range batch {
			i := int(maphash.Bytes(seed, batch[k].Device) % uint64(len(subjects)))
			if err := encs[i].Add(&batch[k]); err != nil {
				s.log.Error("demo: BUG: generated an invalid event", "err", err)
				continue
			}
			if encs[i].Size() >= demoFrameBytes {
				send(i)
			}
		}
		// Next returns what is due now: send it rather than wait.
		for i := range encs {
			send(i)
		}
	}
}

// stopDemo stops the generator and waits for it.
func (s *Service) stopDemo() {
	if s.demoCancel == nil {
		return
	}
	s.demoCancel()
	<-s.demoDone
}

// demoSubjects returns the subjects the demo publishes to: the configured
// subject with '*' as "demo" and '>' as "demo.p<n>", one per worker, so that
// the intake's workers share the load; a subject without '>' is used as it is.
func demoSubjects(subject string, workers int) []string {
	tokens := strings.Split(subject, ".")
	for i, t := range tokens {
		if t == "*" {
			tokens[i] = "demo"
		}
	}
	if tokens[len(tokens)-1] != ">" {
		return []string{strings.Join(tokens, ".")}
	}
	base := strings.Join(tokens[:len(tokens)-1], ".")
	if base != "" {
		base += "."
	}
	out := make([]string, max(workers, 1))
	for i := range out {
		out[i] = fmt.Sprintf("%sdemo.p%d", base, i)
	}
	return out
}
