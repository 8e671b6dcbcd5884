//go:build linux

package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fault makes the file system under a Dir fail, and recover. A tiny tmpfs
// does it for real (the kernel's ENOSPC and EROFS); where tmpfs cannot be
// mounted (no CAP_SYS_ADMIN), the Dir's write seam returns the same errors
// instead, and the test says so. Either way the assertions are the same.
type fault interface {
	fill(t *testing.T)   // no space left
	drain(t *testing.T)  // space again
	freeze(t *testing.T) // read-only
	thaw(t *testing.T)   // writable again
}

type tmpfsFault struct {
	mnt string
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory.
func mountTmpfs(t *testing.T, size string) (string, error) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		return "", err
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt, nil
}

func (f *tmpfsFault) filler() string { return filepath.Join(f.mnt, "filler") }

func (f *tmpfsFault) fill(t *testing.T) {
	w, err := os.Create(f.filler())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = w.Write(make([]byte, 4<<20))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v; want ENOSPC", err)
	}
}

func (f *tmpfsFault) drain(t *testing.T) {
	if err := os.Remove(f.filler()); err != nil {
		t.Fatal(err)
	}
}

func (f *tmpfsFault) remount(t *testing.T, flags uintptr) {
	if err := syscall.Mount("", f.mnt, "", syscall.MS_REMOUNT|flags, ""); err != nil {
		t.Fatalf("remount %s: %v", f.mnt, err)
	}
}

func (f *tmpfsFault) freeze(t *testing.T) { f.remount(t, syscall.MS_RDONLY) }
func (f *tmpfsFault) thaw(t *testing.T)   { f.remount(t, 0) }

// seamFault injects the errors through Dir.wrap.
type seamFault struct{ d *Dir }

func (f *seamFault) inject(errno syscall.Errno) {
	f.d.wrap = func(w io.Writer) io.Writer {
		return &failingWriter{w: w, n: 1000, err: &os.PathError{Op: "write", Path: "injected", Err: errno}}
	}
}

func (f *seamFault) fill(*testing.T)   { f.inject(syscall.ENOSPC) }
func (f *seamFault) drain(*testing.T)  { f.d.wrap = nil }
func (f *seamFault) freeze(*testing.T) { f.inject(syscall.EROFS) }
func (f *seamFault) thaw(*testing.T)   { f.d.wrap = nil }

// TestDiskFullAndReadOnly: while the file system is full or read-only, Write
// fails with the cause and the file's path, leaves nothing behind and the
// last good checkpoint stays loadable; once the cause is gone, Write works
// again without any reset.
func TestDiskFullAndReadOnly(t *testing.T) {
	var (
		path string
		flt  fault
		d    *Dir
	)
	mnt, err := mountTmpfs(t, "512k")
	if err == nil {
		path = filepath.Join(mnt, "data")
		d = openDir(t, path)
		flt = &tmpfsFault{mnt: mnt}
		t.Logf("real faults on a 512 KiB tmpfs at %s", mnt)
	} else {
		path = t.TempDir()
		d = openDir(t, path)
		flt = &seamFault{d: d}
		t.Logf("cannot mount a tmpfs (%v): faults injected through the write seam", err)
	}
	keys := newKeyring("day-1")
	// Larger than what a full tmpfs has left, smaller than what an empty
	// one has.
	big := func() *Checkpoint {
		return &Checkpoint{Sections: []Section{{Name: "s", Epoch: "day-1", Data: randomBytes(9, 200<<10)}}}
	}
	first, err := d.Write(big(), keys.lookup)
	if err != nil {
		t.Fatal(err)
	}
	check := func(why string, errno syscall.Errno, newest uint64) {
		t.Helper()
		_, err := d.Write(big(), keys.lookup)
		if !errors.Is(err, errno) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Write: %v; want %v naming %s", why, err, errno, path)
		}
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), tempSuffix) {
				t.Errorf("%s: Write left %s", why, e.Name())
			}
		}
		cp, bad, err := d.LoadNewest(keys.lookup)
		if err != nil || len(bad) != 0 || cp == nil || cp.Seq != newest {
			t.Errorf("%s: LoadNewest: %v %v %v; want seq %d", why, cp, bad, err, newest)
		}
	}
	recovered := func(why string) uint64 {
		t.Helper()
		f, err := d.Write(big(), keys.lookup)
		if err != nil {
			t.Fatalf("%s: Write: %v", why, err)
		}
		if err := d.Prune(1); err != nil {
			t.Errorf("%s: Prune: %v", why, err)
		}
		return f.Seq
	}

	flt.fill(t)
	check("disk full", syscall.ENOSPC, first.Seq)
	check("still full", syscall.ENOSPC, first.Seq)
	flt.drain(t)
	newest := recovered("space again")

	flt.freeze(t)
	check("read-only", syscall.EROFS, newest)
	if _, ok := flt.(*tmpfsFault); ok {
		// A fresh start on a read-only directory is refused clearly.
		d.Close()
		if _, err := Open(path); !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("Open on a read-only file system: %v; want EROFS, not writable", err)
		}
		flt.thaw(t)
		d = openDir(t, path)
	} else {
		flt.thaw(t)
	}
	recovered("writable again")
}
