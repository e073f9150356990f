//go:build linux

package store

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The mount holding a path is, among the mounts of its device, the
// longest mount point containing it (the later of equal ones), with
// mountinfo's octal escapes undone; a mount point that is only a string
// prefix ("/data" for "/database") does not count, nor does a mount of
// another device hidden under a later mount (ext4 at /hidden/deep under
// tmpfs at /hidden).
func TestMountFSType(t *testing.T) {
	const table = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /dev/shm rw,nosuid,nodev shared:2 - tmpfs tmpfs rw
24 22 8:2 / /data rw,relatime shared:3 - xfs /dev/sdb1 rw
25 24 0:40 / /data/nfs rw,relatime shared:4 - nfs4 server:/export rw
26 22 8:3 / /my\040disk rw,relatime shared:5 - btrfs /dev/sdc1 rw
27 24 8:4 / /data rw,relatime shared:6 - ext4 /dev/sdd1 rw
28 22 8:5 / /hidden/deep rw,relatime shared:7 - ext4 /dev/sde1 rw
29 22 0:50 / /hidden rw,relatime shared:8 - tmpfs tmpfs rw
garbage line without a separator
`
	for _, c := range []struct{ path, dev, want string }{
		{"/", "8:1", "ext4"},
		{"/var/lib/radflow", "8:1", "ext4"},
		{"/dev/shm/x", "0:21", "tmpfs"},
		{"/data", "8:4", "ext4"}, // mounted over the xfs
		{"/data/blobs/20261201", "8:4", "ext4"},
		{"/data/nfs/blobs", "0:40", "nfs4"},
		{"/database", "8:1", "ext4"}, // not under /data
		{"/my disk/radflow-data", "8:3", "btrfs"},
		{"/hidden/deep/blobs", "0:50", "tmpfs"}, // the ext4 below is hidden
		{"/data/blobs", "9:9", ""},              // no mount of that device
	} {
		if got := mountFSType(strings.NewReader(table), c.path, c.dev); got != c.want {
			t.Errorf("%s on %s: %q, want %q", c.path, c.dev, got, c.want)
		}
	}
	if got := mountFSType(strings.NewReader("no table"), "/x", "8:1"); got != "" {
		t.Errorf("no table: %q", got)
	}
}

// On this machine: a temporary directory on ext4 or XFS skips the
// directory fsync of a new blob, one on tmpfs does not.
func TestFileSyncCoversNewNameHere(t *testing.T) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	fsType := mountFSType(strings.NewReader(string(b)), dir, fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))))
	want := fsType == "ext4" || fsType == "xfs"
	if got := fileSyncCoversNewName(dir); got != want {
		t.Errorf("%s (%s): %v, want %v", dir, fsType, got, want)
	}
	if _, err := os.Stat("/dev/shm"); err == nil {
		if fileSyncCoversNewName("/dev/shm") {
			t.Error("tmpfs: the directory fsync would be skipped")
		}
	}
	t.Logf("temp dir on %s: directory fsync skipped %v", fsType, want)
}
