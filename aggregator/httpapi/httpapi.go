// Package httpapi serves the ratings over HTTP: JSON queries of an
// aggregator (curves, the now board, reach, flow, capacity), a Server-Sent
// Events stream of sealed minutes, health and metrics endpoints, and the
// embedded dashboard page. docs/api.md is its reference.
//
// Every route is a Go 1.22 method pattern on one http.ServeMux, wrapped so
// that each request is authorized by bearer token and role before its
// handler runs, observed in the metrics by route pattern (never by raw
// path), and answered with a JSON error {"error": "..."} on failure,
// including the mux's own 404 and 405. Responses carry numbers only: no
// sketch bytes, no hashes, no device identifiers. A Server is safe for
// concurrent use; Publish never blocks, and Close ends the event streams
// and waits for their handlers to return.
package httpapi

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// Config configures a Server.
type Config struct {
	// Agg answers the queries. Required.
	Agg *aggregator.Aggregator
	// Tokens maps bearer tokens to roles (LoadTokens reads them from a
	// file). Nil or empty turns authentication off: the service then binds
	// to loopback only.
	Tokens map[string]Role
	// Metrics observes every request's latency by route; nil observes none.
	Metrics *telemetry.Metrics
	// Ready reports whether the service is ready for traffic; /readyz
	// answers 503 with its error's text. Nil means always ready.
	Ready func() error
	// Privacy returns the privacy statement served as JSON by
	// GET /v1/privacy, and as Markdown with ?format=markdown if the value
	// has a Markdown() []byte method. Nil answers 404.
	Privacy func() any
	// Export serves GET /v1/export from the counts archive (export.go).
	// Nil answers 501.
	Export *Exporter
}

// Server is the HTTP API. It implements http.Handler.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	keys *keyring // nil: authentication off

	// heartbeat is the interval of the event stream's keep-alive comment.
	heartbeat time.Duration

	mu      sync.Mutex // guards subs and closed
	subs    map[*subscriber]struct{}
	closed  bool
	done    chan struct{} // closed by Close
	streams sync.WaitGroup
	dropped atomic.Uint64 // minutes not delivered to a slow subscriber
}

//go:embed static
var static embed.FS

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Agg == nil {
		panic("BUG: httpapi.New without an aggregator")
	}
	s := &Server{
		cfg:       cfg,
		mux:       http.NewServeMux(),
		heartbeat: 15 * time.Second,
		subs:      make(map[*subscriber]struct{}),
		done:      make(chan struct{}),
	}
	if len(cfg.Tokens) > 0 {
		s.keys = newKeyring(cfg.Tokens)
	}
	if cfg.Metrics != nil {
		cfg.Metrics.WatchStream(s.subscribers, s.dropped.Load)
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		panic("BUG: embedded static directory: " + err.Error())
	}

	s.handle("GET /v1/channels", RoleRead, s.query(s.channels))
	s.handle("GET /v1/regions", RoleRead, s.query(s.regions))
	s.handle("GET /v1/audience", RoleRead, s.query(s.audience))
	s.handle("GET /v1/now", RoleRead, s.query(s.now))
	s.handle("GET /v1/reach", RoleRead, s.query(s.reach))
	s.handle("GET /v1/epochs", RoleRead, s.query(s.epochs))
	s.handle("GET /v1/flow", RoleRead, s.query(s.flow))
	s.handle("GET /v1/capacity", RoleRead, s.query(s.capacity))
	s.handle("GET /v1/stream", RoleRead, s.stream)
	s.handle("GET /v1/export", RoleExport, s.export)
	s.handle("GET /metrics", RoleRead, s.metrics)
	// The privacy statement, the probes and the page carry no ratings:
	// they are public, so that viewers and orchestrators can read them.
	s.handle("GET /v1/privacy", "", s.privacy)
	s.handle("GET /healthz", "", s.query(healthz))
	s.handle("GET /readyz", "", s.readyz)
	s.handle("GET /{$}", "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		http.ServeFileFS(w, r, assets, "index.html")
	})
	s.handle("GET /static/", "", http.StripPrefix("/static/", http.FileServerFS(assets)).ServeHTTP)
	return s
}

// handle registers h for pattern behind the role check of need ("" = public).
func (s *Server) handle(pattern string, need Role, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if s.authorize(w, r, need) {
			h(w, r)
		}
	})
}

// ServeHTTP routes r, and observes its latency by route pattern.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, r: r}
	s.mux.ServeHTTP(sw, r)
	if s.cfg.Metrics == nil {
		return
	}
	// The mux set r.Pattern when a route matched. A raw path would give
	// every scanner's probe a metric series of its own.
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	s.cfg.Metrics.ObserveHTTP(route, sw.status(), time.Since(start))
}

// statusWriter records the status code, and turns the mux's own plain-text
// 404 and 405 into JSON errors.
type statusWriter struct {
	http.ResponseWriter
	r       *http.Request
	code    int
	swallow bool // the mux's plain-text body is replaced
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	if w.r.Pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		msg := fmt.Sprintf("no route %s %s", w.r.Method, clip(w.r.URL.Path))
		if code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", w.r.Method, clip(w.r.URL.Path), w.Header().Get("Allow"))
		}
		w.swallow = true
		writeError(w.ResponseWriter, code, msg)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush, write
// deadlines) through the wrapper.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// query adapts a handler that returns a value to encode as JSON, or an error.
func (s *Server) query(f func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, aggregator.ErrUnknownChannel), errors.Is(err, aggregator.ErrUnknownRegion):
		return http.StatusNotFound
	case errors.Is(err, aggregator.ErrNoData):
		// Nothing is sealed in the window yet: there is no curve to show,
		// and an empty 200 would read as an audience of zero.
		return http.StatusNotFound
	case errors.Is(err, aggregator.ErrBadRange), errors.Is(err, aggregator.ErrWindowTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, aggregator.ErrCrossEpoch):
		// A reach no tier can count without mixing two keys: the
		// message says where the boundary is and what to ask instead.
		return http.StatusBadRequest
	case errors.Is(err, aggregator.ErrExpired):
		return http.StatusGone
	case errors.Is(err, aggregator.ErrModel):
		// The request is well formed; the service's audience model
		// cannot answer it.
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("encode response: %v", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

type status struct {
	Status string `json:"status"`
}

// healthz answers while the process serves.
func healthz(r *http.Request) (any, error) { return status{"ok"}, nil }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, status{"ready"})
}

// metrics serves the Prometheus text exposition of the service's metrics.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.WritePrometheus(w)
	}
}

// privacy serves the privacy statement: JSON, or with ?format=markdown the
// statement's Markdown if it has one (a Markdown() []byte method).
func (s *Server) privacy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "format" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: /v1/privacy takes only format=json|markdown", k))
			return
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "markdown" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want json or markdown", format))
		return
	}
	if s.cfg.Privacy == nil {
		writeError(w, http.StatusNotFound, "no privacy statement is configured")
		return
	}
	v := s.cfg.Privacy()
	if format == "markdown" {
		md, ok := v.(interface{ Markdown() []byte })
		if !ok {
			writeError(w, http.StatusNotFound, "this privacy statement has no Markdown form")
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(md.Markdown())
		return
	}
	writeJSON(w, http.StatusOK, v)
}
