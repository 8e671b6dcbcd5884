package sketch_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/ratingsd/ratingsd/sketch"
)

func Example() {
	// In the service the key is random (sketch.NewKey) and rotated daily.
	key, err := sketch.KeyFromBytes([]byte("fixed demo key!!"))
	if err != nil {
		log.Fatal(err)
	}
	minute1, _ := sketch.New(key, sketch.DefaultPrecision)
	minute2, _ := sketch.New(key, sketch.DefaultPrecision)
	for _, id := range []string{"stb-0001", "stb-0002", "stb-0003", "stb-0002"} {
		minute1.Add([]byte(id))
	}
	for _, id := range []string{"stb-0003", "stb-0004"} {
		minute2.Add([]byte(id))
	}

	e := minute1.Estimate()
	fmt.Printf("minute 1: %d devices, 95%% interval [%d, %d]\n", e.Value, e.Low, e.High)

	// Reach over both minutes: merge a copy, so minute1 keeps its own count.
	reach := minute1.Clone()
	if err := reach.Merge(minute2); err != nil {
		log.Fatal(err)
	}
	fmt.Println("reach:", reach.Estimate().Value)

	// Sketches are stored encoded, and decode only under their own key.
	b, err := minute1.AppendBinary(nil)
	if err != nil {
		log.Fatal(err)
	}
	back, err := sketch.Decode(b, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("decoded:", back.Estimate().Value)
	other, _ := sketch.NewKey()
	_, err = sketch.Decode(b, other)
	fmt.Println("under another key:", errors.Is(err, sketch.ErrKeyMismatch))

	// Output:
	// minute 1: 3 devices, 95% interval [2, 4]
	// reach: 4
	// decoded: 3
	// under another key: true
}
