//go:build linux

package store

import (
	"os"
	"strings"
	"testing"
)

// The mount holding a path is the longest mount point containing it (the
// later of equal ones), with mountinfo's octal escapes undone; a mount
// point that is only a string prefix ("/data" for "/database") does not
// count.
func TestMountFSType(t *testing.T) {
	const table = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /dev/shm rw,nosuid,nodev shared:2 - tmpfs tmpfs rw
24 22 8:2 / /data rw,relatime shared:3 - xfs /dev/sdb1 rw
25 24 0:40 / /data/nfs rw,relatime shared:4 - nfs4 server:/export rw
26 22 8:3 / /my\040disk rw,relatime shared:5 - btrfs /dev/sdc1 rw
27 24 8:4 / /data rw,relatime shared:6 - ext4 /dev/sdd1 rw
garbage line without a separator
`
	for path, want := range map[string]string{
		"/":                     "ext4",
		"/var/lib/radflow":      "ext4",
		"/dev/shm/x":            "tmpfs",
		"/data":                 "ext4", // mounted over the xfs
		"/data/blobs/20261201":  "ext4",
		"/data/nfs/blobs":       "nfs4",
		"/database":             "ext4", // not under /data
		"/my disk/radflow-data": "btrfs",
	} {
		if got := mountFSType(strings.NewReader(table), path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if got := mountFSType(strings.NewReader("no table"), "/x"); got != "" {
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
	fsType := mountFSType(strings.NewReader(string(b)), dir)
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
