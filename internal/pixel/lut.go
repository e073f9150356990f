package pixel

import (
	"math"
	"strings"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ModalityLUT maps stored values to output units (Hounsfield units for CT),
// PS3.3 C.11.1: either Rescale Slope/Intercept or a Modality LUT Sequence.
type ModalityLUT struct {
	Slope, Intercept float64
	// LUT, when non-nil, replaces the linear rescale (Modality LUT Sequence).
	LUT        []float64
	FirstInput int
}

var (
	tagModalityLUTSequence      = tag.Tag{Group: 0x0028, Element: 0x3000}
	tagLUTDescriptor            = tag.Tag{Group: 0x0028, Element: 0x3002}
	tagLUTData                  = tag.Tag{Group: 0x0028, Element: 0x3006}
	tagVOILUTSequence           = tag.Tag{Group: 0x0028, Element: 0x3010}
	tagVOILUTFunction           = tag.Tag{Group: 0x0028, Element: 0x1056}
	tagSharedFunctionalGroups   = tag.Tag{Group: 0x5200, Element: 0x9229}
	tagPixelValueTransformation = tag.Tag{Group: 0x0028, Element: 0x9145}
	tagFrameVOILUTSequence      = tag.Tag{Group: 0x0028, Element: 0x9132}
)

// ModalityLUTOf reads the modality LUT of in (identity when absent): the
// Modality LUT Sequence (0028,3000) first item if present, else Rescale
// Slope (0028,1053) / Intercept (0028,1052), else those in the Shared
// Functional Groups' Pixel Value Transformation Sequence (enhanced
// multi-frame). Slopes may be fractional.
func ModalityLUTOf(in *dicom.Instance) ModalityLUT {
	root := in.Root()
	if items := root.Items(tagModalityLUTSequence); len(items) > 0 {
		if lut, first, ok := readLUT(items[0], in.Int(tag.PixelRepresentation, 0) == 1); ok {
			return ModalityLUT{Slope: 1, LUT: lut, FirstInput: first}
		}
	}
	src := root
	if src.Element(tag.RescaleSlope) == nil && src.Element(tag.RescaleIntercept) == nil {
		for _, sg := range root.Items(tagSharedFunctionalGroups) {
			for _, pv := range sg.Items(tagPixelValueTransformation) {
				src = pv
			}
		}
	}
	m := ModalityLUT{Slope: 1}
	if s := src.Floats(tag.RescaleSlope); len(s) > 0 && s[0] != 0 {
		m.Slope = s[0]
	}
	if i := src.Floats(tag.RescaleIntercept); len(i) > 0 {
		m.Intercept = i[0]
	}
	return m
}

// readLUT reads LUT Descriptor (0028,3002) [entries (0 means 65536), first
// input value, bits] and LUT Data (0028,3006) of a LUT item (PS3.3 C.11.1.1).
func readLUT(it *dicom.Item, signed bool) ([]float64, int, bool) {
	d := it.Ints(tagLUTDescriptor)
	if len(d) < 3 {
		return nil, 0, false
	}
	n := d[0] & 0xFFFF
	if n == 0 {
		n = 65536
	}
	first := d[1]
	if signed && first >= 0x8000 && first <= 0xFFFF {
		first -= 0x10000
	}
	bits := d[2]
	var lut []float64
	if raw := it.Bytes(tagLUTData); raw != nil {
		if bits <= 8 && len(raw) >= n && len(raw) < 2*n {
			lut = make([]float64, n)
			for i := range lut {
				lut[i] = float64(raw[i])
			}
		} else if len(raw) >= 2*n {
			lut = make([]float64, n)
			for i := range lut {
				lut[i] = float64(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
			}
		}
	} else if w := it.Uint16s(tagLUTData); len(w) >= n {
		lut = make([]float64, n)
		for i := range lut {
			lut[i] = float64(w[i])
		}
	}
	if lut == nil {
		return nil, 0, false
	}
	return lut, first, true
}

// lookup maps v through lut starting at first, clamping out-of-range inputs
// to the first/last entry (PS3.3 C.11.1.1).
func lookup(lut []float64, first int, v float64) float64 {
	k := int(math.Floor(v)) - first
	if k < 0 {
		k = 0
	} else if k >= len(lut) {
		k = len(lut) - 1
	}
	return lut[k]
}

// Apply maps sample channel c of f through the LUT into dst (len Rows*Columns),
// allocating dst when nil. Output: float32 in modality units.
func (m ModalityLUT) Apply(f *Frame, c int, dst []float32) []float32 {
	n := f.Rows * f.Columns
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	spp := f.SamplesPerPixel
	if spp < 1 {
		spp = 1
	}
	if m.LUT != nil {
		for i := range dst {
			dst[i] = float32(lookup(m.LUT, m.FirstInput, f.At(i*spp+c)))
		}
		return dst
	}
	s, b := m.Slope, m.Intercept
	switch {
	case f.I16 != nil && spp == 1:
		for i, v := range f.I16[:n] {
			dst[i] = float32(float64(v)*s + b)
		}
	case f.U16 != nil && spp == 1:
		for i, v := range f.U16[:n] {
			dst[i] = float32(float64(v)*s + b)
		}
	default:
		for i := range dst {
			dst[i] = float32(f.At(i*spp+c)*s + b)
		}
	}
	return dst
}

// VOIWindow is one Window Center/Width pair (PS3.3 C.11.2.1.2).
type VOIWindow struct {
	Center, Width float64
	Function      string // LINEAR (default), LINEAR_EXACT, SIGMOID
}

// VOIWindowsOf returns the instance's Window Center (0028,1050) / Width
// (0028,1051) pairs with the VOI LUT Function (0028,1056), falling back to
// the Shared Functional Groups' Frame VOI LUT Sequence; pairs with a width
// below the function's minimum (1 for LINEAR, >0 otherwise) are dropped.
// May be empty.
func VOIWindowsOf(in *dicom.Instance) []VOIWindow {
	src := in.Root()
	if src.Element(tag.WindowCenter) == nil {
		for _, sg := range src.Items(tagSharedFunctionalGroups) {
			for _, v := range sg.Items(tagFrameVOILUTSequence) {
				src = v
			}
		}
	}
	cs, ws := src.Floats(tag.WindowCenter), src.Floats(tag.WindowWidth)
	fn := strings.ToUpper(strings.TrimSpace(src.String(tagVOILUTFunction)))
	if fn == "" {
		fn = "LINEAR"
	}
	var out []VOIWindow
	for i := 0; i < len(cs) && i < len(ws); i++ {
		w := VOIWindow{Center: cs[i], Width: ws[i], Function: fn}
		if (fn == "LINEAR" && w.Width < 1) || w.Width <= 0 {
			continue
		}
		out = append(out, w)
	}
	return out
}

// Apply maps modality values v through the window into [0,1] in place
// (PS3.3 C.11.2.1.2 with output range 0..1):
//
//	LINEAR:       x <= c-0.5-(w-1)/2 → 0; x > c-0.5+(w-1)/2 → 1;
//	              else ((x-(c-0.5))/(w-1) + 0.5)
//	LINEAR_EXACT: x <= c-w/2 → 0; x > c+w/2 → 1; else (x-c)/w + 0.5
//	SIGMOID:      1 / (1 + exp(-4 (x-c)/w))
func (w VOIWindow) Apply(v []float32) {
	c, wd := w.Center, w.Width
	switch strings.ToUpper(w.Function) {
	case "SIGMOID":
		for i, x := range v {
			v[i] = float32(1 / (1 + math.Exp(-4*(float64(x)-c)/wd)))
		}
	case "LINEAR_EXACT":
		lo, hi := c-wd/2, c+wd/2
		for i, x := range v {
			xf := float64(x)
			switch {
			case xf <= lo:
				v[i] = 0
			case xf > hi:
				v[i] = 1
			default:
				v[i] = float32((xf-c)/wd + 0.5)
			}
		}
	default: // LINEAR
		if wd < 1 {
			wd = 1
		}
		lo, hi := c-0.5-(wd-1)/2, c-0.5+(wd-1)/2
		for i, x := range v {
			xf := float64(x)
			switch {
			case xf <= lo:
				v[i] = 0
			case xf > hi:
				v[i] = 1
			case wd == 1:
				v[i] = 1
			default:
				v[i] = float32((xf-(c-0.5))/(wd-1) + 0.5)
			}
		}
	}
}

// VOILUT is one item of the VOI LUT Sequence (0028,3010), PS3.3 C.11.2.1.1.
type VOILUT struct {
	LUT        []float64
	FirstInput int
	// Bits is the LUT Descriptor's third value: output range 0..2^Bits-1.
	Bits int
}

// VOILUTsOf returns the VOI LUT Sequence's LUTs (may be empty).
func VOILUTsOf(in *dicom.Instance) []VOILUT {
	var out []VOILUT
	for _, it := range in.Items(tagVOILUTSequence) {
		lut, first, ok := readLUT(it, false)
		if !ok {
			continue
		}
		bits := 16
		if d := it.Ints(tagLUTDescriptor); len(d) >= 3 && d[2] > 0 && d[2] <= 16 {
			bits = d[2]
		}
		out = append(out, VOILUT{LUT: lut, FirstInput: first, Bits: bits})
	}
	return out
}

// Apply maps modality values v through the LUT into [0,1] in place
// (entry / (2^Bits - 1)); inputs outside the LUT clamp to its ends.
func (l VOILUT) Apply(v []float32) {
	scale := 1 / float64(int(1)<<l.Bits-1)
	for i, x := range v {
		v[i] = float32(math.Min(1, lookup(l.LUT, l.FirstInput, float64(x))*scale))
	}
}

// InvertMonochrome1 turns [0,1] values of a MONOCHROME1 image into
// "bright = dense" (1 - v) in place, after the modality LUT and VOI.
func InvertMonochrome1(v []float32) {
	for i, x := range v {
		v[i] = 1 - x
	}
}
