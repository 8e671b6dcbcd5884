package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/archive"
	"github.com/ratingsd/ratingsd/aggregator/httpapi"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/sketch"
)

// Config configures the service. The zero value of a field means its
// documented default; DefaultConfig returns them filled in. Setting names in
// errors are the command-line flag names (cmd/ratingsd), which are also the
// RATINGS_<NAME> environment variables.
type Config struct {
	// NATSURL is an external NATS server (or a comma-separated list). If
	// blank, the service starts an embedded server.
	NATSURL string
	// NATSListen is the embedded server's address for producers. Port -1
	// picks a free port. Default 127.0.0.1:4222.
	NATSListen string
	// Subject the events arrive on. Default tv.events.>.
	Subject string
	// JetStream, if set, consumes this stream (created if absent) instead of
	// core NATS.
	JetStream string
	// JetStreamMaxAge is the MaxAge of a stream the service creates: how
	// long the broker keeps raw events. Default 1h; warned above 24h,
	// refused at 30 days or more.
	JetStreamMaxAge time.Duration
	// HTTPAddr is the HTTP API's address. Default 127.0.0.1:8080. Without
	// Tokens it must be a loopback address.
	HTTPAddr string
	// DataDir holds the key files (keys/: the pseudonym key and one key per
	// day and per ISO week, package keys), the checkpoints (checkpoints/)
	// and the embedded server's JetStream store (jetstream/). Default
	// "data".
	DataDir string
	// CheckpointEvery is the period of checkpoints. Default 30s; negative
	// turns the loop off (Shutdown still writes one).
	CheckpointEvery time.Duration
	// ForgetTuning leaves the tuning table out of checkpoints
	// (-persist-tuning=false): after a restart every device's viewing
	// starts again at its next event.
	ForgetTuning bool
	// Model is the audience model. Default tuning.
	Model aggregator.Model
	// Lateness: how far behind the newest event time a minute stays open.
	// Default 60s.
	Lateness time.Duration
	// Precision of the sketches, 4..18. Default 14 (≈0.81% standard error).
	Precision uint8
	// MinuteRetention: how long minute sketches (the minute tier, under
	// daily keys) are kept. Default 48h, at most 7 days.
	MinuteRetention time.Duration
	// Retention: how long the reach tier (hourly sketches under weekly
	// keys) is kept. Default 28 days; 30 days or more is refused.
	Retention time.Duration
	// DayStart is when a day starts after 00:00 UTC, a whole number of
	// hours 0..23h: the minute tier's daily keys change then, and the reach
	// tier's weekly keys on Monday then. Default 0.
	DayStart time.Duration
	// TokensFile holds bearer tokens and roles. If blank, authentication is
	// off and HTTPAddr must be loopback.
	TokensFile string
	// Demo publishes a live simulated audience (event time = now) to the
	// subject, so that a newcomer sees curves at once.
	Demo bool
	// DemoDevices is the demo's population. Default 30000 (20k–50k keeps
	// curves smooth and the load light).
	DemoDevices int
	// Workers decode and ingest in parallel. Default GOMAXPROCS.
	Workers int
	// MaxChannels bounds distinct channels (and regions). Default 5000.
	MaxChannels int
	// MaxClockSkew: events further ahead of the clock are rejected. Default 5m.
	MaxClockSkew time.Duration
	// MinDwell: shorter viewing is zapping, credited nowhere. Default 5s.
	MinDwell time.Duration
	// Inactivity ends a silent device's viewing. Default 4h.
	Inactivity time.Duration
	// MaxMessageBytes bounds one NATS message; larger ones are rejected as
	// too_large. Default 4 MiB. The embedded server accepts messages up to
	// twice this (at least 1 MiB) so that an oversized batch is counted
	// rather than refused to its producer.
	MaxMessageBytes int

	// CountsRetention: how long the counts archive (<data>/counts) keeps
	// per-minute counts. Default 400 days; longer than Embargo.
	CountsRetention time.Duration
	// Embargo: GET /v1/export serves only minutes older than this, and
	// whose keys are all deleted. Default 30 days, at least 1 day.
	Embargo time.Duration
	// MinAudience: exported counts below it are suppressed. Default 5.
	MinAudience uint64
	// ExportNoise is the epsilon of the two-sided geometric noise added to
	// every exported count; 0 (the default) adds none.
	ExportNoise float64

	// Key, if set, replaces the key files: the pseudonym key and every
	// epoch key are computed from it (keys.Derived), so estimates are
	// reproducible, and forgetting a key shreds nothing. For tests only.
	// If nil, the keys are those of DataDir/keys (keys.Open), created as
	// needed and deleted as their data expires (docs/operations.md, Key
	// files). After Start, it is the pseudonym key in use.
	Key *sketch.Key
	// Logger. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the wall clock. If nil, time.Now. Tests inject a fake one.
	Now func() time.Time
	// TickInterval is how often the watermark is checked for minutes to
	// seal. Default 250ms; negative turns the ticker off (tests seal through
	// Service.Aggregator).
	TickInterval time.Duration
}

// Defaults.
const (
	DefaultHTTPAddr    = "127.0.0.1:8080"
	DefaultDataDir     = "data"
	DefaultRetention   = aggregator.DefaultRetention
	MaxRetention       = aggregator.MaxRetention
	DefaultDemoDevices = 30_000
	DefaultTick        = 250 * time.Millisecond
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	a := aggregator.DefaultConfig()
	return Config{
		NATSListen:      natsio.DefaultListen,
		Subject:         natsio.DefaultSubject,
		JetStreamMaxAge: natsio.DefaultMaxAge,
		HTTPAddr:        DefaultHTTPAddr,
		DataDir:         DefaultDataDir,
		Model:           a.Model,
		Lateness:        a.Lateness,
		Precision:       a.Precision,
		MinuteRetention: a.MinuteRetention,
		Retention:       DefaultRetention,
		DemoDevices:     DefaultDemoDevices,
		Workers:         runtime.GOMAXPROCS(0),
		MaxChannels:     a.MaxChannels,
		MaxClockSkew:    a.MaxClockSkew,
		MinDwell:        a.MinDwell,
		Inactivity:      a.Inactivity,
		MaxMessageBytes: 4 << 20,
		TickInterval:    DefaultTick,
		CheckpointEvery: DefaultCheckpointEvery,
		CountsRetention: archive.DefaultRetention,
		Embargo:         httpapi.DefaultEmbargo,
		MinAudience:     httpapi.DefaultMinAudience,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.NATSListen, d.NATSListen)
	setDefault(&c.Subject, d.Subject)
	setDefault(&c.JetStreamMaxAge, d.JetStreamMaxAge)
	setDefault(&c.HTTPAddr, d.HTTPAddr)
	setDefault(&c.DataDir, d.DataDir)
	setDefault(&c.Lateness, d.Lateness)
	setDefault(&c.Precision, d.Precision)
	setDefault(&c.MinuteRetention, d.MinuteRetention)
	setDefault(&c.Retention, d.Retention)
	setDefault(&c.DemoDevices, d.DemoDevices)
	setDefault(&c.Workers, d.Workers)
	setDefault(&c.MaxChannels, d.MaxChannels)
	setDefault(&c.MaxClockSkew, d.MaxClockSkew)
	setDefault(&c.MinDwell, d.MinDwell)
	setDefault(&c.Inactivity, d.Inactivity)
	setDefault(&c.MaxMessageBytes, d.MaxMessageBytes)
	setDefault(&c.TickInterval, d.TickInterval)
	setDefault(&c.CheckpointEvery, d.CheckpointEvery)
	setDefault(&c.CountsRetention, d.CountsRetention)
	setDefault(&c.Embargo, d.Embargo)
	setDefault(&c.MinAudience, d.MinAudience)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// ErrConfig is wrapped by every error of Validate.
var ErrConfig = errors.New("invalid configuration")

// Validate checks c (with defaults filled in) and returns the first problem,
// naming the setting, its value and why.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			p, err := url.Parse(strings.TrimSpace(u))
			if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss") {
				return bad("-nats %q: want a URL such as nats://host:4222 (or a comma-separated list)", c.NATSURL)
			}
		}
	} else if _, _, err := splitHostPort(c.NATSListen, true); err != nil {
		return bad("-nats-listen %q: %v", c.NATSListen, err)
	}
	if err := checkSubject(c.Subject); err != nil {
		return bad("-subject %q: %v", c.Subject, err)
	}
	if c.JetStream != "" {
		if strings.ContainsAny(c.JetStream, " \t.*>/\\") {
			return bad("-jetstream %q: a stream name cannot contain spaces, '.', '*', '>', '/' or '\\'", c.JetStream)
		}
		if _, err := natsio.CheckMaxAge(c.JetStreamMaxAge); err != nil {
			return bad("-jetstream-max-age %s: %v", c.JetStreamMaxAge, err)
		}
	}
	host, _, err := splitHostPort(c.HTTPAddr, false)
	if err != nil {
		return bad("-http %q: %v", c.HTTPAddr, err)
	}
	if c.TokensFile == "" && !isLoopback(host) {
		return bad("-http %q is not a loopback address and no -tokens file is set: without bearer tokens the API serves only this machine (set -tokens FILE to serve the network, or use -http 127.0.0.1:8080)", c.HTTPAddr)
	}
	switch {
	case c.Model != aggregator.Tuning && c.Model != aggregator.Events:
		return bad("-model %s: want tuning or events", c.Model)
	case c.Precision < sketch.MinPrecision || c.Precision > sketch.MaxPrecision:
		return bad("-precision %d: want %d..%d", c.Precision, sketch.MinPrecision, sketch.MaxPrecision)
	case c.Lateness < 0 || c.Lateness > time.Hour:
		return bad("-lateness %s: want 0..1h", c.Lateness)
	case c.MinDwell < 0 || c.MinDwell > time.Minute:
		return bad("-min-dwell %s: want 0..1m", c.MinDwell)
	case c.Model == aggregator.Tuning && c.Lateness < c.MinDwell:
		return bad("-lateness %s is shorter than -min-dwell %s: in the tuning model a minute must stay open at least as long as a viewer must dwell", c.Lateness, c.MinDwell)
	case c.MaxClockSkew < 0:
		return bad("-max-clock-skew %s is negative", c.MaxClockSkew)
	case c.Inactivity < time.Minute:
		return bad("-inactivity %s: want at least 1m", c.Inactivity)
	case c.MinuteRetention < time.Hour || c.MinuteRetention > 7*24*time.Hour:
		return bad("-minute-retention %s: want 1h..168h (7 days); minute sketches are linkable per device, so they are kept briefly", c.MinuteRetention)
	case c.Retention < time.Hour:
		return bad("-retention %s: want at least 1h", c.Retention)
	case c.Retention >= MaxRetention:
		return bad("-retention %s: must be under %s (720h): sketches and their keys must not outlive 30 days", c.Retention, MaxRetention)
	case c.Retention < c.MinuteRetention:
		return bad("-retention %s is shorter than -minute-retention %s", c.Retention, c.MinuteRetention)
	case c.DayStart < 0 || c.DayStart >= 24*time.Hour || c.DayStart%time.Hour != 0:
		return bad("-day-start %s: want a whole number of hours after 00:00 UTC, 0h..23h, so that every hour lies in one day", c.DayStart)
	case c.MaxChannels < 1 || c.MaxChannels > 1<<20:
		return bad("-max-channels %d: want 1..%d", c.MaxChannels, 1<<20)
	case c.Workers < 1 || c.Workers > 1024:
		return bad("-workers %d: want 1..1024", c.Workers)
	case c.MaxMessageBytes < 1<<10 || c.MaxMessageBytes > 32<<20:
		return bad("-max-message-bytes %d: want 1 KiB..32 MiB", c.MaxMessageBytes)
	case c.DemoDevices < 1 || c.DemoDevices > 2_000_000:
		return bad("-demo-devices %d: want 1..2000000", c.DemoDevices)
	case c.CountsRetention <= c.Embargo:
		return bad("-counts-retention %s is not longer than -embargo %s: no minute would ever be exportable", c.CountsRetention, c.Embargo)
	}
	if err := (httpapi.ExportConfig{Embargo: c.Embargo, MinAudience: c.MinAudience, Epsilon: c.ExportNoise}).Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// splitHostPort checks a host:port address; port -1 is allowed when
// randomOK (the embedded NATS server's "any free port").
func splitHostPort(addr string, randomOK bool) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port > 65535 || port < 0 && !(randomOK && port == -1) {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", portText)
	}
	return host, port, nil
}

// isLoopback reports whether host names only this machine. An empty host
// (":8080") is every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkSubject accepts a NATS subject or wildcard: dot-separated non-empty
// tokens without spaces, '*' only as a whole token, '>' only as the last.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return errors.New("has an empty token")
		case strings.ContainsAny(t, " \t\r\n"):
			return errors.New("contains white space")
		case t == ">" && i != len(tokens)-1:
			return errors.New("'>' is allowed only as the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return errors.New("'*' and '>' must be whole tokens")
		}
	}
	return nil
}
