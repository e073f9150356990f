package dimse

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// diskHandler writes each instance as a Part 10 file (fsynced, renamed) in dir.
func diskHandler(dir string) StoreHandler {
	var n atomic.Int64
	return StoreHandlerFunc(func(ctx context.Context, req *StoreRequest) (uint16, error) {
		name := filepath.Join(dir, strconv.FormatInt(n.Add(1)%64, 10)+".dcm")
		if err := req.WritePart10File(name); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrOutOfResources, err)
		}
		return StatusSuccess, nil
	})
}

// BenchmarkCStoreCT measures C-STORE of the 0.5 MB CTImage.dcm, Go SCU →
// Go SCP with a handler that writes and fsyncs a Part 10 file ("fsync"), or
// one that does nothing ("none": network, temp file and protocol only).
func BenchmarkCStoreCT(b *testing.B) {
	path := filepath.Join(sharedDICOM(b, "cornerstoneWADOImageLoader"), "CTImage.dcm")
	pcs, err := StorageContexts([]string{path})
	if err != nil {
		b.Fatal(err)
	}
	discard := StoreHandlerFunc(func(context.Context, *StoreRequest) (uint16, error) { return 0, nil })
	for _, bc := range []struct {
		handler string
		assocs  int
	}{{"fsync", 1}, {"fsync", 4}, {"none", 1}, {"none", 4}} {
		assocs := bc.assocs
		b.Run(fmt.Sprintf("handler=%s/associations=%d", bc.handler, assocs), func(b *testing.B) {
			var h StoreHandler = discard
			if bc.handler == "fsync" {
				h = diskHandler(b.TempDir())
			}
			_, addr := startServer(b, Config{}, h)
			clients := make([]*Client, assocs)
			for i := range clients {
				clients[i] = dial(b, addr, ClientConfig{}, pcs)
			}
			b.SetBytes(530638 - 364)
			b.ResetTimer()
			var wg sync.WaitGroup
			var next atomic.Int64
			for _, cl := range clients {
				wg.Add(1)
				go func(cl *Client) {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if st, err := cl.StoreFile(context.Background(), path); err != nil || st != 0 {
							b.Errorf("StoreFile = 0x%04X, %v", st, err)
							return
						}
					}
				}(cl)
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
			for _, cl := range clients {
				cl.Release(context.Background())
			}
		})
	}
}

// BenchmarkCStoreCTFromStorescu measures dcmtk storescu sending CTImage.dcm
// b.N times in one association to the Go SCP (disk handler). The figure
// includes storescu's start-up and its per-file parsing and re-encoding.
func BenchmarkCStoreCTFromStorescu(b *testing.B) {
	path := filepath.Join(sharedDICOM(b, "cornerstoneWADOImageLoader"), "CTImage.dcm")
	_, addr := startServer(b, Config{TransferSyntaxes: []string{ImplicitVRLittleEndian}}, diskHandler(b.TempDir()))
	h, p := hostPort(b, addr)
	args := []string{"-xi", "-aec", "RADFLOW", h, p}
	for i := 0; i < b.N; i++ {
		args = append(args, path)
	}
	b.SetBytes(530638 - 364)
	b.ResetTimer()
	if out, err := dcmtk(b, "storescu", args...); err != nil {
		b.Fatalf("storescu: %v\n%s", err, out)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}
