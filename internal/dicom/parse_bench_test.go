package dicom

import (
	"os"
	"testing"
)

// BenchmarkParseBytesCT parses the 0.5 MB cornerstone CT slice (what
// ingest does for every received instance).
func BenchmarkParseBytesCT(b *testing.B) {
	data, err := os.ReadFile("../../../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm")
	if err != nil {
		b.Skipf("shared CT file absent: %v", err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}
