package transform

import "math"

// MinMax rescales v in place to [0,1]: v' = (v - min) / (max - min), min and
// max over v (NaNs ignored; arithmetic in float64). A constant (or empty) v becomes all 0.
// Input: any units (e.g. modality values); output: unitless [0,1]. This is
// the VOI fallback when neither the instance nor the config has a window.
func MinMax(v []float32) {
	if len(v) == 0 {
		return
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	r := float64(hi) - float64(lo)
	if !(r > 0) || math.IsInf(r, 0) {
		clear(v)
		return
	}
	l, inv := float64(lo), 1/r
	for i, x := range v {
		v[i] = float32((float64(x) - l) * inv)
	}
}

// InvertMonochrome1 maps v to 1 - v in place. Input: [0,1] display values of
// a MONOCHROME1 image (minimum = white); output: [0,1] with bright = dense,
// as in MONOCHROME2 and in the training images.
func InvertMonochrome1(v []float32) {
	for i, x := range v {
		v[i] = 1 - x
	}
}

// LumaU8 is ITU-R BT.601 luma of 8-bit R, G, B exactly as Pillow's
// convert("L") computes it: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16,
// i.e. R*299/1000 + G*587/1000 + B*114/1000 in 16-bit fixed point, rounded.
// Output: 8-bit grey level.
func LumaU8(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// LumaRGB writes BT.601 luma L = 0.299 R + 0.587 G + 0.114 B of the
// pixel-interleaved rgb (R,G,B,R,G,B,...; len 3*len(dst)) into dst, in
// float64 rounded to float32. Units: those of rgb (e.g. [0,1]).
func LumaRGB(rgb []float32, dst []float32) {
	for i := range dst {
		r, g, b := float64(rgb[3*i]), float64(rgb[3*i+1]), float64(rgb[3*i+2])
		dst[i] = float32(r*0.299 + g*0.587 + b*0.114)
	}
}

// Normalize maps v in place to (v - mean) / std in float32 arithmetic (as
// numpy/torch do on float32 arrays). Units: input as the model was trained
// (here [0,1]); output unitless. std must be non-zero (ParseSteps checks).
func Normalize(v []float32, mean, std float32) {
	for i, x := range v {
		v[i] = (x - mean) / std
	}
}
