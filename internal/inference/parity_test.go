package inference

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// refModel is the reference model written by tools/train (make train).
var refModel = filepath.Join("..", "..", "models", "chest-xray-pneumonia", "1", "model.onnx")

func openRef(tb testing.TB, opts Options) *Session {
	tb.Helper()
	needRuntime(tb)
	if _, err := os.Stat(refModel); err != nil {
		tb.Skipf("reference model %s not present (make train): %v", refModel, err)
	}
	s, err := Open(refModel, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// refInput is tools/train/fixtures.py's formula_tensor(k):
// x[i] = float32(sin(0.001 * i * (k+1))), evaluated left to right in float64.
func refInput(k, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.Sin(0.001 * float64(i) * float64(k+1)))
	}
	return x
}

// Parity with PyTorch: testdata/parity/tensors.json holds the probabilities
// PyTorch computed for formula-defined inputs; ORT must agree within the
// file's tolerance (1e-4), for each case alone and for all cases in one
// batch.
func TestReferenceModelParityWithPyTorch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "parity", "tensors.json"))
	if err != nil {
		t.Skipf("testdata/parity/tensors.json not written yet (tools/train/fixtures.py): %v", err)
	}
	var fx struct {
		InputName, OutputName string `json:"-"`
		Input                 string `json:"input_name"`
		Output                string `json:"output_name"`
		Shape                 []int
		Tolerance             float64
		Cases                 []struct {
			K             int
			InputSum      float64 `json:"input_sum"`
			Probabilities []float64
		}
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Cases) == 0 || fx.Tolerance <= 0 || fx.Tolerance > 1e-3 {
		t.Fatalf("fixture: %d cases, tolerance %v", len(fx.Cases), fx.Tolerance)
	}
	s := openRef(t, Options{OutputName: fx.Output})
	if in := s.Input(); in.Name != fx.Input {
		t.Errorf("input %q, fixture says %q", in.Name, fx.Input)
	}
	per := s.SampleLen()
	if want := fx.Shape[1] * fx.Shape[2] * fx.Shape[3]; per != want {
		t.Fatalf("SampleLen %d, fixture shape %v", per, fx.Shape)
	}
	batch := make([]float32, 0, len(fx.Cases)*per)
	for _, c := range fx.Cases {
		x := refInput(c.K, per)
		sum := 0.0
		for _, v := range x {
			sum += float64(v)
		}
		if math.Abs(sum-c.InputSum) > 1e-6*max(1, math.Abs(c.InputSum)) {
			t.Fatalf("case k=%d: input sum %v, PyTorch's %v: the formula differs", c.K, sum, c.InputSum)
		}
		batch = append(batch, x...)
	}
	single := make([][]float32, len(fx.Cases))
	for i, c := range fx.Cases {
		out, err := s.Run(context.Background(), batch[i*per:(i+1)*per], 1)
		if err != nil {
			t.Fatal(err)
		}
		single[i] = out[0]
		for j, want := range c.Probabilities {
			if d := math.Abs(float64(out[0][j]) - want); d > fx.Tolerance {
				t.Errorf("k=%d class %d: ORT %.7f, PyTorch %.7f (|d| %.2g > %g)", c.K, j, out[0][j], want, d, fx.Tolerance)
			}
		}
		t.Logf("k=%d: ORT %v, PyTorch %v", c.K, out[0], c.Probabilities)
	}
	out, err := s.Run(context.Background(), batch, len(fx.Cases))
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		for j := range out[i] {
			if d := math.Abs(float64(out[i][j] - single[i][j])); d > 1e-6 {
				t.Errorf("batched case %d class %d: %v, alone %v", i, j, out[i][j], single[i][j])
			}
		}
	}
}

// Batching on the real model: n = 1, 8, 32 give each sample's n = 1 output.
func TestReferenceModelBatching(t *testing.T) {
	s := openRef(t, Options{})
	per := s.SampleLen()
	all := make([]float32, 0, 32*per)
	for k := 0; k < 32; k++ {
		all = append(all, refInput(k, per)...)
	}
	ctx := context.Background()
	single := make([][]float32, 32)
	for i := range single {
		out, err := s.Run(ctx, all[i*per:(i+1)*per], 1)
		if err != nil {
			t.Fatal(err)
		}
		single[i] = out[0]
	}
	for _, n := range []int{8, 32} {
		out, err := s.Run(ctx, all[:n*per], n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range out {
			for j := range out[i] {
				if d := math.Abs(float64(out[i][j] - single[i][j])); d > 1e-5 {
					t.Errorf("n=%d sample %d class %d: %v batched, %v alone", n, i, j, out[i][j], single[i][j])
				}
			}
		}
	}
}
