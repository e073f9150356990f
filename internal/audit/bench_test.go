package audit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures durable (write + fsync) Append throughput with
// 1 and 8 concurrent appenders; with 8, group commit shares one fsync
// among the records queued while the previous one ran.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 8} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			tr := openTrail(b, b.TempDir(), 0)
			defer tr.Close()
			r := rec(1)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < appenders; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := tr.Append(context.Background(), r); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
