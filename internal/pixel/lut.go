package pixel

import "github.com/radflow/radflow/internal/dicom"

// ModalityLUT maps stored values to output units (Hounsfield units for CT),
// PS3.3 C.11.1: either Rescale Slope/Intercept or a Modality LUT Sequence.
type ModalityLUT struct {
	Slope, Intercept float64
	// LUT, when non-nil, replaces the linear rescale (Modality LUT Sequence).
	LUT        []float64
	FirstInput int
}

// ModalityLUTOf reads the modality LUT of in (identity when absent).
func ModalityLUTOf(in *dicom.Instance) ModalityLUT { return ModalityLUT{Slope: 1} }

// Apply maps sample channel c of f through the LUT into dst (len Rows*Columns),
// allocating dst when nil. Output: float32 in modality units.
func (m ModalityLUT) Apply(f *Frame, c int, dst []float32) []float32 { return dst }

// VOIWindow is one Window Center/Width pair (PS3.3 C.11.2.1.2).
type VOIWindow struct {
	Center, Width float64
	Function      string // LINEAR (default), LINEAR_EXACT, SIGMOID
}

// VOIWindowsOf returns the instance's Window Center/Width pairs (may be empty).
func VOIWindowsOf(in *dicom.Instance) []VOIWindow { return nil }

// Apply maps modality values v through the window into [0,1] in place.
func (w VOIWindow) Apply(v []float32) {}
