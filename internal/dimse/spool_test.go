package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestMemoryDataSetLimit stores the 0.5 MB CT with MemoryDataSetLimit
// above its size (received in memory: DataSet set, DataSetPath "", no temp
// file) and below it (spilled to a temp file holding every byte, removed
// after Store), and checks the handler saw the exact bytes both ways, and
// that Part10Bytes gives WritePart10's file without copying the data set.
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
				// Part10Bytes: the file meta in front of the received bytes,
				// in the same buffer (no copy of the data set) when in memory.
				p10, ok, err := req.Part10Bytes()
				if err != nil || ok != tc.inMemory {
					t.Errorf("Part10Bytes: ok %v, %v; in memory: want %v", ok, err, tc.inMemory)
				}
				if ok {
					var wantP10 bytes.Buffer
					if _, err := WritePart10(&wantP10, req.FileMeta(), bytes.NewReader(req.DataSet)); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(p10, wantP10.Bytes()) {
						t.Errorf("Part10Bytes: %d bytes differ from WritePart10's %d", len(p10), wantP10.Len())
					}
					if len(p10) < len(req.DataSet) || &p10[len(p10)-len(req.DataSet)] != &req.DataSet[0] {
						t.Error("Part10Bytes copied the data set instead of using the room in front of it")
					}
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

// TestPart10BytesWithoutRoom: a StoreRequest whose DataSet was not spooled
// (a handler test building one by hand) still gets the whole Part 10 file,
// by a copy; a missing UID is ErrInvalidArgument.
func TestPart10BytesWithoutRoom(t *testing.T) {
	ds := []byte{0x08, 0x00, 0x60, 0x00, 'C', 'S', 2, 0, 'C', 'T'}
	req := &StoreRequest{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.3.4", TransferSyntaxUID: "1.2.840.10008.1.2.1", DataSet: ds, DataSetSize: int64(len(ds))}
	got, ok, err := req.Part10Bytes()
	if err != nil || !ok {
		t.Fatalf("Part10Bytes: ok %v, %v", ok, err)
	}
	var want bytes.Buffer
	if _, err := WritePart10(&want, req.FileMeta(), bytes.NewReader(ds)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) || string(got[128:132]) != "DICM" || !bytes.HasSuffix(got, ds) {
		t.Errorf("Part10Bytes gave %d bytes, want WritePart10's %d ending in the data set", len(got), want.Len())
	}
	req.SOPInstanceUID = ""
	if _, _, err := req.Part10Bytes(); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("without SOP Instance UID: %v, want ErrInvalidArgument", err)
	}
}
