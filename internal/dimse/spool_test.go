package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestMemoryDataSetLimit stores the 0.5 MB CT with MemoryDataSetLimit
// above its size (received in memory: DataSet set, DataSetPath "", no temp
// file) and below it (spilled to a temp file holding every byte, removed
// after Store), and checks the handler saw the exact bytes both ways.
func TestMemoryDataSetLimit(t *testing.T) {
	path := filepath.Join(sharedDICOM(t, "cornerstoneWADOImageLoader"), "CTImage.dcm")
	want, meta := dataSetOf(t, path)
	for _, tc := range []struct {
		name     string
		limit    int64
		inMemory bool
	}{{"memory", 1 << 20, true}, {"spill", 100_000, false}, {"file", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			var mu sync.Mutex
			var sums [][32]byte
			var paths []string
			h := StoreHandlerFunc(func(ctx context.Context, req *StoreRequest) (uint16, error) {
				if (req.DataSetPath == "") != tc.inMemory || (req.DataSet != nil) != tc.inMemory {
					t.Errorf("DataSetPath %q, DataSet of %d bytes; in memory: want %v", req.DataSetPath, len(req.DataSet), tc.inMemory)
				}
				r, err := req.OpenDataSet()
				if err != nil {
					return 0, err
				}
				defer r.Close()
				b, err := io.ReadAll(r)
				if err != nil {
					return 0, err
				}
				if int64(len(b)) != req.DataSetSize {
					t.Errorf("read %d bytes, DataSetSize %d", len(b), req.DataSetSize)
				}
				mu.Lock()
				sums = append(sums, sha256.Sum256(b))
				paths = append(paths, req.DataSetPath)
				mu.Unlock()
				return StatusSuccess, nil
			})
			_, addr := startServer(t, Config{TempDir: tmp, MemoryDataSetLimit: tc.limit}, h)
			cl := dial(t, addr, ClientConfig{}, []PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}})
			defer cl.Release(context.Background())
			for range 3 { // the second and third reuse the pooled buffer
				st, err := cl.Store(context.Background(), meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID, bytes.NewReader(want), int64(len(want)))
				if err != nil || st != StatusSuccess {
					t.Fatalf("C-STORE: status %#04x, %v", st, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(sums) != 3 {
				t.Fatalf("handler called %d times, want 3", len(sums))
			}
			for i, s := range sums {
				if s != sha256.Sum256(want) {
					t.Errorf("store %d: data set differs from the %d bytes sent", i, len(want))
				}
				if paths[i] != "" {
					if _, err := os.Stat(paths[i]); !os.IsNotExist(err) {
						t.Errorf("temp file %s left after Store: %v", paths[i], err)
					}
				}
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("%d files left in TempDir", len(left))
			}
		})
	}
}
