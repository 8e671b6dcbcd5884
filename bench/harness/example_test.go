package harness_test

import (
	"fmt"

	"github.com/ratingsd/ratingsd/bench/harness"
)

// The ceiling of a scenario comes from the subscriber's line of
// `nats bench sub`; figures over repetitions are reported as a spread.
func Example() {
	r, err := harness.ParseNATSBench("NATS Core NATS subscriber stats: 479,355 msgs/sec ~ 46 MiB/sec\n")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %.0f msgs/s\n", r.Side, r.MsgsPerSec)
	s := harness.SpreadOf([]float64{2.1e6, 1.8e6, 2.4e6})
	fmt.Println(s.Format(func(v float64) string { return fmt.Sprintf("%.1fM", v/1e6) }))
	// Output:
	// Core NATS subscriber: 479355 msgs/s
	// 2.1M (1.8M–2.4M)
}
