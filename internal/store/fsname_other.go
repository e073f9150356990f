//go:build !linux

package store

// fileSyncCoversNewName: outside Linux the directory of a new blob is
// always fsynced.
func fileSyncCoversNewName(string) bool { return false }

// deviceOf: outside Linux no device is known.
func deviceOf(string) (uint64, bool) { return 0, false }

// fsType: outside Linux the file system type is not read.
func fsType(string) string { return "" }
