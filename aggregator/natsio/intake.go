package natsio

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// Intake defaults.
const (
	DefaultSubject = "tv.events.>"
	DefaultQueue   = "ratingsd"
	// DefaultPendingMessages and DefaultPendingBytes are the subscription's
	// pending limits: 8× nats.go's defaults, so that a burst of a few seconds
	// at full speed is buffered rather than dropped as a slow consumer.
	DefaultPendingMessages = 4 << 20
	DefaultPendingBytes    = 512 << 20
)

// IntakeConfig configures the core-NATS intake.
type IntakeConfig struct {
	// Conn is the connection to subscribe on. Required. Its async error
	// handler should call (*Intake).AsyncError, so that slow-consumer events
	// are counted (Intake cannot install one on an existing connection).
	Conn *nats.Conn
	// Agg receives the events. Required.
	Agg *aggregator.Aggregator
	// Metrics counts messages, events and rejections. Required.
	Metrics *telemetry.Metrics
	// Subject to subscribe to. If blank, DefaultSubject.
	Subject string
	// Queue group, so that several instances share the load (events model).
	// If blank, DefaultQueue.
	Queue string
	// Workers decode and ingest in parallel, each with its own Decoder and
	// aggregator Writer. If 0, GOMAXPROCS.
	Workers int
	// MaxMessageBytes bounds a message; a larger one is rejected as
	// too_large. If 0, event.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// PendingMessages and PendingBytes bound what the client buffers for a
	// busy intake before it drops messages (counted as slow consumer and
	// dropped). If 0, DefaultPendingMessages and DefaultPendingBytes.
	PendingMessages, PendingBytes int
	// Logger receives the rate-limited rejection lines. If nil, slog.Default().
	Logger *slog.Logger
}

// Intake consumes events from core NATS: a queue subscription whose callback
// hands each message to one of W workers. In the tuning model a message goes
// to the worker chosen by its subject, so the events of one subject (a
// producer's partition, DESIGN.md: producers hash the device onto
// tv.events.p<n>) are applied in arrival order, which that model needs; in the
// events model order does not matter and messages are dealt round-robin.
type Intake struct {
	cfg     IntakeConfig
	sub     atomic.Pointer[nats.Subscription]
	work    []chan *nats.Msg
	ordered bool
	seed    maphash.Seed
	next    atomic.Uint32
	// routes assigns each subject (tuning model) to a worker, a new
	// subject to the worker with the fewest, so that a producer's
	// partitions spread evenly: hashed, 16 subjects on 2 workers put 10
	// or more on one of them 45% of the time (binomial), and that worker
	// sets the pace. Past maxRoutes subjects the rest are hashed, so a
	// flood of subjects cannot grow it. Only dispatch uses them.
	routes map[string]int
	routed []int // subjects per worker
	wg     sync.WaitGroup
	sink   *sink

	// mu guards stopped and sends on work: closeWorkers must not close a
	// channel while dispatch sends on it. Only the subscription's one
	// delivery goroutine dispatches, so the lock is uncontended.
	mu       sync.Mutex
	stopped  bool
	stopOnce sync.Once
}

// StartIntake subscribes and starts the workers.
func StartIntake(cfg IntakeConfig) (*Intake, error) {
	if cfg.Conn == nil || cfg.Agg == nil || cfg.Metrics == nil {
		return nil, errors.New("nats intake: Conn, Agg and Metrics are required")
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.PendingMessages <= 0 {
		cfg.PendingMessages = DefaultPendingMessages
	}
	if cfg.PendingBytes <= 0 {
		cfg.PendingBytes = DefaultPendingBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Intake{
		cfg:     cfg,
		work:    make([]chan *nats.Msg, cfg.Workers),
		ordered: cfg.Agg.Config().Model == aggregator.Tuning,
		seed:    maphash.MakeSeed(),
		routes:  make(map[string]int),
		routed:  make([]int, cfg.Workers),
		sink:    newSink(cfg.Agg, cfg.Metrics, cfg.MaxMessageBytes, cfg.Logger),
	}
	in.sink.flushed = in.updateDropped
	for i := range in.work {
		// A short queue per worker: the real buffer is the subscription's
		// pending list, where overflow is counted.
		in.work[i] = make(chan *nats.Msg, 256)
	}
	for i := range in.work {
		w := in.sink.newWorker()
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			w.run(in.work[i])
		}()
	}
	sub, err := cfg.Conn.QueueSubscribe(cfg.Subject, cfg.Queue, in.dispatch)
	if err != nil {
		in.closeWorkers()
		return nil, fmt.Errorf("subscribe to %q (queue %q): %w", cfg.Subject, cfg.Queue, err)
	}
	if err := sub.SetPendingLimits(cfg.PendingMessages, cfg.PendingBytes); err != nil {
		_ = sub.Unsubscribe()
		in.closeWorkers()
		return nil, fmt.Errorf("subscription pending limits %d messages, %d bytes: %w", cfg.PendingMessages, cfg.PendingBytes, err)
	}
	in.sub.Store(sub)
	// Once StartIntake returns the server knows the subscription: events
	// published from then on reach this intake.
	if err := cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		in.closeWorkers()
		return nil, fmt.Errorf("subscribe to %q: server did not confirm: %w", cfg.Subject, err)
	}
	return in, nil
}

// dispatch runs on the subscription's delivery goroutine. Blocking here when
// a worker is busy is the back-pressure: messages wait in the pending list,
// where the client counts what overflows.
func (in *Intake) dispatch(m *nats.Msg) {
	var i int
	if len(in.work) > 1 {
		if in.ordered {
			i = in.route(m.Subject)
		} else {
			i = int(in.next.Add(1) % uint32(len(in.work)))
		}
	}
	in.mu.Lock()
	if !in.stopped {
		in.work[i] <- m
	}
	in.mu.Unlock()
}

// maxRoutes bounds Intake.routes.
const maxRoutes = 1 << 12

// route returns the worker of subject (tuning model).
func (in *Intake) route(subject string) int {
	if i, ok := in.routes[subject]; ok {
		return i
	}
	if len(in.routes) >= maxRoutes {
		return int(maphash.String(in.seed, subject) % uint64(len(in.work)))
	}
	i := 0
	for w, n := range in.routed {
		if n < in.routed[i] {
			i = w
		}
	}
	in.routes[subject] = i
	in.routed[i]++
	return i
}

// AsyncError is the connection's async error handler (nats.ErrorHandler):
// it counts slow-consumer events and the messages dropped so far.
func (in *Intake) AsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil && sub == in.sub.Load() && errors.Is(err, nats.ErrSlowConsumer) {
		in.cfg.Metrics.SlowConsumer()
		in.updateDropped()
		in.cfg.Logger.Warn("nats slow consumer: the intake falls behind and the client drops messages",
			"subject", in.cfg.Subject, "pending_limit_messages", in.cfg.PendingMessages)
	}
}

// updateDropped copies the client's count of dropped messages into the
// metrics; the workers call it whenever they flush their tallies, so a
// burst of drops shows while it lasts, not only at its first message.
func (in *Intake) updateDropped() {
	sub := in.sub.Load()
	if sub == nil {
		return
	}
	if n, err := sub.Dropped(); err == nil && n > 0 {
		in.cfg.Metrics.SetDropped(uint64(n))
	}
}

// Stop drains the subscription (messages already received are still
// processed) and waits for the workers to finish them. If ctx ends first, it
// unsubscribes, dropping what the client still buffers, and finishes only
// what the workers hold.
func (in *Intake) Stop(ctx context.Context) error {
	var err error
	in.stopOnce.Do(func() {
		sub := in.sub.Load()
		in.updateDropped()
		if derr := sub.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("drain subscription %q: %w", in.cfg.Subject, derr)
		}
		// The drain is complete when the subscription is gone: nats.go
		// counts a message delivered only after its callback returned.
		for sub.IsValid() {
			select {
			case <-ctx.Done():
				_ = sub.Unsubscribe()
				err = errors.Join(err, fmt.Errorf("drain subscription %q: %w", in.cfg.Subject, ctx.Err()))
			case <-time.After(5 * time.Millisecond):
			}
		}
		in.closeWorkers()
		in.wg.Wait()
	})
	return err
}

// closeWorkers tells the workers to finish what is queued and exit; a
// dispatch after it drops its message. A dispatch blocked on a full queue
// holds mu until a worker, still receiving, makes room.
func (in *Intake) closeWorkers() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return
	}
	in.stopped = true
	for _, ch := range in.work {
		close(ch)
	}
}

// sink is what the workers of an intake share: the engine, the metrics and
// the rejection log.
type sink struct {
	agg      *aggregator.Aggregator
	metrics  *telemetry.Metrics
	maxBytes int
	rejects  *rejectLog
	flushed  func() // if set, called after a worker flushed its tally
}

func newSink(agg *aggregator.Aggregator, m *telemetry.Metrics, maxBytes int, log *slog.Logger) *sink {
	return &sink{agg: agg, metrics: m, maxBytes: maxBytes, rejects: &rejectLog{log: log}}
}

// worker owns its Decoders, a Writer and a tally: nothing in it is shared.
type worker struct {
	s *sink
	// decs[k] decodes the k-th message of a group: the events of a group
	// alias their messages and their decoders' scratch buffers until the
	// group's one Write, so each message of a group needs its own decoder.
	decs []event.Decoder
	w    *aggregator.Writer
	evs  []event.Event
	// A binary frame is decoded to frame (framed set), by DecodeFrame, and
	// ingested alone by WriteFrame: its names are resolved once each, not
	// once per event (at 256 events a frame, ~150 instructions an event
	// fewer).
	frame  event.Frame
	framed bool
	rej    event.Rejections
	tally  telemetry.Intake
	n      int    // messages since the last flush
	seq    uint64 // groups handled, for sampling their times
	eof    bool   // the work channel is closed
	// pos is the stream position of the message being handled, if hasPos
	// (JetStream): written with its events.
	pos    uint64
	hasPos bool
	// subject is the subject of the message of the first rejection since
	// the last log line, for the log.
	subject string
}

// Small messages are ingested in groups: a Write of one event costs about
// twice as much per event as one of 16 (measured: 790 ns against 555 ns in
// the tuning model), and one event per message is the common JSON feed.
const (
	groupMessages = 16
	groupBytes    = 4 << 10 // larger messages are batches already
)

func (s *sink) newWorker() *worker {
	w := &worker{s: s, decs: make([]event.Decoder, groupMessages), w: s.agg.NewWriter()}
	for i := range w.decs {
		w.decs[i].MaxMessageBytes = s.maxBytes
	}
	return w
}

// flushEvery bounds the messages between two flushes of the tally into the
// shared metrics (a flush also happens whenever the worker runs dry).
const flushEvery = 1024

// run handles the messages of ch until it is closed.
func (w *worker) run(ch <-chan *nats.Msg) {
	defer w.flush()
	for !w.eof {
		var m *nats.Msg
		var ok bool
		select {
		case m, ok = <-ch:
		default:
			w.flush() // idle: publish the counts now
			m, ok = <-ch
		}
		if !ok {
			return
		}
		w.group(ch, m)
		if w.n >= flushEvery {
			w.flush()
		}
	}
}

// timeEvery: one group in timeEvery is timed, and its times count for
// timeEvery groups. Three clock reads per message cost 5% of the
// one-JSON-event-per-message path; sampling makes the decode and ingest
// seconds estimates, which is all a rate of them needs.
const timeEvery = 16

// group ingests m and, if m is small and not a binary frame, the small
// messages already queued behind it (at most groupMessages in all), in
// arrival order, with one Write.
func (w *worker) group(ch <-chan *nats.Msg, m *nats.Msg) {
	var t0 time.Time
	timed := w.seq%timeEvery == 0
	w.seq++
	if timed {
		t0 = time.Now()
	}
	first := m.Subject
	w.decode(0, m.Subject, m.Data)
	var large *nats.Msg
	k := 1
collect:
	for !w.framed && len(m.Data) <= groupBytes && k < len(w.decs) {
		select {
		case next, ok := <-ch:
			if !ok {
				w.eof = true
				break collect
			}
			if len(next.Data) > groupBytes || event.IsFrame(next.Data) {
				large = next
				break collect
			}
			m = next
			w.decode(k, m.Subject, m.Data)
			k++
		default:
			break collect
		}
	}
	w.write(timed, t0, first)
	if large != nil {
		w.group(ch, large) // alone: it is not small, or a frame
	}
}

// handle decodes and ingests one message.
func (w *worker) handle(subject string, data []byte) {
	var t0 time.Time
	timed := w.seq%timeEvery == 0
	w.seq++
	if timed {
		t0 = time.Now()
	}
	w.decode(0, subject, data)
	w.write(timed, t0, subject)
}

// handleAt decodes and ingests one message of stream position pos, and
// records pos with its events (Writer.WriteAt).
func (w *worker) handleAt(subject string, data []byte, pos uint64) {
	w.pos, w.hasPos = pos, true
	w.handle(subject, data)
	w.hasPos = false
}

// decode appends the events of a message, decoded by decs[k].
func (w *worker) decode(k int, subject string, data []byte) {
	w.tally.Messages[formatOf(data)]++
	w.tally.Bytes += uint64(len(data))
	if k == 0 && w.decs[0].DecodeFrame(&w.frame, data, &w.rej) {
		w.framed = true
	} else {
		w.evs = w.decs[k].Decode(w.evs, data, &w.rej)
	}
	if w.rej.First != nil && w.subject == "" {
		w.subject = subject
	}
	w.n++
}

// write ingests the decoded events, counts and explains the rejections.
// subject is the first message's: the aggregator's rejections are logged
// with it.
func (w *worker) write(timed bool, t0 time.Time, subject string) {
	var t1 time.Time
	if timed {
		t1 = time.Now()
	}
	switch {
	case w.framed && w.hasPos:
		w.tally.Accepted += uint64(w.w.WriteFrameAt(&w.frame, &w.rej, w.pos))
	case w.framed:
		w.tally.Accepted += uint64(w.w.WriteFrame(&w.frame, &w.rej))
	case w.hasPos:
		w.tally.Accepted += uint64(w.w.WriteAt(w.evs, &w.rej, w.pos))
	default:
		w.tally.Accepted += uint64(w.w.Write(w.evs, &w.rej))
	}
	if timed {
		w.tally.Decode += timeEvery * t1.Sub(t0)
		w.tally.Ingest += timeEvery * time.Since(t1)
	}
	if w.rej.First != nil {
		if w.subject == "" { // only the aggregator rejected
			w.subject = subject
		}
		w.tally.AddRejections(&w.rej)
		w.s.rejects.note(w.subject, &w.rej)
		w.rej.Reset()
		w.subject = ""
	}
	clear(w.evs) // drop references into the messages
	w.evs = w.evs[:0]
	if w.framed {
		clear(w.frame.Events)
		clear(w.frame.Channels)
		clear(w.frame.Regions)
		w.framed = false
	}
}

func (w *worker) flush() {
	if w.n == 0 {
		return
	}
	w.s.metrics.AddIntake(&w.tally)
	w.n = 0
	if w.s.flushed != nil {
		w.s.flushed()
	}
}

// formatOf classifies a message for ratings_messages_total. The frame header
// (magic F5 52 54 56, version, flags with bit 0 = S2) is frozen by
// docs/wire-format.md and its golden files.
func formatOf(msg []byte) telemetry.Format {
	if event.IsFrame(msg) {
		if len(msg) >= 6 && msg[5]&1 != 0 {
			return telemetry.BinaryS2
		}
		return telemetry.Binary
	}
	for _, c := range msg {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			return telemetry.JSON
		}
		return telemetry.Unknown
	}
	return telemetry.Unknown
}

// rejectLog writes at most one line per second per reason saying why events
// were rejected, with the number suppressed since. The detail comes from
// event.Error, which never names a device.
type rejectLog struct {
	log        *slog.Logger
	last       [event.NumReasons]atomic.Int64 // Unix ns of the last line
	suppressed [event.NumReasons]atomic.Int64
}

func (l *rejectLog) note(subject string, rej *event.Rejections) {
	now := time.Now().UnixNano()
	for r, n := range rej.Count {
		if n == 0 {
			continue
		}
		last := l.last[r].Load()
		if now-last < int64(time.Second) || !l.last[r].CompareAndSwap(last, now) {
			l.suppressed[r].Add(int64(n))
			continue
		}
		detail := ""
		if rej.First != nil && int(rej.First.Reason) == r {
			detail = rej.First.Detail
		}
		l.log.Warn("events rejected",
			"reason", event.Reason(r).String(),
			"count", n,
			"detail", detail,
			"subject", subject,
			"suppressed_since_last", l.suppressed[r].Swap(0))
	}
}
