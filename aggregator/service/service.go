// Package service runs ratingsd: it wires the aggregator to NATS (an embedded
// server or an external one) and to the HTTP API, and shuts them down in the
// order that loses nothing.
//
// Start brings the parts up in dependency order — the checkpoint directory,
// the key files (package keys) and the newest good checkpoint
// (checkpoint.go), the aggregator restored from it,
// NATS, the sealed-minute publisher, the micro service, the intake, the HTTP
// listener, the sealing ticker, the checkpoint loop and, with Demo, the
// simulated audience — and returns once everything listens. Every goroutine
// it starts is owned by the Service and ended by Shutdown: stop the demo and
// the intake (draining what NATS already delivered), seal every minute the
// watermark allows and publish it, write the last checkpoint and close the
// checkpoint directory, then close the micro service, the NATS connection,
// the HTTP server and the embedded NATS server. Run is Start, then Shutdown
// when ctx ends. A Service is safe for concurrent use.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/httpapi"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// shutdownTimeout bounds each step of Shutdown that waits on others.
const shutdownTimeout = 10 * time.Second

// Service is a running ratingsd. See the package doc.
type Service struct {
	cfg     Config
	log     *slog.Logger
	agg     *aggregator.Aggregator
	keys    *keys.Ring // the pseudonym key and the epoch keys
	metrics *telemetry.Metrics

	embedded *natsio.Server // nil with an external server
	nc       *nats.Conn
	pub      *natsio.Publisher
	micro    micro.Service
	// core is read by the NATS async error handler, which may run while
	// Start is still assigning it.
	core   atomic.Pointer[natsio.Intake]
	js     *natsio.JetStreamIntake
	api    *httpapi.Server
	http   *http.Server
	httpLn net.Listener

	store       *store.Dir // the checkpoints
	ckpt        checkpointer
	resumeAfter uint64      // the restored checkpoint's stream position
	started     atomic.Bool // Start succeeded: Shutdown checkpoints

	// state is what /readyz reports: nil once started, an error while
	// starting or stopping.
	state atomic.Pointer[error]
	// natsDown is set while the connection to NATS is lost (events cannot
	// arrive; the dashboard says so from /readyz).
	natsDown atomic.Pointer[error]

	cancel context.CancelFunc // ends the ticker and HTTP request contexts
	wg     sync.WaitGroup     // the ticker and the HTTP server
	// demoCancel ends the demo, which closes demoDone when it returns.
	demoCancel context.CancelFunc
	demoDone   chan struct{}
	failed     chan error // a part that stopped on its own
	stopOnce   sync.Once
	stopErr    error
}

var (
	errStarting = errors.New("starting")
	errStopping = errors.New("shutting down")
)

// Run starts the service and shuts it down when ctx ends, or when a part of
// it fails on its own.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-s.failed:
		s.log.Error("stopping: a part of the service failed", "err", failed)
	}
	return errors.Join(failed, s.Shutdown(context.Background()))
}

// Start validates cfg, starts every part and returns when all of them listen.
// On error, whatever was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Service{cfg: cfg, log: cfg.Logger, failed: make(chan error, 4)}
	s.setState(errStarting)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	defer func() {
		if err != nil {
			_ = s.Shutdown(context.Background())
		}
	}()

	var tokens map[string]httpapi.Role
	if cfg.TokensFile != "" {
		if tokens, err = httpapi.LoadTokens(cfg.TokensFile); err != nil {
			return nil, fmt.Errorf("-tokens %q: %w", cfg.TokensFile, err)
		}
	}

	// The checkpoint directory is locked first: the key directory, like
	// it, belongs to one process at a time.
	cp, err := s.openCheckpoints(nil)
	if err != nil {
		return nil, err
	}
	// The keys persist in the data directory, so that checkpoints stay
	// readable across restarts until their epochs expire.
	if s.keys, err = s.openKeys(); err != nil {
		return nil, err
	}
	s.cfg.Key = s.keys.Pseudonym()
	s.metrics = telemetry.New(nil)
	s.agg, err = s.restore(aggregator.Config{
		Model:           cfg.Model,
		Precision:       cfg.Precision,
		Lateness:        cfg.Lateness,
		MaxClockSkew:    cfg.MaxClockSkew,
		MinDwell:        cfg.MinDwell,
		Inactivity:      cfg.Inactivity,
		MaxChannels:     cfg.MaxChannels,
		MinuteRetention: cfg.MinuteRetention,
		Retention:       cfg.Retention,
		DayStart:        cfg.DayStart,
		Keys:            s.keys,
		Now:             cfg.Now,
		// s.api and s.pub are set before the ticker starts, and nothing
		// seals before it (or before Shutdown).
		OnSeal:   s.onSeal,
		OnForget: s.onForget,
	}, cp)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	s.metrics.SetAggregator(s.agg)
	s.api = httpapi.New(httpapi.Config{
		Agg:     s.agg,
		Tokens:  tokens,
		Metrics: s.metrics,
		Ready:   s.ready,
		Privacy: s.privacy,
	})

	if err := s.startNATS(ctx); err != nil {
		return nil, err
	}
	if err := s.startHTTP(runCtx); err != nil {
		return nil, err
	}
	if cfg.TickInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.agg.Run(runCtx, cfg.TickInterval)
		}()
	}
	if cfg.CheckpointEvery > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.checkpointLoop(runCtx)
		}()
	}
	if cfg.Demo {
		if err := s.startDemo(runCtx); err != nil {
			return nil, err
		}
	}
	s.started.Store(true)
	s.setState(nil)
	s.announce()
	return s, nil
}

func (s *Service) startNATS(ctx context.Context) error {
	cfg := s.cfg
	opts := []nats.Option{
		nats.Name("ratingsd"),
		nats.ErrorHandler(s.asyncError),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("connection closed")
			}
			down := fmt.Errorf("NATS disconnected: %v; reconnecting", err)
			s.natsDown.Store(&down)
			s.log.Warn("NATS disconnected; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.natsDown.Store(nil)
			s.log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		// A reconnect must not drop the sealed minutes buffered meanwhile.
		nats.ReconnectBufSize(64 << 20),
	}
	var err error
	if cfg.NATSURL == "" {
		s.embedded, err = natsio.StartServer(natsio.ServerConfig{
			Listen:     cfg.NATSListen,
			StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
			MaxPayload: min(max(2*cfg.MaxMessageBytes, 1<<20), 64<<20),
			Logger:     s.log,
		})
		if err != nil {
			return fmt.Errorf("-nats-listen %s: %w", cfg.NATSListen, err)
		}
		s.nc, err = s.embedded.Connect(opts...)
	} else {
		s.nc, err = nats.Connect(cfg.NATSURL, opts...)
		if err != nil {
			err = fmt.Errorf("connect to -nats %s: %w", cfg.NATSURL, err)
		}
	}
	if err != nil {
		return err
	}

	s.pub = natsio.NewPublisher(s.nc, s.agg, s.metrics)
	// The micro service answers from an unauthenticated handler of its
	// own: over NATS, who may ask is the NATS server's authorization.
	queries := httpapi.New(httpapi.Config{Agg: s.agg, Privacy: s.privacy})
	if s.micro, err = natsio.StartMicro(natsio.MicroConfig{Conn: s.nc, Queries: queries, Metrics: s.metrics}); err != nil {
		return err
	}

	if cfg.JetStream != "" {
		if s.resumeAfter > 0 {
			if err := resetConsumer(ctx, s.nc, cfg.JetStream); err != nil {
				return err
			}
		}
		s.js, err = natsio.StartJetStream(ctx, natsio.JetStreamConfig{
			Conn:            s.nc,
			Agg:             s.agg,
			Metrics:         s.metrics,
			Stream:          cfg.JetStream,
			Subject:         cfg.Subject,
			MaxAge:          cfg.JetStreamMaxAge,
			MaxMessageBytes: cfg.MaxMessageBytes,
			ResumeAfter:     s.resumeAfter,
			Logger:          s.log,
		})
		return err
	}
	core, err := natsio.StartIntake(natsio.IntakeConfig{
		Conn:            s.nc,
		Agg:             s.agg,
		Metrics:         s.metrics,
		Subject:         cfg.Subject,
		Workers:         cfg.Workers,
		MaxMessageBytes: cfg.MaxMessageBytes,
		Logger:          s.log,
	})
	if err != nil {
		return err
	}
	s.core.Store(core)
	// Make sure the server has the subscription before producers are told
	// where to publish.
	return s.nc.Flush()
}

func (s *Service) asyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	if in := s.core.Load(); in != nil && sub != nil {
		in.AsyncError(nc, sub, err)
		if errors.Is(err, nats.ErrSlowConsumer) {
			return
		}
	}
	s.log.Warn("nats", "err", err)
}

func (s *Service) startHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("-http %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Request contexts end with the service, so that event streams
		// return when it stops.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("http server on %s: %w", ln.Addr(), err)
		}
	}()
	return nil
}

// onSeal announces a sealed minute: SSE subscribers, NATS, metrics.
func (s *Service) onSeal(m *aggregator.Minute) {
	if s.api != nil {
		s.api.Publish(m)
	}
	if s.pub != nil {
		if err := s.pub.Publish(m); err != nil {
			s.log.Warn("publish sealed minute", "minute", m.Start, "err", err)
		}
	}
}

// openKeys returns the key ring: the key files of DataDir/keys, or, with
// Config.Key, keys derived from it (tests).
func (s *Service) openKeys() (*keys.Ring, error) {
	if s.cfg.Key != nil {
		return keys.Derived(s.cfg.Key), nil
	}
	dir := filepath.Join(s.cfg.DataDir, keyDir)
	r, err := keys.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("-data %s: %w", s.cfg.DataDir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sketch.key")); err == nil {
		s.log.Warn("keys/sketch.key, the single key of an older version, is no longer used; delete it to shred the checkpoints written under it",
			"file", filepath.Join(dir, "sketch.key"))
	}
	return r, nil
}

// onForget logs each key epoch the engine forgets: from then on nothing
// sealed under it, in memory or in any checkpoint, can be read.
func (s *Service) onForget(t keys.Tier, epoch int64, err error) {
	if err != nil {
		s.log.Error("cannot delete an expired key; retrying at the next tick", "epoch", keys.ID(t, epoch), "err", err)
		return
	}
	s.log.Info("expired key deleted: its sketches are shredded", "epoch", keys.ID(t, epoch))
}

func (s *Service) ready() error {
	if p := s.state.Load(); p != nil {
		return *p
	}
	if s.agg != nil {
		if err := s.agg.KeyError(); err != nil {
			return fmt.Errorf("minutes cannot be sealed: %w", err)
		}
	}
	if p := s.natsDown.Load(); p != nil {
		return *p
	}
	if p := s.ckpt.ready.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Service) setState(err error) {
	if err == nil {
		s.state.Store(nil)
		return
	}
	s.state.Store(&err)
}

// announce logs where to look.
func (s *Service) announce() {
	natsURL := s.NATSURL()
	example := fmt.Sprintf(`nats --server %s pub %s '{"device":"stb-1","channel":"npo1","ts":'$(date +%%s%%3N)'}'`, natsURL, demoSubjects(s.cfg.Subject, 1)[0])
	s.log.Info("ratingsd is running",
		"dashboard", "http://"+s.HTTPAddr()+"/",
		"nats", natsURL,
		"subject", s.cfg.Subject,
		"jetstream", s.cfg.JetStream,
		"model", s.cfg.Model.String(),
		"demo", s.cfg.Demo)
	s.log.Info("publish events with, for example: " + example)
	s.log.Info("sealed minutes are published on " + natsio.MinuteSubject + " and " + natsio.MinuteSubject + ".<channel>; " +
		"queries answer as the NATS micro service \"" + natsio.ServiceName + "\" (nats micro info " + natsio.ServiceName + ")")
}

// HTTPAddr returns the address the HTTP API listens on.
func (s *Service) HTTPAddr() string { return s.httpLn.Addr().String() }

// NATSURL returns the URL producers publish to: the embedded server's, or
// the configured external one.
func (s *Service) NATSURL() string {
	if s.embedded != nil {
		return s.embedded.ClientURL()
	}
	return s.cfg.NATSURL
}

// Aggregator returns the engine (tests seal through it).
func (s *Service) Aggregator() *aggregator.Aggregator { return s.agg }

// Metrics returns the service's metrics.
func (s *Service) Metrics() *telemetry.Metrics { return s.metrics }

// StreamSequence returns the last JetStream stream sequence processed (0
// with core NATS): the position a checkpoint records.
func (s *Service) StreamSequence() uint64 {
	if s.js != nil {
		return s.js.Sequence()
	}
	return 0
}

// Shutdown stops the service: intake first (draining what NATS delivered),
// then the last seal and its publication, then the rest. It is safe to call
// more than once; later calls return the first one's result.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Service) shutdown(ctx context.Context) error {
	s.setState(errStopping)
	var errs []error
	step, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()

	s.stopDemo()
	if in := s.core.Load(); in != nil {
		errs = append(errs, in.Stop(step))
	}
	if s.js != nil {
		errs = append(errs, s.js.Stop(step))
	}
	// The ticker must be gone before the last seal, so that the two do not
	// race for the same minutes' publication order.
	if s.cancel != nil {
		s.cancel()
	}
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(step))
	}
	s.wg.Wait()
	if s.agg != nil {
		s.agg.Tick() // seal what the watermark allows; OnSeal publishes
		if s.agg.Accepted() > 0 {
			s.log.Info("final seal", "sealed_minutes", s.agg.SealedMinutes(), "accepted_events", s.agg.Accepted())
		}
	}
	if s.store != nil {
		// The last checkpoint holds the last seal's state; it is written
		// even while checkpoints were failing, in case the cause is gone.
		if s.agg != nil && s.started.Load() {
			if err := s.checkpoint(); err != nil {
				errs = append(errs, fmt.Errorf("final checkpoint: %w", err))
			}
		}
		errs = append(errs, s.store.Close())
	}
	if s.api != nil {
		s.api.Close()
	}
	if s.micro != nil {
		errs = append(errs, s.micro.Stop())
	}
	if s.nc != nil {
		if err := s.nc.FlushWithContext(step); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("flush the last sealed minutes to nats: %w", err))
		}
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	return errors.Join(errs...)
}

// Privacy is the statement GET /v1/privacy serves, from the live
// configuration: what is processed, what is kept where, for how long.
type Privacy struct {
	Processed    string   `json:"processed"`
	Model        string   `json:"model"`
	Pseudonyms   string   `json:"pseudonyms"`
	TuningTable  string   `json:"tuning_table,omitempty"`
	MinuteTier   string   `json:"minute_tier"`
	ReachTier    string   `json:"reach_tier"`
	Retention    string   `json:"retention"`
	Broker       string   `json:"broker"`
	Outputs      []string `json:"outputs"`
	NeverOutputs []string `json:"never_outputs"`
}

func (s *Service) privacy() any {
	c := s.cfg
	p := Privacy{
		Processed:    "set-top-box channel-change events: device identifier, channel, time, kind, region",
		Model:        c.Model.String(),
		Pseudonyms:   "device identifiers are hashed with a secret 128-bit SipHash-2-4 pseudonym key before they touch any state; the pseudonym only routes a device and keys its tuning-table entry, and is hashed again under the key of a day or an ISO week before it enters a sketch; keys are kept in the data directory (keys/, mode 0600 files) so that checkpoints survive a restart, and each epoch's key is deleted once its last sketch has expired, which makes every copy of those sketches, in any checkpoint, unreadable",
		MinuteTier:   fmt.Sprintf("per-channel, per-minute HyperLogLog sketches under a key per day (days start %s after 00:00 UTC), in memory and in checkpoints encrypted per day, kept %s", c.DayStart, c.MinuteRetention),
		ReachTier:    fmt.Sprintf("per-channel, per-hour HyperLogLog sketches under a key per ISO week, in memory and in checkpoints encrypted per week, kept %s", c.Retention),
		Retention:    fmt.Sprintf("minute tier %s (at most 7 days), reach tier %s (refused at 30 days or more); the key of a day or week is deleted when its last sketch expires", c.MinuteRetention, c.Retention),
		Broker:       "core NATS: raw events are not stored by the broker",
		Outputs:      []string{"audience counts and estimates per channel and minute, shares, reach, flows, capacity figures"},
		NeverOutputs: []string{"device identifiers", "device hashes", "sketch bytes"},
	}
	if c.Model == aggregator.Tuning {
		where := "in memory and in encrypted checkpoints under the data directory"
		if c.ForgetTuning {
			where = "in memory only"
		}
		p.TuningTable = fmt.Sprintf("%s: per pseudonymous device its current channel and since when, never its past; an entry ends on standby, a new tune or %s without events", where, c.Inactivity)
	}
	if c.JetStream != "" {
		p.Broker = fmt.Sprintf("JetStream stream %q keeps raw events, device identifiers included, for the stream's MaxAge (%s when the service creates it)", c.JetStream, c.JetStreamMaxAge)
	}
	return p
}
