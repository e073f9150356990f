package transform

import (
	"fmt"
	"sync"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel"
)

// Pipeline applies a Spec. It is immutable and safe for concurrent use.
type Pipeline struct {
	spec Spec
}

// New checks spec and returns its Pipeline.
// errors: ErrConfig (Channels not 1 or 3, size < 1, mean/std count neither 1
// nor Channels, std 0).
func New(spec Spec) (*Pipeline, error) {
	if spec.Channels == 0 {
		spec.Channels = 1
	}
	if spec.Channels != 1 && spec.Channels != 3 {
		return nil, fmt.Errorf("%w: %d channels; want 1 or 3", ErrConfig, spec.Channels)
	}
	if spec.Height < 1 || spec.Width < 1 || spec.Height > 8192 || spec.Width > 8192 {
		return nil, fmt.Errorf("%w: output size %dx%d", ErrConfig, spec.Width, spec.Height)
	}
	if len(spec.Mean) != len(spec.Std) || (len(spec.Mean) > 1 && len(spec.Mean) != spec.Channels) {
		return nil, fmt.Errorf("%w: %d mean and %d std values for %d channels", ErrConfig, len(spec.Mean), len(spec.Std), spec.Channels)
	}
	for _, s := range spec.Std {
		if s == 0 {
			return nil, fmt.Errorf("%w: std 0", ErrConfig)
		}
	}
	if spec.InvertMonochrome1 && !spec.VOI {
		return nil, fmt.Errorf("%w: %s needs %s", ErrConfig, OpInvertMonochrome1, OpVOI)
	}
	spec.Mean = append([]float32(nil), spec.Mean...)
	spec.Std = append([]float32(nil), spec.Std...)
	return &Pipeline{spec: spec}, nil
}

// Spec returns the pipeline's spec.
func (p *Pipeline) Spec() Spec { return p.spec }

// SampleLen is the number of float32 values one image takes in the output:
// Channels * Height * Width (one [C,H,W] sample of the model's [N,C,H,W]).
func (p *Pipeline) SampleLen() int { return p.spec.Channels * p.spec.Height * p.spec.Width }

// FromInstance is FromDICOM with the modality LUT and VOI windows read from
// in (pixel.ModalityLUTOf, pixel.VOIWindowsOf); img is pixel.Decode(in).
// errors: as FromDICOM.
func (p *Pipeline) FromInstance(in *dicom.Instance, img *pixel.Image, frame int, dst []float32) error {
	if in == nil {
		return fmt.Errorf("%w: nil instance", ErrInput)
	}
	return p.FromDICOM(img, frame, pixel.ModalityLUTOf(in), pixel.VOIWindowsOf(in), dst)
}

// FromDICOM preprocesses frame (0-based) of a decoded DICOM image into dst,
// which must hold exactly SampleLen() values ([C,H,W] float32, the model's
// units after normalize).
//
// Greyscale (MONOCHROME1/2, one sample per pixel): stored values → modality
// LUT (modality units, e.g. HU; stored values when the op is absent) → VOI
// into [0,1] with windows[0] when the spec allows instance windows and there
// is one, else the spec's window, else MinMax over the frame → 1 - v for
// MONOCHROME1 → resize → normalize; replicated when the model has 3
// channels.
//
// Colour (RGB after pixel's YBR/palette conversion, 3 samples): each sample
// / 255 for 8-bit frames, else / (2^BitsStored - 1) (/ 65535 for palette
// output), then BT.601 luma (LumaRGB) for 1-channel models or when the spec
// has grayscale, else kept as R,G,B planes; the DICOM-only steps do not apply.
//
// errors: ErrInput (nil image, frame out of range, empty or inconsistent
// frame, other photometric interpretations), ErrShape (len(dst)).
func (p *Pipeline) FromDICOM(img *pixel.Image, frame int, lut pixel.ModalityLUT, windows []pixel.VOIWindow, dst []float32) error {
	if err := p.checkDst(dst); err != nil {
		return err
	}
	if img == nil {
		return fmt.Errorf("%w: nil image", ErrInput)
	}
	if frame < 0 || frame >= len(img.Frames) {
		return fmt.Errorf("%w: frame %d of %d", ErrInput, frame, len(img.Frames))
	}
	f := &img.Frames[frame]
	if err := checkFrame(f); err != nil {
		return err
	}
	photometric := img.OutputPhotometric
	if photometric == "" {
		photometric = img.Photometric
	}
	n := f.Rows * f.Columns
	switch {
	case f.SamplesPerPixel == 1 && (photometric == "MONOCHROME1" || photometric == "MONOCHROME2"):
		buf := getBuf(n)
		defer putBuf(buf)
		v := *buf
		if p.spec.ModalityLUT {
			v = lut.Apply(f, 0, v)
		} else {
			for i := range v {
				v[i] = float32(f.At(i))
			}
		}
		if len(v) != n {
			return fmt.Errorf("%w: modality LUT gave %d values for %d pixels", ErrInput, len(v), n)
		}
		if p.spec.VOI {
			switch {
			case p.spec.InstanceWindow && len(windows) > 0 && windows[0].Width > 0:
				windows[0].Apply(v)
			case p.spec.Window != nil:
				p.spec.Window.Apply(v)
			default:
				MinMax(v)
			}
		}
		if p.spec.InvertMonochrome1 && photometric == "MONOCHROME1" {
			InvertMonochrome1(v)
		}
		return p.finish([][]float32{v}, f.Columns, f.Rows, dst)
	case f.SamplesPerPixel == 3 && photometric == "RGB":
		denom := float64(uint64(1)<<min(max(img.BitsStored, 1), 32) - 1)
		switch {
		case f.U8 != nil:
			denom = 255
		case img.Photometric == "PALETTE COLOR" && f.U16 != nil:
			denom = 65535
		}
		return p.fromRGB(n, f.Columns, f.Rows, func(i int) float32 { return float32(f.At(i) / denom) }, dst)
	}
	return fmt.Errorf("%w: %d samples per pixel with photometric interpretation %q", ErrInput, f.SamplesPerPixel, photometric)
}

// fromRGB builds 1 (luma) or 3 planes from an interleaved RGB source whose
// sample i, already in [0,1], is at(i).
func (p *Pipeline) fromRGB(n, w, h int, at func(i int) float32, dst []float32) error {
	rgbBuf := getBuf(3 * n)
	defer putBuf(rgbBuf)
	rgb := *rgbBuf
	for i := range rgb {
		rgb[i] = at(i)
	}
	if p.spec.Channels == 1 || p.spec.Grayscale {
		l := getBuf(n)
		defer putBuf(l)
		LumaRGB(rgb, *l)
		return p.finish([][]float32{*l}, w, h, dst)
	}
	planes := make([][]float32, 3)
	for c := range planes {
		b := getBuf(n)
		defer putBuf(b)
		planes[c] = *b
		for i := range planes[c] {
			planes[c][i] = rgb[3*i+c]
		}
	}
	return p.finish(planes, w, h, dst)
}

// finish resizes each w x h plane into its channel of dst (replicating one
// plane into 3 channels when needed) and normalises.
func (p *Pipeline) finish(planes [][]float32, w, h int, dst []float32) error {
	hw := p.spec.Height * p.spec.Width
	for c := 0; c < p.spec.Channels; c++ {
		out := dst[c*hw : (c+1)*hw]
		if c < len(planes) {
			if err := Resize(planes[c], w, h, out, p.spec.Width, p.spec.Height); err != nil {
				return err
			}
		} else {
			copy(out, dst[:hw])
		}
	}
	if len(p.spec.Mean) > 0 {
		for c := 0; c < p.spec.Channels; c++ {
			k := min(c, len(p.spec.Mean)-1)
			Normalize(dst[c*hw:(c+1)*hw], p.spec.Mean[k], p.spec.Std[k])
		}
	}
	return nil
}

func (p *Pipeline) checkDst(dst []float32) error {
	if len(dst) != p.SampleLen() {
		return fmt.Errorf("%w: destination has %d values, want %d (%dx%dx%d)", ErrShape, len(dst), p.SampleLen(), p.spec.Channels, p.spec.Height, p.spec.Width)
	}
	return nil
}

// checkFrame rejects frames whose sample slice is shorter than their
// declared size (so indexing cannot panic).
func checkFrame(f *pixel.Frame) error {
	if f.Rows < 1 || f.Columns < 1 || f.SamplesPerPixel < 1 {
		return fmt.Errorf("%w: frame %dx%d with %d samples per pixel", ErrInput, f.Columns, f.Rows, f.SamplesPerPixel)
	}
	var l int
	switch {
	case f.U8 != nil:
		l = len(f.U8)
	case f.I8 != nil:
		l = len(f.I8)
	case f.U16 != nil:
		l = len(f.U16)
	case f.I16 != nil:
		l = len(f.I16)
	case f.U32 != nil:
		l = len(f.U32)
	case f.I32 != nil:
		l = len(f.I32)
	case f.F32 != nil:
		l = len(f.F32)
	case f.F64 != nil:
		l = len(f.F64)
	default:
		return fmt.Errorf("%w: frame has no samples", ErrInput)
	}
	if l < f.Len() {
		return fmt.Errorf("%w: frame %dx%dx%d holds %d samples", ErrInput, f.Columns, f.Rows, f.SamplesPerPixel, l)
	}
	return nil
}

// Scratch planes are pooled: a 2000x2000 CR frame needs 16 MB of float32
// per plane, and a batch would otherwise allocate that per image.
var bufPool sync.Pool

func getBuf(n int) *[]float32 {
	if b, ok := bufPool.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

func putBuf(b *[]float32) { bufPool.Put(b) }
