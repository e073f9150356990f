package ingest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
)

// BenchmarkIngest stores the 0.5 MB CT b.N times as distinct instances (a
// fresh SOP Instance UID per iteration through the test hook; the bytes
// stay the same), each durable before Ingest returns: parse, blob write +
// fsync + rename + directory fsync, and a group commit of the row, 2
// queued results and 2 River jobs (synchronous=FULL). Reports
// instances/s and instances per commit.
func BenchmarkIngest(b *testing.B) {
	data := ctBytes(b)
	for _, linger := range []time.Duration{0, 2 * time.Millisecond} {
		for _, senders := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("senders=%d/linger=%s", senders, linger), func(b *testing.B) {
				e := newEnv(b, b.TempDir(), queue.Config{}, Config{BatchLinger: linger})
				e.g.uidHook = distinct("2.25.99")
				var commits atomic.Int64
				e.g.commitHook = func() error { commits.Add(1); return nil }
				ctx := context.Background()
				var next atomic.Int64
				b.SetBytes(int64(len(data)))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range senders {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := e.g.Ingest(ctx, bytes.NewReader(data), dimse); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
				b.ReportMetric(float64(b.N)/float64(max(commits.Load(), 1)), "instances/commit")
			})
		}
	}
}
