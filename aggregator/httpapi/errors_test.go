package httpapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/ratingsd/ratingsd/aggregator"
)

func TestEmpty(t *testing.T) {
	f := newFixture(t, aggregator.Tuning, Config{})
	check := func(path string, code int, body string) {
		t.Helper()
		r := f.do(t, "GET", path, "")
		if r.code != code || strings.TrimSpace(string(r.body)) != body {
			t.Errorf("GET %s: %d %s, want %d %s", path, r.code, r.body, code, body)
		}
	}
	check("/v1/now", 200, `{"sealed":null,"open":null}`)
	check("/v1/channels", 200, `{"minute":null,"channels":[]}`)
	check("/v1/regions", 200, `{"regions":[]}`)
	check("/v1/reach", 404, `{"error":"no data yet: no minute is sealed yet"}`)
	check("/v1/flow?from=npo1", 404, `{"error":"no data yet: no minute is sealed yet"}`)
	// Before the first sealed minute the default window does not exist yet.
	check("/v1/audience?channel=npo1", 404, `{"error":"no data yet: no minute is sealed yet"}`)
	check("/v1/audience?channel=npo1&from="+rfc("0:00")+"&to="+rfc("1:00"), 404, `{"error":"unknown channel: \"npo1\""}`)
}

// TestErrors is the table of bad requests: each gets its status and a
// message that says what was wrong, with which value.
func TestErrors(t *testing.T) {
	f := scenarioFixture(t, Config{})
	ev := newFixture(t, aggregator.Events, Config{})
	ev.ingest(t, "0:00 d1 tune npo1 ams-03", "1:30 d1 tune npo1 ams-03")
	ev.seal("2:00")

	check := func(fx *fixture, method, path string, code int, msg string) {
		t.Helper()
		r := fx.do(t, method, path, "")
		var e struct{ Error string }
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Errorf("%s %s: body %q is not a JSON error: %v", method, path, r.body, err)
		}
		if r.code != code || !strings.Contains(e.Error, msg) {
			t.Errorf("%s %s:\ngot  %d %q\nwant %d containing %q", method, path, r.code, e.Error, code, msg)
		}
	}
	get := func(path string, code int, msg string) { t.Helper(); check(f, "GET", path, code, msg) }
	win := func(from, to string) string { return "&from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to) }

	get("/v1/audience", 400, "parameter channel is required")
	get("/v1/audience?channel=", 400, "parameter channel is empty")
	get("/v1/audience?channel=bbc%20one", 400, `parameter channel: "bbc one" is not a name of 1..64 characters`)
	get("/v1/audience?channel="+strings.Repeat("x", 65), 400, "is not a name of 1..64")
	get("/v1/audience?channel=nope", 404, `unknown channel: "nope"`)
	get("/v1/audience?channel=npo1&channel=npo2", 400, "parameter channel is given 2 times")
	get("/v1/audience?chanel=npo1", 400, `unknown parameter "chanel": GET /v1/audience takes channel, from, to`)
	get("/v1/audience?channel=%zz", 400, "bad query string")
	get("/v1/audience?channel=npo1&from=yesterday", 400, `parameter from: "yesterday" is neither an RFC 3339 time nor Unix milliseconds`)
	get("/v1/audience?channel=npo1&from=", 400, "parameter from is empty")
	get("/v1/audience?channel=npo1&to=2025-11-27T21:00:00+01:00", 400, "send it as %2B")
	get("/v1/audience?channel=npo1&to=99999999999999999999", 400, "parameter to: 99999999999999999999 is beyond 0..253402300799999 Unix milliseconds")
	get("/v1/audience?channel=npo1"+win(rfc("3:00"), rfc("0:00")), 400, "bad time range: from 2025-11-27T20:03:00Z is not before to 2025-11-27T20:00:00Z")
	get("/v1/audience?channel=npo1"+win("2025-11-24T20:00:00Z", rfc("0:00")), 400, "window too large: 72h0m0s is longer than the 48h0m0s minute retention")
	get("/v1/audience?channel=npo1"+win(rfc("-60:00"), rfc("-30:00")), 410, "data expired: the window ends before 2025-11-27T19:59:00Z")
	get("/v1/audience?channel=npo1"+win(rfc("60:00"), rfc("90:00")), 404, "no data yet: the window starts after 2025-11-27T20:02:00Z")
	get("/v1/reach?channel=npo1&channel=nope", 404, `unknown channel: "nope"`)
	get("/v1/reach?channel=n%C3%B6", 400, `parameter channel: "nö" is not a name`)
	get("/v1/reach?"+win(rfc("-60:00"), rfc("-30:00"))[1:], 410, "data expired")
	get("/v1/flow", 400, "parameter from is required")
	get("/v1/flow?from=nope", 404, `unknown channel: "nope"`)
	get("/v1/flow?from=npo1&minute=noon", 400, `parameter minute: "noon" is neither`)
	get("/v1/flow?from=npo1&minute="+rfc("-60:00"), 410, "data expired")
	get("/v1/flow?channel=npo1", 400, `unknown parameter "channel": GET /v1/flow takes from, minute`)
	get("/v1/capacity", 400, "parameter region is required")
	get("/v1/capacity?region=nowhere", 404, `unknown region: "nowhere"`)
	get("/v1/capacity?region=ams-03"+win(rfc("3:00"), rfc("0:00")), 400, "bad time range")
	get("/v1/now?top=10", 400, `unknown parameter "top": GET /v1/now takes none`)
	get("/v1/stream?replay=0", 400, `unknown parameter "replay"`)
	get("/v1/nothing", 404, "no route GET /v1/nothing")
	get("/v2/now", 404, "no route GET /v2/now")
	check(f, "POST", "/v1/now", 405, "method POST is not allowed on /v1/now (allowed: GET, HEAD)")
	check(f, "DELETE", "/healthz", 405, "method DELETE is not allowed on /healthz")
	check(ev, "GET", "/v1/flow?from=npo1", 409, "not available in this audience model: flows need the tuning model (this service runs events)")

	if r := f.do(t, "POST", "/v1/now", ""); r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("405 Allow header %q, want \"GET, HEAD\"", r.header.Get("Allow"))
	}
}
