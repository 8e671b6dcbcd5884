package store_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "checkpoints-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	d, err := store.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	// The key files of the epochs, by id. Deleting one shreds its sections.
	keys := map[string][]byte{"day-2026-03-02": bytes.Repeat([]byte{7}, 16)}
	lookup := func(epoch string) ([]byte, bool) { k, ok := keys[epoch]; return k, ok }

	f, err := d.Write(&store.Checkpoint{
		Created:   time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC),
		StreamSeq: 1042,
		Sections: []store.Section{
			{Name: "counts", Data: []byte("plain numbers")},
			{Name: "minutes", Epoch: "day-2026-03-02", Data: []byte("sketch bytes")},
		},
	}, lookup)
	if err != nil {
		log.Fatal(err) // the service would report it and keep serving
	}
	fmt.Println(filepath.Base(f.Path))

	cp, bad, err := d.LoadNewest(lookup)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cp.Seq, cp.Created, cp.StreamSeq, len(bad))
	for _, s := range cp.Sections {
		fmt.Printf("%s: %s\n", s.Name, s.Data)
	}

	delete(keys, "day-2026-03-02") // the epoch's last sketch expired
	cp, _, _ = d.LoadNewest(lookup)
	fmt.Println(len(cp.Sections), cp.Unreadable[0])

	if err := d.Prune(store.DefaultKeep); err != nil {
		log.Fatal(err)
	}
	// Output:
	// checkpoint-00000000000000000001.rtck
	// 1 2026-03-02 12:30:00 +0000 UTC 1042 0
	// counts: plain numbers
	// minutes: sketch bytes
	// 1 section "minutes" sealed under epoch "day-2026-03-02": epoch key gone
}
