package codec

import (
	"errors"
	"fmt"
)

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

// Transfer syntax UIDs decoded here (PS3.6 Annex A).
const (
	JPEGBaseline8Bit            = "1.2.840.10008.1.2.4.50" // process 1
	JPEGExtended12Bit           = "1.2.840.10008.1.2.4.51" // processes 2 and 4
	JPEGSpectralSelection       = "1.2.840.10008.1.2.4.53" // processes 6 and 8 (retired)
	JPEGFullProgression         = "1.2.840.10008.1.2.4.55" // processes 10 and 12 (retired)
	JPEGLossless                = "1.2.840.10008.1.2.4.57" // process 14, any selection value
	JPEGLosslessSV1             = "1.2.840.10008.1.2.4.70" // process 14, selection value 1
	JPEGLSLossless              = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless          = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless            = "1.2.840.10008.1.2.4.90"
	JPEG2000                    = "1.2.840.10008.1.2.4.91"
	maxFrameBytes         int64 = 1 << 31 // 2 GiB: refuse larger frames before allocating
)

// Supported reports whether Decode has a codec for transfer syntax tsUID.
func Supported(tsUID string) bool {
	switch tsUID {
	case JPEGBaseline8Bit, JPEGExtended12Bit, JPEGSpectralSelection, JPEGFullProgression,
		JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
		JPEG2000Lossless, JPEG2000:
		return true
	}
	return false
}

// Decode decodes one frame's codestream (all fragments of the frame
// concatenated) encoded with transfer syntax tsUID into
// Rows*Columns*SamplesPerPixel samples, pixel-interleaved, each
// BitsAllocated/8 bytes little-endian. Samples are the codestream's values
// written as two's complement in that width, not masked and not
// sign-extended: package pixel applies Bits Stored and Pixel
// Representation, which win over the codestream's precision and sign.
//
// Colour: JPEG DCT codestreams in YCbCr (JFIF, Adobe transform 1 or
// component IDs 1,2,3) come out as RGB, codestreams coded directly in RGB
// (Adobe transform 0, component IDs 'R','G','B') are not converted; both
// report Photometric "RGB". JPEG lossless is never colour-converted. JPEG-LS
// colour transforms are undone by CharLS. JPEG 2000 with a multiple
// component transform (YBR_RCT, YBR_ICT) comes out as RGB.
//
// errors: ErrUnsupported (transfer syntax or coding process not decoded
// here, e.g. arithmetic or hierarchical JPEG), ErrCorrupt (malformed or
// truncated codestream, or its geometry differs from p), both wrapped with
// the library's message. Never panics on bad input. Safe for concurrent
// use: every call has its own decoder state.
func Decode(tsUID string, src []byte, p Params) (Result, error) {
	if !Supported(tsUID) {
		return Result{}, fmt.Errorf("%w: %s", ErrUnsupported, tsUID)
	}
	if err := p.validate(); err != nil {
		return Result{}, err
	}
	switch tsUID {
	case JPEGLSLossless, JPEGLSNearLossless:
		return decodeJPEGLS(src, p)
	case JPEG2000Lossless, JPEG2000:
		return decodeJ2K(src, p)
	default:
		return decodeJPEG(src, p)
	}
}

// bytesPerSample is the output sample width: 1 or 2.
func (p Params) bytesPerSample() int { return p.BitsAllocated / 8 }

// frameBytes is the decoded frame size in bytes.
func (p Params) frameBytes() int {
	return p.Rows * p.Columns * p.SamplesPerPixel * p.bytesPerSample()
}

func (p Params) validate() error {
	if p.Rows <= 0 || p.Columns <= 0 || p.Rows > 65535 || p.Columns > 65535 {
		return fmt.Errorf("%w: frame size %dx%d", ErrCorrupt, p.Columns, p.Rows)
	}
	if p.SamplesPerPixel != 1 && p.SamplesPerPixel != 3 {
		return fmt.Errorf("%w: samples per pixel %d (want 1 or 3)", ErrUnsupported, p.SamplesPerPixel)
	}
	if p.BitsAllocated != 8 && p.BitsAllocated != 16 {
		return fmt.Errorf("%w: bits allocated %d (compressed frames need 8 or 16)", ErrUnsupported, p.BitsAllocated)
	}
	if p.BitsStored < 1 || p.BitsStored > p.BitsAllocated {
		return fmt.Errorf("%w: bits stored %d with bits allocated %d", ErrCorrupt, p.BitsStored, p.BitsAllocated)
	}
	if n := int64(p.Rows) * int64(p.Columns) * int64(p.SamplesPerPixel) * int64(p.bytesPerSample()); n > maxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrCorrupt, n, maxFrameBytes)
	}
	return nil
}

// checkGeometry compares a codestream header's frame with p.
func (p Params) checkGeometry(kind string, width, height, comps int) error {
	if width != p.Columns || height != p.Rows || comps != p.SamplesPerPixel {
		return fmt.Errorf("%w: %s header is %dx%d with %d components, data set says %dx%d with %d",
			ErrCorrupt, kind, width, height, comps, p.Columns, p.Rows, p.SamplesPerPixel)
	}
	return nil
}
