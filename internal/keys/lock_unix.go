//go:build unix

package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// LockDataDir makes sure no other process uses the data directory for the
// length of a maintenance operation and keeps serve from starting during
// it. It takes exclusive, non-blocking flocks on <dataDir>/keys/.lock
// (other `radflow keys` runs) and on each existing file or directory
// lock in lockFiles (e.g. the audit trail's <dir>/.lock, which radflow
// serve holds for its life; a path whose directory does not exist is
// skipped), then checks that no process has the SQLite database dbPath
// open: every connection to a WAL database holds a shared POSIX lock on
// byte 128 (the DMS byte) of dbPath-shm for its life, which F_GETLK sees
// from another process (not from this one). release drops the locks.
// errors: ErrInUse (wrapped, naming which lock), I/O errors.
func LockDataDir(dataDir, dbPath string, lockFiles ...string) (release func(), err error) {
	var held []*os.File
	unlock := func() {
		for _, f := range held {
			f.Close()
		}
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	kdir := filepath.Join(dataDir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	for _, p := range append([]string{filepath.Join(kdir, ".lock")}, lockFiles...) {
		if _, err := os.Stat(filepath.Dir(p)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("keys: lock: %w", err)
		}
		held = append(held, f)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s is locked by another process (radflow serve or another radflow keys run)", ErrInUse, p)
			}
			return nil, fmt.Errorf("keys: lock: %w", err)
		}
	}
	if dbPath != "" {
		f, err := os.OpenFile(dbPath+"-shm", os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return unlock, nil // no connection has the WAL index open
		}
		if err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
		defer f.Close()
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: sqliteShmDMS, Len: 1}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
			return nil, fmt.Errorf("keys: lock check: %w", err)
		}
		if lk.Type != syscall.F_UNLCK {
			return nil, fmt.Errorf("%w: %s is open in another process (radflow serve or worker, pid %d)", ErrInUse, filepath.Base(dbPath), lk.Pid)
		}
	}
	return unlock, nil
}

// sqliteShmDMS is UNIX_SHM_DMS of SQLite's os_unix.c: (22+8)*4 + 8.
const sqliteShmDMS = 128
