package natsio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// Micro service identity.
const (
	ServiceName    = "ratings"
	ServiceVersion = "1.0.0"
	// QueryPrefix is the subject prefix of the query endpoints:
	// ratings.channels, ratings.audience, ….
	QueryPrefix = "ratings"
)

// Endpoints are the queries the micro service answers, each the same as
// GET /v1/<name> over HTTP.
var Endpoints = []string{"channels", "audience", "now", "reach", "flow", "capacity", "epochs"}

// MicroConfig configures the NATS micro service.
type MicroConfig struct {
	Conn *nats.Conn // required
	// Queries answers GET /v1/<endpoint>?<query> exactly as the HTTP API
	// does; the service passes its HTTP handler (without token checks:
	// who may send requests is the NATS server's authorization). Required.
	Queries http.Handler
	Metrics *telemetry.Metrics // required
	// Timeout bounds one query. If 0, 10s.
	Timeout time.Duration
}

// StartMicro registers the NATS micro service "ratings". A request's body is
// a JSON object with the HTTP query string's parameter names, a list for a
// repeated one: {"channel":["npo1","npo2"],"from":"2025-03-14T19:00:00Z",
// "to":"2025-03-14T20:00:00Z"}; an empty body is no parameters. The answer is
// the HTTP answer's JSON; an HTTP error becomes a micro error response whose
// code is the HTTP status (400, 404, 410, …) and whose description is the
// error message. The caller stops the returned service.
func StartMicro(cfg MicroConfig) (micro.Service, error) {
	if cfg.Conn == nil || cfg.Queries == nil || cfg.Metrics == nil {
		return nil, errors.New("nats micro service: Conn, Queries and Metrics are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	svc, err := micro.AddService(cfg.Conn, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "TV ratings: minute audiences, now, reach, flow, capacity (same answers as the HTTP API /v1/...)",
	})
	if err != nil {
		return nil, fmt.Errorf("nats micro service %q: %w", ServiceName, err)
	}
	g := svc.AddGroup(QueryPrefix)
	for _, name := range Endpoints {
		h := micro.HandlerFunc(func(req micro.Request) { answer(cfg, name, req) })
		if err := g.AddEndpoint(name, h, micro.WithEndpointMetadata(map[string]string{
			"http": "GET /v1/" + name,
		})); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("nats micro endpoint %s.%s: %w", QueryPrefix, name, err)
		}
	}
	// Once StartMicro returns the server knows every endpoint: a request
	// sent from then on finds a responder.
	if err := cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("nats micro service %q: server did not confirm the endpoints: %w", ServiceName, err)
	}
	return svc, nil
}

// answer serves one request through the HTTP handler.
func answer(cfg MicroConfig, name string, req micro.Request) {
	q, err := queryOf(req.Data())
	if err != nil {
		cfg.Metrics.MicroRequest(true)
		_ = req.Error("400", err.Error(), errorBody(err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	target := "/v1/" + name
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		cfg.Metrics.MicroRequest(true)
		_ = req.Error("400", err.Error(), errorBody(err.Error()))
		return
	}
	r.RemoteAddr = "nats"
	rec := &recorder{header: make(http.Header), status: http.StatusOK}
	cfg.Queries.ServeHTTP(rec, r)
	if rec.status >= 400 {
		cfg.Metrics.MicroRequest(true)
		var e struct {
			Error string `json:"error"`
		}
		desc := http.StatusText(rec.status)
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != "" {
			desc = e.Error
		}
		_ = req.Error(strconv.Itoa(rec.status), desc, rec.body.Bytes())
		return
	}
	cfg.Metrics.MicroRequest(false)
	_ = req.Respond(rec.body.Bytes(), micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}}))
}

func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

// queryOf turns a request body into query parameters: a JSON object whose
// values are strings, numbers, booleans or lists of them.
func queryOf(body []byte) (url.Values, error) {
	q := url.Values{}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	var params map[string]any
	if err := json.Unmarshal(body, &params); err != nil {
		return nil, fmt.Errorf("request body is not a JSON object of query parameters: %w", err)
	}
	for k, v := range params {
		if list, ok := v.([]any); ok {
			for _, x := range list {
				s, err := paramString(k, x)
				if err != nil {
					return nil, err
				}
				q.Add(k, s)
			}
			continue
		}
		if v == nil {
			continue
		}
		s, err := paramString(k, v)
		if err != nil {
			return nil, err
		}
		q.Add(k, s)
	}
	return q, nil
}

func paramString(k string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("parameter %q: want a string, number, boolean or a list of them, got %T", k, v)
}

// recorder is the ResponseWriter a query answers into.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
