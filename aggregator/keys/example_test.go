package keys_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
)

func Example() {
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Days start at 06:00 UTC; weeks on Monday at 06:00 UTC.
	cal, err := keys.NewCalendar(6 * time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2025, 3, 15, 3, 0, 0, 0, time.UTC) // before 06:00: still the 14th
	day, week := cal.Epoch(keys.Minute, at), cal.Epoch(keys.Reach, at)
	start, end := cal.Span(keys.Minute, day)
	fmt.Println(keys.ID(keys.Minute, day), start.Format(time.RFC3339), end.Format(time.RFC3339))
	fmt.Println(keys.ID(keys.Reach, week))

	ring, err := keys.Open(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ring.Key(keys.Minute, day); err != nil {
		log.Fatal(err)
	}
	names, _ := os.ReadDir(ring.Dir())
	for _, n := range names {
		fmt.Println(" ", n.Name())
	}

	// Once the day's sketches have expired, its key is shredded for good.
	if err := ring.Forget(keys.Minute, day); err != nil {
		log.Fatal(err)
	}
	_, err = ring.Key(keys.Minute, day)
	fmt.Println(err)

	// Output:
	// day-2025-03-14 2025-03-14T06:00:00Z 2025-03-15T06:00:00Z
	// week-2025-W11
	//   day-2025-03-14.key
	//   pseudonym.key
	// key epoch forgotten: day-2025-03-14 is not newer than day-2025-03-14, the newest day key forgotten
}
