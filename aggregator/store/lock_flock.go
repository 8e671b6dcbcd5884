//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock on path/LOCK. The lock belongs to the open
// file description, so it holds against other Dirs in this process too, and
// the kernel releases it when the process dies: a crash never leaves the
// directory locked. The file is opened read-only (flock does not need more)
// so that it does not keep its file system from being remounted read-only.
func lockDir(path string) (*os.File, error) {
	name := filepath.Join(path, lockName)
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint directory %s is not writable: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: checkpoint directory %s: %s is held by another process or Dir: %w", path, name, ErrLocked)
		}
		return nil, fmt.Errorf("store: lock checkpoint directory %s: %w", path, err)
	}
	return f, nil
}
