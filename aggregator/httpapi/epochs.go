package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/keys"
)

// The key epochs as the API shows them: the tiers of /v1/reach named by
// their resolution, and GET /v1/epochs, from which a client (the
// dashboard's reach presets) learns where days and weeks start, so that it
// can ask for windows that one tier counts (docs/semantics.md, Reach
// tiers).

// tierName names a tier by its resolution, as /v1/reach and /v1/epochs do.
func tierName(t keys.Tier) string {
	if t == keys.Reach {
		return "hour"
	}
	return "minute"
}

// epochJSON is one key epoch: its label and its span [from, to).
type epochJSON struct {
	Epoch string    `json:"epoch"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// tierJSON describes a tier of reach sketches.
type tierJSON struct {
	Tier      string    `json:"tier"`      // "minute" or "hour": its resolution
	Epochs    string    `json:"epochs"`    // "day" or "week": the length of its key epochs
	Retention string    `json:"retention"` // how long, by the wall clock, its sketches are kept
	Current   epochJSON `json:"current"`   // the epoch that holds at
}

type epochsJSON struct {
	// DayStart is when days (and, on Mondays, weeks) start: "HH:MM" after
	// 00:00 UTC.
	DayStart string `json:"day_start"`
	// At is the instant the current epochs hold: the newest sealed minute,
	// or the service's clock before the first.
	At    time.Time  `json:"at"`
	Tiers []tierJSON `json:"tiers"`
}

// epochs serves GET /v1/epochs: the day start and, for each tier, its
// resolution, retention and current epoch.
func (s *Server) epochs(r *http.Request) (any, error) {
	if _, err := parseParams(r); err != nil {
		return nil, err
	}
	cfg := s.cfg.Agg.Config()
	cal, err := keys.NewCalendar(cfg.DayStart)
	if err != nil {
		return nil, fmt.Errorf("BUG: the aggregator's day start: %w", err)
	}
	at := cfg.Now().UTC().Truncate(time.Minute)
	if latest := s.cfg.Agg.Latest(); latest != nil {
		at = latest.Start.UTC()
	}
	out := epochsJSON{
		DayStart: fmt.Sprintf("%02d:00", int(cfg.DayStart/time.Hour)),
		At:       at,
	}
	for _, t := range []keys.Tier{keys.Minute, keys.Reach} {
		n := cal.Epoch(t, at)
		from, to := cal.Span(t, n)
		retention := cfg.MinuteRetention
		if t == keys.Reach {
			retention = cfg.Retention
		}
		out.Tiers = append(out.Tiers, tierJSON{
			Tier: tierName(t), Epochs: t.Unit(), Retention: retention.String(),
			Current: epochJSON{Epoch: keys.Label(t, n), From: from, To: to},
		})
	}
	return out, nil
}
