package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// subscriber is one GET /v1/stream connection. Publish hands it encoded
// minutes through ch; its handler writes them out.
type subscriber struct {
	ch chan frame
}

// frame is a sealed minute encoded once for every subscriber.
type frame struct {
	minute time.Time
	data   []byte // the JSON of the minute, one line
}

// subscriberBuffer is how many minutes a subscriber may fall behind before
// Publish drops minutes for it. A minute seals once a minute, so a full
// buffer means a connection that has stopped reading for minutes.
const subscriberBuffer = 8

// writeTimeout bounds every write to a stream, so that a client that stops
// reading cannot hold its handler (and Close) forever.
const writeTimeout = 10 * time.Second

func encodeMinute(m *aggregator.Minute) frame {
	b, err := json.Marshal(sealedMinute(m))
	if err != nil {
		panic("BUG: a sealed minute always encodes: " + err.Error())
	}
	return frame{minute: m.Start, data: b}
}

// Publish sends a sealed minute to every stream subscriber without blocking:
// a subscriber whose buffer is full misses the minute, and the miss is
// counted (ratings_http_stream_dropped_total). The sealer calls it.
func (s *Server) Publish(m *aggregator.Minute) {
	if s.subscribers() == 0 {
		return // a stream that opens now replays the newest minute itself
	}
	f := encodeMinute(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for sub := range s.subs {
		select {
		case sub.ch <- f:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close ends every event stream, waits for their handlers to return, and
// refuses new streams. Call it before http.Server.Shutdown, which waits for
// connections to go idle and a stream never does.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.streams.Wait()
}

// subscribe registers a new subscriber, or returns nil after Close.
func (s *Server) subscribe() *subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	sub := &subscriber{ch: make(chan frame, subscriberBuffer)}
	s.subs[sub] = struct{}{}
	s.streams.Add(1)
	return sub
}

func (s *Server) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
	s.streams.Done()
}

// subscribers returns the number of open streams.
func (s *Server) subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// stream serves GET /v1/stream: the newest sealed minute at once (unless the
// client's Last-Event-ID says it has it), then every minute as it seals, and
// a comment every heartbeat so that proxies keep the connection open.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	var sent time.Time // the newest minute the client has
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if t, err := time.Parse(time.RFC3339, id); err == nil {
			sent = t
		}
	}
	sub := s.subscribe()
	if sub == nil {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	defer s.unsubscribe(sub)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return // the headers are the whole answer; a stream would never end
	}

	// write sends one event (or comment) and flushes it; false ends the stream.
	defer rc.SetWriteDeadline(time.Time{}) // leave no deadline to a next request on the connection
	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // unsupported only off a real connection
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	send := func(f frame) bool {
		if !f.minute.After(sent) {
			return true // replayed already: Publish raced with the replay
		}
		sent = f.minute
		return write("event: minute\nid: %s\ndata: %s\n\n", f.minute.Format(time.RFC3339), f.data)
	}

	// The subscription is in place before the replay is read, so no minute
	// falls between the two; send skips a minute that arrives both ways.
	if !write(": ratingsd minutes\n\n") {
		return
	}
	if m := s.cfg.Agg.Latest(); m != nil && !send(encodeMinute(m)) {
		return
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case f := <-sub.ch:
			if !send(f) {
				return
			}
		case <-tick.C:
			if !write(": heartbeat\n\n") {
				return
			}
		}
	}
}
