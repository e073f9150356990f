package transform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel"
)

// The DICOM path end to end (dicom.ParseFile, pixel.Decode, FromInstance
// with the chest model's steps) against testdata/dicom_parity.json, computed
// independently with pydicom + numpy + Pillow (testdata/make_dicom_parity.py)
// for a DX (8-bit MONOCHROME2, no window: min-max) and a CR (10-bit
// MONOCHROME1, window 550/1024: LINEAR window then inversion).
// Tolerance 1e-5 normalised (about 1e-6 in [0,1]): the window is computed in
// float64 on both sides and resize is Pillow's; what remains is float32
// rounding of the window output.
func TestDICOMPathParity(t *testing.T) {
	raw, err := os.ReadFile("testdata/dicom_parity.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Images []struct {
			Path        string
			Photometric string
			stats
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, chestSpec())
	for _, im := range doc.Images {
		path := filepath.Join(repoRoot, filepath.FromSlash(im.Path))
		if _, err := os.Stat(path); err != nil {
			t.Logf("skip %s: shared data absent", im.Path)
			continue
		}
		in, err := dicom.ParseFile(path)
		if err != nil {
			t.Fatalf("%s: %v", im.Path, err)
		}
		img, err := pixel.Decode(in)
		if err != nil {
			t.Fatalf("%s: %v", im.Path, err)
		}
		x := make([]float32, p.SampleLen())
		if err := p.FromInstance(in, img, 0, x); err != nil {
			t.Fatalf("%s: %v", im.Path, err)
		}
		checkStats(t, fmt.Sprintf("%s (%s)", filepath.Base(im.Path), im.Photometric), x, im.stats, 1e-5)
	}
}
