package transform

import (
	"errors"
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/pixel"
)

// chestSteps is the preprocessing list of
// models/chest-xray-pneumonia/1/config.yaml as YAML decoding yields it.
func chestSteps() []map[string]any {
	return []map[string]any{
		{"op": "modality_lut"},
		{"op": "voi", "window": "instance", "fallback": "minmax"},
		{"op": "invert_monochrome1"},
		{"op": "grayscale", "method": "bt601"},
		{"op": "resize", "height": 224, "width": 224, "method": "bilinear_antialias"},
		{"op": "normalize", "mean": 0.5, "std": 0.25},
		{"op": "layout", "format": "NCHW"},
	}
}

func TestParseSteps(t *testing.T) {
	s, err := ParseSteps(chestSteps())
	if err != nil {
		t.Fatal(err)
	}
	if !s.ModalityLUT || !s.VOI || !s.InstanceWindow || s.Window != nil || !s.InvertMonochrome1 || !s.Grayscale ||
		s.Height != 224 || s.Width != 224 || len(s.Mean) != 1 || s.Mean[0] != 0.5 || s.Std[0] != 0.25 || s.Channels != 1 {
		t.Errorf("ParseSteps(chest) = %+v", s)
	}
	ct, err := ParseSteps([]map[string]any{
		{"op": "modality_lut"},
		{"op": "voi", "center": 40, "width": 400.0},
		{"op": "resize", "height": 256, "width": 128},
		{"op": "normalize", "mean": []any{0.485, 0.456, 0.406}, "std": []any{0.229, 0.224, 0.225}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Ignored) != 0 {
		t.Errorf("chest steps: ignored keys %v", s.Ignored)
	}
	fwd, err := ParseSteps([]map[string]any{{"op": "resize", "height": 2, "width": 2, "antialias": true, "note": "x"}})
	if err != nil || strings.Join(fwd.Ignored, ";") != "step 0 (resize): antialias;step 0 (resize): note" {
		t.Errorf("unknown keys: %v, Ignored %q", err, fwd.Ignored)
	}
	if ct.Window == nil || ct.Window.Center != 40 || ct.Window.Width != 400 || !ct.InstanceWindow || len(ct.Mean) != 3 || ct.Height != 256 || ct.Width != 128 {
		t.Errorf("ParseSteps(ct) = %+v window %+v", ct, ct.Window)
	}

	for name, tc := range map[string]struct {
		steps []map[string]any
		want  string
	}{
		"unknown op":        {[]map[string]any{{"op": "sharpen"}}, "unknown op"},
		"out of order":      {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "voi"}}, "out of order"},
		"repeated":          {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "resize", "height": 2, "width": 2}}, "repeated"},
		"typo key":          {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "normalize", "mean": 0.5, "sdt": 0.25}}, "std []"},
		"std zero":          {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "normalize", "mean": 0.5, "std": 0}}, "non-zero"},
		"no resize":         {[]map[string]any{{"op": "normalize", "mean": 0.5, "std": 0.25}}, "no resize"},
		"bad size":          {[]map[string]any{{"op": "resize", "height": 2.5, "width": 2}}, "height"},
		"huge size":         {[]map[string]any{{"op": "resize", "height": 1 << 20, "width": 2}}, "height"},
		"string number":     {[]map[string]any{{"op": "resize", "height": "224", "width": 224}}, "want a number"},
		"invert no voi":     {[]map[string]any{{"op": "invert_monochrome1"}, {"op": "resize", "height": 2, "width": 2}}, "needs voi"},
		"half window":       {[]map[string]any{{"op": "voi", "center": 40}, {"op": "resize", "height": 2, "width": 2}}, "together"},
		"config no window":  {[]map[string]any{{"op": "voi", "window": "config"}, {"op": "resize", "height": 2, "width": 2}}, "needs center"},
		"other layout":      {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "layout", "format": "NHWC"}}, "NCHW"},
		"mean/std mismatch": {[]map[string]any{{"op": "resize", "height": 2, "width": 2}, {"op": "normalize", "mean": []any{1, 2}, "std": 1}}, "same number"},
	} {
		_, err := ParseSteps(tc.steps)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", name, err, tc.want)
		}
	}
}

func newPipeline(t *testing.T, s Spec) *Pipeline {
	t.Helper()
	p, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromImageGray(t *testing.T) {
	// 2x2 grey image, identity resize, (v/255 - 0.5)/0.25.
	im := image.NewGray(image.Rect(0, 0, 2, 2))
	copy(im.Pix, []uint8{0, 255, 51, 102})
	p := newPipeline(t, Spec{Height: 2, Width: 2, Mean: []float32{0.5}, Std: []float32{0.25}})
	dst := make([]float32, p.SampleLen())
	if err := p.FromImage(im, dst); err != nil {
		t.Fatal(err)
	}
	near(t, "gray", dst, []float32{-2, 2, -1.2, -0.4}, 1e-6)

	// Sub-image: bounds not at the origin.
	big := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range big.Pix {
		big.Pix[i] = uint8(i * 10)
	}
	sub := big.SubImage(image.Rect(1, 1, 3, 3))
	if err := p.FromImage(sub, dst); err != nil {
		t.Fatal(err)
	}
	// pixels 5,6,9,10 -> 50,60,90,100
	near(t, "subimage", dst, []float32{(50.0/255 - 0.5) / 0.25, (60.0/255 - 0.5) / 0.25, (90.0/255 - 0.5) / 0.25, (100.0/255 - 0.5) / 0.25}, 1e-6)
}

func TestFromImageColour(t *testing.T) {
	// NRGBA with alpha 0: Pillow's convert("L") ignores alpha, so pure red
	// is still L = 76.
	im := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	im.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 0})
	im.SetNRGBA(1, 0, color.NRGBA{10, 200, 30, 255})
	p := newPipeline(t, Spec{Height: 1, Width: 2})
	dst := make([]float32, 2)
	if err := p.FromImage(im, dst); err != nil {
		t.Fatal(err)
	}
	near(t, "luma", dst, []float32{76.0 / 255, 124.0 / 255}, 1e-7)

	// 3-channel model with grayscale: luma replicated.
	p3 := newPipeline(t, Spec{Height: 1, Width: 2, Channels: 3, Grayscale: true})
	d3 := make([]float32, 6)
	if err := p3.FromImage(im, d3); err != nil {
		t.Fatal(err)
	}
	near(t, "replicated", d3, []float32{76.0 / 255, 124.0 / 255, 76.0 / 255, 124.0 / 255, 76.0 / 255, 124.0 / 255}, 1e-7)

	// 3-channel model without grayscale: R, G, B planes, per-channel normalize.
	prgb := newPipeline(t, Spec{Height: 1, Width: 2, Channels: 3, Mean: []float32{0, 0, 1}, Std: []float32{1, 1, 2}})
	if err := prgb.FromImage(im, d3); err != nil {
		t.Fatal(err)
	}
	near(t, "rgb planes", d3, []float32{1, 10.0 / 255, 0, 200.0 / 255, (0 - 1) / 2.0, (30.0/255 - 1) / 2}, 1e-6)
}

func TestDestinationAndInputErrors(t *testing.T) {
	p := newPipeline(t, Spec{Height: 4, Width: 4})
	im := image.NewGray(image.Rect(0, 0, 2, 2))
	if err := p.FromImage(im, make([]float32, 15)); !errors.Is(err, ErrShape) {
		t.Errorf("short dst: %v, want ErrShape", err)
	}
	if err := p.FromImage(image.NewGray(image.Rect(0, 0, 0, 0)), make([]float32, 16)); !errors.Is(err, ErrInput) {
		t.Errorf("empty image: %v, want ErrInput", err)
	}
	if err := p.FromImage(nil, make([]float32, 16)); !errors.Is(err, ErrInput) {
		t.Errorf("nil image: %v, want ErrInput", err)
	}
	if _, err := DecodeImage(strings.NewReader("GIF89a not an image we take")); !errors.Is(err, ErrInput) {
		t.Errorf("DecodeImage(garbage): %v, want ErrInput", err)
	}
	dst := make([]float32, 16)
	img := &pixel.Image{OutputPhotometric: "MONOCHROME2", Frames: []pixel.Frame{{Rows: 2, Columns: 2, SamplesPerPixel: 1, U8: []uint8{1, 2, 3}}}}
	for name, err := range map[string]error{
		"nil image":    p.FromDICOM(nil, 0, pixel.ModalityLUT{Slope: 1}, nil, dst),
		"frame range":  p.FromDICOM(img, 1, pixel.ModalityLUT{Slope: 1}, nil, dst),
		"short frame":  p.FromDICOM(img, 0, pixel.ModalityLUT{Slope: 1}, nil, dst),
		"nil instance": p.FromInstance(nil, img, 0, dst),
		"ybr not converted": p.FromDICOM(&pixel.Image{OutputPhotometric: "YBR_FULL_422", Frames: []pixel.Frame{{Rows: 1, Columns: 1, SamplesPerPixel: 3, U8: []uint8{1, 2, 3}}}},
			0, pixel.ModalityLUT{Slope: 1}, nil, dst),
	} {
		if !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v, want ErrInput", name, err)
		}
	}
	if _, err := New(Spec{Height: 2, Width: 2, Channels: 2}); !errors.Is(err, ErrConfig) {
		t.Errorf("2 channels: %v, want ErrConfig", err)
	}
}
