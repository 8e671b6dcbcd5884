package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultKeep is how many good checkpoints Prune is usually asked to keep:
// the newest, and two to fall back on if it turns out unreadable.
const DefaultKeep = 3

const (
	filePrefix = "checkpoint-"
	fileSuffix = ".rtck"
	seqDigits  = 20
	// Temporary files are the final prefix with a random part and this
	// suffix, so no temporary file can be taken for a checkpoint.
	tempSuffix = ".tmp"
	lockName   = "LOCK"
)

// Dir is a directory of checkpoint files. See the package doc for what is
// safe to call concurrently.
type Dir struct {
	path string

	mu   sync.Mutex // guards everything below; held for a whole Write or Prune
	lock *os.File   // flocked; nil once closed
	next uint64     // sequence number of the next Write
	// good remembers, by name, the size of files known to pass their
	// checksums (written here, or verified by Prune), so that Prune does
	// not read the kept files again every time.
	good map[string]int64
	// skipped remembers, by name, the size of files that Load passed over:
	// Prune never counts them as good, even if their checksums pass (a
	// section the engine could not use), so it keeps older files to fall
	// back on.
	skipped map[string]int64
	// pending names the segments written since the last checkpoint:
	// none lists them yet, and Prune leaves them alone.
	pending map[string]bool
	// lists remembers, by name, the segment lists of checkpoint files of
	// the size noted, so that Prune reads each once.
	lists map[string]fileList
	enc   encoder
	// wrap, if set, wraps the temporary file's writer: the seam through
	// which tests make writes fail.
	wrap func(io.Writer) io.Writer
}

// File describes a checkpoint file.
type File struct {
	Path string
	Seq  uint64
	Size int64 // bytes
	// Segments are the segment files the checkpoint lists (references:
	// no Sections), those Write wrote with their Size and CRC.
	Segments []Segment
}

// Open opens the checkpoint directory at path, creating it (mode 0700) if it
// is missing, locks it, removes the temporary files a crash may have left,
// and checks that a file can be created, written, synced and removed in it.
// The error says which of these failed, with the path and the cause
// (errors.Is works on the cause: syscall.ENOTDIR, EROFS, ENOSPC, … or
// ErrLocked).
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("store: open: empty checkpoint directory path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("store: open checkpoint directory %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store: open checkpoint directory %s: %w", path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: open checkpoint directory %s: %s: %w", path, fi.Mode().Type(), syscall.ENOTDIR)
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	d := &Dir{path: path, lock: lock, next: 1, good: make(map[string]int64), skipped: make(map[string]int64),
		pending: make(map[string]bool), lists: make(map[string]fileList)}
	if err := d.openLocked(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dir) openLocked() error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("store: open checkpoint directory %s: %w", d.path, err)
	}
	for _, e := range entries {
		name := e.Name()
		if (strings.HasPrefix(name, filePrefix) || strings.HasPrefix(name, segmentPrefix)) && strings.HasSuffix(name, tempSuffix) {
			if err := os.Remove(filepath.Join(d.path, name)); err != nil {
				return fmt.Errorf("store: open checkpoint directory %s: remove a crashed write: %w", d.path, err)
			}
		}
		if seq, ok := parseName(name); ok && seq >= d.next {
			d.next = seq + 1
		}
	}
	if err := probe(d.path); err != nil {
		return fmt.Errorf("store: checkpoint directory %s is not writable: %w", d.path, err)
	}
	return nil
}

// probe creates, writes, syncs and removes a file in dir.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, filePrefix+"probe-*"+tempSuffix)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("probe"))
	err = errors.Join(err, f.Sync(), f.Close())
	return errors.Join(err, os.Remove(f.Name()))
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Close releases the directory's lock, after a Write or Prune in progress.
// A Write after Close fails; closing again does nothing.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the descriptor releases the flock
	d.lock = nil
	return err
}

func fileName(seq uint64) string {
	return fmt.Sprintf("%s%0*d%s", filePrefix, seqDigits, seq, fileSuffix)
}

// parseName returns the sequence number of a checkpoint file name.
func parseName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, fileSuffix); !ok || len(digits) != seqDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// list returns the checkpoint files of the directory, newest first.
func (d *Dir) list() ([]File, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, e := range entries {
		seq, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		f := File{Path: filepath.Join(d.path, e.Name()), Seq: seq}
		if fi, err := e.Info(); err == nil {
			f.Size = fi.Size()
		}
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b File) int { return -compareSeq(a.Seq, b.Seq) })
	return files, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Write writes cp as the directory's next checkpoint, sealing each section
// that has an Epoch under that epoch's key from keys, and returns the new
// file. First it writes each of cp.Segments that has no Size yet as a
// segment file (see WriteSegment); the checkpoint lists them all. Each file
// is a temporary file in the directory, fsynced, renamed to its final name,
// and the directory fsynced. On error (a bad section, an epoch key that is
// gone, ENOSPC, EROFS, EDQUOT, EIO, …) it removes the temporary file and
// returns an error naming the file and wrapping the cause; the directory
// then holds no new checkpoint that LoadNewest would take (segments
// written before the failure stay, for the next Write to list, or Prune to
// delete), and a later Write succeeds once the cause is gone.
func (d *Dir) Write(cp *Checkpoint, keys KeyLookup) (File, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return File{}, fmt.Errorf("store: write checkpoint in %s: directory closed", d.path)
	}
	c := *cp
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	c.Segments = make([]Segment, len(cp.Segments))
	for i := range cp.Segments {
		s := &cp.Segments[i]
		if s.Size != 0 {
			c.Segments[i] = s.ref()
			continue
		}
		ref, err := d.writeSegmentLocked(s, keys)
		if err != nil {
			return File{}, err
		}
		c.Segments[i] = ref
	}
	seq := d.next
	final := filepath.Join(d.path, fileName(seq))
	size, _, err := d.writeLocked(&c, seq, 0, final, keys)
	if err != nil {
		return File{}, fmt.Errorf("store: write checkpoint %s: %w", final, err)
	}
	d.next = seq + 1
	d.good[filepath.Base(final)] = size
	d.lists[filepath.Base(final)] = fileList{size: size, segs: c.Segments}
	clear(d.pending)
	return File{Path: final, Seq: seq, Size: size, Segments: c.Segments}, nil
}

// writeLocked writes, syncs and renames the temporary file of cp (a
// checkpoint, or with flagSegment a segment), and returns its size and
// header checksum. A failure after the rename (syncing the directory)
// leaves a complete, valid file that a power loss may undo; it is still
// reported.
func (d *Dir) writeLocked(cp *Checkpoint, seq uint64, flags uint16, final string, keys KeyLookup) (size int64, crc uint32, err error) {
	tmp, err := os.CreateTemp(d.path, filepath.Base(final)+"-*"+tempSuffix)
	if err != nil {
		return 0, 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	if d.wrap != nil {
		w = d.wrap(tmp)
	}
	h, err := d.enc.encode(w, cp, seq, flags, keys)
	if err != nil {
		return 0, 0, err
	}
	// The header goes last, over the zeros encode wrote first: its
	// checksum covers the body's, so a file is only valid once whole.
	hdr := h.encode()
	if _, err := tmp.WriteAt(hdr[:], 0); err != nil {
		return 0, 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return 0, 0, err
	}
	renamed = true
	size = headerSize + int64(h.bodyLen)
	crc = binary.BigEndian.Uint32(hdr[48:52])
	if err := syncDir(d.path); err != nil {
		return size, crc, fmt.Errorf("sync directory after rename: %w", err)
	}
	return size, crc, nil
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// Prune removes every checkpoint file older than the keep-th newest good one,
// keep ≥ 1: good is written by this Dir, or passing its checksums, with
// every segment it lists present, and not passed over by Load. So the file a
// start-up fell back to is never removed while the files newer than it are
// damaged or unusable; those stay for inspection until enough good files are
// written after them. Then it removes the segment files that no checkpoint
// file left lists (but not those written since the last checkpoint). A file
// that cannot be removed does not stop the others; the error joins the
// failures. Prune is PruneKeys with no keys.
func (d *Dir) Prune(keep int) error { return d.PruneKeys(keep, nil) }

// PruneKeys is Prune that also removes the segment files of the epochs
// whose key keys no longer has (they are unreadable in any case, and Load
// does not read them), even where a kept checkpoint lists them. keys may be
// nil.
func (d *Dir) PruneKeys(keep int, keys KeyLookup) error {
	if keep < 1 {
		return fmt.Errorf("store: prune %s: keep %d checkpoints; want at least 1", d.path, keep)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	files, err := d.list()
	if err != nil {
		return fmt.Errorf("store: prune: list checkpoint directory %s: %w", d.path, err)
	}
	var errs []error
	var kept []File
	good := 0
	for _, f := range files {
		name := filepath.Base(f.Path)
		if good >= keep {
			if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("store: prune: %w", err))
				kept = append(kept, f)
				continue
			}
			delete(d.good, name)
			delete(d.skipped, name)
			delete(d.lists, name)
			continue
		}
		kept = append(kept, f)
		if size, ok := d.skipped[name]; ok && size == f.Size {
			continue // a load passed it over: it is no fallback
		}
		if size, ok := d.good[name]; !ok || size != f.Size {
			if verify(f.Path) != nil {
				continue
			}
			d.good[name] = f.Size
		}
		if d.segmentsPresent(f, keys) {
			good++
		}
	}
	return errors.Join(append(errs, d.pruneSegmentsLocked(kept, keys))...)
}

func verify(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = verifyFile(f)
	return err
}
