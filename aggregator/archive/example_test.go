package archive_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/archive"
	"github.com/ratingsd/ratingsd/sketch"
)

// The service appends every sealed minute from the aggregator's OnSeal; the
// export reads minutes back by range, long after their sketches expired.
func Example() {
	dir, err := os.MkdirTemp("", "counts-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	now := time.Date(2026, 3, 2, 0, 5, 0, 0, time.UTC)
	a, err := archive.Open(dir, archive.Config{Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	exact := func(n uint64) sketch.Estimate { return sketch.Estimate{Value: n, Low: n, High: n} }
	for i, npo1 := range []uint64{1200, 1250, 1190} {
		m := &aggregator.Minute{
			Start: time.Date(2026, 3, 1, 23, 58+i, 0, 0, time.UTC),
			Channels: []aggregator.ChannelMinute{
				{Channel: "npo1", Audience: exact(npo1)},
				{Channel: "rtl4", Audience: exact(800)},
			},
			Total: exact(npo1 + 800),
		}
		if err := a.Append(m); err != nil {
			log.Fatal(err)
		}
	}
	err = a.Range(time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC), now, func(m *archive.Minute) error {
		fmt.Println(m.Start.Format(time.RFC3339), m.Total, m.Channels)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2026-03-01T23:59:00Z 2050 [{npo1 1250} {rtl4 800}]
	// 2026-03-02T00:00:00Z 1990 [{npo1 1190} {rtl4 800}]
}
