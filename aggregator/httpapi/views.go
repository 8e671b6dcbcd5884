package httpapi

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/sketch"
)

// The JSON shapes of the responses. An estimate is always served with its
// bounds: a field X comes with low and high (or X_low and X_high where an
// object holds more than one estimate). Exact figures have low = X = high.

type channelJSON struct {
	Channel  string  `json:"channel"`
	Audience uint64  `json:"audience"`
	Low      uint64  `json:"low"`
	High     uint64  `json:"high"`
	Share    float64 `json:"share"`
}

func channelRow(name string, e sketch.Estimate, share float64) channelJSON {
	return channelJSON{Channel: name, Audience: e.Value, Low: e.Low, High: e.High, Share: share}
}

func channelRows(cms []aggregator.ChannelMinute) []channelJSON {
	out := make([]channelJSON, 0, len(cms))
	for _, c := range cms {
		out = append(out, channelRow(c.Channel, c.Audience, c.Share))
	}
	return out
}

type totalJSON struct {
	Total     uint64 `json:"total"`
	TotalLow  uint64 `json:"total_low"`
	TotalHigh uint64 `json:"total_high"`
}

// minuteJSON is a minute of the now board and of the event stream.
type minuteJSON struct {
	Minute     time.Time     `json:"minute"`
	*totalJSON               // nil: not known (the open minute of the events model)
	Channels   []channelJSON `json:"channels"`
}

func sealedMinute(m *aggregator.Minute) *minuteJSON {
	return &minuteJSON{
		Minute:    m.Start,
		totalJSON: &totalJSON{m.Total.Value, m.Total.Low, m.Total.High},
		Channels:  channelRows(m.Channels),
	}
}

type channelsJSON struct {
	Minute   *time.Time    `json:"minute"` // the newest sealed minute; null before the first
	Channels []channelJSON `json:"channels"`
}

// channels lists every channel seen with its audience in the newest sealed
// minute, by descending audience.
func (s *Server) channels(r *http.Request) (any, error) {
	if _, err := parseParams(r); err != nil {
		return nil, err
	}
	// Read the minute first and take the audiences from it, so that the
	// figures and the minute they are labelled with agree even when a
	// minute seals meanwhile.
	latest := s.cfg.Agg.Latest()
	infos := s.cfg.Agg.Channels()
	out := channelsJSON{Channels: make([]channelJSON, 0, len(infos))}
	if latest != nil {
		out.Minute = &latest.Start
	}
	for _, ci := range infos {
		row := channelJSON{Channel: ci.Channel}
		if latest != nil {
			if cm, ok := latest.Channel(ci.Channel); ok {
				row = channelRow(cm.Channel, cm.Audience, cm.Share)
			}
		}
		out.Channels = append(out.Channels, row)
	}
	sort.SliceStable(out.Channels, func(i, j int) bool {
		x, y := out.Channels[i], out.Channels[j]
		if x.Audience != y.Audience {
			return x.Audience > y.Audience
		}
		return x.Channel < y.Channel
	})
	return out, nil
}

type regionsJSON struct {
	Regions []string `json:"regions"`
}

func (s *Server) regions(r *http.Request) (any, error) {
	if _, err := parseParams(r); err != nil {
		return nil, err
	}
	return regionsJSON{Regions: append(make([]string, 0), s.cfg.Agg.Regions()...)}, nil
}

type pointJSON struct {
	Minute   time.Time `json:"minute"`
	Audience uint64    `json:"audience"`
	Low      uint64    `json:"low"`
	High     uint64    `json:"high"`
	Share    float64   `json:"share"`
}

func point(p aggregator.Point) pointJSON {
	return pointJSON{Minute: p.Minute, Audience: p.Audience.Value, Low: p.Audience.Low, High: p.Audience.High, Share: p.Share}
}

type curveJSON struct {
	Channel string      `json:"channel"`
	From    time.Time   `json:"from"`
	To      time.Time   `json:"to"`
	Points  []pointJSON `json:"points"`
	Peak    pointJSON   `json:"peak"`
	Average float64     `json:"average"`
}

func (s *Server) audience(r *http.Request) (any, error) {
	p, err := parseParams(r, "channel", "from", "to")
	if err != nil {
		return nil, err
	}
	ch, err := p.name("channel")
	if err != nil {
		return nil, err
	}
	from, to, err := s.window(p)
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.Agg.Audience(ch, from, to)
	if err != nil {
		return nil, err
	}
	out := curveJSON{Channel: c.Channel, From: c.From, To: c.To, Points: make([]pointJSON, len(c.Points)), Peak: point(c.Peak), Average: c.Average}
	for i, pt := range c.Points {
		out.Points[i] = point(pt)
	}
	return out, nil
}

type nowJSON struct {
	Sealed *minuteJSON `json:"sealed"` // null before the first sealed minute
	Open   *minuteJSON `json:"open"`   // null before the first event
}

func (s *Server) now(r *http.Request) (any, error) {
	if _, err := parseParams(r); err != nil {
		return nil, err
	}
	b := s.cfg.Agg.Now()
	var out nowJSON
	if b.Sealed != nil {
		out.Sealed = sealedMinute(b.Sealed)
	}
	if !b.OpenMinute.IsZero() {
		out.Open = &minuteJSON{Minute: b.OpenMinute, Channels: channelRows(b.Open)}
		if s.cfg.Agg.Config().Model == aggregator.Tuning {
			// Every device on a channel counts on exactly one: the
			// channels' exact counts add up to the total.
			var n uint64
			for _, c := range b.Open {
				n += c.Audience.Value
			}
			out.Open.totalJSON = &totalJSON{n, n, n}
		}
	}
	return out, nil
}

type reachJSON struct {
	Reach    uint64   `json:"reach"`
	Low      uint64   `json:"low"`
	High     uint64   `json:"high"`
	Channels []string `json:"channels"` // empty: all channels
	// Tier is the resolution of the tier that counted: "minute" (within
	// one day) or "hour" (whole hours within one ISO week); Epoch is its
	// key epoch's label, a day ("2025-11-27") or a week ("2025-W48").
	Tier  string `json:"tier"`
	Epoch string `json:"epoch"`
	// From and To are the minutes (hours) counted: the window asked,
	// widened to whole minutes, then clipped to what the tier holds.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func (s *Server) reach(r *http.Request) (any, error) {
	p, err := parseParams(r, "channel", "from", "to")
	if err != nil {
		return nil, err
	}
	chans := make([]string, 0, len(p["channel"]))
	for _, ch := range p["channel"] {
		if err := checkName("channel", ch); err != nil {
			return nil, err
		}
		if !slices.Contains(chans, ch) {
			chans = append(chans, ch)
		}
	}
	from, to, err := s.window(p)
	if err != nil {
		return nil, err
	}
	re, err := s.cfg.Agg.Reach(chans, from, to)
	if err != nil {
		return nil, err
	}
	return reachJSON{
		Reach: re.Value, Low: re.Low, High: re.High, Channels: chans,
		Tier: tierName(re.Tier), Epoch: re.Epoch, From: re.From.UTC(), To: re.To.UTC(),
	}, nil
}

// offName shows the empty state (standby, off, not seen before) in flows.
const offName = "off"

func stateName(ch string) string {
	if ch == "" {
		return offName
	}
	return ch
}

type flowOutJSON struct {
	To      string `json:"to"`
	Devices uint64 `json:"devices"`
}

type flowInJSON struct {
	From    string `json:"from"`
	Devices uint64 `json:"devices"`
}

type audienceJSON struct {
	Minute   time.Time `json:"minute"`
	Audience uint64    `json:"audience"`
	Low      uint64    `json:"low"`
	High     uint64    `json:"high"`
}

type flowJSON struct {
	Channel  string        `json:"channel"`
	Minute   time.Time     `json:"minute"`
	Previous audienceJSON  `json:"previous_minute"` // the channel's audience the minute before
	Out      []flowOutJSON `json:"out"`
	OutTotal uint64        `json:"out_total"`
	In       []flowInJSON  `json:"in"`
	InTotal  uint64        `json:"in_total"`
}

func (s *Server) flow(r *http.Request) (any, error) {
	p, err := parseParams(r, "from", "minute")
	if err != nil {
		return nil, err
	}
	ch, err := p.name("from")
	if err != nil {
		return nil, err
	}
	at, ok, err := p.time("minute")
	if err != nil {
		return nil, err
	}
	if !ok {
		latest := s.cfg.Agg.Latest()
		if latest == nil {
			return nil, errNoMinute
		}
		at = latest.Start
	}
	f, err := s.cfg.Agg.Flow(ch, at)
	if err != nil {
		return nil, err
	}
	out := flowJSON{
		Channel: f.Channel,
		Minute:  f.Minute,
		Previous: audienceJSON{
			Minute:   f.Minute.Add(-time.Minute),
			Audience: f.Audience.Value, Low: f.Audience.Low, High: f.Audience.High,
		},
		Out:      make([]flowOutJSON, 0, len(f.Out)),
		OutTotal: f.OutTotal,
		In:       make([]flowInJSON, 0, len(f.In)),
		InTotal:  f.InTotal,
	}
	for _, e := range f.Out {
		out.Out = append(out.Out, flowOutJSON{To: stateName(e.To), Devices: e.Devices})
	}
	for _, e := range f.In {
		out.In = append(out.In, flowInJSON{From: stateName(e.From), Devices: e.Devices})
	}
	return out, nil
}

type viewersJSON struct {
	Channel string `json:"channel"`
	Viewers uint64 `json:"viewers"`
	Low     uint64 `json:"low"`
	High    uint64 `json:"high"`
}

func viewerRows(cs []aggregator.ChannelCount) []viewersJSON {
	out := make([]viewersJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, viewersJSON{Channel: c.Channel, Viewers: c.Viewers.Value, Low: c.Viewers.Low, High: c.Viewers.High})
	}
	return out
}

// capacityLoadJSON is a region's load in a minute.
type capacityLoadJSON struct {
	Minute           time.Time `json:"minute"`
	Viewers          uint64    `json:"viewers"`
	ViewersLow       uint64    `json:"viewers_low"`
	ViewersHigh      uint64    `json:"viewers_high"`
	DistinctChannels int       `json:"distinct_channels"`
	Zaps             uint64    `json:"zaps"`
}

type capacityMinuteJSON struct {
	capacityLoadJSON
	PerChannel []viewersJSON `json:"per_channel"`
}

type capacityNowJSON struct {
	Minute   time.Time     `json:"minute"`
	Channels []viewersJSON `json:"channels"`
}

type capacityJSON struct {
	Region  string               `json:"region"`
	From    time.Time            `json:"from"`
	To      time.Time            `json:"to"`
	Now     capacityNowJSON      `json:"now"`
	Minutes []capacityMinuteJSON `json:"minutes"`
	Peak    capacityLoadJSON     `json:"peak"`
}

func (s *Server) capacity(r *http.Request) (any, error) {
	p, err := parseParams(r, "region", "from", "to")
	if err != nil {
		return nil, err
	}
	region, err := p.name("region")
	if err != nil {
		return nil, err
	}
	from, to, err := s.window(p)
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.Agg.Capacity(region, from, to)
	if err != nil {
		return nil, err
	}
	out := capacityJSON{
		Region:  c.Region,
		Now:     capacityNowJSON{Minute: c.OpenMinute, Channels: viewerRows(c.Now)},
		Minutes: make([]capacityMinuteJSON, 0, len(c.Minutes)),
	}
	for _, m := range c.Minutes {
		load := capacityLoadJSON{Minute: m.Minute, Viewers: m.Viewers, DistinctChannels: m.Channels, Zaps: m.Zaps}
		// Bounds of a sum of estimates: the sums of their bounds.
		for _, pc := range m.PerChannel {
			load.ViewersLow += pc.Viewers.Low
			load.ViewersHigh += pc.Viewers.High
		}
		out.Minutes = append(out.Minutes, capacityMinuteJSON{load, viewerRows(m.PerChannel)})
		if m.Minute.Equal(c.Peak.Minute) {
			out.Peak = load
		}
	}
	if n := len(c.Minutes); n > 0 {
		out.From, out.To = c.Minutes[0].Minute, c.Minutes[n-1].Minute.Add(time.Minute)
	}
	return out, nil
}
