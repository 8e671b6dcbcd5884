package bench_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
)

// Generate a quarter of an hour of 1000 boxes and read its truth.
func Example() {
	g, err := bench.NewGenerator(bench.Config{
		Seed:     1,
		Devices:  1000,
		Start:    time.Date(2025, 3, 14, 20, 0, 0, 0, time.UTC),
		Duration: 15 * time.Minute,
		Truth:    true,
	})
	if err != nil {
		panic(err)
	}
	var batch []event.Event
	for g.Next(context.Background(), &batch) {
		// Publish, encode or aggregate the batch here.
	}
	t := g.Truth()
	m := time.Date(2025, 3, 14, 20, 5, 0, 0, time.UTC)
	fmt.Println("events:", t.Info().Events)
	fmt.Println("boxes on at 20:05:", t.Total(bench.Tuning, m))
	fmt.Println("ch-001 at 20:05:", t.Audience(bench.Tuning, "ch-001", m))
	reach, _ := t.Reach(bench.Tuning, []string{"ch-001"}, m.Add(-5*time.Minute), m.Add(10*time.Minute))
	fmt.Println("ch-001 reach 20:00-20:15:", reach)
	// Output:
	// events: 2741
	// boxes on at 20:05: 503
	// ch-001 at 20:05: 142
	// ch-001 reach 20:00-20:15: 291
}
