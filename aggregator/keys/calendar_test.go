package keys

import (
	"errors"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCalendarEpochs(t *testing.T) {
	f := func(dayStart time.Duration, tier Tier, when, id, start, end string) {
		t.Helper()
		c, err := NewCalendar(dayStart)
		if err != nil {
			t.Fatal(err)
		}
		n := c.Epoch(tier, at(when))
		if got := ID(tier, n); got != id {
			t.Errorf("day start %s: %s epoch of %s = %s; want %s", dayStart, tier, when, got, id)
		}
		s, e := c.Span(tier, n)
		if !s.Equal(at(start)) || !e.Equal(at(end)) {
			t.Errorf("day start %s: span of %s = [%s, %s); want [%s, %s)", dayStart, id, s.Format(time.RFC3339), e.Format(time.RFC3339), start, end)
		}
		if m := at(when).Unix() / 60; c.EpochOfMinute(tier, m) != n {
			t.Errorf("EpochOfMinute(%d) = %d; Epoch %d", m, c.EpochOfMinute(tier, m), n)
		}
		if tt, nn, err := ParseID(id); err != nil || tt != tier || nn != n {
			t.Errorf("ParseID(%q) = %v, %d, %v; want %v, %d", id, tt, nn, err, tier, n)
		}
	}
	// Days at 00:00 UTC, and their last millisecond.
	f(0, Minute, "2025-03-14T20:00:00Z", "day-2025-03-14", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z")
	f(0, Minute, "2025-03-14T23:59:59.999Z", "day-2025-03-14", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z")
	f(0, Minute, "2025-03-15T00:00:00Z", "day-2025-03-15", "2025-03-15T00:00:00Z", "2025-03-16T00:00:00Z")
	f(0, Minute, "1970-01-01T00:00:00Z", "day-1970-01-01", "1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z")
	// A day starting at 06:00 UTC is named by the date it begins on.
	f(6*time.Hour, Minute, "2025-03-15T05:59:00Z", "day-2025-03-14", "2025-03-14T06:00:00Z", "2025-03-15T06:00:00Z")
	f(6*time.Hour, Minute, "2025-03-15T06:00:00Z", "day-2025-03-15", "2025-03-15T06:00:00Z", "2025-03-16T06:00:00Z")
	// ISO weeks: Monday to Sunday; 2025-03-14 is the Friday of week 11.
	f(0, Reach, "2025-03-14T20:00:00Z", "week-2025-W11", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z")
	f(0, Reach, "2025-03-16T23:59:00Z", "week-2025-W11", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z")
	f(0, Reach, "2025-03-17T00:00:00Z", "week-2025-W12", "2025-03-17T00:00:00Z", "2025-03-24T00:00:00Z")
	f(6*time.Hour, Reach, "2025-03-17T05:00:00Z", "week-2025-W11", "2025-03-10T06:00:00Z", "2025-03-17T06:00:00Z")
	// ISO years differ from calendar years at their edges.
	f(0, Reach, "2024-12-30T12:00:00Z", "week-2025-W01", "2024-12-30T00:00:00Z", "2025-01-06T00:00:00Z")
	f(0, Reach, "2021-01-03T12:00:00Z", "week-2020-W53", "2020-12-28T00:00:00Z", "2021-01-04T00:00:00Z")
	f(0, Reach, "1970-01-01T00:00:00Z", "week-1970-W01", "1969-12-29T00:00:00Z", "1970-01-05T00:00:00Z")
	f(0, Reach, "1970-01-05T00:00:00Z", "week-1970-W02", "1970-01-05T00:00:00Z", "1970-01-12T00:00:00Z")
}

func TestNewCalendar(t *testing.T) {
	f := func(d time.Duration, ok bool) {
		t.Helper()
		c, err := NewCalendar(d)
		if (err == nil) != ok {
			t.Errorf("NewCalendar(%s): %v; want ok %v", d, err, ok)
		}
		if err == nil && c.DayStart() != d {
			t.Errorf("DayStart %s; want %s", c.DayStart(), d)
		}
	}
	f(0, true)
	f(5*time.Hour, true)
	f(23*time.Hour, true)
	f(24*time.Hour, false)
	f(-time.Hour, false)
	f(90*time.Minute, false) // an hour would straddle two days
}

func TestParseIDErrors(t *testing.T) {
	f := func(id string) {
		t.Helper()
		if tier, n, err := ParseID(id); !errors.Is(err, ErrID) {
			t.Errorf("ParseID(%q) = %v, %d, %v; want ErrID", id, tier, n, err)
		}
	}
	f("")
	f("day-")
	f("day-2025-02-30")
	f("day-1969-12-31")
	f("day-2025-3-14x")
	f("week-2025-W00")
	f("week-2025-W54")
	f("week-2025-W53") // 2025 has 52 ISO weeks
	f("week-2025-X11")
	f("week-+025-W11")
	f("k-0123456789abcdef")
	f("pseudonym")
	f("Day-2025-03-14")
}

// FuzzParseID: ids come from file names and checkpoint files. Whatever
// ParseID accepts must be exactly the ID of what it returns.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"day-2025-03-14", "week-2025-W11", "week-2020-W53", "day-9999-12-31", "week-9999-W52", "day-", "week-2025-W54", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tier, n, err := ParseID(id)
		if err != nil {
			if !errors.Is(err, ErrID) {
				t.Fatalf("ParseID(%q): undocumented error %v", id, err)
			}
			return
		}
		if got := ID(tier, n); got != id {
			t.Fatalf("ParseID(%q) = %v %d, whose ID is %q", id, tier, n, got)
		}
	})
}
