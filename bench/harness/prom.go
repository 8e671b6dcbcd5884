package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ParsePrometheus returns the samples of a Prometheus text exposition, keyed
// by the series as written (name and labels, e.g.
// `ratings_events_total{result="accepted"}`). Comments and blank lines are
// skipped; a timestamp after the value is ignored.
func ParsePrometheus(text []byte) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		// The series ends at the last '}' if it has labels (label values may
		// hold spaces), else at the first space.
		end := strings.IndexByte(s, ' ')
		if i := strings.LastIndexByte(s, '}'); i > 0 {
			end = i + 1
		}
		if end <= 0 || end >= len(s) {
			return nil, fmt.Errorf("metrics line %d %q: no value", line, s)
		}
		f := strings.Fields(s[end:])
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %d %q: no value", line, s)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value %q: %w", line, f[0], err)
		}
		out[s[:end]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

// SumPrefix adds the samples whose series starts with prefix, e.g. every
// reason of `ratings_events_rejected_total{`.
func SumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}
