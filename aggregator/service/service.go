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
	"github.com/ratingsd/ratingsd/aggregator/archive"
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

	store       *store.Dir       // the checkpoints
	counts      *archive.Archive // the counts archive (countsDir)
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
	// The counts archive: plain per-minute numbers, kept beyond the
	// sketches for the export. A minute sealed again after a restore
	// replaces its earlier copy.
	if s.counts, err = archive.Open(filepath.Join(cfg.DataDir, countsDir), archive.Config{
		Retention: cfg.CountsRetention, Now: cfg.Now, Logger: s.log,
	}); err != nil {
		return nil, fmt.Errorf("-data %s: counts archive: %w", cfg.DataDir, err)
	}
	export, err := httpapi.NewExporter(httpapi.ExportConfig{
		Archive:     s.counts,
		Embargo:     cfg.Embargo,
		MinAudience: cfg.MinAudience,
		Epsilon:     cfg.ExportNoise,
		KeysFrom:    s.keysFrom,
		Now:         cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.api = httpapi.New(httpapi.Config{
		Agg:     s.agg,
		Tokens:  tokens,
		Metrics: s.metrics,
		Ready:   s.ready,
		Privacy: s.privacy,
		Export:  export,
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
		// The checkpoint, not the consumer's acknowledgements, says where
		// to resume: after a crash the consumer may have acknowledged
		// events that no checkpoint holds (with no checkpoint at all:
		// resume from the stream's start).
		if err := resetConsumer(ctx, s.nc, cfg.JetStream); err != nil {
			return err
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
	if s.counts != nil {
		if err := s.counts.Append(m); err != nil {
			s.metrics.CountsArchiveFailed()
			s.log.Error("counts archive: cannot append a sealed minute", "minute", m.Start, "err", err)
		}
	}
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
// countsDir, under DataDir, holds the counts archive.
const countsDir = "counts"

// keysFrom returns the start of the oldest key epoch whose key still
// exists, or now if none does: every minute before it has had all its
// sketch keys deleted (the export waits for that).
func (s *Service) keysFrom() time.Time {
	now := s.cfg.Now()
	from := now
	cal, err := keys.NewCalendar(s.cfg.DayStart)
	if err != nil || s.keys == nil {
		return time.Time{} // nothing is known to be shredded
	}
	for _, t := range []keys.Tier{keys.Minute, keys.Reach} {
		if held := s.keys.Epochs(t); len(held) > 0 {
			if start, _ := cal.Span(t, held[0]); start.Before(from) {
				from = start
			}
		}
	}
	return from
}

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
	if s.counts != nil {
		errs = append(errs, s.counts.Close())
	}
	if s.api != nil {
		s.api.Close()
	}
	if s.micro != nil {
		errs = append(errs, s.micro.Stop())
	}
	if s.nc != nil {
		// A fresh deadline: the final seal and checkpoint may have used
		// up the intake's, and the last minutes must still go out.
		flush, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		err := s.nc.FlushWithContext(flush)
		cancelFlush()
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("flush the last sealed minutes to nats: %w", err))
		}
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	return errors.Join(errs...)
}

// privacy is the statement GET /v1/privacy serves (privacy.go).
func (s *Service) privacy() any { return privacyStatement(s.cfg) }
