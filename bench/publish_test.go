package bench

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// startNATS starts an embedded NATS server with JetStream on a random
// loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// received decodes the messages of subject-prefixed partitions, checking
// that each event arrived on its box's partition subject.
type received struct {
	t          *testing.T
	partitions int
	dec        event.Decoder
	rej        event.Rejections
	evs        []event.Event
	msgs       int
}

func (r *received) add(subject string, data []byte) {
	r.msgs++
	r.rej.Reset()
	start := len(r.evs)
	r.evs = r.dec.Decode(r.evs, data, &r.rej)
	if r.rej.Total() > 0 {
		r.t.Errorf("message on %s: %d events rejected, first: %v", subject, r.rej.Total(), r.rej.First)
	}
	for i := start; i < len(r.evs); i++ {
		e := &r.evs[i]
		e.Device, e.Channel, e.Region = bytes.Clone(e.Device), bytes.Clone(e.Channel), bytes.Clone(e.Region)
		want := fmt.Sprintf(".p%02d", Partition(e.Device, r.partitions))
		if !strings.HasSuffix(subject, want) {
			r.t.Errorf("an event of partition %s arrived on %s", want, subject)
		}
	}
}

// sameEvents checks that got holds exactly the events of want, each box's
// in the same order (boxes' events interleave differently across partitions).
func sameEvents(t *testing.T, got, want []event.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d events, published %d", len(got), len(want))
	}
	byDevice := func(evs []event.Event) map[string][]string {
		m := map[string][]string{}
		for _, e := range evs {
			m[string(e.Device)] = append(m[string(e.Device)], fmt.Sprintf("%s/%s/%s/%d", e.Kind, e.Channel, e.Region, e.TS))
		}
		return m
	}
	g, w := byDevice(got), byDevice(want)
	bad := 0
	for d, seq := range w {
		if !slices.Equal(g[d], seq) && bad < 3 {
			bad++
			t.Errorf("a box's events differ:\n got %v\nwant %v", g[d], seq)
		}
	}
}

func TestPublishDelivers(t *testing.T) {
	url := startNATS(t)
	want, _ := generate(t, Config{Seed: 11, Devices: 2000, Channels: 50, Regions: 8, Duration: 10 * time.Minute,
		Duplicates: 0.01, BatchEvents: 100})
	if len(want) < 1000 {
		t.Fatalf("only %d events generated", len(want))
	}
	tests := []struct {
		format    Format
		s2        bool
		jetstream bool
	}{
		{FormatJSON, false, false},
		{FormatJSONArray, false, false},
		{FormatBinary, false, false},
		{FormatBinary, true, false},
		{FormatJSON, false, true},
		{FormatJSONArray, false, true},
		{FormatBinary, true, true},
	}
	for i, tc := range tests {
		name := fmt.Sprintf("%s s2=%t jetstream=%t", tc.format, tc.s2, tc.jetstream)
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			subject := fmt.Sprintf("tv.events%d", i)
			cfg := PublishConfig{Subject: subject, Partitions: 7, Format: tc.format, Batch: 64, S2: tc.s2,
				JetStream: tc.jetstream, MaxPending: 50}
			pub, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			r := &received{t: t, partitions: cfg.Partitions}
			var sub *nats.Subscription
			if !tc.jetstream {
				sub, err = pub.SubscribeSync(subject + ".>")
				if err != nil {
					t.Fatal(err)
				}
				sub.SetPendingLimits(-1, -1)
				pub.Flush()
			} else if err := EnsureStream(ctx, pub, fmt.Sprintf("EVENTS%d", i), subject); err != nil {
				t.Fatal(err)
			}
			p, err := NewPublisher(pub, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for chunk := range slices.Chunk(want, 333) {
				if err := p.Publish(ctx, chunk); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			msgs, events := p.Published()
			if events != int64(len(want)) {
				t.Errorf("Published() events = %d, want %d", events, len(want))
			}
			if !tc.jetstream {
				for len(r.evs) < len(want) {
					m, err := sub.NextMsgWithContext(ctx)
					if err != nil {
						t.Fatalf("after %d of %d events: %v", len(r.evs), len(want), err)
					}
					r.add(m.Subject, m.Data)
				}
			} else {
				js, _ := jetstream.New(pub)
				c, err := js.OrderedConsumer(ctx, fmt.Sprintf("EVENTS%d", i), jetstream.OrderedConsumerConfig{})
				if err != nil {
					t.Fatal(err)
				}
				it, err := c.Messages()
				if err != nil {
					t.Fatal(err)
				}
				for len(r.evs) < len(want) {
					m, err := it.Next()
					if err != nil {
						t.Fatalf("after %d of %d events: %v", len(r.evs), len(want), err)
					}
					r.add(m.Subject(), m.Data())
				}
				it.Stop()
			}
			if int64(r.msgs) != msgs {
				t.Errorf("received %d messages, published %d", r.msgs, msgs)
			}
			if tc.format == FormatJSON && r.msgs != len(want) {
				t.Errorf("json: %d messages for %d events", r.msgs, len(want))
			}
			sameEvents(t, r.evs, want)
		})
	}
}

func TestPublisherConfigErrors(t *testing.T) {
	f := func(cfg PublishConfig, want string) {
		t.Helper()
		_, err := NewPublisher(nil, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewPublisher(%+v) = %v, want an error with %q", cfg, err, want)
		}
	}
	f(PublishConfig{Partitions: -1}, "partitions -1")
	f(PublishConfig{Batch: 1 << 20}, "batch 1048576")
	f(PublishConfig{Format: FormatJSON, S2: true}, "s2 compresses binary frames only")
	f(PublishConfig{Subject: "tv.*"}, `subject "tv.*"`)
	f(PublishConfig{Format: 9}, "format format(9) is not a format")
}

// TestFlushWithoutDeadline: Flush over core NATS with a context that has no
// deadline (tvload's, a signal context) gets its own bound instead of
// failing, as nats.go's FlushWithContext does without one.
func TestFlushWithoutDeadline(t *testing.T) {
	url := startNATS(t)
	evs, _ := generate(t, Config{Seed: 3, Devices: 100, Channels: 5, Duration: time.Minute})
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("tv.nodeadline.>")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc, PublishConfig{Subject: "tv.nodeadline", Partitions: 1, Format: FormatBinary, Batch: 65536})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("Flush without a deadline: %v", err)
	}
	// One partition, one batch: the flush sent it and the server has it.
	if n, _, err := sub.Pending(); err != nil || n != 1 {
		t.Errorf("after Flush: %d messages pending at the subscriber (%v), want 1", n, err)
	}
}
