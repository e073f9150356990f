//go:build !linux

package store

import (
	"errors"
	"os"
)

// directIO: O_DIRECT is used on Linux only.
func directIO(*os.File, bool) bool { return false }

// fdatasync is fsync where fdatasync(2) is not used.
func fdatasync(f *os.File) error { return f.Sync() }

// pwritev writes the buffers one after the other at off.
func pwritev(f *os.File, iovs [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range iovs {
		n, err := f.WriteAt(b, off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// punchHole is not available: the caller zeroes instead.
func punchHole(*os.File, int64, int64) error { return errors.ErrUnsupported }

// lockFile: no flock outside Linux; a pack is taken as written.
func lockFile(*os.File) error { return nil }

// tryLockFile: without flock no pack is taken for a dead one.
func tryLockFile(*os.File) error { return errors.ErrUnsupported }

// lockUnsupported: lockFile never fails outside Linux.
func lockUnsupported(error) bool { return true }

// hasData: holes cannot be told apart outside Linux.
func hasData(*os.File, int64, int64) bool { return true }

// fileDevice: outside Linux no device is known (FS.CoverSyncs never
// applies).
func fileDevice(*os.File) uint64 { return 0 }

// directAligned: outside Linux O_DIRECT is not used.
func directAligned(*os.File) bool { return false }
