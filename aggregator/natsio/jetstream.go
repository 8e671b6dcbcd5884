package natsio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// JetStream defaults and limits.
const (
	DefaultDurable = "ratingsd"
	// DefaultMaxAge is the MaxAge of a stream the service creates: raw
	// events, device identifiers included, live in the broker for that long.
	DefaultMaxAge = time.Hour
	// WarnMaxAge: a stream keeping raw events longer is logged as a privacy
	// warning at start-up (DESIGN.md, Privacy 7).
	WarnMaxAge = 24 * time.Hour
	// RefuseMaxAge: the service refuses a stream that keeps raw events this
	// long or longer, or forever.
	RefuseMaxAge = 30 * 24 * time.Hour
	// DefaultPullMaxBytes caps what a pull asks for. Measured here: pulling
	// 1000 × 64 KiB messages hit the server's per-connection limit and the
	// consumer was cut off as slow, losing events; 4–16 MiB is safe.
	DefaultPullMaxBytes = 8 << 20
	// ackEvery is how many messages pass between two AckAll acks; an idle
	// consumer acks what it processed within ackIdle.
	ackEvery = 512
	ackIdle  = 50 * time.Millisecond
)

// ErrMaxAge is wrapped by the errors about a stream's MaxAge.
var ErrMaxAge = errors.New("stream keeps raw events too long")

// CheckMaxAge says whether a stream keeping raw events for maxAge (0 =
// forever) is acceptable: an error wrapping ErrMaxAge at or beyond
// RefuseMaxAge, warn above WarnMaxAge.
func CheckMaxAge(maxAge time.Duration) (warn bool, err error) {
	switch {
	case maxAge <= 0:
		return false, fmt.Errorf("%w: max age is unlimited; raw events (with device identifiers) must expire in under %s", ErrMaxAge, RefuseMaxAge)
	case maxAge >= RefuseMaxAge:
		return false, fmt.Errorf("%w: max age %s is not under %s", ErrMaxAge, maxAge, RefuseMaxAge)
	}
	return maxAge > WarnMaxAge, nil
}

// JetStreamConfig configures the JetStream intake.
type JetStreamConfig struct {
	Conn    *nats.Conn             // required
	Agg     *aggregator.Aggregator // required
	Metrics *telemetry.Metrics     // required
	// Stream to consume. It is created if absent, with Subjects = [Subject]
	// and MaxAge. Required.
	Stream string
	// Subject of the events. If blank, DefaultSubject.
	Subject string
	// Durable consumer name. If blank, DefaultDurable.
	Durable string
	// MaxAge of a stream this intake creates. If 0, DefaultMaxAge.
	MaxAge time.Duration
	// MaxMessageBytes bounds a message. If 0, event.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// PullMaxBytes caps the bytes of one pull. If 0, DefaultPullMaxBytes.
	PullMaxBytes int
	// ResumeAfter, if positive, starts a consumer that does not exist yet
	// after this stream sequence (the one a checkpoint recorded). An existing
	// durable consumer resumes from its own acknowledged position.
	ResumeAfter uint64
	// Logger. If nil, slog.Default().
	Logger *slog.Logger
}

// JetStreamIntake consumes a stream with one in-order processor, so that
// acknowledging with AckAll is exact: an ack covers every message before it,
// all of which are processed (DESIGN.md, NATS facts: explicit per-message acks
// cost 2.6× at one event per message). A message is acked only after its
// events are in the aggregator; a crash replays the unacked tail, which is
// harmless because a sketch insert is idempotent.
type JetStreamIntake struct {
	cfg  JetStreamConfig
	cc   jetstream.ConsumeContext
	w    *worker
	stop chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex // guards unacked, sinceAck
	unacked jetstream.Msg
	// sinceAck counts messages processed since the last ack.
	sinceAck int

	stopOnce sync.Once
}

// StartJetStream makes sure the stream and the durable consumer exist and
// starts consuming.
func StartJetStream(ctx context.Context, cfg JetStreamConfig) (*JetStreamIntake, error) {
	if cfg.Conn == nil || cfg.Agg == nil || cfg.Metrics == nil || cfg.Stream == "" {
		return nil, errors.New("jetstream intake: Conn, Agg, Metrics and Stream are required")
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.PullMaxBytes == 0 {
		cfg.PullMaxBytes = DefaultPullMaxBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := CheckMaxAge(cfg.MaxAge); err != nil {
			return nil, fmt.Errorf("create stream %q: %w", cfg.Stream, err)
		}
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Stream,
			Description: "set-top-box events for ratingsd",
			Subjects:    []string{cfg.Subject},
			MaxAge:      cfg.MaxAge,
			Storage:     jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("create stream %q on %q: %w", cfg.Stream, cfg.Subject, err)
		}
		cfg.Logger.Info("created jetstream stream", "stream", cfg.Stream, "subject", cfg.Subject, "max_age", cfg.MaxAge)
	case err != nil:
		return nil, fmt.Errorf("look up stream %q: %w", cfg.Stream, err)
	}
	maxAge := stream.CachedInfo().Config.MaxAge
	warn, err := CheckMaxAge(maxAge)
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", cfg.Stream, err)
	}
	if warn {
		cfg.Logger.Warn("privacy: the jetstream stream keeps raw events, device identifiers included, for more than 24h",
			"stream", cfg.Stream, "max_age", maxAge)
	}

	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "ratingsd intake",
		FilterSubject: cfg.Subject,
		AckPolicy:     jetstream.AckAllPolicy,
		// AckAll with one in-order processor: many messages may be in
		// flight between two acks, and a pull of small messages is large.
		MaxAckPending: 1 << 20,
		AckWait:       time.Minute,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cfg.ResumeAfter > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = cfg.ResumeAfter + 1
	}
	cons, err := stream.Consumer(ctx, cfg.Durable)
	created := false
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = stream.CreateConsumer(ctx, cc)
		created = true
	}
	if err != nil {
		return nil, fmt.Errorf("durable consumer %q of stream %q: %w", cfg.Durable, cfg.Stream, err)
	}

	j := &JetStreamIntake{
		cfg:  cfg,
		w:    newSink(cfg.Agg, cfg.Metrics, cfg.MaxMessageBytes, cfg.Logger).newWorker(),
		stop: make(chan struct{}),
	}
	// The position the aggregator's state stands at before the first
	// message: what the consumer has acknowledged, or, for a consumer made
	// now to start after ResumeAfter, that.
	var start uint64
	if info := cons.CachedInfo(); info != nil {
		start = info.AckFloor.Stream
	}
	if created {
		start = max(start, cfg.ResumeAfter)
	}
	if cfg.Agg.StreamPosition() == 0 {
		j.w.w.WriteAt(nil, nil, start)
	}
	j.cc, err = cons.Consume(j.handle,
		jetstream.PullMaxBytes(cfg.PullMaxBytes),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				cfg.Logger.Warn("jetstream consume", "stream", cfg.Stream, "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consume stream %q: %w", cfg.Stream, err)
	}
	j.done.Add(1)
	go j.ackIdle()
	return j, nil
}

// handle runs on the consumer's one delivery goroutine, in stream order.
// The message's events and its stream sequence enter the aggregator in one
// WriteAt, so a checkpoint's position always matches its state.
func (j *JetStreamIntake) handle(m jetstream.Msg) {
	// Caught up: nothing more is pending for this consumer, so ack and
	// publish the counts now rather than after the next batch.
	caughtUp := false
	if meta, err := m.Metadata(); err == nil {
		j.w.handleAt(m.Subject(), m.Data(), meta.Sequence.Stream)
		caughtUp = meta.NumPending == 0
	} else {
		// Not a JetStream message (it has no sequence): ingest it; the
		// position stays where it was.
		j.w.handle(m.Subject(), m.Data())
	}
	j.mu.Lock()
	j.unacked = m
	j.sinceAck++
	if j.sinceAck >= ackEvery || caughtUp {
		j.ackLocked()
	}
	j.mu.Unlock()
	if j.w.n >= flushEvery || caughtUp {
		j.w.flush()
		j.cfg.Metrics.SetStreamSequence(j.Sequence())
	}
}

// ackLocked acknowledges the last processed message and, with AckAll,
// every one before it.
func (j *JetStreamIntake) ackLocked() {
	if j.unacked == nil {
		return
	}
	if err := j.unacked.Ack(); err != nil {
		j.cfg.Logger.Warn("jetstream ack", "stream", j.cfg.Stream, "err", err)
	}
	j.unacked, j.sinceAck = nil, 0
}

// ackIdle acks, and flushes the tally, when the stream goes quiet.
func (j *JetStreamIntake) ackIdle() {
	defer j.done.Done()
	t := time.NewTicker(ackIdle)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.mu.Lock()
			j.ackLocked()
			j.mu.Unlock()
		}
	}
}

// Sequence returns the last stream sequence whose events are in the
// aggregator (its StreamPosition): a checkpoint records it so that a
// restart resumes after it. Called from a Snapshot's pos function, it is
// exactly the position of the events the snapshot holds.
func (j *JetStreamIntake) Sequence() uint64 { return j.cfg.Agg.StreamPosition() }

// Stop drains the consumer (buffered messages are still processed), acks the
// last one, and returns when done or when ctx ends.
func (j *JetStreamIntake) Stop(ctx context.Context) error {
	var err error
	j.stopOnce.Do(func() {
		j.cc.Drain()
		select {
		case <-j.cc.Closed():
		case <-ctx.Done():
			j.cc.Stop()
			err = fmt.Errorf("drain stream %q: %w", j.cfg.Stream, ctx.Err())
		}
		close(j.stop)
		j.done.Wait()
		j.mu.Lock()
		j.ackLocked()
		j.mu.Unlock()
		j.w.flush()
		j.cfg.Metrics.SetStreamSequence(j.Sequence())
		if ferr := j.cfg.Conn.FlushTimeout(5 * time.Second); ferr != nil && err == nil {
			err = fmt.Errorf("flush the last ack of stream %q: %w", j.cfg.Stream, ferr)
		}
	})
	return err
}
