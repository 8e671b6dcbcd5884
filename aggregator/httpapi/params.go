package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// httpError is an error with its status code, for problems of the request
// itself (the aggregator's sentinels are mapped in statusOf).
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// params is a request's query string, checked against what its route takes.
type params url.Values

// parseParams parses r's query string and refuses any parameter not in
// allowed, so that a misspelt parameter is an error rather than a default.
func parseParams(r *http.Request, allowed ...string) (params, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("bad query string: %v", err)
	}
	for name := range v {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest("unknown parameter %q: %s takes none", clip(name), r.Pattern)
			}
			return nil, badRequest("unknown parameter %q: %s takes %s", clip(name), r.Pattern, strings.Join(allowed, ", "))
		}
	}
	return params(v), nil
}

// one returns the single value of name, and whether it was given.
func (p params) one(name string) (string, bool, error) {
	vs := p[name]
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	}
	return "", false, badRequest("parameter %s is given %d times, at most once is allowed", name, len(vs))
}

// time returns the time named name, and whether it was given.
func (p params) time(name string) (time.Time, bool, error) {
	v, ok, err := p.one(name)
	if !ok || err != nil {
		return time.Time{}, false, err
	}
	t, err := parseTime(name, v)
	return t, err == nil, err
}

// maxUnixMS is 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
const maxUnixMS = 253402300799999

// parseTime parses an RFC 3339 time or integer Unix milliseconds, in UTC.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, badRequest("parameter %s is empty: want an RFC 3339 time or Unix milliseconds", name)
	}
	if strings.Trim(v, "0123456789") == "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms > maxUnixMS {
			return time.Time{}, badRequest("parameter %s: %s is beyond 0..%d Unix milliseconds", name, clip(v), int64(maxUnixMS))
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		hint := ""
		if strings.Contains(v, " ") {
			hint = " (a + in a URL query means a space: send it as %2B)"
		}
		return time.Time{}, badRequest("parameter %s: %q is neither an RFC 3339 time nor Unix milliseconds%s", name, clip(v), hint)
	}
	return t.UTC(), nil
}

// channel checks a channel (or region) name given as parameter name.
func checkName(param, v string) error {
	if v == "" {
		return badRequest("parameter %s is empty", param)
	}
	if len(v) > event.MaxChannelLen || !event.ValidName([]byte(v)) {
		return badRequest("parameter %s: %q is not a name of 1..%d characters of [A-Za-z0-9._-]", param, clip(v), event.MaxChannelLen)
	}
	return nil
}

// name returns the required name parameter param.
func (p params) name(param string) (string, error) {
	v, ok, err := p.one(param)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", badRequest("parameter %s is required", param)
	}
	return v, checkName(param, v)
}

// window returns [from, to) from the parameters from and to. Without to it
// ends with the newest sealed minute; without from it starts an hour before
// to (docs/api.md).
func (s *Server) window(p params) (from, to time.Time, err error) {
	from, hasFrom, err := p.time("from")
	if err != nil {
		return from, to, err
	}
	to, hasTo, err := p.time("to")
	if err != nil {
		return from, to, err
	}
	if !hasTo {
		latest := s.cfg.Agg.Latest()
		if latest == nil {
			return from, to, errNoMinute
		}
		to = latest.Start.Add(time.Minute)
	}
	if !hasFrom {
		from = to.Add(-defaultWindow)
	}
	return from, to, nil
}

var errNoMinute = fmt.Errorf("%w: no minute is sealed yet", aggregator.ErrNoData)

// defaultWindow is the length of a window given without from.
const defaultWindow = time.Hour

// clip shortens a request value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
