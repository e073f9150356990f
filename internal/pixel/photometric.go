package pixel

import (
	"fmt"
	"math"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// convertPhotometric converts YBR_FULL / YBR_FULL_422 to RGB and applies
// the Palette Color LUTs; MONOCHROME1/2 and RGB are left as they are.
// errors: ErrUnsupportedPhotometric, ErrInconsistent.
func convertPhotometric(img *Image, it *dicom.Item) error {
	switch img.OutputPhotometric {
	case "MONOCHROME1", "MONOCHROME2", "RGB":
		return nil
	case "YBR_FULL", "YBR_FULL_422":
		if img.SamplesPerPixel != 3 {
			return fmt.Errorf("%w: %s with Samples per Pixel %d", ErrInconsistent, img.OutputPhotometric, img.SamplesPerPixel)
		}
		sub := img.OutputPhotometric == "YBR_FULL_422" // native only: codec output is already YBR_FULL
		for f := range img.Frames {
			if err := ybrToRGB(&img.Frames[f], img.BitsStored, sub); err != nil {
				return err
			}
		}
		img.OutputPhotometric = "RGB"
		return nil
	case "PALETTE COLOR":
		if img.SamplesPerPixel != 1 {
			return fmt.Errorf("%w: PALETTE COLOR with Samples per Pixel %d", ErrInconsistent, img.SamplesPerPixel)
		}
		pal, err := PaletteOf(it)
		if err != nil {
			return err
		}
		for f := range img.Frames {
			img.Frames[f] = pal.Apply(&img.Frames[f])
		}
		img.OutputPhotometric = "RGB"
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnsupportedPhotometric, img.OutputPhotometric)
}

// ybrToRGB converts a frame in place (PS3.3 C.7.6.3.1.2, YBR_FULL):
//
//	R = Y + 1.402 (Cr - h)
//	G = Y - 0.344136 (Cb - h) - 0.714136 (Cr - h)
//	B = Y + 1.772 (Cb - h)
//
// with h = 2^(Bits Stored - 1), rounded and clamped to [0, 2^Bits Stored - 1].
// sub: the frame holds YBR_FULL_422 samples (Y1 Y2 Cb Cr per pixel pair).
func ybrToRGB(fr *Frame, bits int, sub bool) error {
	n := fr.Rows * fr.Columns
	maxv := float64(int64(1)<<bits - 1)
	half := float64(int64(1) << (bits - 1))
	get, set, err := accessors(fr)
	if err != nil {
		return err
	}
	if sub {
		// Expand 422 to full YBR first: Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr.
		full := make([]float64, 3*n)
		for p := 0; p+1 < n; p += 2 {
			k := 2 * p
			y1, y2, cb, cr := get(k), get(k+1), get(k+2), get(k+3)
			full[3*p], full[3*p+1], full[3*p+2] = y1, cb, cr
			full[3*p+3], full[3*p+4], full[3*p+5] = y2, cb, cr
		}
		if err := resize(fr, 3*n); err != nil {
			return err
		}
		get, set, _ = accessors(fr)
		for i, v := range full {
			set(i, v)
		}
	}
	clamp := func(v float64) float64 { return math.Max(0, math.Min(maxv, math.Round(v))) }
	for p := 0; p < n; p++ {
		y, cb, cr := get(3*p), get(3*p+1)-half, get(3*p+2)-half
		set(3*p, clamp(y+1.402*cr))
		set(3*p+1, clamp(y-0.344136*cb-0.714136*cr))
		set(3*p+2, clamp(y+1.772*cb))
	}
	return nil
}

func resize(fr *Frame, n int) error {
	switch {
	case fr.U8 != nil:
		fr.U8 = make([]uint8, n)
	case fr.U16 != nil:
		fr.U16 = make([]uint16, n)
	default:
		return fmt.Errorf("%w: YBR_FULL_422 needs unsigned 8 or 16-bit samples", ErrInconsistent)
	}
	return nil
}

// accessors returns float64 get/set over an unsigned frame's samples.
func accessors(fr *Frame) (func(int) float64, func(int, float64), error) {
	switch {
	case fr.U8 != nil:
		s := fr.U8
		return func(i int) float64 { return float64(s[i]) }, func(i int, v float64) { s[i] = uint8(v) }, nil
	case fr.U16 != nil:
		s := fr.U16
		return func(i int) float64 { return float64(s[i]) }, func(i int, v float64) { s[i] = uint16(v) }, nil
	case fr.U32 != nil:
		s := fr.U32
		return func(i int) float64 { return float64(s[i]) }, func(i int, v float64) { s[i] = uint32(v) }, nil
	}
	return nil, nil, fmt.Errorf("%w: YBR with signed samples", ErrInconsistent)
}

// Palette is the Palette Color Lookup Table module (PS3.3 C.7.9): three
// LUTs of equal length mapping a stored value to R, G, B.
type Palette struct {
	// FirstMapped is the stored value mapped to entry 0 (descriptor value 2).
	FirstMapped int
	// Bits is the entry size (8 or 16, descriptor value 3).
	Bits    int
	R, G, B []uint16
}

// PaletteOf reads the Red/Green/Blue Palette Color LUT Descriptors
// (0028,1101-1103) and Data (0028,1201-1203) or Segmented Data
// (0028,1221-1223). A first descriptor value of 0 means 65536 entries.
// errors: ErrInconsistent (missing or contradictory LUTs).
func PaletteOf(it *dicom.Item) (*Palette, error) {
	descs := []tag.Tag{{Group: 0x0028, Element: 0x1101}, {Group: 0x0028, Element: 0x1102}, {Group: 0x0028, Element: 0x1103}}
	datas := []tag.Tag{{Group: 0x0028, Element: 0x1201}, {Group: 0x0028, Element: 0x1202}, {Group: 0x0028, Element: 0x1203}}
	segs := []tag.Tag{{Group: 0x0028, Element: 0x1221}, {Group: 0x0028, Element: 0x1222}, {Group: 0x0028, Element: 0x1223}}
	pal := &Palette{}
	luts := make([][]uint16, 3)
	signed := it.Int(tag.PixelRepresentation, 0) == 1
	for c := 0; c < 3; c++ {
		d := it.Ints(descs[c])
		if len(d) < 3 {
			return nil, fmt.Errorf("%w: PALETTE COLOR without LUT descriptor %v", ErrInconsistent, descs[c])
		}
		n := d[0] & 0xFFFF
		if n == 0 {
			n = 65536
		}
		first := d[1] & 0xFFFF
		if signed && first >= 0x8000 {
			first -= 0x10000
		}
		bits := d[2]
		if bits != 8 && bits != 16 {
			return nil, fmt.Errorf("%w: palette LUT entry size %d bits", ErrInconsistent, bits)
		}
		var lut []uint16
		if raw := it.Bytes(segs[c]); raw != nil {
			var err error
			lut, err = expandSegmented(le16(raw), n)
			if err != nil {
				return nil, err
			}
		} else if raw := it.Bytes(datas[c]); raw != nil {
			switch {
			case bits == 8 && (len(raw) == n || len(raw) == n+1):
				// One byte per entry (8-bit entries packed two per word).
				lut = make([]uint16, n)
				for i := range lut {
					lut[i] = uint16(raw[i])
				}
			case len(raw) >= 2*n:
				lut = le16(raw)[:n]
			default:
				return nil, fmt.Errorf("%w: palette LUT data %d bytes for %d entries", ErrInconsistent, len(raw), n)
			}
		} else if w := it.Uint16s(datas[c]); len(w) >= n {
			lut = w[:n]
		} else {
			return nil, fmt.Errorf("%w: PALETTE COLOR without LUT data %v", ErrInconsistent, datas[c])
		}
		if bits == 8 {
			for i, v := range lut {
				if v > 0xFF {
					lut[i] = v >> 8 // 8-bit entries written in the high byte
				}
			}
		}
		if c == 0 {
			pal.FirstMapped, pal.Bits = first, bits
		} else if first != pal.FirstMapped || bits != pal.Bits || len(lut) != len(luts[0]) {
			return nil, fmt.Errorf("%w: red, green and blue palette descriptors differ", ErrInconsistent)
		}
		luts[c] = lut
	}
	pal.R, pal.G, pal.B = luts[0], luts[1], luts[2]
	return pal, nil
}

func le16(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return out
}

// Apply maps a single-sample frame to an RGB frame (U8 for 8-bit entries,
// U16 for 16-bit). Values below FirstMapped map to entry 0, above the table
// to the last entry.
func (p *Palette) Apply(fr *Frame) Frame {
	n := fr.Rows * fr.Columns
	out := Frame{Rows: fr.Rows, Columns: fr.Columns, SamplesPerPixel: 3}
	last := len(p.R) - 1
	index := func(i int) int {
		k := int(fr.At(i)) - p.FirstMapped
		if k < 0 {
			return 0
		}
		if k > last {
			return last
		}
		return k
	}
	if p.Bits == 8 {
		out.U8 = make([]uint8, 3*n)
		for i := 0; i < n; i++ {
			k := index(i)
			out.U8[3*i], out.U8[3*i+1], out.U8[3*i+2] = uint8(p.R[k]), uint8(p.G[k]), uint8(p.B[k])
		}
	} else {
		out.U16 = make([]uint16, 3*n)
		for i := 0; i < n; i++ {
			k := index(i)
			out.U16[3*i], out.U16[3*i+1], out.U16[3*i+2] = p.R[k], p.G[k], p.B[k]
		}
	}
	return out
}

// expandSegmented expands Segmented Palette Color LUT Data (PS3.3
// C.7.9.2): discrete (opcode 0), linear (1) and indirect (2) segments.
// errors: ErrInconsistent on a malformed segment or more than n entries.
func expandSegmented(w []uint16, n int) ([]uint16, error) {
	out := make([]uint16, 0, n)
	var walk func(w []uint16, depth int) error
	walk = func(w []uint16, depth int) error {
		if depth > 2 {
			return fmt.Errorf("%w: nested indirect palette segments", ErrInconsistent)
		}
		for i := 0; i < len(w); {
			if i+1 >= len(w) {
				return fmt.Errorf("%w: truncated palette segment", ErrInconsistent)
			}
			op, length := w[i], int(w[i+1])
			i += 2
			switch op {
			case 0:
				if i+length > len(w) || len(out)+length > n {
					return fmt.Errorf("%w: discrete palette segment of %d entries overflows", ErrInconsistent, length)
				}
				out = append(out, w[i:i+length]...)
				i += length
			case 1:
				if len(out) == 0 || i >= len(w) || len(out)+length > n {
					return fmt.Errorf("%w: bad linear palette segment", ErrInconsistent)
				}
				y0, y1 := float64(out[len(out)-1]), float64(w[i])
				i++
				for j := 1; j <= length; j++ {
					out = append(out, uint16(math.Round(y0+(y1-y0)*float64(j)/float64(length))))
				}
			case 2:
				if i+1 >= len(w) {
					return fmt.Errorf("%w: truncated indirect palette segment", ErrInconsistent)
				}
				off := int(uint32(w[i]) | uint32(w[i+1])<<16)
				i += 2
				// Copy `length` segments starting at word offset off.
				j := off
				for s := 0; s < length; s++ {
					if j+1 >= len(w) {
						return fmt.Errorf("%w: indirect palette segment out of range", ErrInconsistent)
					}
					segLen := 2 + int(w[j+1])
					switch w[j] {
					case 1:
						segLen = 3
					case 2:
						segLen = 4
					}
					if j+segLen > len(w) {
						return fmt.Errorf("%w: indirect palette segment out of range", ErrInconsistent)
					}
					if err := walk(w[j:j+segLen], depth+1); err != nil {
						return err
					}
					j += segLen
				}
			default:
				return fmt.Errorf("%w: palette segment opcode %d", ErrInconsistent, op)
			}
		}
		return nil
	}
	if err := walk(w, 0); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: segmented palette expands to %d entries, descriptor says %d", ErrInconsistent, len(out), n)
	}
	return out, nil
}
