package store

// Start-up: newest to oldest, the first checkpoint that decodes and that the
// engine can use. A file passed over is reported (Skipped) and remembered,
// so that Prune keeps the files older than it to fall back on.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrUnusable is what a Load caller's accept function wraps to pass over a
// checkpoint that decodes but that the caller cannot use: a section that is
// missing, damaged or sealed under a key that is gone. Load then tries the
// next older file.
var ErrUnusable = errors.New("checkpoint unusable")

// Skipped is a checkpoint file that Load passed over, and why.
type Skipped struct {
	Path string // the file
	Seq  uint64 // its sequence number, from its name
	// Err wraps ErrTruncated, ErrChecksum, ErrVersion, ErrCorrupt,
	// ErrSegment or ErrUnusable, or is the I/O error that stopped the
	// file's reading.
	Err error
}

func (s *Skipped) Error() string {
	return fmt.Sprintf("store: load checkpoint %s: %v", s.Path, s.Err)
}

func (s *Skipped) Unwrap() error { return s.Err }

// Reason names the kind of problem in a word, for a metric label:
// segment, truncated, checksum, version, corrupt, unusable or io.
func (s *Skipped) Reason() string {
	switch {
	case errors.Is(s.Err, ErrSegment):
		return "segment"
	case errors.Is(s.Err, ErrTruncated):
		return "truncated"
	case errors.Is(s.Err, ErrChecksum):
		return "checksum"
	case errors.Is(s.Err, ErrVersion):
		return "version"
	case errors.Is(s.Err, ErrCorrupt):
		return "corrupt"
	case errors.Is(s.Err, ErrUnusable):
		return "unusable"
	}
	return "io"
}

// Load returns the newest checkpoint of the directory that decodes and that
// accept takes, and, newest first, what was wrong with each newer file. accept
// is called with each checkpoint that decodes, newest first: nil takes it;
// an error wrapping ErrUnusable passes it over, recorded as that file's
// Skipped.Err; any other error stops Load, which returns it as err. A nil
// accept takes the first that decodes. cp is nil if no file is taken: a first
// start if skipped is empty too. err is also set if the directory cannot be
// read.
//
// The files passed over are remembered by the Dir: Prune never counts them
// as good, so the file taken is kept until enough good files follow it.
func (d *Dir) Load(keys KeyLookup, accept func(*Checkpoint) error) (cp *Checkpoint, skipped []*Skipped, err error) {
	// A file vanishes only when Prune has seen enough newer good ones, so
	// the listing is stale: list again. Each retry needs DefaultKeep-ish
	// writes during one load; the bound only guards against a livelock.
	for range 100 {
		cp, skipped, vanished, err := d.load(keys, accept)
		if !vanished {
			return cp, skipped, err
		}
	}
	return nil, nil, fmt.Errorf("store: load from %s: files keep vanishing while they are read", d.path)
}

func (d *Dir) load(keys KeyLookup, accept func(*Checkpoint) error) (cp *Checkpoint, skipped []*Skipped, vanished bool, err error) {
	files, err := d.list()
	if err != nil {
		return nil, nil, false, fmt.Errorf("store: list checkpoint directory %s: %w", d.path, err)
	}
	for _, f := range files {
		cp, err := loadFile(f.Path, keys)
		if err == nil {
			err = d.loadSegments(f.Path, cp, keys)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, true, nil
		}
		if err == nil && accept != nil {
			if err = accept(cp); err != nil && !errors.Is(err, ErrUnusable) {
				return nil, skipped, false, err
			}
		}
		if err == nil {
			return cp, skipped, false, nil
		}
		skipped = append(skipped, &Skipped{Path: f.Path, Seq: f.Seq, Err: err})
		d.mu.Lock()
		d.skipped[filepath.Base(f.Path)] = f.Size
		d.mu.Unlock()
	}
	return nil, skipped, false, nil
}

// LoadNewest is Load with no accept function, its reports as errors: the
// newest checkpoint that decodes, and an error for each newer file. Sealed
// sections that cannot be opened are listed in cp.Unreadable, and the
// checkpoint is still taken.
func (d *Dir) LoadNewest(keys KeyLookup) (cp *Checkpoint, bad []error, err error) {
	cp, skipped, err := d.Load(keys, nil)
	for _, s := range skipped {
		bad = append(bad, s)
	}
	return cp, bad, err
}
