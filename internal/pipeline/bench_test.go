package pipeline

import (
	"os"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/pixel"
)

// BenchmarkCTToTensor measures the Go side of one instance before ONNX
// Runtime: parse a 512x512 16-bit CT slice (Explicit VR LE) from memory,
// decode its pixels and preprocess them with the bundled model's pipeline
// into a [1,1,224,224] tensor. Budget: 3 ms on one core (`-cpu 1`).
func BenchmarkCTToTensor(b *testing.B) {
	const path = "../../../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skipf("shared CT slice not found: %v", err)
	}
	repo, err := models.Bundled()
	if err != nil {
		b.Skipf("bundled models: %v", err)
	}
	v, err := repo.Lookup("chest-xray-pneumonia")
	if err != nil {
		b.Skipf("reference model: %v", err)
	}
	pipe, err := v.Pipeline()
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, pipe.SampleLen())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		in, err := dicom.ParseBytes(data)
		if err != nil {
			b.Fatal(err)
		}
		img, err := pixel.Decode(in)
		if err != nil {
			b.Fatal(err)
		}
		if err := pipe.FromInstance(in, img, 0, dst); err != nil {
			b.Fatal(err)
		}
	}
}
