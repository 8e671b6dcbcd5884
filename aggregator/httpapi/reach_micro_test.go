package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/aggregator/telemetry"
)

// TestReachOverNATS: the NATS micro service, with this package's handler
// behind it as the service wires it, answers ratings.reach with the bytes
// of GET /v1/reach (the tier, the epoch and the window covered), and a
// window across two key epochs with the same 400 and explanation.
func TestReachOverNATS(t *testing.T) {
	f, _ := tierFixture(t, 0)
	ns, err := natsio.StartServer(natsio.ServerConfig{Listen: "127.0.0.1:-1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	svc, err := natsio.StartMicro(natsio.MicroConfig{Conn: nc, Queries: f.srv, Metrics: telemetry.New(f.agg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })

	check := func(from, to time.Duration) {
		t.Helper()
		path := tierWindow(from, to)
		want := f.do(t, "GET", path, "")
		_, q, _ := strings.Cut(path, "?")
		body := `{"from":"` + tierDay.Add(from).Format(time.RFC3339) + `","to":"` + tierDay.Add(to).Format(time.RFC3339) + `"}`
		msg, err := nc.Request(natsio.QueryPrefix+".reach", []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("ratings.reach %s: %v", body, err)
		}
		var e struct{ Error string }
		if want.code != 200 {
			if err := json.Unmarshal(want.body, &e); err != nil {
				t.Fatal(err)
			}
			want.code, e.Error = 0, strconv.Itoa(want.code)+" "+e.Error
		}
		got := msg.Header.Get(micro.ErrorCodeHeader) + " " + msg.Header.Get(micro.ErrorHeader)
		if strings.TrimSpace(got) != e.Error || !bytes.Equal(msg.Data, want.body) {
			t.Errorf("ratings.reach %s: %q %s, want %q and the body of GET /v1/reach?%s: %s", body, got, msg.Data, e.Error, q, want.body)
		}
	}
	check(22*time.Hour, 25*time.Hour)                               // the reach tier
	check(23*time.Hour, 24*time.Hour)                               // the minute tier
	check(23*time.Hour+30*time.Minute, 24*time.Hour+30*time.Minute) // across midnight: 400
}
