package inference

import (
	"context"
	"fmt"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkInfer runs the reference model at batch 1, 8 and 32 (one
// intra-op thread, the default) and reports images/s.
func BenchmarkInfer(b *testing.B) {
	s := openRef(b, Options{})
	per := s.SampleLen()
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			x := refInput(1, n*per)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Run(ctx, x, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkGoOverhead compares Session.Run with a raw onnxruntime_go Run on
// pre-allocated tensors (same model, same session options), alternating the
// two every iteration so machine load hits both alike. It reports each
// one's time per batch of 8 and overhead-% = (wrapper - raw) / raw * 100.
// Uses the reference model when present, else the tiny test model (where
// ORT's own time is microseconds and the percentage is not meaningful).
func BenchmarkGoOverhead(b *testing.B) {
	needRuntime(b)
	path := refModel
	s, err := Open(path, Options{})
	if err != nil {
		path = tinyModel
		s, err = Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
	}
	defer s.Close()
	const n = 8
	in, out := s.Input(), s.Output()
	x := refInput(2, n*s.SampleLen())
	inShape := append(ort.Shape{n}, in.Shape[1:]...)
	outShape := append(ort.Shape{n}, out.Shape[1:]...)
	inT, err := ort.NewTensor(inShape, x)
	if err != nil {
		b.Fatal(err)
	}
	defer inT.Destroy()
	outT, err := ort.NewEmptyTensor[float32](outShape)
	if err != nil {
		b.Fatal(err)
	}
	defer outT.Destroy()
	so, err := sessionOptions(Options{})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := ort.NewDynamicAdvancedSession(path, []string{in.Name}, []string{out.Name}, so)
	so.Destroy()
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Destroy()
	ctx := context.Background()
	var rawT, wrapT time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := raw.Run([]ort.Value{inT}, []ort.Value{outT}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Run(ctx, x, n); err != nil {
			b.Fatal(err)
		}
		wrapT += time.Since(t1)
		rawT += t1.Sub(t0)
	}
	b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/batch")
	b.ReportMetric(float64(wrapT.Nanoseconds())/float64(b.N), "wrapper-ns/batch")
	b.ReportMetric(100*(float64(wrapT)-float64(rawT))/float64(rawT), "overhead-%")
	b.Logf("model %s", path)
}
