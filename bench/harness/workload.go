package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

// Workload is a generated stream held in memory, 16 bytes an event, so that
// every scenario replays the same events and the generator's cost stays out
// of the measurements.
type Workload struct {
	Config   bench.Config
	Truth    *bench.Truth // nil unless asked for
	Channels []string     // index 0 is "" (standby)
	Regions  []string     // index 0 is "" (none)
	events   []compact
	startMs  int64
}

// compact is one event: ms from the workload's start, device number,
// channel and region index, kind.
type compact struct {
	off  uint32
	dev  uint32
	ch   uint16
	reg  uint16
	kind event.Kind
}

// Generate runs the generator to its end and keeps its events. maxEvents
// bounds them (0: no bound); the truth, if asked for, is then of the whole
// run, so a bounded workload is only for throughput.
func Generate(ctx context.Context, cfg bench.Config, maxEvents int) (*Workload, error) {
	g, err := bench.NewGenerator(cfg)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	cfg = g.Config()
	w := &Workload{Config: cfg, Channels: []string{""}, Regions: []string{""}, startMs: cfg.Start.UnixMilli()}
	chIdx := map[string]uint16{"": 0}
	regIdx := map[string]uint16{"": 0}
	intern := func(m map[string]uint16, names *[]string, b []byte) uint16 {
		if i, ok := m[string(b)]; ok {
			return i
		}
		i := uint16(len(*names))
		m[string(b)] = i
		*names = append(*names, string(b))
		return i
	}
	var batch []event.Event
	for g.Next(ctx, &batch) {
		for i := range batch {
			e := &batch[i]
			dev, ok := deviceNumber(e.Device)
			if !ok {
				return nil, fmt.Errorf("workload: device name of %d bytes is not stb-NNNNNNNN", len(e.Device))
			}
			w.events = append(w.events, compact{
				off: uint32(e.TS - w.startMs), dev: dev,
				ch: intern(chIdx, &w.Channels, e.Channel), reg: intern(regIdx, &w.Regions, e.Region),
				kind: e.Kind,
			})
		}
		if maxEvents > 0 && len(w.events) >= maxEvents {
			w.events = w.events[:maxEvents]
			break
		}
	}
	if err := g.Err(); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	w.Truth = g.Truth()
	return w, nil
}

// Len is the number of events.
func (w *Workload) Len() int { return len(w.events) }

// deviceNumber parses the generator's device names, stb-NNNNNNNN.
func deviceNumber(b []byte) (uint32, bool) {
	if len(b) != 12 || string(b[:4]) != "stb-" {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[4:]), 10, 32)
	return uint32(n), err == nil
}

// appendDevice appends the name of device d, as the generator names it.
func appendDevice(dst []byte, d uint32) []byte {
	dst = append(dst, "stb-"...)
	var digits [8]byte
	for i := 7; i >= 0; i-- {
		digits[i] = byte('0' + d%10)
		d /= 10
	}
	return append(dst, digits[:]...)
}

// event fills e with event i; dev is the scratch buffer for its device name.
func (w *Workload) event(i int, e *event.Event, dev []byte) []byte {
	c := &w.events[i]
	dev = appendDevice(dev[:0], c.dev)
	*e = event.Event{Device: dev, TS: w.startMs + int64(c.off), Kind: c.kind}
	if c.ch != 0 {
		e.Channel = []byte(w.Channels[c.ch])
	}
	if c.reg != 0 {
		e.Region = []byte(w.Regions[c.reg])
	}
	return dev
}

// Encoding is how a scenario's messages are encoded.
type Encoding struct {
	Format bench.Format
	Batch  int  // events per message of json-array and binary
	S2     bool // binary frames S2-compressed
}

func (e Encoding) String() string {
	switch e.Format {
	case bench.FormatJSON:
		return "json"
	case bench.FormatJSONArray:
		return fmt.Sprintf("json-array-%d", e.Batch)
	}
	if e.S2 {
		return fmt.Sprintf("binary-%d+s2", e.Batch)
	}
	return fmt.Sprintf("binary-%d", e.Batch)
}

// Messages are a workload encoded as NATS messages, in publication order.
type Messages struct {
	Encoding Encoding
	Subjects []string // tv.events.pNN
	Events   int64
	Bytes    int64
	data     []byte
	msgs     []message
}

type message struct {
	off     int    // in data
	n       uint32 // bytes
	subject uint16
	events  uint32
	maxTS   int64 // the newest event time in the message
}

// Len is the number of messages.
func (m *Messages) Len() int { return len(m.msgs) }

// newest returns the newest event time of the messages, Unix ms (0 for none).
func (m *Messages) newest() int64 {
	var ts int64
	for i := range m.msgs {
		ts = max(ts, m.msgs[i].maxTS)
	}
	return ts
}

// MeanSize is the mean message size in bytes.
func (m *Messages) MeanSize() int {
	if len(m.msgs) == 0 {
		return 0
	}
	return int(m.Bytes / int64(len(m.msgs)))
}

// Partitions is the number of subjects events are spread over by device,
// as bench.Publisher does.
const Partitions = 16

// linger is how much event time a partial batch may wait for more events
// before it is sent anyway, as a producer flushes on size or age. It keeps
// every event well inside the aggregator's lateness even when a small
// population fills a partition's batch slowly.
const lingerMs = 1000

// Encode encodes the first limit events of w (0: all) as messages of enc,
// partitioned by device over Partitions subjects like bench.Publisher.
func (w *Workload) Encode(enc Encoding, limit int) (*Messages, error) {
	n := len(w.events)
	if limit > 0 && limit < n {
		n = limit
	}
	if enc.Batch == 0 {
		enc.Batch = 256
	}
	m := &Messages{Encoding: enc}
	for k := range Partitions {
		m.Subjects = append(m.Subjects, fmt.Sprintf("tv.events.p%02d", k))
	}
	type part struct {
		enc   event.BatchEncoder
		json  []byte
		n     int
		first int64 // event time of the batch's first event
		maxTS int64
	}
	parts := make([]part, Partitions)
	var buf []byte
	emit := func(k int, msg []byte, events int, maxTS int64) {
		m.msgs = append(m.msgs, message{off: len(m.data), n: uint32(len(msg)), subject: uint16(k), events: uint32(events), maxTS: maxTS})
		m.data = append(m.data, msg...)
		m.Events += int64(events)
		m.Bytes += int64(len(msg))
	}
	flush := func(k int) {
		p := &parts[k]
		if p.n == 0 {
			return
		}
		switch enc.Format {
		case bench.FormatJSONArray:
			buf = append(append(buf[:0], p.json...), ']')
		case bench.FormatBinary:
			buf = p.enc.AppendFrame(buf[:0], enc.S2)
			p.enc.Reset()
		}
		emit(k, buf, p.n, p.maxTS)
		p.n = 0
	}
	var e event.Event
	var dev []byte
	for i := range n {
		dev = w.event(i, &e, dev)
		k := bench.Partition(e.Device, Partitions)
		p := &parts[k]
		if enc.Format == bench.FormatJSON {
			buf = event.AppendJSON(buf[:0], &e)
			emit(k, buf, 1, e.TS)
			continue
		}
		if p.n == 0 {
			p.first, p.maxTS = e.TS, e.TS
		}
		switch enc.Format {
		case bench.FormatJSONArray:
			if p.n == 0 {
				p.json = append(p.json[:0], '[')
			} else {
				p.json = append(p.json, ',')
			}
			p.json = event.AppendJSON(p.json, &e)
		case bench.FormatBinary:
			if err := p.enc.Add(&e); err != nil {
				return nil, fmt.Errorf("encode %s: event %d: %w", enc, i, err)
			}
		}
		p.n++
		p.maxTS = max(p.maxTS, e.TS)
		if p.n == enc.Batch {
			flush(k)
		}
		// Flush batches that have waited too long in event time.
		if i%256 == 0 {
			for j := range parts {
				if parts[j].n > 0 && e.TS-parts[j].first > lingerMs {
					flush(j)
				}
			}
		}
	}
	for k := range parts {
		flush(k)
	}
	return m, nil
}

// msg returns message i.
func (m *Messages) msg(i int) (subject string, data []byte, events int, maxTS int64) {
	x := &m.msgs[i]
	return m.Subjects[x.subject], m.data[x.off : x.off+int(x.n)], int(x.events), x.maxTS
}

// Span is the event time the workload covers.
func (w *Workload) Span() (from, to time.Time) {
	return w.Config.Start, w.Config.Start.Add(w.Config.Duration)
}
