package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvent is one event (or comment) of a stream, as a client parses it.
type sseEvent struct {
	comment         string
	event, id, data string
}

// sseClient reads a GET /v1/stream response in a goroutine of its own,
// which ends with the response.
type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent // closed at the end of the stream
}

func (f *fixture) subscribe(t *testing.T, header http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", f.ts.URL+"/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/stream: %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{resp: resp, cancel: cancel, events: make(chan sseEvent, 64)}
	go func() {
		defer close(c.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.events <- e
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				e.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "event":
					e.event = v
				case "id":
					e.id = v
				case "data":
					e.data = v
				}
			}
		}
	}()
	t.Cleanup(cancel)
	return c
}

// next returns the next event that is not a comment (or, with comments,
// the next of either).
func (c *sseClient) next(t *testing.T, comments bool) sseEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if e.comment == "" || comments {
				return e
			}
		case <-timeout:
			t.Fatal("no event within 5 s")
		}
	}
}

// ended waits for the end of the stream.
func (c *sseClient) ended(t *testing.T) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream did not end within 5 s")
		}
	}
}

// waitSubscribers waits until the server has n open streams: the handler of
// a closed stream has returned and unsubscribed.
func waitSubscribers(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d open streams, want %d", s.subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decodeMinute(t *testing.T, e sseEvent) minuteOut {
	t.Helper()
	if e.event != "minute" {
		t.Fatalf("event %+v, want a minute", e)
	}
	var m minuteOut
	if err := json.Unmarshal([]byte(e.data), &m); err != nil {
		t.Fatalf("data %q: %v", e.data, err)
	}
	if e.id != m.Minute.Format(time.RFC3339) {
		t.Errorf("id %q, want the minute %v", e.id, m.Minute)
	}
	return m
}

func TestStream(t *testing.T) {
	f := scenarioFixture(t, Config{})
	c := f.subscribe(t, nil)

	// At once: the newest sealed minute.
	m := decodeMinute(t, c.next(t, false))
	if !m.Minute.Equal(at("2:00")) || m.Total == nil || *m.Total != 5 || len(m.Channels) != 3 {
		t.Errorf("replayed %+v, want 20:02 with total 5 on 3 channels", m)
	}
	waitSubscribers(t, f.srv, 1)

	// Then each minute as it seals: 20:03 has d1 npo1, d2 d5 npo2, d4 d6 rtl4,
	// and d6 half on rtl4, half on npo1: on a tie the later channel wins.
	f.ingest(t, "3:30 d6 tune npo1 ams-03", "4:10 d1 heartbeat npo1 ams-03")
	f.seal("4:00")
	m = decodeMinute(t, c.next(t, false))
	want := []channelJSON{{"npo1", 2, 2, 2, 0.4}, {"npo2", 2, 2, 2, 0.4}, {"rtl4", 1, 1, 1, 0.2}}
	if !m.Minute.Equal(at("3:00")) || *m.Total != 5 || !equalRows(m.Channels, want) {
		t.Errorf("sealed %+v, want 20:03 total 5 %v", m, want)
	}

	// A client that goes away ends its handler.
	c.cancel()
	waitSubscribers(t, f.srv, 0)
}

func equalRows(a, b []channelJSON) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStreamLastEventID: a reconnecting client that has the newest minute
// gets no replay of it.
func TestStreamLastEventID(t *testing.T) {
	f := scenarioFixture(t, Config{})
	c := f.subscribe(t, http.Header{"Last-Event-Id": {at("2:00").Format(time.RFC3339)}})
	if e := c.next(t, true); e.comment != "ratingsd minutes" {
		t.Fatalf("first %+v, want the opening comment", e)
	}
	waitSubscribers(t, f.srv, 1)
	f.ingest(t, "4:10 d1 heartbeat npo1 ams-03")
	f.seal("4:00")
	if m := decodeMinute(t, c.next(t, false)); !m.Minute.Equal(at("3:00")) {
		t.Errorf("first minute %v, want 20:03: the client had 20:02", m.Minute)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	f := scenarioFixture(t, Config{})
	f.srv.heartbeat = 10 * time.Millisecond
	c := f.subscribe(t, nil)
	seen := 0
	for seen < 2 {
		if e := c.next(t, true); e.comment == "heartbeat" {
			seen++
		}
	}
}

// TestStreamClose: Close ends every stream, returns once their handlers
// have, and refuses new ones.
func TestStreamClose(t *testing.T) {
	f := scenarioFixture(t, Config{})
	a, b := f.subscribe(t, nil), f.subscribe(t, nil)
	waitSubscribers(t, f.srv, 2)
	f.srv.Close()
	if n := f.srv.subscribers(); n != 0 {
		t.Errorf("%d streams open after Close, want 0", n)
	}
	a.ended(t)
	b.ended(t)
	r := f.do(t, "GET", "/v1/stream", "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "shutting down") {
		t.Errorf("GET /v1/stream after Close: %d %s, want 503", r.code, r.body)
	}
	f.srv.Publish(f.agg.Latest()) // a late minute from the sealer is no problem
	f.srv.Close()                 // nor a second Close
}

// TestPublishNeverBlocks: a subscriber that does not drain its buffer loses
// minutes, counted; the sealer is never held up.
func TestPublishNeverBlocks(t *testing.T) {
	f := scenarioFixture(t, Config{})
	sub := f.srv.subscribe()
	defer f.srv.unsubscribe(sub)
	m := f.agg.Latest()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range subscriberBuffer + 3 {
			f.srv.Publish(m)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full subscriber")
	}
	if got := f.srv.dropped.Load(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	if r := f.do(t, "GET", "/metrics", ""); !strings.Contains(string(r.body), "ratings_http_stream_dropped_total 3") {
		t.Errorf("/metrics does not count the 3 dropped minutes:\n%s", r.body)
	}
}

// TestStreamHead: HEAD answers with the stream's headers and ends.
func TestStreamHead(t *testing.T) {
	f := scenarioFixture(t, Config{})
	r := f.do(t, "HEAD", "/v1/stream", "")
	if r.code != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /v1/stream: %d %s, want 200 text/event-stream", r.code, r.header.Get("Content-Type"))
	}
	waitSubscribers(t, f.srv, 0)
}
