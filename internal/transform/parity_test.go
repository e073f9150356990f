package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Fixtures written by tools/train/fixtures.py from tools/train/preprocess.py
// (Pillow); paths inside are relative to the repository root.
const (
	parityFile = "testdata/parity/images.json"
	repoRoot   = "../.."
)

type stats struct {
	Height, Width       int
	Mean, Std, Min, Max float64
	Values              [][2]float64 // [flat index, value]
}

type parityDoc struct {
	Images []struct {
		Path          string
		Label         string
		SourceSize    [2]int       `json:"source_size"`
		GrayU8Sum     int64        `json:"gray_u8_sum"`
		GrayValues    [][2]float64 `json:"gray_values"`
		Tensor        stats
		Probabilities []float64
		Resize        []stats
	}
	SyntheticResize struct {
		Source stats
		Cases  []stats
	} `json:"synthetic_resize"`
}

func loadParity(t *testing.T) *parityDoc {
	t.Helper()
	raw, err := os.ReadFile(parityFile)
	if err != nil {
		t.Skipf("%s not written yet (tools/train/fixtures.py): %v", parityFile, err)
	}
	var d parityDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func statsOf(v []float32) (mean, std, lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		mean += float64(x)
		lo, hi = min(lo, float64(x)), max(hi, float64(x))
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, math.Sqrt(std / float64(len(v))), lo, hi
}

// checkStats compares v with Pillow's summary: population mean/std,
// min/max and the probed values, each within tol.
func checkStats(t *testing.T, what string, v []float32, want stats, tol float64) {
	t.Helper()
	m, s, lo, hi := statsOf(v)
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"mean", m, want.Mean}, {"std", s, want.Std}, {"min", lo, want.Min}, {"max", hi, want.Max}} {
		if d := math.Abs(c.got - c.want); d > tol {
			t.Errorf("%s: %s %.7f, Pillow %.7f (|d| %.2g > %.2g)", what, c.name, c.got, c.want, d, tol)
		}
	}
	for _, p := range want.Values {
		i := int(p[0])
		if i < 0 || i >= len(v) {
			t.Fatalf("%s: probe index %d outside %d values", what, i, len(v))
		}
		if d := math.Abs(float64(v[i]) - p[1]); d > tol {
			t.Errorf("%s: [%d] = %.7f, Pillow %.7f (|d| %.2g > %.2g)", what, i, v[i], p[1], d, tol)
		}
	}
}

// Resize of the formula-defined image to 160x160, 200x300 and 300x200
// against Pillow: tolerance 1e-6 (Resize repeats Pillow's float64
// operations in order; only float32 rounding could differ, and stats are
// float64 sums over float32 values).
func TestResizeParitySynthetic(t *testing.T) {
	d := loadParity(t)
	src := d.SyntheticResize.Source
	if src.Height != 224 || src.Width != 224 || len(d.SyntheticResize.Cases) == 0 {
		t.Fatalf("synthetic_resize: %+v", d.SyntheticResize)
	}
	img := make([]float32, 224*224)
	for r := 0; r < 224; r++ {
		for c := 0; c < 224; c++ {
			img[r*224+c] = float32(float64((r*7+c*13)%256) / 255.0)
		}
	}
	m, s, _, _ := statsOf(img)
	if math.Abs(m-src.Mean) > 1e-9 || math.Abs(s-src.Std) > 1e-9 {
		t.Fatalf("synthetic source mean/std %v/%v, Python %v/%v: formula differs", m, s, src.Mean, src.Std)
	}
	for _, c := range d.SyntheticResize.Cases {
		out := make([]float32, c.Height*c.Width)
		if err := Resize(img, 224, 224, out, c.Width, c.Height); err != nil {
			t.Fatal(err)
		}
		checkStats(t, fmt.Sprintf("synthetic %dx%d", c.Height, c.Width), out, c, 1e-6)
	}
}

func itoa(i int) string {
	return string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// The whole 8-bit image path (DecodeImage + FromImage with the chest
// model's steps) against Pillow + tools/train/preprocess.py for real
// training JPEGs.
//
// Tolerances: Go's image/jpeg and libjpeg (behind Pillow) use different
// IDCTs and YCbCr->RGB roundings, so a grey level may differ by 1 (rarely
// 2): 1/255 in [0,1] and 1/255/0.25 = 0.0157 after normalize. Probed
// values are held to 2 grey levels (0.032 normalised); mean/std, which
// average the ±1 errors away, to 0.005 normalised (about 0.3 grey levels);
// the grey-level sum to 0.05 levels per pixel on average.
func TestImagePathParity(t *testing.T) {
	d := loadParity(t)
	if len(d.Images) == 0 {
		t.Fatal("no images in the fixture")
	}
	p := newPipeline(t, chestSpec())
	ran := 0
	for _, im := range d.Images {
		path := filepath.Join(repoRoot, filepath.FromSlash(im.Path))
		f, err := os.Open(path)
		if err != nil {
			t.Logf("skip %s: %v", im.Path, err)
			continue
		}
		img, err := DecodeImage(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", im.Path, err)
		}
		ran++
		b := img.Bounds()
		if b.Dy() != im.SourceSize[0] || b.Dx() != im.SourceSize[1] {
			t.Errorf("%s: size %v, Pillow %v", im.Path, b.Size(), im.SourceSize)
		}
		var sum int64
		maxDiff := 0
		grayU8(img, func(i int, l uint8) { sum += int64(l) })
		if per := math.Abs(float64(sum-im.GrayU8Sum)) / float64(b.Dx()*b.Dy()); per > 0.05 {
			t.Errorf("%s: grey sum %d, Pillow %d (%.3f levels/pixel)", im.Path, sum, im.GrayU8Sum, per)
		}
		gray := make([]float32, b.Dx()*b.Dy())
		grayU8(img, func(i int, l uint8) { gray[i] = float32(l) / 255 })
		for _, pv := range im.GrayValues {
			diff := int(math.Round(math.Abs(float64(gray[int(pv[0])])-pv[1]) * 255))
			maxDiff = max(maxDiff, diff)
		}
		if maxDiff > 2 {
			t.Errorf("%s: probed grey levels differ by up to %d from Pillow", im.Path, maxDiff)
		}
		x := make([]float32, p.SampleLen())
		if err := p.FromImage(img, x); err != nil {
			t.Fatal(err)
		}
		want := im.Tensor
		want.Height, want.Width = 224, 224
		m, s, _, _ := statsOf(x)
		if math.Abs(m-want.Mean) > 0.005 || math.Abs(s-want.Std) > 0.005 {
			t.Errorf("%s: tensor mean/std %.5f/%.5f, Python %.5f/%.5f", im.Path, m, s, want.Mean, want.Std)
		}
		for _, pv := range want.Values {
			if dv := math.Abs(float64(x[int(pv[0])]) - pv[1]); dv > 2.0/255/0.25+1e-6 {
				t.Errorf("%s: tensor[%d] = %.5f, Python %.5f", im.Path, int(pv[0]), x[int(pv[0])], pv[1])
			}
		}
		// Resize of the image's own grey levels to other sizes: the same
		// JPEG tolerance (2 grey levels at a probe, 0.002 on mean/std in [0,1]).
		for _, rc := range im.Resize {
			out := make([]float32, rc.Height*rc.Width)
			if err := Resize(gray, b.Dx(), b.Dy(), out, rc.Width, rc.Height); err != nil {
				t.Fatal(err)
			}
			checkStats(t, fmt.Sprintf("%s resize %dx%d", im.Path, rc.Height, rc.Width), out, rc, 2.0/255)
		}
		t.Logf("%s: probed grey levels within %d of Pillow; tensor mean %.5f vs %.5f", filepath.Base(im.Path), maxDiff, m, want.Mean)
	}
	if ran == 0 {
		t.Skip("none of the fixture's images is under ../shared (shared data absent)")
	}
}
