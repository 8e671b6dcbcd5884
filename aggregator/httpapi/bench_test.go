package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// dayServer returns a Server over 24 hours of sealed minutes: 200 boxes
// zapping over 20 channels, each changing channel every minute.
func dayServer(b *testing.B) *Server {
	b.Helper()
	key, err := sketch.KeyFromBytes([]byte("httpapi-benchkey"))
	if err != nil {
		b.Fatal(err)
	}
	end := t0.Add(24 * time.Hour)
	agg, err := aggregator.New(aggregator.Config{Key: key, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	w := agg.NewWriter()
	evs := make([]event.Event, 200)
	for m := range 24 * 60 {
		for d := range evs {
			evs[d] = event.Event{
				Device:  fmt.Appendf(nil, "stb-%03d", d),
				Channel: fmt.Appendf(nil, "ch%02d", (d+m)%20),
				TS:      t0.Add(time.Duration(m)*time.Minute + time.Duration(d)*100*time.Millisecond).UnixMilli(),
			}
		}
		w.Write(evs, nil)
	}
	agg.SealThrough(end.UnixMilli())
	return New(Config{Agg: agg})
}

func benchmarkGet(b *testing.B, s *Server, path string) {
	req := httptest.NewRequest("GET", path, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// BenchmarkAudienceDay is a 24-hour minute curve (1440 points), end to end
// through routing and JSON encoding: the product promises < 10 ms.
func BenchmarkAudienceDay(b *testing.B) {
	s := dayServer(b)
	benchmarkGet(b, s, "/v1/audience?channel=ch07&from="+t0.Format(time.RFC3339)+"&to="+t0.Add(24*time.Hour).Format(time.RFC3339))
}

func BenchmarkNow(b *testing.B) {
	benchmarkGet(b, dayServer(b), "/v1/now")
}

func BenchmarkPublish(b *testing.B) {
	s := dayServer(b)
	m := s.cfg.Agg.Latest()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 { // ten dashboards, each draining its stream
		sub := s.subscribe()
		wg.Go(func() {
			defer s.unsubscribe(sub)
			for {
				select {
				case <-sub.ch:
				case <-stop:
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Publish(m)
	}
}
