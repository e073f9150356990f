package dicom

import (
	"errors"
	"io"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrNotDICOM: the bytes are neither a Part 10 file nor a recognisable bare data set.
var ErrNotDICOM = errors.New("dicom: not a DICOM file")

// ErrMalformed: the data set cannot be parsed (bad lengths, truncated elements).
var ErrMalformed = errors.New("dicom: malformed data set")

// Instance is one parsed SOP instance. Pixel Data is kept unprocessed
// (raw bytes or fragments) for package pixel.
type Instance struct {
	Dataset           sdicom.Dataset
	TransferSyntaxUID string
}

// ParseFile parses the file at path. errors: ErrNotDICOM, ErrMalformed.
func ParseFile(path string) (*Instance, error) { return nil, errors.New("not implemented") }

// Parse parses size bytes from r. errors: ErrNotDICOM, ErrMalformed.
func Parse(r io.Reader, size int64) (*Instance, error) { return nil, errors.New("not implemented") }

// String returns the first value of a string attribute, trimmed, or "".
func (in *Instance) String(t tag.Tag) string { return "" }

// Int returns the first value of an integer (US/SS/UL/SL/IS) attribute, or def.
func (in *Instance) Int(t tag.Tag, def int) int { return def }

// Floats returns the values of a DS/FL/FD attribute, or nil.
func (in *Instance) Floats(t tag.Tag) []float64 { return nil }
