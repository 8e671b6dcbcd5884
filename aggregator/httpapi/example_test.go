package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/httpapi"
	"github.com/ratingsd/ratingsd/sketch"
)

// Two boxes watch npo1 from 20:00; a third joins at 20:01. Sealed through
// 20:02, the curve of npo1 has two minutes.
func Example() {
	start := time.Date(2025, 11, 27, 20, 0, 0, 0, time.UTC)
	key, err := sketch.KeyFromBytes([]byte("example-key-0016"))
	if err != nil {
		panic(err)
	}
	agg, err := aggregator.New(aggregator.Config{Key: key, Now: func() time.Time { return start.Add(5 * time.Minute) }})
	if err != nil {
		panic(err)
	}
	w := agg.NewWriter()
	for _, e := range []struct {
		device string
		at     time.Duration
	}{{"stb-1", 0}, {"stb-2", 0}, {"stb-3", time.Minute}} {
		w.Write([]event.Event{{Device: []byte(e.device), Channel: []byte("npo1"), TS: start.Add(e.at).UnixMilli()}}, nil)
	}
	agg.SealThrough(start.Add(2 * time.Minute).UnixMilli())

	srv := httptest.NewServer(httpapi.New(httpapi.Config{Agg: agg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/audience?channel=npo1&from=2025-11-27T20:00:00Z&to=2025-11-27T20:02:00Z")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(body))
	// Output:
	// 200 {"channel":"npo1","from":"2025-11-27T20:00:00Z","to":"2025-11-27T20:02:00Z","points":[{"minute":"2025-11-27T20:00:00Z","audience":2,"low":2,"high":2,"share":1},{"minute":"2025-11-27T20:01:00Z","audience":3,"low":3,"high":3,"share":1}],"peak":{"minute":"2025-11-27T20:01:00Z","audience":3,"low":3,"high":3,"share":1},"average":2.5}
}
