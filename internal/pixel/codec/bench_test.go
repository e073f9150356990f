package codec

import "testing"

// BenchmarkDecode decodes the 512x512 16-bit CT in each syntax, and
// 2000x2000-class radiographs in JPEG 2000 lossless (DX 2128x2000, 12-bit)
// and the other lossless syntaxes (CR 2140x1760, 10-bit).
// Run: go test -run '^$' -bench Decode -cpu 1 ./internal/pixel/codec
func BenchmarkDecode(b *testing.B) {
	cases := []struct{ name, file string }{
		{"CT512/JPEGBaseline.50", ctTS + "JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm"},
		{"CT512/JPEGExtended.51", ctTS + "JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm"},
		{"CT512/JPEGProgressive.55", ctTS + "JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm"},
		{"CT512/JPEGLossless.57", ctTS + "JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm"},
		{"CT512/JPEGLosslessSV1.70", ctTS + "JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm"},
		{"CT512/JPEGLSLossless.80", ctTS + "JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm"},
		{"CT512/JPEGLSNear.81", ctTS + "JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm"},
		{"CT512/J2KLossless.90", ctTS + "JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"},
		{"CT512/J2K.91", ctTS + "JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm"},
		{"DX2128x2000/J2KLossless.90", plj + "JPEG2000Lossless/966_fixed.dcm"},
		{"CR1760x1760/J2KLossless.90", plj + "JPEG2000Lossless/RG3_J2KR.dcm"},
		{"CR2140x1760/JPEGLosslessSV1.70", plj + "JPEGLosslessSV1/RG2_JPLL.dcm"},
		{"CR2140x1760/JPEGLSLossless.80", plj + "JPEGLSLossless/RG2_JLSL.dcm"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := load(b, c.file)
			cs := s.frame(b, 0)
			b.SetBytes(int64(s.p.frameBytes()))
			for b.Loop() {
				if _, err := Decode(s.ts, cs, s.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
