package natsio_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
	"github.com/ratingsd/ratingsd/sketch"
)

// An embedded server, an intake feeding an aggregator, and a producer
// publishing one binary batch and one JSON event over TCP.
func Example() {
	srv, err := natsio.StartServer(natsio.ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()

	key, _ := sketch.NewKey()
	agg, _ := aggregator.New(aggregator.Config{Key: key})
	metrics := telemetry.New(agg)
	nc, _ := srv.Connect() // in process
	defer nc.Close()
	in, err := natsio.StartIntake(natsio.IntakeConfig{Conn: nc, Agg: agg, Metrics: metrics})
	if err != nil {
		panic(err)
	}
	nc.Flush()

	prod, _ := nats.Connect(srv.ClientURL())
	defer prod.Close()
	ts := time.Now().UnixMilli()
	var enc event.BatchEncoder
	for _, dev := range []string{"stb-1", "stb-2", "stb-3"} {
		enc.Add(&event.Event{Device: []byte(dev), Channel: []byte("npo1"), TS: ts})
	}
	prod.Publish("tv.events.p0", enc.AppendFrame(nil, true))
	prod.Publish("tv.events.p1", []byte(fmt.Sprintf(`{"device":"stb-4","channel":"npo2","ts":%d}`, ts)))
	prod.Flush()

	// Stop drains: everything delivered is ingested when it returns.
	in.Stop(context.Background())
	fmt.Println("accepted:", metrics.Accepted())
	for _, cm := range agg.Now().Open {
		fmt.Println(cm.Channel, cm.Audience.Value)
	}
	// Output:
	// accepted: 4
	// npo1 3
	// npo2 1
}
