// Package archive keeps the counts of every sealed minute — audiences per
// channel, the all-channels total, audiences per (channel, region) and zaps
// per region — as plain numbers on disk, long after the sketches they came
// from have expired, for the third-party export and long-range history.
// Nothing in it is per device: no hash, no sketch, no identifier. Flows are
// not kept: they are an ad-break analysis of the live tier, and up to one
// per pair of channels would multiply the size of a day.
//
// The archive is a directory with one file per UTC day. The day being
// written is an append-only log (YYYY-MM-DD.rtcl): a header, then one
// record per Append, each with its length and CRC-32C, written in one
// write(2) and fsynced. A crash can tear only the last record; Open finds a
// torn or damaged tail, cuts it off, logs the file, offset and cause and
// counts it in Stats, and goes on. Once a minute of a later day is
// appended, the earlier day's log is compacted into an immutable day file
// (YYYY-MM-DD.rtca): a columnar body (one series per channel, differences
// from minute to minute) in one zstd frame, written to a temporary file,
// fsynced and renamed. Appending a minute again replaces it (last write
// wins), so replaying minutes after a restore duplicates nothing: a minute
// of an already compacted day goes to a new log for that day, read as an
// overlay and folded in by the next compaction. docs/wire-format.md
// ("Counts archive") documents both file formats; every file starts with a
// magic and a version byte.
//
// Retention is by day: files of days that ended more than Retention ago
// (by Config.Now) are deleted at Open and whenever a new day starts, and
// Range never returns a minute older than that.
//
// # Concurrency
//
// An Archive is safe for concurrent use. Append, compaction and pruning
// serialize on its mutex; Range reads a day's bytes under the mutex and
// decodes them and calls its callback outside it, so a long export does not
// hold up Append. One process per directory: the service's data directory
// lock covers it.
package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// Config configures an Archive. The zero value of a field means its default.
type Config struct {
	// Retention is how long minutes are kept. Default 400 days.
	Retention time.Duration
	// Now is the clock retention is measured by. Default time.Now.
	Now func() time.Time
	// Logger reports torn records, damaged files and failed compactions.
	// Default slog.Default().
	Logger *slog.Logger
	// NoSync skips the fsync of each Append (tests and benchmarks): a
	// machine crash may then lose the minutes of the last seconds.
	NoSync bool
}

// DefaultRetention is the default of Config.Retention.
const DefaultRetention = 400 * 24 * time.Hour

// ErrClosed is returned by Append and Range after Close.
var ErrClosed = errors.New("counts archive closed")

// Stats are the archive's counters since Open.
type Stats struct {
	Appended     uint64 // minutes appended
	TornRecords  uint64 // torn or damaged log tails cut off at Open
	DroppedBytes uint64 // bytes those tails held
	Compactions  uint64 // day files written
	Failures     uint64 // compactions or prunes that failed (logged)
	PrunedFiles  uint64 // files deleted by retention
}

// Archive is a counts archive in a directory.
type Archive struct {
	dir string
	cfg Config
	log *slog.Logger

	mu     sync.Mutex        // guards the fields below and the directory's files
	logs   map[int64]*dayLog // days with a log file (open or not)
	newest int64             // newest day appended or found; -1 none
	pruned int64             // day of the last prune
	closed bool
	buf    []byte // record scratch

	appended, torn, dropped, compactions, failures, prunedFiles atomic.Uint64
}

// dayLog is a day's log file. f is nil until the day is appended to; size is
// the length of its whole records.
type dayLog struct {
	f    *os.File
	size int64
}

// Open opens (creating it if need be) the archive in dir, repairs torn log
// tails, compacts the logs of days before the newest, and deletes the files
// retention no longer keeps. It fails only when dir cannot be created or
// read; damaged files are logged and counted, never fatal.
func Open(dir string, cfg Config) (*Archive, error) {
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("counts archive: retention %s is negative", cfg.Retention)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("counts archive: %w", err)
	}
	a := &Archive{dir: dir, cfg: cfg, log: cfg.Logger, logs: make(map[int64]*dayLog), newest: -1, pruned: -1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("counts archive: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A compaction that did not finish; its log is still there.
			os.Remove(filepath.Join(dir, name))
			continue
		}
		d, kind, ok := parseFileName(name)
		if !ok {
			continue
		}
		a.newest = max(a.newest, d)
		if kind == logExt {
			a.logs[d] = &dayLog{}
			a.repairLocked(d)
		}
	}
	a.compactBeforeLocked(a.newest)
	a.pruneLocked()
	return a, nil
}

// File names: YYYY-MM-DD.rtcl (log) and YYYY-MM-DD.rtca (day file).
const (
	logExt    = ".rtcl"
	dayExt    = ".rtca"
	tmpSuffix = ".tmp"
)

func (a *Archive) path(d int64, ext string) string {
	return filepath.Join(a.dir, dayName(d)+ext)
}

func parseFileName(name string) (day int64, ext string, ok bool) {
	ext = filepath.Ext(name)
	if ext != logExt && ext != dayExt {
		return 0, "", false
	}
	t, err := time.Parse(time.DateOnly, strings.TrimSuffix(name, ext))
	if err != nil || t.Before(time.Unix(0, 0)) {
		return 0, "", false
	}
	return dayOf(t), ext, true
}

// repairLocked cuts a torn or damaged tail off day d's log. A log whose
// header is torn or damaged holds no record and is removed.
func (a *Archive) repairLocked(d int64) {
	path := a.path(d, logExt)
	data, err := os.ReadFile(path)
	if err != nil {
		a.failures.Add(1)
		a.log.Error("counts archive: cannot read a day log", "file", path, "err", err)
		return
	}
	_, mins, n, derr := DecodeLog(data)
	if derr == nil {
		a.logs[d].size = int64(len(data))
		return
	}
	a.torn.Add(1)
	a.dropped.Add(uint64(len(data) - n))
	if n == 0 {
		a.log.Warn("counts archive: removed a day log with a torn or damaged header",
			"file", path, "bytes", len(data), "cause", derr)
		if err := os.Remove(path); err != nil {
			a.log.Error("counts archive: cannot remove a damaged day log", "file", path, "err", err)
		}
		delete(a.logs, d)
		return
	}
	a.log.Warn("counts archive: cut a torn or damaged record off a day log",
		"file", path, "offset", n, "bytes_dropped", len(data)-n, "records_kept", len(mins), "cause", derr)
	if err := os.Truncate(path, int64(n)); err != nil {
		a.failures.Add(1)
		a.log.Error("counts archive: cannot cut a day log", "file", path, "err", err)
	}
	a.logs[d].size = int64(n)
}

// Append stores the counts of a sealed minute, replacing any stored
// earlier for the same minute. The record is on disk (fsynced, unless
// NoSync) when Append returns. A minute older than the retention is not
// kept. Appending a minute of a later day than any before compacts the
// earlier days' logs first; a failed compaction is logged and retried at the
// next new day, and does not fail the Append.
func (a *Archive) Append(s *aggregator.Minute) error {
	m := FromSealed(s)
	return a.append(&m)
}

func (a *Archive) append(m *Minute) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("counts archive: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if !m.Start.Add(time.Minute).After(a.horizon()) {
		return nil
	}
	d := dayOf(m.Start)
	l := a.logs[d]
	if l == nil {
		l = &dayLog{}
		a.logs[d] = l
	}
	if l.f == nil {
		if err := a.openLogLocked(d, l); err != nil {
			return err
		}
	}
	a.buf = appendRecord(a.buf[:0], m)
	if _, err := l.f.WriteAt(a.buf, l.size); err != nil {
		// Cut a partial write off, so that the next record follows a
		// whole one.
		l.f.Truncate(l.size)
		return fmt.Errorf("counts archive: append minute %s to %s: %w", stamp(m.Start), l.f.Name(), err)
	}
	if !a.cfg.NoSync {
		if err := l.f.Sync(); err != nil {
			l.f.Truncate(l.size)
			return fmt.Errorf("counts archive: append minute %s: sync %s: %w", stamp(m.Start), l.f.Name(), err)
		}
	}
	l.size += int64(len(a.buf))
	a.appended.Add(1)
	if d > a.newest {
		a.newest = d
	}
	a.compactBeforeLocked(d)
	a.pruneLocked()
	return nil
}

// openLogLocked opens day d's log for appending, creating it with its
// header if it has none.
func (a *Archive) openLogLocked(d int64, l *dayLog) error {
	path := a.path(d, logExt)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("counts archive: %w", err)
	}
	if l.size == 0 {
		// New, or removed by repair: start it with a header.
		hdr := appendLogHeader(nil, d)
		if err := f.Truncate(0); err == nil {
			_, err = f.WriteAt(hdr, 0)
		}
		if err == nil && !a.cfg.NoSync {
			err = f.Sync()
		}
		if err == nil && !a.cfg.NoSync {
			err = syncDir(a.dir)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("counts archive: create %s: %w", path, err)
		}
		l.size = int64(len(hdr))
	}
	l.f = f
	return nil
}

// horizon is the instant before which retention keeps nothing.
func (a *Archive) horizon() time.Time { return a.cfg.Now().Add(-a.cfg.Retention) }

// Oldest returns the start of the oldest minute retention keeps now: Range
// returns nothing before it.
func (a *Archive) Oldest() time.Time {
	// A minute is kept while it ends after the horizon.
	return a.horizon().UTC().Add(-time.Minute).Truncate(time.Minute).Add(time.Minute)
}

// compactBeforeLocked compacts the logs of days before d.
func (a *Archive) compactBeforeLocked(d int64) {
	for _, day := range slices.Sorted(maps.Keys(a.logs)) {
		if day >= d {
			break
		}
		if err := a.compactLocked(day); err != nil {
			a.failures.Add(1)
			a.log.Error("counts archive: compaction failed; the day stays in its log", "day", dayName(day), "err", err)
		}
	}
}

// compactLocked folds day d's log into its day file.
func (a *Archive) compactLocked(d int64) error {
	mins, err := a.loadLocked(d)
	if err != nil {
		return err
	}
	file, err := encodeDay(d, mins)
	if err != nil {
		return err
	}
	path := a.path(d, dayExt)
	if err := writeFileAtomic(path, file, !a.cfg.NoSync); err != nil {
		return err
	}
	l := a.logs[d]
	if l.f != nil {
		l.f.Close()
	}
	delete(a.logs, d)
	if err := os.Remove(a.path(d, logExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// The log replays the same minutes over the day file: harmless.
		return fmt.Errorf("remove the compacted log: %w", err)
	}
	a.compactions.Add(1)
	return nil
}

// loadLocked returns day d's minutes: its day file overlaid with its log.
func (a *Archive) loadLocked(d int64) ([]Minute, error) {
	dayBytes, logBytes, err := a.readDayLocked(d)
	if err != nil {
		return nil, err
	}
	return a.decodeDay(d, dayBytes, logBytes)
}

// readDayLocked reads day d's files: the day file, and the whole records
// of its log. Either is nil when absent.
func (a *Archive) readDayLocked(d int64) (dayBytes, logBytes []byte, err error) {
	dayBytes, err = os.ReadFile(a.path(d, dayExt))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if l := a.logs[d]; l != nil {
		f, err := os.Open(a.path(d, logExt))
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		logBytes = make([]byte, l.size)
		if _, err := f.ReadAt(logBytes, 0); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
	}
	return dayBytes, logBytes, nil
}

// decodeDay merges a day file's minutes with its log's, the log's last
// record of a minute winning.
func (a *Archive) decodeDay(d int64, dayBytes, logBytes []byte) ([]Minute, error) {
	var mins []Minute
	if dayBytes != nil {
		got, ms, err := DecodeDay(dayBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.path(d, dayExt), err)
		}
		if dayOf(got) != d {
			return nil, fmt.Errorf("%s: %w: the header names day %s", a.path(d, dayExt), ErrCorrupt, got.Format(time.DateOnly))
		}
		mins = ms
	}
	if logBytes == nil {
		return mins, nil
	}
	got, recs, _, err := DecodeLog(logBytes)
	if err != nil {
		// Whole records only, repaired at Open: this is damage since.
		return nil, fmt.Errorf("%s: %w", a.path(d, logExt), err)
	}
	if dayOf(got) != d {
		return nil, fmt.Errorf("%s: %w: the header names day %s", a.path(d, logExt), ErrCorrupt, got.Format(time.DateOnly))
	}
	byMinute := make(map[int64]int, len(mins)+len(recs))
	for i, m := range mins {
		byMinute[m.Start.Unix()] = i
	}
	for _, m := range recs {
		if i, ok := byMinute[m.Start.Unix()]; ok {
			mins[i] = m
			continue
		}
		byMinute[m.Start.Unix()] = len(mins)
		mins = append(mins, m)
	}
	slices.SortFunc(mins, func(x, y Minute) int { return x.Start.Compare(y.Start) })
	return mins, nil
}

// pruneLocked deletes the files of days that ended before the horizon, once
// per day of the clock.
func (a *Archive) pruneLocked() {
	h := a.horizon()
	today := dayOf(a.cfg.Now())
	if today == a.pruned {
		return
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		a.failures.Add(1)
		a.log.Error("counts archive: prune", "err", err)
		return
	}
	for _, e := range entries {
		d, ext, ok := parseFileName(e.Name())
		if !ok || dayStart(d+1).After(h) {
			continue
		}
		if ext == logExt {
			if l := a.logs[d]; l != nil && l.f != nil {
				l.f.Close()
			}
			delete(a.logs, d)
		}
		if err := os.Remove(filepath.Join(a.dir, e.Name())); err != nil {
			a.failures.Add(1)
			a.log.Error("counts archive: prune", "file", e.Name(), "err", err)
			continue
		}
		a.prunedFiles.Add(1)
	}
	a.pruned = today
}

// Prune deletes the files retention no longer keeps now. Append prunes
// once per day of the clock; a service that appends rarely calls Prune.
func (a *Archive) Prune() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruned = -1
	a.pruneLocked()
}

// DayError is Range's error about a day whose files cannot be read or
// decoded. Err names the file; Day alone can be shown to a client.
type DayError struct {
	Day time.Time // the day's first instant, UTC
	Err error
}

func (e *DayError) Error() string {
	return fmt.Sprintf("counts archive: day %s: %v", e.Day.Format(time.DateOnly), e.Err)
}

func (e *DayError) Unwrap() error { return e.Err }

// Range calls f with each kept minute whose start is in [from, to), oldest
// first; the Minute is f's to keep. It stops at the first error f returns
// and returns it. A day that cannot be read or decoded ends Range with a
// *DayError naming the file (and is logged); the minutes before it have
// been delivered.
func (a *Archive) Range(from, to time.Time, f func(*Minute) error) error {
	from = maxTime(from, a.Oldest())
	if !from.Before(to) {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	days, err := a.daysLocked(dayOf(from), dayOf(to.Add(-time.Nanosecond)))
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("counts archive: %w", err)
	}
	for _, d := range days {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return ErrClosed
		}
		dayBytes, logBytes, err := a.readDayLocked(d)
		a.mu.Unlock()
		if err != nil {
			return &DayError{Day: dayStart(d), Err: err}
		}
		mins, err := a.decodeDay(d, dayBytes, logBytes)
		if err != nil {
			a.log.Error("counts archive: a day cannot be read", "day", dayName(d), "err", err)
			return &DayError{Day: dayStart(d), Err: err}
		}
		for i := range mins {
			m := &mins[i]
			if m.Start.Before(from) || !m.Start.Before(to) {
				continue
			}
			if err := f(m); err != nil {
				return err
			}
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// daysLocked lists the days in [lo, hi] that have a file, ascending.
func (a *Archive) daysLocked(lo, hi int64) ([]int64, error) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, err
	}
	var days []int64
	for _, e := range entries {
		if d, _, ok := parseFileName(e.Name()); ok && d >= lo && d <= hi {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	return slices.Compact(days), nil
}

// Stats returns the archive's counters.
func (a *Archive) Stats() Stats {
	return Stats{
		Appended:     a.appended.Load(),
		TornRecords:  a.torn.Load(),
		DroppedBytes: a.dropped.Load(),
		Compactions:  a.compactions.Load(),
		Failures:     a.failures.Load(),
		PrunedFiles:  a.prunedFiles.Load(),
	}
}

// Close closes the open logs. The newest day stays a log, to be appended to
// after the next Open.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, l := range a.logs {
		if l.f != nil {
			errs = append(errs, l.f.Close())
			l.f = nil
		}
	}
	return errors.Join(errs...)
}

// writeFileAtomic writes data to path through a temporary file, so that a
// crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, sync bool) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if sync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
