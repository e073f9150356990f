//go:build !linux

package store

import "os"

// directIO: O_DIRECT is used on Linux only.
func directIO(*os.File, bool) bool { return false }

// fdatasync is fsync where fdatasync(2) is not used.
func fdatasync(f *os.File) error { return f.Sync() }
