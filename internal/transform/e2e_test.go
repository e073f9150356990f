package transform_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/transform"
)

// JPEG in, probabilities out, the way radflow infer does it (config from
// models, preprocessing from transform, ORT from inference), against
// PyTorch's probabilities in testdata/parity/images.json. Tolerance 0.01
// absolute: the only difference left is Go's JPEG decoder (±1 grey level on
// some pixels, see TestImagePathParity); the predicted label must agree.
func TestJPEGToProbabilitiesEndToEnd(t *testing.T) {
	raw, err := os.ReadFile("testdata/parity/images.json")
	if err != nil {
		t.Skipf("testdata/parity/images.json not written yet: %v", err)
	}
	var doc struct {
		Images []struct {
			Path          string
			Probabilities []float64
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	repo, err := models.LoadDir("../../models")
	if err != nil {
		t.Fatal(err)
	}
	v, err := repo.Get("chest-xray-pneumonia", "1")
	if err != nil {
		t.Skipf("reference model absent: %v", err)
	}
	p, err := v.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	s, err := inference.Open(v.ModelPath(), inference.Options{OutputName: v.Config.Outputs[0].Name})
	if errors.Is(err, inference.ErrRuntimeUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var batch []float32
	var want [][]float64
	for _, im := range doc.Images {
		f, err := os.Open(filepath.Join("../..", filepath.FromSlash(im.Path)))
		if err != nil {
			continue
		}
		img, err := transform.DecodeImage(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, p.SampleLen())
		if err := p.FromImage(img, x); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, x...)
		want = append(want, im.Probabilities)
	}
	if len(want) == 0 {
		t.Skip("fixture images not under ../shared")
	}
	out, err := s.Run(context.Background(), batch, len(want))
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range out {
		for j := range out[i] {
			d := math.Abs(float64(out[i][j]) - want[i][j])
			worst = max(worst, d)
			if d > 0.01 {
				t.Errorf("image %d class %d: %v, PyTorch %v", i, j, out[i][j], want[i][j])
			}
		}
		if argmax(out[i]) != argmax(want[i]) {
			t.Errorf("image %d: label %d, PyTorch %d", i, argmax(out[i]), argmax(want[i]))
		}
	}
	t.Logf("%d images, largest probability difference from PyTorch %.2g", len(want), worst)
}

func argmax[T float32 | float64](v []T) int {
	k := 0
	for i := range v {
		if v[i] > v[k] {
			k = i
		}
	}
	return k
}
