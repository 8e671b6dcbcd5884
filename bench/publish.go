package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// Format is a wire format of the event contract (DESIGN.md).
type Format uint8

const (
	FormatJSON      Format = iota // one JSON object per message
	FormatJSONArray               // a JSON array of PublishConfig.Batch objects
	FormatBinary                  // a binary batch frame of PublishConfig.Batch events
)

var formatNames = [...]string{"json", "json-array", "binary"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// ParseFormat returns the Format named s: json, json-array or binary.
func ParseFormat(s string) (Format, error) {
	for i, name := range formatNames {
		if s == name {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("format %q is not one of %s", s, strings.Join(formatNames[:], ", "))
}

// PublishConfig configures a Publisher.
type PublishConfig struct {
	// Subject is the prefix of the subjects published to: an event goes to
	// Subject + ".p" + its partition, e.g. "tv.events.p07". If "", "tv.events".
	Subject string
	// Partitions is the number of partitions. A box always goes to the same
	// one (Partition), so an instance that owns a partition sees all of its
	// boxes' events (the tuning model's requirement). If 0, 16.
	Partitions int
	// Format of the messages. Default FormatJSON.
	Format Format
	// Batch is the number of events per message of FormatJSONArray and
	// FormatBinary. If 0, 256 (about 16 KiB of binary events: the fastest
	// size through NATS, DESIGN.md).
	Batch int
	// S2 compresses binary frames (the frame's own flag).
	S2 bool
	// JetStream publishes asynchronously to a JetStream stream that binds
	// the subjects, with flow control: at most MaxPending messages await
	// their acknowledgement (if 0, 4000, nats.go's default).
	JetStream  bool
	MaxPending int
}

// Publisher publishes events to NATS, batched per partition. It is not safe
// for concurrent use.
type Publisher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	cfg      PublishConfig
	subjects []string
	parts    []partition
	buf      []byte

	mu     sync.Mutex // guards pubErr, set from nats.go's ack goroutine
	pubErr error

	msgs, events int64
}

// partition is the batch being built for one partition.
type partition struct {
	enc  event.BatchEncoder
	json []byte // a JSON array without its closing bracket
	n    int
}

// NewPublisher returns a Publisher that publishes over nc.
func NewPublisher(nc *nats.Conn, cfg PublishConfig) (*Publisher, error) {
	if cfg.Subject == "" {
		cfg.Subject = "tv.events"
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 16
	}
	if cfg.Batch == 0 {
		cfg.Batch = 256
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 4000
	}
	switch {
	case cfg.Partitions < 1 || cfg.Partitions > 10000:
		return nil, fmt.Errorf("publish: partitions %d is outside 1..10000", cfg.Partitions)
	case cfg.Batch < 1 || cfg.Batch > event.DefaultMaxBatchEvents:
		return nil, fmt.Errorf("publish: batch %d is outside 1..%d", cfg.Batch, event.DefaultMaxBatchEvents)
	case cfg.Format > FormatBinary:
		return nil, fmt.Errorf("publish: format %s is not a format", cfg.Format)
	case cfg.S2 && cfg.Format != FormatBinary:
		return nil, fmt.Errorf("publish: s2 compresses binary frames only, not %s", cfg.Format)
	case cfg.MaxPending < 1:
		return nil, fmt.Errorf("publish: max-pending %d is less than 1", cfg.MaxPending)
	case strings.ContainsAny(cfg.Subject, " *>\t\r\n") || strings.HasPrefix(cfg.Subject, ".") || strings.HasSuffix(cfg.Subject, "."):
		return nil, fmt.Errorf("publish: subject %q is not a literal subject prefix", cfg.Subject)
	}
	p := &Publisher{nc: nc, cfg: cfg, parts: make([]partition, cfg.Partitions)}
	width := max(2, digits(cfg.Partitions-1))
	for i := range cfg.Partitions {
		p.subjects = append(p.subjects, cfg.Subject+".p"+pad(i, width))
	}
	if cfg.JetStream {
		js, err := jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
				p.mu.Lock()
				if p.pubErr == nil {
					p.pubErr = fmt.Errorf("publish to %s: %w", m.Subject, err)
				}
				p.mu.Unlock()
			}))
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		p.js = js
	}
	return p, nil
}

// Partition returns the partition of device among n: FNV-1a (32 bit) of
// the device's bytes, modulo n.
func Partition(device []byte, n int) int {
	h := uint32(2166136261)
	for _, c := range device {
		h ^= uint32(c)
		h *= 16777619
	}
	return int(h % uint32(n))
}

// Publish publishes evs: each JSON event at once, batches as they fill.
// Flush publishes the partial batches.
func (p *Publisher) Publish(ctx context.Context, evs []event.Event) error {
	for i := range evs {
		e := &evs[i]
		k := Partition(e.Device, len(p.parts))
		part := &p.parts[k]
		switch p.cfg.Format {
		case FormatJSON:
			p.buf = event.AppendJSON(p.buf[:0], e)
			if err := p.send(ctx, k, p.buf, 1); err != nil {
				return err
			}
			continue
		case FormatJSONArray:
			if part.n == 0 {
				part.json = append(part.json[:0], '[')
			} else {
				part.json = append(part.json, ',')
			}
			part.json = event.AppendJSON(part.json, e)
			part.n++
		case FormatBinary:
			if err := part.enc.Add(e); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			part.n++
		}
		if part.n == p.cfg.Batch {
			if err := p.flushPartition(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Publisher) flushPartition(ctx context.Context, k int) error {
	part := &p.parts[k]
	if part.n == 0 {
		return nil
	}
	switch p.cfg.Format {
	case FormatJSONArray:
		p.buf = append(append(p.buf[:0], part.json...), ']')
	case FormatBinary:
		p.buf = part.enc.AppendFrame(p.buf[:0], p.cfg.S2)
		part.enc.Reset()
	}
	n := part.n
	part.n = 0
	return p.send(ctx, k, p.buf, n)
}

func (p *Publisher) send(ctx context.Context, k int, msg []byte, n int) error {
	p.msgs++
	p.events += int64(n)
	if p.js == nil {
		// nats.go copies msg into its write buffer.
		if err := p.nc.Publish(p.subjects[k], msg); err != nil {
			return fmt.Errorf("publish to %s: %w", p.subjects[k], err)
		}
		return nil
	}
	if err := p.asyncErr(); err != nil {
		return err
	}
	// An async publish keeps its message until acknowledged (for retries),
	// so it gets its own copy.
	data := append([]byte(nil), msg...)
	for {
		_, err := p.js.PublishAsync(p.subjects[k], data)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				return fmt.Errorf("publish to %s: %w", p.subjects[k], err)
			}
			return nil
		}
		// Flow control: wait for the acknowledgements to catch up.
		select {
		case <-p.js.PublishAsyncComplete():
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("publish: %w", ctx.Err())
		}
	}
}

func (p *Publisher) asyncErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pubErr
}

// Flush publishes every partial batch and waits until the server has them:
// for core NATS a round trip, for JetStream every acknowledgement.
func (p *Publisher) Flush(ctx context.Context) error {
	for k := range p.parts {
		if err := p.flushPartition(ctx, k); err != nil {
			return err
		}
	}
	if p.js != nil {
		select {
		case <-p.js.PublishAsyncComplete():
		case <-ctx.Done():
			return fmt.Errorf("publish: waiting for %d acknowledgements: %w", p.js.PublishAsyncPending(), ctx.Err())
		}
		return p.asyncErr()
	}
	if _, ok := ctx.Deadline(); !ok {
		// nats.go refuses a flush without a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publish: flush: %w", err)
	}
	return nil
}

// flushTimeout bounds Flush's round trip to a core NATS server when the
// caller's context has no deadline.
const flushTimeout = 30 * time.Second

// Published returns the messages and events published so far.
func (p *Publisher) Published() (msgs, events int64) { return p.msgs, p.events }

// EnsureStream creates the JetStream stream name for subject + ".>" unless
// it exists, with file storage and a MaxAge of 24h (raw events are viewing
// data: DESIGN.md, Privacy model 7). An existing stream is left as it is.
func EnsureStream(ctx context.Context, nc *nats.Conn, name, subject string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.Stream(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("jetstream stream %s: %w", name, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{subject + ".>"},
		Storage:  jetstream.FileStorage,
		MaxAge:   24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("jetstream: create stream %s for %s.>: %w", name, subject, err)
	}
	return nil
}
