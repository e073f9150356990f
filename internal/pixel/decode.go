package pixel

import (
	"errors"

	"github.com/radflow/radflow/internal/dicom"
)

// Info is the Image Pixel module of an instance (PS3.3 C.7.6.3) plus the
// identifiers needed to describe it.
type Info struct {
	TransferSyntaxUID         string
	Rows, Columns, Frames     int
	SamplesPerPixel           int
	Photometric               string // as stored in the data set
	BitsAllocated, BitsStored int
	HighBit                   int
	PixelRepresentation       int // 0 unsigned, 1 two's complement
	PlanarConfiguration       int
}

// Image is every decoded frame of an instance.
type Image struct {
	Info
	// Photometric of the decoded frames: RGB after YBR/palette conversion,
	// otherwise Info.Photometric.
	OutputPhotometric string
	Frames            []Frame
}

// Decode decodes every frame of in.
// errors: ErrNoPixelData, ErrUnsupportedTransferSyntax, ErrTruncated,
// ErrInconsistent, ErrUnsupportedPhotometric, ErrCodec.
func Decode(in *dicom.Instance) (*Image, error) { return nil, errors.New("not implemented") }
