package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ratingsd/ratingsd/aggregator/service"
)

// The whole service on free ports: a producer publishes one event to the
// embedded NATS server and the HTTP API shows it on the now board.
func Example() {
	dir, err := os.MkdirTemp("", "ratingsd-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := service.Start(context.Background(), service.Config{
		NATSListen: "127.0.0.1:-1",
		HTTPAddr:   "127.0.0.1:0",
		DataDir:    dir, // the embedded server's JetStream store
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer s.Shutdown(context.Background())

	nc, _ := nats.Connect(s.NATSURL())
	defer nc.Close()
	nc.Publish("tv.events.p0", fmt.Appendf(nil, `{"device":"stb-1","channel":"npo1","ts":%d}`, time.Now().UnixMilli()))
	nc.Flush()

	var now struct {
		Open struct {
			Channels []struct {
				Channel  string
				Audience int
			}
		}
	}
	for len(now.Open.Channels) == 0 {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/now")
		if err != nil {
			panic(err)
		}
		json.NewDecoder(resp.Body).Decode(&now)
		resp.Body.Close()
	}
	for _, c := range now.Open.Channels {
		fmt.Println(c.Channel, c.Audience)
	}
	// Output:
	// npo1 1
}
