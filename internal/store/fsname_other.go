//go:build !linux

package store

// fileSyncCoversNewName: outside Linux the directory of a new blob is
// always fsynced.
func fileSyncCoversNewName(string) bool { return false }

// sameDevice: outside Linux no two paths are taken to share a device
// (FS.CoverSyncs never applies; packs are not zero-filled there anyway).
func sameDevice(string, string) bool { return false }

// deviceOf: outside Linux no device is known.
func deviceOf(string) (uint64, bool) { return 0, false }

// fsType: outside Linux the file system type is not read.
func fsType(string) string { return "" }
