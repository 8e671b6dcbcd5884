package harness

import (
	"strings"
	"testing"
)

func TestParsePrometheus(t *testing.T) {
	text := `# HELP ratings_events_total events
# TYPE ratings_events_total counter
ratings_events_total{result="accepted"} 2000000
ratings_events_total{result="rejected"} 12
ratings_events_rejected_total{reason="late"} 10
ratings_events_rejected_total{reason="bad device"} 2
ratings_open_minutes 2
ratings_sketch_memory_bytes 1.5e+06 1764187200123

process_cpu_seconds_total 3.25
`
	m, err := ParsePrometheus([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	f := func(series string, want float64) {
		t.Helper()
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %g (present %v), want %g", series, got, ok, want)
		}
	}
	f(`ratings_events_total{result="accepted"}`, 2e6)
	f(`ratings_events_rejected_total{reason="bad device"}`, 2)
	f(`ratings_open_minutes`, 2)
	f(`ratings_sketch_memory_bytes`, 1.5e6)
	f(`process_cpu_seconds_total`, 3.25)
	if got := SumPrefix(m, "ratings_events_rejected_total{"); got != 12 {
		t.Errorf("SumPrefix(rejected) = %g, want 12", got)
	}
	for _, bad := range []string{"ratings_open_minutes\n", "ratings_open_minutes x\n", `a{b="c"}` + "\n"} {
		if _, err := ParsePrometheus([]byte(bad)); err == nil || !strings.Contains(err.Error(), "metrics line 1") {
			t.Errorf("ParsePrometheus(%q) error %v, want one naming line 1", bad, err)
		}
	}
}
