package harness

import (
	"strings"
	"testing"
)

func TestParseNATSBench(t *testing.T) {
	f := func(name, out string, want NATSBench, wantErr string) {
		t.Helper()
		got, err := ParseNATSBench(out)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("%s: ParseNATSBench = %+v, %v; want %+v", name, got, err, want)
		}
	}
	// Captured from natscli v0.5.0 on this machine.
	f("subscriber", `05:16:35 Starting Core NATS subscriber benchmark [clients=1, msg-size=100 B, msgs=300,000, multi-subject=false, subject=ceil.t]
05:16:35 [1] Starting Core NATS subscriber, expecting 300,000 messages

NATS Core NATS subscriber stats: 479,355 msgs/sec ~ 46 MiB/sec

`, NATSBench{"Core NATS subscriber", 479355, 46 << 20}, "")
	f("publisher with latencies", `05:16:35 Starting Core NATS publisher benchmark [clients=1, msg-size=100 B, msgs=300,000]

NATS Core NATS publisher stats: 475,145 msgs/sec ~ 45 MiB/sec ~ min: 0.06us ~ avg: 1.51us ~ max: 46,961.73us ~ P50: 0.15us
`, NATSBench{"Core NATS publisher", 475145, 45 << 20}, "")
	f("several clients: the aggregate", ` [1] 40,000 msgs/sec ~ 3.8 MiB/sec (150,000 msgs)
 [2] 41,000 msgs/sec ~ 3.9 MiB/sec (150,000 msgs)

 NATS Core NATS subscriber aggregated stats: 81,000 msgs/sec ~ 7.7 MiB/sec
 message rates min 40,000 | avg 40,500 | max 41,000 | stddev 500 msgs
`, NATSBench{"Core NATS subscriber", 81000, 7.7 * (1 << 20)}, "")
	f("bytes without a unit prefix", "NATS Core NATS subscriber stats: 10 msgs/sec ~ 1,000 B/sec\n",
		NATSBench{"Core NATS subscriber", 10, 1000}, "")
	f("gibibytes", "NATS Core NATS subscriber stats: 200,000 msgs/sec ~ 1.5 GiB/sec\n",
		NATSBench{"Core NATS subscriber", 200000, 1.5 * (1 << 30)}, "")
	f("usage error", "error: unexpected argument false\n\nusage: nats bench sub [<flags>] <subject>\n", NATSBench{}, "no \"stats: N msgs/sec\" line")
	f("empty", "", NATSBench{}, "no \"stats")
}
