package dicomweb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// diskIngester writes each part to its own file and fsyncs it: the cost
// floor of a durable store without parsing or indexing.
type diskIngester struct {
	dir string
	n   atomic.Int64
}

func (d *diskIngester) Ingest(ctx context.Context, r io.Reader, src Source) (Stored, error) {
	f, err := os.CreateTemp(d.dir, "*.dcm")
	if err != nil {
		return Stored{}, fmt.Errorf("%w: %w", ErrOutOfResources, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return Stored{}, fmt.Errorf("%w: %w", ErrInvalidInstance, err)
	}
	if err := f.Sync(); err != nil {
		return Stored{}, fmt.Errorf("%w: %w", ErrOutOfResources, err)
	}
	n := d.n.Add(1)
	return Stored{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: fmt.Sprintf("2.25.%d", n), StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2"}, nil
}

// BenchmarkSTOW posts 10 copies of CT_small.dcm (39,206 bytes) per request
// over loopback HTTP/1.1 from 1 and 4 concurrent clients; each part is
// written to a temp file and fsynced. Reports instances/s.
func BenchmarkSTOW(b *testing.B) {
	ct := readShared(b, "CT_small.dcm")
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ing := &diskIngester{dir: b.TempDir()}
			svc, err := New(Config{Ingester: ing})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(svc.Handler())
			defer srv.Close()
			c := &Client{BaseURL: srv.URL + "/dicomweb", HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(10 * len(ct)))
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						rs := make([]io.Reader, 10)
						for i := range rs {
							rs[i] = bytes.NewReader(ct)
						}
						r, err := c.Store(context.Background(), "", rs...)
						if err != nil || r.HTTPStatus != 200 || len(r.Referenced) != 10 {
							b.Errorf("store: %v %+v", err, r)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(10*b.N)/b.Elapsed().Seconds(), "instances/s")
		})
	}
}
