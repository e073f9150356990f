package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// directIO turns on O_DIRECT for f, so that its writes go from the
// caller's (aligned) buffer to the device without the page cache; it
// reports false, leaving f as it was, where the file system does not
// support it (tmpfs, some FUSE file systems).
func directIO(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(fd, unix.F_SETFL, fl|unix.O_DIRECT)
		}
		ok = err == nil
	})
	return ok
}
