//go:build !linux

package store

// fileSyncCoversNewName: outside Linux the directory of a new blob is
// always fsynced.
func fileSyncCoversNewName(string) bool { return false }
