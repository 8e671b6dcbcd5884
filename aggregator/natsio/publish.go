package natsio

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// MinuteSubject is where sealed minutes are published: the summary of all
// channels on MinuteSubject itself, each channel on MinuteSubject + "." +
// channel. A channel name with dots spans several subject tokens, so
// subscribe with "ratings.minute.>" to get every channel.
const MinuteSubject = "ratings.minute"

// ChannelMinute is the message published on ratings.minute.<channel> for every
// channel with an audience in a sealed minute.
type ChannelMinute struct {
	Minute   time.Time `json:"minute"`
	Channel  string    `json:"channel"`
	Audience uint64    `json:"audience"`
	Low      uint64    `json:"low"`
	High     uint64    `json:"high"`
	Share    float64   `json:"share"`
	Total    uint64    `json:"total"`
}

// MinuteSummary is the message published on ratings.minute: every channel of
// a sealed minute, by descending audience.
type MinuteSummary struct {
	Minute    time.Time        `json:"minute"`
	Total     uint64           `json:"total"`
	TotalLow  uint64           `json:"total_low"`
	TotalHigh uint64           `json:"total_high"`
	Channels  []SummaryChannel `json:"channels"`
	// Zaps are the channel changes (tune events) per region.
	Zaps []RegionCount `json:"zaps,omitempty"`
}

// SummaryChannel is a channel of a MinuteSummary.
type SummaryChannel struct {
	Channel  string  `json:"channel"`
	Audience uint64  `json:"audience"`
	Low      uint64  `json:"low"`
	High     uint64  `json:"high"`
	Share    float64 `json:"share"`
}

// RegionCount is a count for a region ("" for events without one).
type RegionCount struct {
	Region string `json:"region"`
	Count  uint64 `json:"count"`
}

// Publisher publishes sealed minutes on NATS. It is safe for concurrent use
// (the aggregator calls it from OnSeal, one minute at a time).
type Publisher struct {
	nc      *nats.Conn
	agg     *aggregator.Aggregator
	metrics *telemetry.Metrics
}

// NewPublisher returns a Publisher on nc. agg is read for the watermark, to
// measure how long after it passed a minute's end the minute went out.
func NewPublisher(nc *nats.Conn, agg *aggregator.Aggregator, m *telemetry.Metrics) *Publisher {
	return &Publisher{nc: nc, agg: agg, metrics: m}
}

// Publish sends m: one message per channel with an audience, then the
// summary. Publishing only buffers in the client (its flusher sends at once),
// so it does not block the sealer on the network.
func (p *Publisher) Publish(m *aggregator.Minute) error {
	sum := MinuteSummary{
		Minute:    m.Start,
		Total:     m.Total.Value,
		TotalLow:  m.Total.Low,
		TotalHigh: m.Total.High,
		Channels:  make([]SummaryChannel, 0, len(m.Channels)),
	}
	for _, c := range m.Channels {
		if c.Audience.Value == 0 {
			continue
		}
		msg := ChannelMinute{
			Minute: m.Start, Channel: c.Channel,
			Audience: c.Audience.Value, Low: c.Audience.Low, High: c.Audience.High,
			Share: c.Share, Total: m.Total.Value,
		}
		if err := p.send(MinuteSubject+"."+c.Channel, msg); err != nil {
			p.metrics.PublishFailed()
			return err
		}
		sum.Channels = append(sum.Channels, SummaryChannel{
			Channel: c.Channel, Audience: c.Audience.Value, Low: c.Audience.Low, High: c.Audience.High, Share: c.Share,
		})
	}
	for _, z := range m.Zaps {
		sum.Zaps = append(sum.Zaps, RegionCount{Region: z.Region, Count: z.Count})
	}
	if err := p.send(MinuteSubject, sum); err != nil {
		p.metrics.PublishFailed()
		return err
	}
	// The watermark moves at wall-clock pace on a live stream, so how far it
	// is past the minute's end is how long ago the minute became sealable.
	end := m.Start.Add(time.Minute).UnixMilli()
	p.metrics.Published(time.Duration(p.agg.Watermark()-end) * time.Millisecond)
	return nil
}

func (p *Publisher) send(subject string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("BUG: marshal sealed minute for %s: %w", subject, err)
	}
	if err := p.nc.Publish(subject, b); err != nil {
		return fmt.Errorf("publish sealed minute on %s: %w", subject, err)
	}
	return nil
}
