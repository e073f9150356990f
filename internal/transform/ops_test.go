package transform

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol) {
			t.Errorf("%s[%d] = %v, want %v (|d| %.3g > %.3g)", what, i, got[i], want[i], d, tol)
		}
	}
}

func TestMinMax(t *testing.T) {
	v := []float32{-1000, 0, 1000, 500}
	MinMax(v)
	near(t, "MinMax", v, []float32{0, 0.5, 1, 0.75}, 0)
	c := []float32{7, 7, 7}
	MinMax(c)
	near(t, "MinMax constant", c, []float32{0, 0, 0}, 0)
	MinMax(nil) // must not panic
}

func TestInvertMonochrome1(t *testing.T) {
	v := []float32{0, 0.25, 1}
	InvertMonochrome1(v)
	near(t, "InvertMonochrome1", v, []float32{1, 0.75, 0}, 0)
}

// Expected grey levels are Pillow 9.4's Image.new("RGB", ...).convert("L").
func TestLumaU8MatchesPillow(t *testing.T) {
	for _, tc := range []struct{ r, g, b, want uint8 }{
		{255, 0, 0, 76}, {0, 255, 0, 150}, {0, 0, 255, 29},
		{255, 255, 255, 255}, {10, 200, 30, 124}, {128, 128, 127, 128}, {0, 0, 0, 0},
	} {
		if got := LumaU8(tc.r, tc.g, tc.b); got != tc.want {
			t.Errorf("LumaU8(%d,%d,%d) = %d, Pillow %d", tc.r, tc.g, tc.b, got, tc.want)
		}
	}
}

func TestLumaRGB(t *testing.T) {
	dst := make([]float32, 3)
	LumaRGB([]float32{1, 0, 0, 0, 1, 0, 0.5, 0.5, 0.5}, dst)
	near(t, "LumaRGB", dst, []float32{0.299, 0.587, 0.5}, 1e-7)
}

func TestNormalize(t *testing.T) {
	v := []float32{0, 0.5, 1, 0.2}
	Normalize(v, 0.5, 0.25)
	near(t, "Normalize", v, []float32{-2, 0, 2, -1.2}, 1e-6)
}

// Hand-computed Pillow bilinear weights (see Resize's doc).
func TestResizeHandComputed(t *testing.T) {
	// Shrink 4 -> 2: scale 2, support 2. Output 0 (centre 1.0) reads inputs
	// 0..2 with triangle weights 0.75, 0.75, 0.25 (sum 1.75); output 1
	// (centre 3.0) reads 1..3 with 0.25, 0.75, 0.75.
	dst := make([]float32, 2)
	if err := Resize([]float32{0, 1, 2, 3}, 4, 1, dst, 2, 1); err != nil {
		t.Fatal(err)
	}
	near(t, "shrink 4->2", dst, []float32{1.25 / 1.75, 4 / 1.75}, 1e-7)

	// Enlarge 2 -> 4 vertically: centres 0.25, 0.75, 1.25, 1.75; support 1.
	// Output 0 sees only input 0; output 1 = 0.75*in0 + 0.25*in1.
	col := make([]float32, 4)
	if err := Resize([]float32{0, 4}, 1, 2, col, 1, 4); err != nil {
		t.Fatal(err)
	}
	near(t, "enlarge 2->4", col, []float32{0, 1, 3, 4}, 1e-7)

	// Same size: copy.
	same := make([]float32, 4)
	if err := Resize([]float32{1, 2, 3, 4}, 2, 2, same, 2, 2); err != nil {
		t.Fatal(err)
	}
	near(t, "identity", same, []float32{1, 2, 3, 4}, 0)

	for _, bad := range [][4]int{{0, 1, 1, 1}, {2, 2, 0, 1}, {3, 3, 1, 1}} {
		if err := Resize(make([]float32, 4), bad[0], bad[1], make([]float32, 4), bad[2], bad[3]); err == nil {
			t.Errorf("Resize %v: no error", bad)
		}
	}
}

// pillowSource is testdata/make_resize.py's formula.
func pillowSource(h, w int) []float32 {
	v := make([]float32, h*w)
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			v[r*w+c] = float32(math.Sin(0.7*float64(r)+0.3*float64(c))*100 + 0.25*float64(r*c))
		}
	}
	return v
}

// Pillow 9.4 output values, every pixel, for shrink/enlarge/one-axis cases.
// Tolerance 1e-6 relative: Resize performs Pillow's float64 operations in
// the same order, so only float32 storage rounding could differ.
func TestResizeMatchesPillowFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/resize_pil.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Cases []struct {
			Src, Dst [2]int
			Values   []float32
		}
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Cases) < 5 {
		t.Fatalf("fixture has %d cases", len(fx.Cases))
	}
	worst := 0.0
	for _, c := range fx.Cases {
		got := make([]float32, c.Dst[0]*c.Dst[1])
		if err := Resize(pillowSource(c.Src[0], c.Src[1]), c.Src[1], c.Src[0], got, c.Dst[1], c.Dst[0]); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			d := math.Abs(float64(got[i]-c.Values[i])) / max(1, math.Abs(float64(c.Values[i])))
			worst = max(worst, d)
			if d > 1e-6 {
				t.Errorf("%v -> %v [%d] = %v, Pillow %v", c.Src, c.Dst, i, got[i], c.Values[i])
			}
		}
	}
	t.Logf("largest relative difference from Pillow: %.3g", worst)
}
