package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	ok := func(in string, want time.Time) {
		t.Helper()
		got, err := parseTime("from", in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v in UTC", in, got, err, want)
		}
	}
	bad := func(in, wantErr string) {
		t.Helper()
		_, err := parseTime("from", in)
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusBadRequest || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("parseTime(%q) error %v, want a 400 containing %q", in, err, wantErr)
		}
	}
	ok("2025-11-27T20:00:00Z", t0)
	ok("2025-11-27T21:00:00+01:00", t0)
	ok("2025-11-27T20:00:00.5Z", t0.Add(500*time.Millisecond))
	ok("1764273600000", t0)
	ok("0", time.UnixMilli(0))
	ok("253402300799999", time.UnixMilli(maxUnixMS))

	bad("", "parameter from is empty")
	bad("253402300800000", "beyond 0..253402300799999 Unix milliseconds")
	bad("99999999999999999999999", "beyond")
	bad("-1", `"-1" is neither an RFC 3339 time nor Unix milliseconds`)
	bad("1764273600.5", "is neither")
	bad("2025-11-27", "is neither")
	bad("2025-11-27 20:00:00Z", "is neither")
	bad("2025-11-27T21:00:00 01:00", "send it as %2B")
	bad("now", `"now" is neither`)
	bad(strings.Repeat("9", 70)+"x", `"`+strings.Repeat("9", 64)+`…" is neither`) // clipped
}

// FuzzParseTime: any value parses to a UTC time or fails with a 400 that
// names the parameter.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"", "0", "1764273600000", "253402300799999", "253402300800000", "-1", "1e3", "0x10",
		"2025-11-27T20:00:00Z", "2025-11-27T20:00:00.123456789+14:00", "2025-13-40T25:61:61Z",
		"2025-11-27T21:00:00 01:00", "\xff\xfe", strings.Repeat("1", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime("to", s)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest || !strings.HasPrefix(err.Error(), "parameter to") {
				t.Fatalf("parseTime(%q): error %v, want a 400 naming the parameter", s, err)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseTime(%q) = %v, not in UTC", s, got)
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil && got.UnixMilli() != ms {
			t.Fatalf("parseTime(%q) = %d ms", s, got.UnixMilli())
		}
	})
}
