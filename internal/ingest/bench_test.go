package ingest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// BenchmarkIngest stores the 0.5 MB CT b.N times as distinct instances (a
// fresh SOP Instance UID per iteration through the test hook; the bytes
// stay the same) from `senders` concurrent callers, each instance durable
// before Ingest returns: parse, blob write + fsync, then a group commit
// (directory fsync, row + 2 queued results + 2 River jobs, WAL fsync with
// synchronous=FULL). Reports instances/s and instances per commit. The
// phi case encrypts the PHI columns (blind indexes and phi_terms rows, as
// a server with a PHI key does).
func BenchmarkIngest(b *testing.B) {
	data := ctBytes(b)
	cases := []struct {
		senders int
		linger  time.Duration
		phi     bool
	}{{1, 0, false}, {4, 0, false}, {16, 0, false}, {4, 2 * time.Millisecond, false}, {4, 0, true}}
	for _, c := range cases {
		name := fmt.Sprintf("senders=%d/linger=%s", c.senders, c.linger)
		var sopts store.SQLiteOptions
		if c.phi {
			name = "phi/" + name
			p, err := keys.NewPHICipher(bytes.Repeat([]byte{7}, keys.KeySize))
			if err != nil {
				b.Fatal(err)
			}
			sopts.PHI = p
		}
		b.Run(name, func(b *testing.B) {
			e := newEnvWith(b, b.TempDir(), sopts, queue.Config{}, Config{BatchLinger: c.linger})
			e.g.uidHook = distinct("2.25.99")
			var commits atomic.Int64
			e.g.commitHook = func() error { commits.Add(1); return nil }
			ctx := context.Background()
			var next atomic.Int64
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for range c.senders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						out, err := e.g.Ingest(ctx, bytes.NewReader(data), dimse)
						if err != nil || !out.Created {
							b.Error(out, err)
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
