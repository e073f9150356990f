package transform

import (
	"fmt"
	"math"
)

// Resize resamples the single-channel row-major image src (sw x sh float32
// values) into dst (dw x dh) with the antialiased bilinear filter of
// Pillow's Image.resize(..., BILINEAR) on a mode "F" image, reproduced
// operation for operation so results match Pillow to float32 rounding:
//
//   - separable: a horizontal pass over the source rows the vertical pass
//     needs, stored as float32, then a vertical pass; a pass whose size does
//     not change is skipped (same size in both = plain copy);
//   - per axis, scale = in/out, filterscale = max(scale, 1), support =
//     1 * filterscale (the triangle's support widens when shrinking: the
//     antialias);
//   - output pixel i has centre c = (i + 0.5) * scale in input coordinates;
//     it reads the input pixels j from trunc(c - support + 0.5) up to, not
//     including, trunc(c + support + 0.5), clipped to the image, with weight
//     tri((j - c + 0.5) / filterscale), tri(x) = max(0, 1 - |x|), weights
//     normalised to sum 1
//     (all in float64);
//   - accumulation in float64, each output rounded to float32.
//
// Units are those of src. errors: ErrInput (a size < 1, or src/dst shorter
// than the sizes say).
func Resize(src []float32, sw, sh int, dst []float32, dw, dh int) error {
	if sw < 1 || sh < 1 || dw < 1 || dh < 1 {
		return fmt.Errorf("%w: resize %dx%d -> %dx%d", ErrInput, sw, sh, dw, dh)
	}
	if len(src) < sw*sh || len(dst) < dw*dh {
		return fmt.Errorf("%w: resize %dx%d -> %dx%d with %d source and %d destination values", ErrInput, sw, sh, dw, dh, len(src), len(dst))
	}
	needH, needV := sw != dw, sh != dh
	if !needH && !needV {
		copy(dst, src[:sw*sh])
		return nil
	}
	vb, vk, vks := pillowCoeffs(sh, dh)
	img, rows := src, sh
	if needH {
		first := vb[0]
		last := vb[2*(dh-1)] + vb[2*(dh-1)+1]
		hb, hk, hks := pillowCoeffs(sw, dw)
		rows = last - first
		tmp := dst
		if needV {
			buf := getBuf(dw * rows)
			defer putBuf(buf)
			tmp = *buf
		}
		for y := 0; y < rows; y++ {
			in := src[(y+first)*sw : (y+first+1)*sw]
			out := tmp[y*dw : (y+1)*dw]
			for x := range out {
				lo, n := hb[2*x], hb[2*x+1]
				k := hk[x*hks : x*hks+n]
				ss := 0.0
				for j, w := range k {
					ss += float64(in[lo+j]) * w
				}
				out[x] = float32(ss)
			}
		}
		if !needV {
			return nil
		}
		for i := 0; i < dh; i++ {
			vb[2*i] -= first
		}
		img = tmp
	}
	// Vertical pass row by row (contiguous reads) into a float64
	// accumulator row; each output still sums its taps in ascending j, so
	// the result is bit-identical to the per-pixel loop.
	acc := make([]float64, dw)
	for y := 0; y < dh; y++ {
		lo, n := vb[2*y], vb[2*y+1]
		k := vk[y*vks : y*vks+n]
		clear(acc)
		for j, w := range k {
			row := img[(lo+j)*dw : (lo+j+1)*dw]
			for x, v := range row {
				acc[x] += float64(v) * w
			}
		}
		out := dst[y*dw : (y+1)*dw]
		for x, v := range acc {
			out[x] = float32(v)
		}
	}
	return nil
}

// pillowCoeffs is Pillow's precompute_coeffs (Resample.c) for the bilinear
// filter over the whole axis: bounds[2i], bounds[2i+1] = first input index
// and count for output i; weights at k[i*ksize:].
func pillowCoeffs(in, out int) (bounds []int, k []float64, ksize int) {
	scale := float64(in) / float64(out)
	filterscale := max(scale, 1)
	support := 1.0 * filterscale
	ksize = int(math.Ceil(support))*2 + 1
	bounds = make([]int, 2*out)
	k = make([]float64, out*ksize)
	ss := 1 / filterscale
	for i := 0; i < out; i++ {
		center := (float64(i) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), in) - xmin
		kk := k[i*ksize : i*ksize+xmax]
		ww := 0.0
		for x := range kk {
			w := math.Abs((float64(x+xmin) - center + 0.5) * ss)
			if w < 1 {
				w = 1 - w
			} else {
				w = 0
			}
			kk[x] = w
			ww += w
		}
		if ww != 0 {
			for x := range kk {
				kk[x] /= ww
			}
		}
		bounds[2*i], bounds[2*i+1] = xmin, xmax
	}
	return bounds, k, ksize
}
