package dimse

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// sharedDICOM returns ../shared/dicom/<sub> relative to the repo root, or skips.
func sharedDICOM(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "dicom", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s absent: %v", p, err)
	}
	return p
}

// received is what the recording handler saw for one C-STORE.
type received struct {
	CallingAE, SOPClass, SOPInstance, TS string
	Size                                 int64
	Sum                                  [32]byte
	Data                                 []byte // kept only when small
}

type recorder struct {
	mu     sync.Mutex
	got    []received
	status uint16
	err    error
}

func (r *recorder) Store(ctx context.Context, req *StoreRequest) (uint16, error) {
	b, err := os.ReadFile(req.DataSetPath)
	if err != nil {
		return 0, err
	}
	if int64(len(b)) != req.DataSetSize {
		return 0, errors.New("size mismatch")
	}
	rec := received{CallingAE: req.CallingAETitle, SOPClass: req.SOPClassUID, SOPInstance: req.SOPInstanceUID, TS: req.TransferSyntaxUID, Size: req.DataSetSize, Sum: sha256.Sum256(b)}
	if len(b) < 1024 {
		rec.Data = b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return r.status, r.err
}

func (r *recorder) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer runs a Server on a random 127.0.0.1 port; it is shut down at cleanup.
func startServer(t testing.TB, cfg Config, h StoreHandler) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String()
}

// dataSetOf returns the data set bytes (after the file meta) and meta of a Part 10 file.
func dataSetOf(t testing.TB, path string) ([]byte, FileMeta) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, off, err := ReadFileMeta(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
	if err != nil {
		t.Fatal(err)
	}
	return b, meta
}

func dial(t testing.TB, addr string, cfg ClientConfig, pcs []PresentationContext) *Client {
	t.Helper()
	cl, err := Dial(context.Background(), addr, cfg, pcs)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return cl
}
