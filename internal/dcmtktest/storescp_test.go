package dcmtktest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStartStoreSCP: storescp listens on the returned address, and Files
// and WaitFiles read what lands in its output directory.
func TestStartStoreSCP(t *testing.T) {
	s := StartStoreSCP(t, "PACS")
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	c.Close()
	if fs := s.Files(t); len(fs) != 0 {
		t.Fatalf("fresh storescp has %d files", len(fs))
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "MR.1.2.3"), []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fs := s.WaitFiles(t, 1); len(fs) != 1 || string(fs["MR.1.2.3"]) != "abc" {
		t.Fatalf("WaitFiles = %q", fs)
	}
}
