package httpapi

// GET /v1/export: the per-minute counts for third-party ratings bodies, as
// CSV, from the counts archive. docs/api.md is the reference; this file
// says why it works the way it does.
//
// Three protections apply, in this order:
//
//  1. Embargo. Only minutes that ended at least Embargo ago are served: a
//     window that reaches closer to now is refused, not clipped, so that a
//     third party never mistakes a missing tail for a zero audience.
//  2. Noise (optional). Each released count gets independent two-sided
//     geometric noise, the discrete Laplace mechanism: P(z) ∝ e^(-ε|z|). A
//     device changes one count by at most 1 (sensitivity 1), so each count
//     is ε-differentially private. The total of a minute is drawn once and
//     repeated on that minute's rows: a fresh draw per row could be averaged
//     away.
//  3. Suppression. A count below MinAudience is replaced by the marker
//     "suppressed". With noise, the test is on the noisy count: suppressing
//     by the true count would make the marker itself a deterministic
//     function of whether one more device watched (4 vs 5), which the noise
//     cannot hide. Noise-then-threshold is the standard construction of
//     differentially private partition selection; thresholding after the
//     noise is post-processing and costs no privacy.
//
// Region rows are not exported: with small cells suppressed, a region's
// suppressed cell would follow from the channel's national row minus the
// other regions' released cells (complementary disclosure), and preventing
// that needs secondary suppression across the whole table.

import (
	"bufio"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/archive"
)

// ExportConfig configures GET /v1/export. The zero value of a field means
// its default. Setting names in errors are the service's flag names.
type ExportConfig struct {
	// Archive holds the counts. Required.
	Archive *archive.Archive
	// Embargo: only minutes that ended at least this long ago are
	// exported. Default 30 days, at least 1 day.
	Embargo time.Duration
	// MinAudience: counts below it are suppressed. Default 5.
	MinAudience uint64
	// Epsilon, if positive, adds two-sided geometric noise of parameter
	// e^-Epsilon to every released count: each count is then
	// Epsilon-differentially private. 0 (the default) adds none; else it
	// is in [MinEpsilon, MaxEpsilon].
	Epsilon float64
	// KeysFrom, if set, returns the start of the oldest key epoch whose
	// key still exists: a minute before it has had every sketch key it was
	// hashed under deleted. Minutes are exported only once that holds too,
	// so that no third party gets counts of a period whose sketches could
	// still be read (DOMAIN: release only after the personal data is
	// destroyed).
	KeysFrom func() time.Time
	// Now is the clock the embargo runs by. Default time.Now.
	Now func() time.Time
	// Rand is the randomness of the noise. Default crypto/rand.Reader;
	// tests seed one. It is read under a lock, so it need not be safe for
	// concurrent use.
	Rand io.Reader
}

// Export defaults and limits.
const (
	DefaultEmbargo     = 30 * 24 * time.Hour
	MinEmbargo         = 24 * time.Hour
	DefaultMinAudience = 5
	MaxMinAudience     = 1_000_000
	// MinEpsilon: below it the noise (standard deviation √2/ε ≈ 141 at
	// 0.01) drowns the counts of most channels.
	MinEpsilon = 0.01
	// MaxEpsilon: above it the noise is almost always 0 (P(z≠0) < 1e-4 at
	// 10): it would protect nothing while claiming to.
	MaxEpsilon = 10
)

// SuppressedMarker stands for a count below the minimum audience.
const SuppressedMarker = "suppressed"

// exportHeader is the CSV header line.
const exportHeader = "minute,channel,audience,total\n"

// Exporter serves GET /v1/export. It is safe for concurrent use.
type Exporter struct {
	cfg ExportConfig

	mu  sync.Mutex // guards rnd
	rnd io.Reader
}

// Validate checks the settings of c (all but Archive), so that a service
// can refuse them before it opens anything.
func (c ExportConfig) Validate() error {
	if c.Embargo != 0 && c.Embargo < MinEmbargo {
		return fmt.Errorf("-embargo %s is under %s: third parties get no recent data", c.Embargo, MinEmbargo)
	}
	if c.MinAudience > MaxMinAudience {
		return fmt.Errorf("-min-audience %d is beyond %d: it would suppress every count", c.MinAudience, MaxMinAudience)
	}
	switch eps := c.Epsilon; {
	case eps == 0:
	case math.IsNaN(eps) || eps < 0:
		return fmt.Errorf("-export-noise %v: want an epsilon in [%v, %v], or 0 for no noise", eps, MinEpsilon, MaxEpsilon)
	case eps < MinEpsilon:
		return fmt.Errorf("-export-noise %v is under %v: noise of standard deviation %.0f would drown the counts", eps, MinEpsilon, math.Sqrt2/eps)
	case eps > MaxEpsilon:
		return fmt.Errorf("-export-noise %v is over %v: the noise would almost never change a count, protecting nothing", eps, MaxEpsilon)
	}
	return nil
}

// NewExporter checks cfg and returns its exporter.
func NewExporter(cfg ExportConfig) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Archive == nil {
		return nil, errors.New("export: no counts archive")
	}
	if cfg.Embargo == 0 {
		cfg.Embargo = DefaultEmbargo
	}
	if cfg.MinAudience == 0 {
		cfg.MinAudience = DefaultMinAudience
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = crand.Reader
	}
	return &Exporter{cfg: cfg, rnd: cfg.Rand}, nil
}

// ExportableBefore returns the end of the newest exportable minute: minutes
// that end at or before it are past the embargo.
func (e *Exporter) ExportableBefore() time.Time {
	limit, _ := e.exportable()
	return limit
}

// exportable returns ExportableBefore and whether the keys, rather than the
// embargo, set it.
func (e *Exporter) exportable() (time.Time, bool) {
	limit := e.cfg.Now().Add(-e.cfg.Embargo).UTC().Truncate(time.Minute)
	if e.cfg.KeysFrom != nil {
		if k := e.cfg.KeysFrom().UTC().Truncate(time.Minute); k.Before(limit) {
			return k, true
		}
	}
	return limit, false
}

// Noise describes the noise added, as the X-Ratings-Noise header says it.
func (e *Exporter) Noise() string {
	if e.cfg.Epsilon == 0 {
		return "none"
	}
	return "two-sided-geometric; epsilon=" + strconv.FormatFloat(e.cfg.Epsilon, 'g', -1, 64)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	e := s.cfg.Export
	if e == nil {
		writeError(w, http.StatusNotImplemented, "this server has no counts archive configured")
		return
	}
	from, to, err := e.window(r)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	e.stream(w, r, from, to)
}

// window returns the whole minutes [from, to) of r's parameters, checked
// against the embargo and the retention.
func (e *Exporter) window(r *http.Request) (from, to time.Time, err error) {
	p, err := parseParams(r, "from", "to")
	if err != nil {
		return from, to, err
	}
	from, hasFrom, err := p.time("from")
	if err != nil {
		return from, to, err
	}
	to, hasTo, err := p.time("to")
	if err != nil {
		return from, to, err
	}
	if !hasFrom || !hasTo {
		return from, to, badRequest("parameters from and to are both required: the export covers the minutes [from, to), e.g. from=2025-10-01T00:00:00Z&to=2025-10-02T00:00:00Z")
	}
	from = from.Truncate(time.Minute)
	if t := to.Truncate(time.Minute); t.Before(to) {
		to = t.Add(time.Minute)
	}
	if !from.Before(to) {
		return from, to, badRequest("bad time range: from %s is not before to %s", stamp(from), stamp(to))
	}
	if limit, byKeys := e.exportable(); to.After(limit) {
		if byKeys {
			return from, to, &httpError{http.StatusForbidden, fmt.Sprintf(
				"the window reaches minutes whose sketch keys are not deleted yet: minutes before %s are exportable now (past the %s embargo and with every key of theirs deleted); later ones follow as their keys expire",
				stamp(limit), days(e.cfg.Embargo))}
		}
		return from, to, &httpError{http.StatusForbidden, fmt.Sprintf(
			"the window reaches into the %s embargo: minutes before %s are exportable now; to=%s becomes exportable at %s",
			days(e.cfg.Embargo), stamp(limit), stamp(to), stamp(to.Add(e.cfg.Embargo)))}
	}
	if oldest := e.cfg.Archive.Oldest(); !to.After(oldest) {
		return from, to, &httpError{http.StatusGone, fmt.Sprintf(
			"data expired: the window ends before %s, the oldest minute the counts archive keeps", stamp(oldest))}
	}
	return from, to, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// days writes a duration of whole days as "30-day".
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "-day"
	}
	return d.String()
}

// stream writes the CSV of [from, to) as the archive reads it, one day at a
// time. The header goes out with the first minute (or at the end of an
// empty window), so that an archive error before it is still a JSON 500.
// An error after it aborts the response: a cut-off CSV must not look whole.
func (e *Exporter) stream(w http.ResponseWriter, r *http.Request, from, to time.Time) {
	bw := bufio.NewWriterSize(w, 64<<10)
	started := false
	start := func() {
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8; header=present")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="ratings-%s-%s.csv"`, from.Format("20060102T1504Z"), to.Format("20060102T1504Z")))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Ratings-Min-Audience", strconv.FormatUint(e.cfg.MinAudience, 10))
		h.Set("X-Ratings-Noise", e.Noise())
		w.WriteHeader(http.StatusOK)
		bw.WriteString(exportHeader)
		started = true
	}
	var rnd *noise
	if e.cfg.Epsilon > 0 {
		rnd = &noise{r: bufio.NewReaderSize(lockedReader{e}, 4096), eps: e.cfg.Epsilon}
	}
	var row []byte
	err := e.cfg.Archive.Range(from, to, func(m *archive.Minute) error {
		if err := r.Context().Err(); err != nil {
			return err
		}
		if !started {
			start()
		}
		minute := m.Start.UTC().AppendFormat(nil, time.RFC3339)
		total, err := e.release(nil, m.Total, rnd)
		if err != nil {
			return err
		}
		for _, c := range m.Channels {
			row = append(append(row[:0], minute...), ',')
			row = append(append(row, c.Name...), ',')
			if row, err = e.release(row, c.N, rnd); err != nil {
				return err
			}
			row = append(append(append(row, ','), total...), '\n')
			if _, err := bw.Write(row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if !started {
			// The archive logged the file and the cause; a client
			// learns the day only, not the server's paths.
			msg := "export: the counts archive cannot be read"
			if de := (*archive.DayError)(nil); errors.As(err, &de) {
				msg = fmt.Sprintf("export: the archived counts of %s cannot be read; the service log says why", de.Day.Format(time.DateOnly))
			}
			writeError(w, http.StatusInternalServerError, msg)
			return
		}
		// The status is sent: only a broken connection tells the client.
		panic(http.ErrAbortHandler)
	}
	if !started {
		start()
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// release appends the count n as released: noised (when configured), then
// suppressed below the minimum audience.
func (e *Exporter) release(dst []byte, n uint64, rnd *noise) ([]byte, error) {
	v := int64(n) // n <= archive.MaxCount < 2^62: no overflow with the noise
	if rnd != nil {
		z, err := rnd.sample()
		if err != nil {
			return dst, fmt.Errorf("noise: %w", err)
		}
		v += z
	}
	if v < int64(e.cfg.MinAudience) {
		return append(dst, SuppressedMarker...), nil
	}
	return strconv.AppendInt(dst, v, 10), nil
}

// noise draws the noise of one response.
type noise struct {
	r   *bufio.Reader
	eps float64
	b   [16]byte // scratch, here so that it does not escape per draw
}

// sample draws Z with P(Z = z) = (1-α)/(1+α) · α^|z|, α =
// e^-ε, as the difference of two independent geometric variables on
// {0, 1, …} of success probability 1-α (Inusah & Kozubowski 2006). Each is
// drawn by inversion from 53 random bits: G = ⌊ln U / ln α⌋ with U uniform
// on (0, 1]. Floating point makes the tail beyond G ≈ 36.7/ε unreachable
// (U ≥ 2^-53); its probability there is below 2^-53.
func (n *noise) sample() (int64, error) {
	if _, err := io.ReadFull(n.r, n.b[:]); err != nil {
		return 0, err
	}
	return n.geometric(binary.LittleEndian.Uint64(n.b[:8])) - n.geometric(binary.LittleEndian.Uint64(n.b[8:])), nil
}

func (n *noise) geometric(bits uint64) int64 {
	u := float64(bits>>11+1) / (1 << 53) // (0, 1]
	return int64(math.Floor(-math.Log(u) / n.eps))
}

// lockedReader reads the exporter's randomness under its lock.
type lockedReader struct{ e *Exporter }

func (l lockedReader) Read(p []byte) (int, error) {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	return l.e.rnd.Read(p)
}
