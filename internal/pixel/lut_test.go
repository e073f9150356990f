package pixel

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
	dt "github.com/radflow/radflow/internal/dicom/dicomtest"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-5 }

func TestModalityLUTRescale(t *testing.T) {
	in := build(t, tsELE, dt.Encoding{}, append(image(1, 3, 1, 16, 16, 15, 1, "MONOCHROME2",
		dt.S(0x0028, 0x1052, "DS", "-10.25"), dt.S(0x0028, 0x1053, "DS", "0.5")),
		pixelsOW(le16s(0, 100, 0xFFFF)))...)
	m := ModalityLUTOf(in)
	if m.Slope != 0.5 || m.Intercept != -10.25 || m.LUT != nil {
		t.Fatalf("ModalityLUTOf = %+v", m)
	}
	img := decodeOK(t, in)
	got := m.Apply(&img.Frames[0], 0, nil)
	if want := []float32{-10.25, 39.75, -10.75}; !slices.Equal(got, want) {
		t.Errorf("Apply = %v, want %v", got, want)
	}
	// Absent attributes: identity.
	if m := ModalityLUTOf(build(t, tsELE, dt.Encoding{}, dt.S(0x0008, 0x0060, "CS", "OT"))); m.Slope != 1 || m.Intercept != 0 {
		t.Errorf("identity = %+v", m)
	}
}

func TestModalityLUTSequence(t *testing.T) {
	p := filepath.Join(sharedDir, "pydicom-data/mlut_18.dcm")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared file missing: %v", err)
	}
	in, err := dicom.ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m := ModalityLUTOf(in)
	// LUT Descriptor 4096\-2048\16, LUT Data 0\16\32\...
	if len(m.LUT) != 4096 || m.FirstInput != -2048 || m.LUT[1] != 16 {
		t.Fatalf("LUT len %d first %d [1]=%v", len(m.LUT), m.FirstInput, m.LUT[:2])
	}
	f := Frame{Rows: 1, Columns: 4, SamplesPerPixel: 1, I16: []int16{-2048, -2047, -5000, 2047}}
	got := m.Apply(&f, 0, nil)
	if want := []float32{0, 16, 0, float32(m.LUT[4095])}; !slices.Equal(got, want) {
		t.Errorf("Apply = %v, want %v", got, want)
	}
}

func TestVOIWindowFunctions(t *testing.T) {
	cases := []struct {
		w    VOIWindow
		in   []float32
		want []float64
	}{
		// LINEAR c=40 w=400: bounds c-0.5∓(w-1)/2 = -160, 239.
		{VOIWindow{40, 400, "LINEAR"}, []float32{-1000, -160, 39.5, 139.25, 239, 239.5}, []float64{0, 0, 0.5, 0.75, 1, 1}},
		{VOIWindow{0, 100, "LINEAR_EXACT"}, []float32{-50, 0, 25, 50, 51}, []float64{0, 0.5, 0.75, 1, 1}},
		{VOIWindow{0, 100, "SIGMOID"}, []float32{0, 25}, []float64{0.5, 1 / (1 + math.Exp(-1))}},
	}
	for _, c := range cases {
		v := slices.Clone(c.in)
		c.w.Apply(v)
		for i := range v {
			if !near(float64(v[i]), c.want[i]) {
				t.Errorf("%s %v: f(%v) = %v, want %v", c.w.Function, c.w, c.in[i], v[i], c.want[i])
			}
		}
	}
}

func TestVOIWindowsOfAndMonochrome1(t *testing.T) {
	in := build(t, tsELE, dt.Encoding{}, append(image(1, 2, 1, 16, 12, 11, 0, "MONOCHROME1",
		dt.S(0x0028, 0x1050, "DS", `1000\450`), dt.S(0x0028, 0x1051, "DS", `350\0`)),
		pixelsOW(le16s(0, 4095)))...)
	ws := VOIWindowsOf(in)
	if len(ws) != 1 || ws[0] != (VOIWindow{1000, 350, "LINEAR"}) {
		t.Fatalf("windows = %+v (zero width must be dropped)", ws)
	}
	// MONOCHROME1 for AI: modality LUT, window, then invert so bright = dense.
	img := decodeOK(t, in)
	v := ModalityLUTOf(in).Apply(&img.Frames[0], 0, nil)
	ws[0].Apply(v)
	InvertMonochrome1(v)
	if v[0] != 1 || v[1] != 0 {
		t.Errorf("MONOCHROME1 pipeline = %v, want [1 0]", v)
	}
}

func TestVOILUTSequence(t *testing.T) {
	item := []dt.Elem{dt.US(0x0028, 0x3002, 4, 0, 8), dt.Bytes(0x0028, 0x3006, "OW", le16s(0, 85, 170, 255))}
	in := build(t, tsELE, dt.Encoding{}, dt.Elem{Group: 0x0028, Element: 0x3010, VR: "SQ", Items: [][]dt.Elem{item}})
	luts := VOILUTsOf(in)
	if len(luts) != 1 || luts[0].Bits != 8 {
		t.Fatalf("VOI LUTs = %+v", luts)
	}
	v := []float32{-3, 1, 2, 99}
	luts[0].Apply(v)
	if want := []float64{0, 1.0 / 3, 2.0 / 3, 1}; !near(float64(v[0]), want[0]) || !near(float64(v[1]), want[1]) || !near(float64(v[2]), want[2]) || !near(float64(v[3]), want[3]) {
		t.Errorf("VOI LUT = %v, want %v", v, want)
	}
}

func TestCTHounsfield(t *testing.T) {
	p := filepath.Join(sharedDir, "known-hard/B03_bad_sequence.dcm")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared file missing: %v", err)
	}
	in, _ := dicom.ParseFile(p)
	img := decodeOK(t, in)
	hu := ModalityLUTOf(in).Apply(&img.Frames[0], 0, nil)
	lo, hi := slices.Min(hu), slices.Max(hu)
	if lo != 13-1024 || hi != 2267-1024 {
		t.Errorf("HU range %v..%v, want %v..%v", lo, hi, 13-1024, 2267-1024)
	}
	if ws := VOIWindowsOf(in); len(ws) != 2 || ws[1].Center != 450 || ws[1].Width != 1500 {
		t.Errorf("windows = %+v", ws)
	}
}
