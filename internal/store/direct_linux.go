package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// directIO turns O_DIRECT on (or off) for f: with it, writes go from the
// caller's (aligned) buffer to the device without the page cache. It
// reports false, leaving f as it was, where that fails (turning it on on
// tmpfs, some FUSE file systems).
func directIO(f *os.File, on bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err == nil {
			if on {
				fl |= unix.O_DIRECT
			} else {
				fl &^= unix.O_DIRECT
			}
			_, err = unix.FcntlInt(fd, unix.F_SETFL, fl)
		}
		ok = err == nil
	})
	return ok
}

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), not its timestamps.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// pwritev writes the buffers one after the other at off with one
// pwritev(2): with O_DIRECT, one request to the device for all of them.
// It returns the bytes written (fewer only with an error).
func pwritev(f *os.File, iovs [][]byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if n, werr = unix.Pwritev(int(fd), iovs, off); werr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	return n, werr
}

// punchHole frees the blocks of [off, off+n) keeping the file's size
// (fallocate FALLOC_FL_PUNCH_HOLE); reads there return zeros.
func punchHole(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		perr = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}); err != nil {
		return err
	}
	return perr
}

// lockFile takes f's flock, exclusive, without waiting (errors: EWOULDBLOCK
// when another open file holds it).
func lockFile(f *os.File) error { return tryLockFile(f) }

// tryLockFile takes f's flock, exclusive, without waiting.
func tryLockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); lerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lerr
}

// lockUnsupported reports whether a flock error means the file system
// has no flock (rather than that another file holds it).
func lockUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOLCK)
}

// hasData reports whether [from, to) of f holds any data (SEEK_DATA);
// true when that cannot be told.
func hasData(f *os.File, from, to int64) bool {
	off, err := unix.Seek(int(f.Fd()), from, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return false // only holes after from
	}
	return err != nil || off < to
}

// fileDevice returns f's device (st_dev), 0 when it cannot be read.
func fileDevice(f *os.File) uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0
	}
	return uint64(st.Dev)
}

// directAligned reports whether an O_DIRECT write to f aligned to
// directAlign goes to the device as it is: statx reports a direct I/O
// offset alignment of at most directAlign (STATX_DIOALIGN, Linux 6.1;
// ext4 reports 0, no direct I/O, for a file whose writes it journals or
// encrypts in software, where it would quietly write through the page
// cache). false when it cannot be read.
func directAligned(f *os.File) bool {
	var sx unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx)
	return err == nil && sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align > 0 && sx.Dio_offset_align <= directAlign
}
