package codec

import "errors"

// Params describes the frame the codestream is expected to hold, from the
// DICOM Image Pixel module. The DICOM attributes win over the codestream
// header where they disagree (package pixel masks and sign-extends).
type Params struct {
	Rows, Columns, SamplesPerPixel int
	BitsAllocated, BitsStored      int
	Signed                         bool   // Pixel Representation 1
	Photometric                    string // as in the data set, e.g. YBR_FULL_422, RGB, YBR_RCT
}

// Result is one decoded frame.
type Result struct {
	// Data holds Rows*Columns*SamplesPerPixel samples, pixel-interleaved,
	// each BitsAllocated/8 bytes little-endian (1 byte for BitsAllocated 8).
	Data []byte
	// Photometric is the interpretation of Data: e.g. "RGB" when the codec
	// converted YCbCr to RGB, otherwise the input's interpretation.
	Photometric string
}

var (
	// ErrUnsupported: no codec here for this transfer syntax UID.
	ErrUnsupported = errors.New("codec: unsupported transfer syntax")
	// ErrCorrupt: the codestream is malformed or does not match Params.
	ErrCorrupt = errors.New("codec: corrupt codestream")
)

// Decode decodes one frame's codestream (all fragments of the frame
// concatenated) encoded with transfer syntax tsUID.
// errors: ErrUnsupported, ErrCorrupt (wrapped with the library's message).
func Decode(tsUID string, src []byte, p Params) (Result, error) {
	return Result{}, ErrUnsupported
}
