package pixel

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
)

func benchFile(b *testing.B, rel string) {
	data, err := os.ReadFile(filepath.Join(sharedDir, rel))
	if err != nil {
		b.Skipf("shared file missing: %v", err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		in, err := dicom.ParseBytes(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDecodeCT: parse + decode of a 512x512 16-bit CT, Explicit
// VR Little Endian, from bytes already read (budget: ≤ 3 ms on one core).
func BenchmarkParseDecodeCT(b *testing.B) {
	benchFile(b, "cornerstoneWADOImageLoader/CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm")
}

// BenchmarkParseDecodeCTRLE: the same CT, RLE Lossless.
func BenchmarkParseDecodeCTRLE(b *testing.B) {
	benchFile(b, "cornerstoneWADOImageLoader/CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm")
}
