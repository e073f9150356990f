package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/store"
)

// benchService starts a service for benchmarks: no free-disk watermark,
// no queue limit.
func benchService(b *testing.B, repo *models.Repository, workers int) *Service {
	b.Helper()
	if repo == nil {
		var err error
		if repo, err = models.Load(fstest.MapFS{}); err != nil {
			b.Fatal(err)
		}
	}
	return startService(b, b.TempDir(), repo, func(c *Config) { c.Workers = workers })
}

// uidPatcher writes copies of a file with its SOP Instance UID replaced by
// uidWith(old, i) (same length, so every element length stays valid).
type uidPatcher struct {
	src  []byte
	old  string
	offs []int
}

func newPatcher(b *testing.B, src []byte, old string) *uidPatcher {
	p := &uidPatcher{src: src, old: old}
	for i := 0; ; {
		j := bytes.Index(src[i:], []byte(old))
		if j < 0 {
			break
		}
		p.offs = append(p.offs, i+j)
		i += j + len(old)
	}
	if len(p.offs) == 0 {
		b.Fatalf("UID %s not in the file", old)
	}
	return p
}

// into copies the source into dst (reused) with UID number i.
func (p *uidPatcher) into(dst []byte, i int) []byte {
	dst = append(dst[:0], p.src...)
	u := uidWith(p.old, i)
	for _, o := range p.offs {
		copy(dst[o:], u)
	}
	return dst
}

// ctSource returns the CT's file meta and a patcher of its data set.
func ctSource(b *testing.B) (dimse.FileMeta, *uidPatcher, []byte) {
	b.Helper()
	ct := readShared(b, ctName)
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(ct))
	if err != nil {
		b.Fatal(err)
	}
	return meta, newPatcher(b, ct[off:], ctSOP), ct
}

// BenchmarkCStore sends distinct 0.5 MB CT instances over 1 and 4
// associations through the whole service; each C-STORE-RSP comes after the
// instance is durable (blob fsynced, row committed).
func BenchmarkCStore(b *testing.B) {
	for _, assocs := range []int{1, 4} {
		b.Run(fmt.Sprintf("assocs=%d", assocs), func(b *testing.B) {
			s := benchService(b, nil, 0)
			meta, pt, _ := ctSource(b)
			ctx := context.Background()
			b.SetBytes(int64(len(pt.src)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for a := range assocs {
				wg.Go(func() {
					cl, err := dimse.Dial(ctx, s.DICOMAddr(), dimse.ClientConfig{CalledAETitle: "RADFLOW"},
						[]dimse.PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}})
					if err != nil {
						b.Error(err)
						return
					}
					defer cl.Release(ctx)
					var ds []byte
					for i := a; i < b.N; i += assocs {
						ds = pt.into(ds, i)
						st, err := cl.Store(ctx, meta.MediaStorageSOPClassUID, uidWith(ctSOP, i), meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds)))
						if err != nil || st != 0 {
							b.Errorf("C-STORE %d: status %#04x, %v", i, st, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
		})
	}
}

// BenchmarkSTOW sends the same distinct CT instances with STOW-RS, 10 per
// request, over 1 and 4 connections.
func BenchmarkSTOW(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			s := benchService(b, nil, 0)
			_, _, ct := ctSource(b)
			pt := newPatcher(b, ct, ctSOP) // file meta and data set
			ctx := context.Background()
			b.SetBytes(int64(len(ct)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range conns {
				wg.Go(func() {
					cl := webClient(s)
					bufs := make([][]byte, 10)
					for start := c * 10; start < b.N; start += conns * 10 {
						var rs []io.Reader
						for k := range min(10, b.N-start) {
							bufs[k] = pt.into(bufs[k], start+k)
							rs = append(rs, bytes.NewReader(bufs[k]))
						}
						resp, err := cl.Store(ctx, "", rs...)
						if err != nil || resp.HTTPStatus != 200 || len(resp.Referenced) != len(rs) {
							b.Errorf("STOW: %+v %v", resp, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
		})
	}
}

// BenchmarkAckToResult sends distinct chest radiographs by C-STORE at
// 100 per minute (the rate) and at about 10 per second, and
// measures, per instance, the time from the C-STORE acknowledgement to its
// result being stored (p50, p99).
func BenchmarkAckToResult(b *testing.B) {
	for _, r := range []struct {
		name  string
		every time.Duration
	}{{"rate=100per_min", 600 * time.Millisecond}, {"rate=10per_s", 100 * time.Millisecond}} {
		b.Run(r.name, func(b *testing.B) { benchAckToResult(b, r.every) })
	}
}

func benchAckToResult(b *testing.B, every time.Duration) {
	repo := testRepo(b)
	s := benchService(b, repo, 2)
	raw := readShared(b, chestName)
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cl, err := dimse.Dial(ctx, s.DICOMAddr(), dimse.ClientConfig{CalledAETitle: "RADFLOW"},
		[]dimse.PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Release(ctx)
	acks := make([]time.Time, b.N)
	b.ResetTimer()
	tick := time.NewTicker(every)
	defer tick.Stop()
	pt := newPatcher(b, raw[off:], chestSOP)
	var ds []byte
	for i := range b.N {
		ds = pt.into(ds, i)
		st, err := cl.Store(ctx, meta.MediaStorageSOPClassUID, uidWith(chestSOP, i), meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds)))
		if err != nil || st != 0 {
			b.Fatalf("C-STORE: %#04x %v", st, err)
		}
		acks[i] = time.Now()
		<-tick.C
	}
	lat := make([]time.Duration, b.N)
	for i := range b.N {
		k := store.ResultKey{SOPInstanceUID: uidWith(chestSOP, i), Model: "chest-xray-pneumonia", Version: "1"}
		for {
			r, err := s.Store().GetResult(ctx, k)
			if err != nil {
				b.Fatal(err)
			}
			if r.Status == store.StatusDone {
				lat[i] = r.UpdatedAt.Sub(acks[i])
				break
			}
			if r.Status == store.StatusFailed {
				b.Fatalf("result failed: %s", r.Error)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
