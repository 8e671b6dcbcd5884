// Package keys holds the secret keys of ratingsd and the calendar of their
// key epochs, so that every sketch, and every checkpoint copy of one, can be
// made unreadable by deleting one small file (crypto-shredding).
//
// There are two tiers of sketches (docs/semantics.md, Reach tiers), each
// hashed under its own sequence of keys: the minute tier under one key per
// day, the reach tier under one key per ISO week. A day starts at the day
// start, a fixed offset after 00:00 UTC (default 0); a week starts on Monday
// at the day start. A Calendar numbers these epochs and gives each an id,
// "day-2025-03-14" or "week-2025-W11", which names its key file and the
// checkpoint sections sealed under it; an id never holds key material.
//
// A Ring keeps the keys: a long-lived pseudonym key, which hashes device
// identifiers into the pseudonyms the engine routes and tracks devices by
// (and which never hashes into a sketch), and one random 128-bit key per
// epoch, created on first use. Open keeps them in files under a directory
// (0700; each file 0600, written atomically); Forget deletes an epoch's file
// and forgets the key, and the Ring then refuses to hand out a key of that
// epoch or of any older one of its tier, ever again (the newest forgotten
// epoch of each tier is recorded in the directory). NewMemory keeps random
// keys in memory only; Derived computes every key from one sketch.Key, for
// tests and reproducible examples only: its keys can always be computed
// again, so forgetting them shreds nothing.
//
// A Calendar is a value and safe for concurrent use. A Ring is safe for
// concurrent use; Key may write a file, so the engine asks for keys ahead of
// its per-event path and keeps them.
package keys

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Tier is a tier of sketches with its own key epochs.
type Tier uint8

const (
	// Minute is the minute tier: per-minute sketches under a key per day.
	Minute Tier = iota
	// Reach is the reach tier: per-hour sketches under a key per ISO week.
	Reach
	numTiers
)

// String returns "minute" or "reach".
func (t Tier) String() string {
	switch t {
	case Minute:
		return "minute"
	case Reach:
		return "reach"
	}
	return fmt.Sprintf("tier(%d)", uint8(t))
}

// Unit returns the length of one epoch of t in words: "day" or "week".
func (t Tier) Unit() string {
	if t == Reach {
		return "week"
	}
	return "day"
}

// ErrID is wrapped by ParseID for a string that is not an epoch id.
var ErrID = errors.New("not a key epoch id")

const (
	msPerDay = 24 * 60 * 60 * 1000
	// Day 0, 1970-01-01, was a Thursday: the Monday of its week is day -3.
	mondayOffset = 3
	// Epoch ids are dates of years 1970..9999.
	maxDay  = 2932896 // 9999-12-31
	maxWeek = (maxDay + mondayOffset) / 7
)

// Calendar numbers the key epochs of both tiers. Day epoch n is the day that
// begins at n days after 1970-01-01 plus the day start; week epoch w is the
// ISO week whose Monday is day 7w − 3. The zero Calendar has its day start at
// 00:00 UTC.
type Calendar struct {
	dayStart int64 // ms
}

// NewCalendar returns the Calendar whose days start dayStart after 00:00
// UTC: a whole number of hours in 0..23h, so that every hour lies in one day
// and one week.
func NewCalendar(dayStart time.Duration) (Calendar, error) {
	if dayStart < 0 || dayStart >= 24*time.Hour || dayStart%time.Hour != 0 {
		return Calendar{}, fmt.Errorf("day start %s is not a whole number of hours in 0h..23h after 00:00 UTC", dayStart)
	}
	return Calendar{dayStart: dayStart.Milliseconds()}, nil
}

// DayStart returns how long after 00:00 UTC a day starts.
func (c Calendar) DayStart() time.Duration { return time.Duration(c.dayStart) * time.Millisecond }

// Epoch returns the number of the epoch of tier t that contains at.
func (c Calendar) Epoch(t Tier, at time.Time) int64 {
	return c.epochMS(t, at.UnixMilli())
}

// EpochOfMinute returns the epoch of tier t that contains the Unix minute
// m (minutes since 1970-01-01 00:00 UTC). It does not allocate.
func (c Calendar) EpochOfMinute(t Tier, m int64) int64 {
	return c.epochMS(t, m*60_000)
}

func (c Calendar) epochMS(t Tier, ms int64) int64 {
	day := floorDiv(ms-c.dayStart, msPerDay)
	if t == Reach {
		return floorDiv(day+mondayOffset, 7)
	}
	return day
}

// Span returns the start and end of epoch n of tier t: [start, end), UTC.
func (c Calendar) Span(t Tier, n int64) (start, end time.Time) {
	first, days := n, int64(1)
	if t == Reach {
		first, days = 7*n-mondayOffset, 7
	}
	start = time.UnixMilli(first*msPerDay + c.dayStart).UTC()
	return start, start.Add(time.Duration(days) * 24 * time.Hour)
}

// SpanMinutes returns Span as Unix minutes [start, end).
func (c Calendar) SpanMinutes(t Tier, n int64) (start, end int64) {
	s, e := c.Span(t, n)
	return s.Unix() / 60, e.Unix() / 60
}

// Label names epoch n of tier t by the date its day begins on, for a day
// ("2025-03-14"), or by its ISO year and week ("2025-W11"). It does not
// depend on the day start.
func Label(t Tier, n int64) string {
	if t == Reach {
		y, w := dayDate(7*n - mondayOffset).ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	}
	return dayDate(n).Format(time.DateOnly)
}

// ID is the id of epoch n of tier t: "day-" or "week-" and its Label. It
// names the epoch's key file and the checkpoint sections sealed under it.
func ID(t Tier, n int64) string { return t.Unit() + "-" + Label(t, n) }

// ParseID returns the tier and epoch of an id made by ID, for dates of the
// years 1970..9999. Any other string is an error wrapping ErrID.
func ParseID(id string) (Tier, int64, error) {
	bad := func(why string) (Tier, int64, error) {
		return 0, 0, fmt.Errorf("%w: %q %s", ErrID, clip(id), why)
	}
	switch {
	case len(id) == len("day-2006-01-02") && id[:4] == "day-":
		d, err := time.Parse(time.DateOnly, id[4:])
		if err != nil {
			return bad("is not day- and a date YYYY-MM-DD")
		}
		n := d.Unix() / (msPerDay / 1000)
		if n < 0 || n > maxDay {
			return bad("is outside the years 1970..9999")
		}
		return Minute, n, nil
	case len(id) == len("week-2006-W01") && id[:5] == "week-" && id[9:11] == "-W":
		y, err1 := strconv.Atoi(id[5:9])
		w, err2 := strconv.Atoi(id[11:])
		if err1 != nil || err2 != nil || y < 1970 || y > 9999 || w < 1 || w > 53 {
			return bad("is not week- and an ISO week YYYY-Www of the years 1970..9999")
		}
		// Week 1 holds January 4th; count from its Monday.
		jan4 := time.Date(y, time.January, 4, 0, 0, 0, 0, time.UTC)
		monday := jan4.Unix()/(msPerDay/1000) - int64((jan4.Weekday()+6)%7) + int64(w-1)*7
		n := floorDiv(monday+mondayOffset, 7)
		if n < 0 || n > maxWeek || Label(Reach, n) != id[5:] {
			return bad("names no ISO week of the years 1970..9999")
		}
		return Reach, n, nil
	}
	return bad("is not day-YYYY-MM-DD or week-YYYY-Www")
}

func dayDate(n int64) time.Time { return time.Unix(n*(msPerDay/1000), 0).UTC() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
