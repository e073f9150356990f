//go:build !linux

package store

import "os"

// directIO: O_DIRECT is used on Linux only.
func directIO(*os.File, bool) bool { return false }
