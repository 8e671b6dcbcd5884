package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ratingsd/ratingsd/sketch"
)

// Files in a Ring's directory.
const (
	// PseudonymFile holds the pseudonym key.
	PseudonymFile = "pseudonym.key"
	// ForgottenFile holds the id of the newest forgotten epoch of each
	// tier, one a line: no key material.
	ForgottenFile = "forgotten"
	keySuffix     = ".key"
	tmpSuffix     = ".tmp"
)

// Errors, wrapped with the file, tier or epoch concerned. Key material is
// never part of an error.
var (
	// ErrKeyFile: a key file, or the record of forgotten epochs, cannot be
	// read or written, or does not hold what it should.
	ErrKeyFile = errors.New("unusable key file")
	// ErrForgotten: a key was asked for an epoch that is, or is older
	// than, the newest forgotten epoch of its tier.
	ErrForgotten = errors.New("key epoch forgotten")
)

// Ring keeps the pseudonym key and the epoch keys (see the package doc).
type Ring struct {
	dir  string      // "" keeps keys in memory only
	root *sketch.Key // Derived: every key is computed from it

	mu        sync.Mutex // guards the fields below and the directory's files
	pseudonym *sketch.Key
	held      [numTiers]map[int64]*sketch.Key
	// forgotten is the newest forgotten epoch of each tier, or
	// noneForgotten.
	forgotten [numTiers]int64
}

const noneForgotten = math.MinInt64

func newRing() *Ring {
	r := &Ring{}
	for t := range r.held {
		r.held[t] = make(map[int64]*sketch.Key)
		r.forgotten[t] = noneForgotten
	}
	return r
}

// Open returns the Ring of the key files in dir, creating dir (mode 0700)
// and the pseudonym key file on first use, and tightening dir's mode to 0700
// if it is looser. It reads every epoch key file (day-….key, week-….key)
// and ignores other files. A key file of an epoch at or before the newest
// forgotten one of its tier, left by a Forget interrupted by a crash, is
// deleted. A directory belongs to one process at a time: the service opens
// it while it holds the lock of its checkpoint directory.
func Open(dir string) (*Ring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create the key directory %s: %w", ErrKeyFile, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: key directory %s has mode %v; make it 0700: %w", ErrKeyFile, dir, fi.Mode().Perm(), err)
		}
	}
	r := newRing()
	r.dir = dir
	if err := r.readForgotten(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, PseudonymFile)
	switch k, err := readKey(path); {
	case err == nil:
		r.pseudonym = k
	case errors.Is(err, fs.ErrNotExist):
		if r.pseudonym, err = sketch.NewKey(); err != nil {
			return nil, err
		}
		if err := writeKey(dir, PseudonymFile, r.pseudonym); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: list %s: %w", ErrKeyFile, dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) && (strings.Contains(name, keySuffix+".") || strings.HasPrefix(name, ForgottenFile+".")) {
			// A file whose write a crash cut short. Nothing was hashed
			// under a key left so: Key returns a key only once its file
			// is in place.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		base, ok := strings.CutSuffix(name, keySuffix)
		if !ok || name == PseudonymFile {
			continue
		}
		t, n, err := ParseID(base)
		if err != nil {
			continue // not ours (a key file of an older version, say)
		}
		path := filepath.Join(dir, name)
		if n <= r.forgotten[t] {
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("%w: finish forgetting %s: %w", ErrKeyFile, path, err)
			}
			continue
		}
		k, err := readKey(path)
		if err != nil {
			return nil, err
		}
		r.held[t][n] = k
	}
	return r, nil
}

// NewMemory returns a Ring of random keys kept in memory only: they shred
// with the process. For tests and for embedding the engine without a data
// directory.
func NewMemory() (*Ring, error) {
	k, err := sketch.NewKey()
	if err != nil {
		return nil, err
	}
	r := newRing()
	r.pseudonym = k
	return r, nil
}

// Derived returns a Ring whose pseudonym key is root and whose epoch keys are
// computed from root, so that hashes and estimates are the same from run to
// run. It is for tests and examples only: a derived key can always be
// computed again from root, so Forget shreds nothing (it only makes the Ring
// refuse the epoch from then on, like any Ring).
func Derived(root *sketch.Key) *Ring {
	r := newRing()
	r.root, r.pseudonym = root, root
	return r
}

// deriveLabel starts the message whose keyed hash is half of a derived epoch
// key. With the id it is longer than any device identifier (1..64 bytes), so
// a derived key is never the pseudonym of a device.
const deriveLabel = "ratingsd/keys derived epoch key v1 (test only; never for real data) for epoch "

func derive(root *sketch.Key, id string) *sketch.Key {
	var b [sketch.KeySize]byte
	for i := range 2 {
		msg := fmt.Appendf(nil, "%s%s, half %d", deriveLabel, id, i)
		binary.LittleEndian.PutUint64(b[8*i:], root.Hash(msg))
	}
	k, err := sketch.KeyFromBytes(b[:])
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return k
}

// Dir returns the Ring's directory ("" for NewMemory and Derived).
func (r *Ring) Dir() string { return r.dir }

// Pseudonym returns the pseudonym key.
func (r *Ring) Pseudonym() *sketch.Key { return r.pseudonym }

// Key returns the key of epoch n of tier t, creating it (and its file) on
// first use. It is an error, wrapping ErrForgotten, for an epoch at or
// before the newest forgotten one of t: a forgotten key is never made again.
func (r *Ring) Key(t Tier, n int64) (*sketch.Key, error) {
	if err := checkEpoch(t, n); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= r.forgotten[t] {
		return nil, fmt.Errorf("%w: %s is not newer than %s, the newest %s key forgotten", ErrForgotten, ID(t, n), ID(t, r.forgotten[t]), t.Unit())
	}
	if k := r.held[t][n]; k != nil {
		return k, nil
	}
	var k *sketch.Key
	switch {
	case r.root != nil:
		k = derive(r.root, ID(t, n))
	default:
		var err error
		if k, err = sketch.NewKey(); err != nil {
			return nil, err
		}
		if r.dir != "" {
			if err := writeKey(r.dir, ID(t, n)+keySuffix, k); err != nil {
				return nil, err
			}
		}
	}
	r.held[t][n] = k
	return k, nil
}

// Forget deletes the key of epoch n of tier t: its file and the Ring's
// copy. From then on Key refuses n and every older epoch of t; the newest
// forgotten epoch is recorded in the directory first, so that a crash in
// between cannot bring the key back (Open finishes the deletion). Forgetting
// an epoch again, or one that was never held, is not an error.
func (r *Ring) Forget(t Tier, n int64) error {
	if err := checkEpoch(t, n); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > r.forgotten[t] {
		next := r.forgotten
		next[t] = n
		if r.dir != "" {
			if err := r.writeForgotten(next); err != nil {
				return err
			}
		}
		r.forgotten = next
	}
	delete(r.held[t], n)
	if r.dir == "" {
		return nil
	}
	path := filepath.Join(r.dir, ID(t, n)+keySuffix)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: delete %s: %w", ErrKeyFile, path, err)
	}
	return syncDir(r.dir)
}

// Epochs returns the epochs of tier t whose keys the Ring holds, ascending.
// A Derived ring holds the keys it has handed out.
func (r *Ring) Epochs(t Tier) []int64 {
	if t >= numTiers {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, 0, len(r.held[t]))
	for n := range r.held[t] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Forgotten returns the newest forgotten epoch of tier t, and whether any
// was forgotten.
func (r *Ring) Forgotten(t Tier) (int64, bool) {
	if t >= numTiers {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forgotten[t], r.forgotten[t] != noneForgotten
}

// Lookup returns the bytes of the key of the epoch with the given id (see
// ID), if the Ring holds it: a checkpoint store's KeyLookup. It never creates
// a key, except that a Derived ring computes any key not forgotten.
func (r *Ring) Lookup(id string) ([]byte, bool) {
	t, n, err := ParseID(id)
	if err != nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.held[t][n]
	if k == nil && r.root != nil && n > r.forgotten[t] {
		k = derive(r.root, id)
	}
	if k == nil {
		return nil, false
	}
	b := k.Bytes()
	return b[:], true
}

func checkEpoch(t Tier, n int64) error {
	switch {
	case t >= numTiers:
		return fmt.Errorf("keys: %v is not the minute or the reach tier", t)
	case n < 0 || (t == Minute && n > maxDay) || (t == Reach && n > maxWeek):
		return fmt.Errorf("keys: %s epoch %d is outside the years 1970..9999", t, n)
	}
	return nil
}

func readKey(path string) (*sketch.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrKeyFile, path, err)
	}
	k, err := sketch.KeyFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %d bytes, want %d (key files are written by ratingsd; restore it from a backup, or delete it, which makes whatever was sealed under it unreadable)", ErrKeyFile, path, len(b), sketch.KeySize)
	}
	return k, nil
}

// writeKey writes k to dir/name atomically (mode 0600).
func writeKey(dir, name string, k *sketch.Key) error {
	b := k.Bytes()
	return writeFile(dir, name, b[:])
}

// writeFile writes a temporary file, syncs it, renames it to name and
// syncs the directory, so that a crash leaves the old file or the new one,
// never a short one.
func writeFile(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, name+".*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("%w %s: create: %w", ErrKeyFile, path, err)
	}
	_, err = tmp.Write(data)
	err = errors.Join(err, tmp.Chmod(0o600), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%w %s: write: %w", ErrKeyFile, path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrKeyFile, dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrKeyFile, dir, err)
	}
	return nil
}

func (r *Ring) readForgotten() error {
	path := filepath.Join(r.dir, ForgottenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrKeyFile, path, err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		t, n, err := ParseID(line)
		if err != nil {
			return fmt.Errorf("%w %s: line %d: %w", ErrKeyFile, path, i+1, err)
		}
		r.forgotten[t] = max(r.forgotten[t], n)
	}
	return nil
}

func (r *Ring) writeForgotten(f [numTiers]int64) error {
	var b []byte
	for t, n := range f {
		if n != noneForgotten {
			b = append(append(b, ID(Tier(t), n)...), '\n')
		}
	}
	return writeFile(r.dir, ForgottenFile, b)
}
