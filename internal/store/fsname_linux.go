package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fileSyncCoversNewName reports whether, on the file system holding dir,
// the fsync of a newly created file also makes its directory entry
// durable, so that a separate fsync of the directory only costs another
// device flush (about 0.2 ms on the development VM's virtio disk):
//
//   - ext4: with a journal, the create is in the transaction the file's
//     fsync commits (or an earlier one); without one, ext4_sync_file syncs
//     the parent directories of an inode created since it was last synced
//     (ext4_sync_parent, Linux commits 14ece1028b3e and 0893ed458b4b,
//     2010-2011: "in the absence of a journal, when an fsync/fdatasync of
//     an inode is done, the parent directory should be sync'ed if this
//     inode entry is new").
//   - XFS: the create logs the new inode and the directory change in one
//     transaction, and xfs_file_fsync forces the log up to the inode's
//     last logged change.
//
// false for any other file system (tmpfs, NFS, btrfs, ext2/ext3 drivers)
// and when the mount table cannot be read: the directory is then fsynced.
func fileSyncCoversNewName(dir string) bool {
	switch fsType(dir) {
	case "ext4", "xfs":
		return true
	}
	return false
}

// fsType returns the type of the file system holding dir ("ext4",
// "xfs", ...), "" when the mount table cannot be read.
func fsType(dir string) string {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return ""
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	dev := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	return mountFSType(f, real, dev)
}

// mountFSType returns the file system type of the mount holding path (an
// absolute path without symbolic links) on device dev ("major:minor", as
// stat reports it) from a /proc/self/mountinfo table: among the entries
// of that device, the one with the longest mount point containing path,
// the later one among equals (it is mounted over the earlier). Matching
// the device keeps a mount hidden under a later, shorter one (ext4 at
// /a/b, then tmpfs at /a) from being taken for the one path is on. ""
// when none matches or the table is malformed.
func mountFSType(mountinfo io.Reader, path, dev string) string {
	best, bestLen := "", -1
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, after := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(after) < 1 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if fields[2] != dev || !within(path, mp) || len(mp) < bestLen {
			continue
		}
		best, bestLen = after[0], len(mp)
	}
	if sc.Err() != nil {
		return ""
	}
	return best
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" || path == dir {
		return true
	}
	return strings.HasPrefix(path, dir+"/")
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// deviceOf returns path's device (st_dev).
func deviceOf(path string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false
	}
	return uint64(st.Dev), true
}
