package pixel

import "errors"

// Sentinel errors. Wrap them with %w and context (UIDs, byte counts); callers
// test with errors.Is.
var (
	// ErrUnsupportedTransferSyntax: the transfer syntax is recognised but not
	// decodable (HTJ2K, MPEG, ...); the wrapped message names the UID.
	ErrUnsupportedTransferSyntax = errors.New("pixel: unsupported transfer syntax")
	// ErrNoPixelData: the instance has no Pixel Data (7FE0,0010) (SR, RT Plan, ...).
	ErrNoPixelData = errors.New("pixel: no pixel data")
	// ErrTruncated: pixel data is shorter than Rows x Columns x Samples x Bits x Frames require.
	ErrTruncated = errors.New("pixel: pixel data truncated")
	// ErrInconsistent: image pixel module attributes contradict each other or the data
	// (e.g. Bits Stored > Bits Allocated, zero Rows, fragment count < frames).
	ErrInconsistent = errors.New("pixel: inconsistent pixel data")
	// ErrUnsupportedPhotometric: a photometric interpretation we do not convert.
	ErrUnsupportedPhotometric = errors.New("pixel: unsupported photometric interpretation")
	// ErrCodec: a codec (JPEG, JPEG-LS, JPEG 2000, RLE) rejected the codestream.
	ErrCodec = errors.New("pixel: codec error")
)

// Frame holds the decoded stored values of one frame, pixel-interleaved
// (R,G,B,R,G,B,... when SamplesPerPixel is 3, after planar configuration and
// YBR/palette conversion), row-major, Rows*Columns*SamplesPerPixel samples.
// Values are stored values after masking to Bits Stored and sign extension
// when Pixel Representation is 1, before any modality LUT.
//
// Exactly one of the sample slices is non-nil; which one follows Bits
// Allocated (1 and 8 → 8-bit, 16 → 16-bit, 32 → 32-bit) and Pixel
// Representation (signed or unsigned). Float Pixel Data uses F32/F64.
type Frame struct {
	Rows, Columns, SamplesPerPixel int

	U8  []uint8
	I8  []int8
	U16 []uint16
	I16 []int16
	U32 []uint32
	I32 []int32
	F32 []float32
	F64 []float64
}

// Len returns the number of samples in the frame (Rows*Columns*SamplesPerPixel).
func (f *Frame) Len() int { return f.Rows * f.Columns * f.SamplesPerPixel }

// At returns sample i (0 <= i < Len()) widened to float64 without loss for
// every integer type DICOM allows (up to 32 bits).
func (f *Frame) At(i int) float64 {
	switch {
	case f.U8 != nil:
		return float64(f.U8[i])
	case f.I8 != nil:
		return float64(f.I8[i])
	case f.U16 != nil:
		return float64(f.U16[i])
	case f.I16 != nil:
		return float64(f.I16[i])
	case f.U32 != nil:
		return float64(f.U32[i])
	case f.I32 != nil:
		return float64(f.I32[i])
	case f.F32 != nil:
		return float64(f.F32[i])
	case f.F64 != nil:
		return f.F64[i]
	}
	panic("pixel: empty frame")
}
