package transform

import (
	"testing"

	"github.com/radflow/radflow/internal/pixel"
)

// needPixelLUTs skips while package pixel's modality LUT / VOI window are
// still stubs (they are another package's work in progress).
func needPixelLUTs(t testing.TB) {
	t.Helper()
	f := pixel.Frame{Rows: 1, Columns: 1, SamplesPerPixel: 1, U16: []uint16{3}}
	v := pixel.ModalityLUT{Slope: 2, Intercept: 1}.Apply(&f, 0, nil)
	w := []float32{1000}
	pixel.VOIWindow{Center: 0, Width: 10}.Apply(w)
	if len(v) != 1 || v[0] != 7 || w[0] != 1 {
		t.Skip("pixel.ModalityLUT.Apply / pixel.VOIWindow.Apply not implemented yet")
	}
}

// mono is a 2x2 frame with stored values 0, 100, 200, 300; with slope 2 and
// intercept -100 its modality values are -100, 100, 300, 500.
func mono(photometric string) *pixel.Image {
	return &pixel.Image{
		Info:              pixel.Info{Photometric: photometric, Rows: 2, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 12},
		OutputPhotometric: photometric,
		Frames:            []pixel.Frame{{Rows: 2, Columns: 2, SamplesPerPixel: 1, U16: []uint16{0, 100, 200, 300}}},
	}
}

var rescale = pixel.ModalityLUT{Slope: 2, Intercept: -100}

// LINEAR window centre 200, width 401 (PS3.3 C.11.2.1.2.1): -100 -> 0,
// 100 -> (100-199.5)/400+0.5 = 0.25125, 300 -> 0.75125, 500 -> 1.
var window = pixel.VOIWindow{Center: 200, Width: 401}
var windowed = []float32{0, 0.25125, 0.75125, 1}

func TestFromDICOMMonochrome(t *testing.T) {
	needPixelLUTs(t)
	full := Spec{ModalityLUT: true, VOI: true, InstanceWindow: true, InvertMonochrome1: true, Height: 2, Width: 2}
	cfgWin := full
	cfgWin.Window = &window
	configOnly := cfgWin
	configOnly.InstanceWindow = false
	noLUT := full
	noLUT.ModalityLUT = false
	for _, tc := range []struct {
		name        string
		spec        Spec
		photometric string
		windows     []pixel.VOIWindow
		want        []float32
	}{
		{"min-max fallback", full, "MONOCHROME2", nil, []float32{0, 1.0 / 3, 2.0 / 3, 1}},
		{"instance window", full, "MONOCHROME2", []pixel.VOIWindow{window, {Center: 0, Width: 2}}, windowed},
		{"config window when the instance has none", cfgWin, "MONOCHROME2", nil, windowed},
		{"instance window beats config", cfgWin, "MONOCHROME2", []pixel.VOIWindow{{Center: 0, Width: 2}}, []float32{0, 1, 1, 1}},
		{"window: config ignores the instance", configOnly, "MONOCHROME2", []pixel.VOIWindow{{Center: 0, Width: 2}}, windowed},
		{"MONOCHROME1 inverted", full, "MONOCHROME1", nil, []float32{1, 2.0 / 3, 1.0 / 3, 0}},
		{"MONOCHROME1 windowed and inverted", full, "MONOCHROME1", []pixel.VOIWindow{window}, []float32{1, 0.74875, 0.24875, 0}},
		// Without the modality LUT the window sees stored values 0..300.
		{"stored values", noLUT, "MONOCHROME2", []pixel.VOIWindow{window}, []float32{0.00125, 0.25125, 0.50125, 0.75125}},
	} {
		p := newPipeline(t, tc.spec)
		dst := make([]float32, 4)
		if err := p.FromDICOM(mono(tc.photometric), 0, rescale, tc.windows, dst); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		near(t, tc.name, dst, tc.want, 1e-6)
	}
	// No invert step: MONOCHROME1 stays as is.
	keep := full
	keep.InvertMonochrome1 = false
	dst := make([]float32, 4)
	if err := newPipeline(t, keep).FromDICOM(mono("MONOCHROME1"), 0, rescale, nil, dst); err != nil {
		t.Fatal(err)
	}
	near(t, "no invert step", dst, []float32{0, 1.0 / 3, 2.0 / 3, 1}, 1e-6)
}

func TestFromDICOMResizeNormalizeChannels(t *testing.T) {
	needPixelLUTs(t)
	// 2x2 -> 1x1: shrink by 2 on both axes; the 2-tap triangle weights are
	// equal, so the output is the mean of the min-max values, 0.5; then
	// (0.5 - 0.25) / 0.5 = 0.5, replicated into 3 channels.
	p := newPipeline(t, Spec{ModalityLUT: true, VOI: true, Height: 1, Width: 1, Channels: 3, Mean: []float32{0.25}, Std: []float32{0.5}})
	dst := make([]float32, 3)
	if err := p.FromDICOM(mono("MONOCHROME2"), 0, rescale, nil, dst); err != nil {
		t.Fatal(err)
	}
	near(t, "1x1x3", dst, []float32{0.5, 0.5, 0.5}, 1e-6)
}

func TestFromDICOMColour(t *testing.T) {
	rgb := &pixel.Image{
		Info:              pixel.Info{Photometric: "YBR_FULL_422", Rows: 1, Columns: 2, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8},
		OutputPhotometric: "RGB",
		Frames:            []pixel.Frame{{Rows: 1, Columns: 2, SamplesPerPixel: 3, U8: []uint8{255, 0, 0, 10, 200, 30}}},
	}
	// The DICOM-only steps do not apply to colour; luma of R,G,B / 255.
	p := newPipeline(t, Spec{ModalityLUT: true, VOI: true, InvertMonochrome1: true, Height: 1, Width: 2})
	dst := make([]float32, 2)
	if err := p.FromDICOM(rgb, 0, rescale, []pixel.VOIWindow{window}, dst); err != nil {
		t.Fatal(err)
	}
	near(t, "luma", dst, []float32{0.299, (10*0.299 + 200*0.587 + 30*0.114) / 255}, 1e-6)

	// 16-bit RGB with 12 bits stored: / 4095; 3 planes for a 3-channel model.
	rgb16 := &pixel.Image{
		Info:              pixel.Info{Photometric: "RGB", Rows: 1, Columns: 1, SamplesPerPixel: 3, BitsAllocated: 16, BitsStored: 12},
		OutputPhotometric: "RGB",
		Frames:            []pixel.Frame{{Rows: 1, Columns: 1, SamplesPerPixel: 3, U16: []uint16{4095, 0, 819}}},
	}
	p3 := newPipeline(t, Spec{Height: 1, Width: 1, Channels: 3})
	d3 := make([]float32, 3)
	if err := p3.FromDICOM(rgb16, 0, pixel.ModalityLUT{Slope: 1}, nil, d3); err != nil {
		t.Fatal(err)
	}
	near(t, "rgb16 planes", d3, []float32{1, 0, 0.2}, 1e-6)
}
