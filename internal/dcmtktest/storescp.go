package dcmtktest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StoreSCP is a running dcmtk storescp in bit-preserving mode (+B): the
// files it writes hold the data sets byte for byte as they were sent.
type StoreSCP struct {
	Addr string // 127.0.0.1:port it listens on
	Dir  string // directory it writes received files into
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

// StartStoreSCP runs `storescp -aet AET +B -od DIR [extra...] PORT` with
// TCP_NODELAY=1 in a temporary directory and returns once it accepts TCP
// connections (fails the test after 10 s). The process is killed at test
// cleanup; its output is logged when the test failed. The test is skipped
// when storescp is not installed.
func StartStoreSCP(t testing.TB, aet string, extra ...string) *StoreSCP {
	t.Helper()
	bin, err := exec.LookPath("storescp")
	if err != nil {
		t.Skip("dcmtk storescp not installed (apt-get install dcmtk): this test needs a real DICOM destination")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	args := append([]string{"-aet", aet, "+B", "-od", out}, extra...)
	cmd := exec.Command(bin, append(args, port)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var logBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("storescp %s output:\n%s", aet, logBuf.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storescp did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &StoreSCP{Addr: addr, Dir: out}
}

// Files returns the files storescp has written so far, by file name
// (storescp names them by modality and SOP Instance UID).
func (s *StoreSCP) Files(t testing.TB) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// WaitFiles polls Files until storescp has written at least n files and
// returns them; it fails the test after 60 s.
func (s *StoreSCP) WaitFiles(t testing.TB, n int) map[string][]byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		fs := s.Files(t)
		if len(fs) >= n {
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d files at the destination after 60 s, want %d", len(fs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
