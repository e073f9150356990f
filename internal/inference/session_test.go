package inference

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const tinyModel = "testdata/tiny.onnx" // [N,1,8,8] -> softmax [N,3]; see testdata/make_tiny.py

// needRuntime skips the test when no ORT library is installed.
func needRuntime(tb testing.TB) {
	tb.Helper()
	if _, err := InitRuntime(""); err != nil {
		if errors.Is(err, ErrRuntimeUnavailable) {
			tb.Skipf("ONNX Runtime not installed (run scripts/fetch-ort.sh): %v", err)
		}
		tb.Fatal(err)
	}
}

func openTiny(tb testing.TB) *Session {
	tb.Helper()
	needRuntime(tb)
	s, err := Open(tinyModel, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// formula fills n samples of per values: x[k] = sin(0.37*k) + 0.01*k over
// the flat NCHW index k, the input make_tiny.py fed PyTorch.
func formula(n, per int) []float32 {
	x := make([]float32, n*per)
	for k := range x {
		x[k] = float32(math.Sin(0.37*float64(k)) + 0.01*float64(k))
	}
	return x
}

func TestResolveLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RADFLOW_CACHE", filepath.Join(dir, "cache"))
	t.Setenv(EnvLibrary, "")
	if got, want := DefaultLibraryPath(), filepath.Join(dir, "cache", "onnxruntime-1.30.0", "libonnxruntime.so.1"); got != want {
		t.Errorf("DefaultLibraryPath = %q, want %q", got, want)
	}
	// Default path absent: error names it and the fetch script.
	_, err := ResolveLibrary("")
	if !errors.Is(err, ErrRuntimeUnavailable) || !strings.Contains(err.Error(), "fetch-ort.sh") || !strings.Contains(err.Error(), DefaultLibraryPath()) {
		t.Errorf("ResolveLibrary(\"\") with nothing installed = %v", err)
	}
	// Environment beats the default.
	t.Setenv(EnvLibrary, lib)
	if got, err := ResolveLibrary(""); err != nil || got != lib {
		t.Errorf("ResolveLibrary with $%s = %q, %v; want %q", EnvLibrary, got, err, lib)
	}
	// Explicit beats the environment, and a missing explicit path does not
	// fall through.
	if _, err := ResolveLibrary(filepath.Join(dir, "nope.so")); !errors.Is(err, ErrRuntimeUnavailable) {
		t.Errorf("missing explicit path: %v, want ErrRuntimeUnavailable", err)
	}
	// Relative paths become absolute.
	t.Chdir(dir)
	if got, err := ResolveLibrary("libonnxruntime.so.1"); err != nil || got != lib {
		t.Errorf("relative explicit path = %q, %v; want %q", got, err, lib)
	}
}

func TestTinyParityWithPyTorch(t *testing.T) {
	s := openTiny(t)
	raw, err := os.ReadFile("testdata/tiny_expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Shape []int
		Probs [][]float64
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if got := s.Input(); got.Name != "input" || len(got.Shape) != 4 || got.Shape[0] != -1 || got.Shape[3] != 8 {
		t.Errorf("Input() = %+v, want input [-1 1 8 8]", got)
	}
	if s.SampleLen() != 64 {
		t.Errorf("SampleLen = %d, want 64", s.SampleLen())
	}
	n := want.Shape[0]
	out, err := s.Run(context.Background(), formula(n, 64), n)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != n {
		t.Fatalf("got %d rows, want %d", len(out), n)
	}
	for i := range out {
		if len(out[i]) != 3 {
			t.Fatalf("row %d has %d values, want 3", i, len(out[i]))
		}
		for j, v := range out[i] {
			if d := math.Abs(float64(v) - want.Probs[i][j]); d > 1e-5 {
				t.Errorf("probs[%d][%d] = %.7f, PyTorch %.7f (|d| %.2g > 1e-5)", i, j, v, want.Probs[i][j], d)
			}
		}
	}
}

// Batching must not change any sample's output: each of n = 8 and 32
// samples is compared with the same sample run alone.
func TestBatchingMatchesSingle(t *testing.T) {
	s := openTiny(t)
	ctx := context.Background()
	all := formula(32, 64)
	single := make([][]float32, 32)
	for i := range single {
		out, err := s.Run(ctx, all[i*64:(i+1)*64], 1)
		if err != nil {
			t.Fatal(err)
		}
		single[i] = out[0]
	}
	if single[0][0] == single[31][0] {
		t.Fatalf("samples 0 and 31 gave the same output %v; the test input is not discriminating", single[0])
	}
	for _, n := range []int{1, 8, 32} {
		out, err := s.Run(ctx, all[:n*64], n)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := range out {
			for j := range out[i] {
				if d := math.Abs(float64(out[i][j] - single[i][j])); d > 1e-6 {
					t.Errorf("n=%d sample %d class %d: %v batched vs %v alone", n, i, j, out[i][j], single[i][j])
				}
			}
		}
	}
}

func TestShapeMismatch(t *testing.T) {
	s := openTiny(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		l, n int
	}{
		{"n=0", 0, 0},
		{"n<0", 64, -1},
		{"short", 63, 1},
		{"long", 65, 1},
		{"n disagrees with len", 128, 1},
		{"3 channels for a 1 channel model", 3 * 64, 1},
	} {
		_, err := s.Run(ctx, make([]float32, tc.l), tc.n)
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s: Run(len %d, n %d) = %v, want ErrShape", tc.name, tc.l, tc.n, err)
		}
	}
}

func TestModelLoadFailures(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	good, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	// Half a valid file, then garbage.
	bad := append(append([]byte(nil), good[:len(good)/2]...), []byte("not protobuf \xff\xff\xff")...)
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() (*Session, error){
		"missing":       func() (*Session, error) { return Open(filepath.Join(dir, "missing.onnx"), Options{}) },
		"directory":     func() (*Session, error) { return Open(dir, Options{}) },
		"corrupt":       func() (*Session, error) { return Open(corrupt, Options{}) },
		"corrupt bytes": func() (*Session, error) { return OpenBytes("corrupt", bad, Options{}) },
		"empty bytes":   func() (*Session, error) { return OpenBytes("empty", nil, Options{}) },
		"no such output": func() (*Session, error) {
			return Open(tinyModel, Options{OutputName: "logits"})
		},
	} {
		s, err := open()
		if !errors.Is(err, ErrModelLoad) || s != nil {
			t.Errorf("%s: got %v, %v; want nil, ErrModelLoad", name, s, err)
		}
	}
}

func TestOpenBytes(t *testing.T) {
	needRuntime(t)
	b, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenBytes("tiny", b, Options{IntraOpThreads: 2, OutputName: "probs"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(context.Background(), formula(1, 64), 1)
	if err != nil {
		t.Fatal(err)
	}
	// Same numbers as tiny_expected.json sample 0.
	if math.Abs(float64(out[0][0])-0.50379419) > 1e-5 {
		t.Errorf("probs[0][0] = %v, want 0.50379419", out[0][0])
	}
}

func TestProviders(t *testing.T) {
	needRuntime(t)
	if _, err := Open(tinyModel, Options{Provider: "tpu"}); !errors.Is(err, ErrProviderUnavailable) {
		t.Errorf("unknown provider: %v, want ErrProviderUnavailable", err)
	}
	// The CPU-only library from fetch-ort.sh has no CUDA; a CUDA-enabled one
	// must give a working session.
	s, err := Open(tinyModel, Options{Provider: ProviderCUDA})
	switch {
	case err == nil:
		defer s.Close()
		if _, err := s.Run(context.Background(), formula(1, 64), 1); err != nil {
			t.Errorf("cuda session run: %v", err)
		}
	case !errors.Is(err, ErrProviderUnavailable):
		t.Errorf("cuda on this library: %v, want success or ErrProviderUnavailable", err)
	}
}

func TestConcurrentRun(t *testing.T) {
	s := openTiny(t)
	want, err := s.Run(context.Background(), formula(8, 64), 8)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				got, err := s.Run(context.Background(), formula(8, 64), 8)
				if err != nil {
					errs <- err
					return
				}
				for i := range got {
					for j := range got[i] {
						if got[i][j] != want[i][j] {
							errs <- errors.New("concurrent run gave different outputs")
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCancelAndClose(t *testing.T) {
	s := openTiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := s.Run(ctx, formula(1, 64), 1); err != nil {
		t.Fatalf("run with live cancellable ctx: %v", err)
	}
	cancel()
	if _, err := s.Run(ctx, formula(1, 64), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Run(context.Background(), formula(1, 64), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("run after close: %v, want ErrClosed", err)
	}
}
