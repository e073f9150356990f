package transform

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register JPEG for DecodeImage
	_ "image/png"  // register PNG for DecodeImage
	"io"
)

// MaxImagePixels bounds Width*Height of a raster DecodeImage accepts
// (256 Mpixel), checked from the header before any pixel is decoded.
const MaxImagePixels = 1 << 28

// DecodeImage decodes a JPEG or PNG (Go's image/jpeg and image/png) after
// checking its header size against MaxImagePixels.
// errors: ErrInput (unreadable, not JPEG/PNG, corrupt, too large).
func DecodeImage(r io.Reader) (image.Image, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, fmt.Errorf("%w: %s image %dx%d", ErrInput, format, cfg.Width, cfg.Height)
	}
	im, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, format, err)
	}
	return im, nil
}

// FromImage preprocesses an 8-bit raster image (a decoded JPEG or PNG) into
// dst (exactly SampleLen() values, [C,H,W] float32), as
// tools/train/preprocess.py does: grey level L as Pillow's convert("L")
// (grey images as is; colour: LumaU8 of the straight, non-premultiplied
// R,G,B, alpha ignored), v = float32(L) / 255 in [0,1], resize, normalize.
// 3-channel models without a grayscale step get R/255, G/255, B/255 planes.
// The DICOM-only steps (modality_lut, voi, invert_monochrome1) do not apply.
// 16-bit images use their high byte (v >> 8), where Pillow would clip.
// errors: ErrInput (nil or empty image), ErrShape (len(dst)).
func (p *Pipeline) FromImage(im image.Image, dst []float32) error {
	if err := p.checkDst(dst); err != nil {
		return err
	}
	if im == nil {
		return fmt.Errorf("%w: nil image", ErrInput)
	}
	b := im.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < 1 || h < 1 {
		return fmt.Errorf("%w: empty image %v", ErrInput, b)
	}
	n := w * h
	if p.spec.Channels == 1 || p.spec.Grayscale {
		buf := getBuf(n)
		defer putBuf(buf)
		v := *buf
		grayU8(im, func(i int, l uint8) { v[i] = float32(l) / 255 })
		return p.finish([][]float32{v}, w, h, dst)
	}
	rgbBuf := getBuf(3 * n)
	defer putBuf(rgbBuf)
	rgb := *rgbBuf
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := straightRGB(im.At(x, y))
			rgb[3*i], rgb[3*i+1], rgb[3*i+2] = float32(c.R)/255, float32(c.G)/255, float32(c.B)/255
			i++
		}
	}
	return p.fromRGB(n, w, h, func(i int) float32 { return rgb[i] }, dst)
}

// grayU8 calls set(i, L) for every pixel in row-major order with its 8-bit
// grey level as Pillow's convert("L") gives it.
func grayU8(im image.Image, set func(i int, l uint8)) {
	b := im.Bounds()
	w := b.Dx()
	switch m := im.(type) {
	case *image.Gray:
		for y := 0; y < b.Dy(); y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, l := range row {
				set(y*w+x, l)
			}
		}
		return
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := m.YOffset(x, y), m.COffset(x, y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				set((y-b.Min.Y)*w+x-b.Min.X, LumaU8(r, g, bl))
			}
		}
		return
	case *image.Gray16:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				set((y-b.Min.Y)*w+x-b.Min.X, uint8(m.Gray16At(x, y).Y>>8))
			}
		}
		return
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := straightRGB(im.At(x, y))
			set((y-b.Min.Y)*w+x-b.Min.X, LumaU8(c.R, c.G, c.B))
		}
	}
}

// straightRGB returns the 8-bit non-premultiplied colour of c (what Pillow
// stores for RGBA/P images), so alpha does not darken the grey level.
func straightRGB(c color.Color) color.NRGBA {
	switch v := c.(type) {
	case color.NRGBA:
		return v
	case color.Gray:
		return color.NRGBA{v.Y, v.Y, v.Y, 255}
	case color.YCbCr:
		r, g, b := color.YCbCrToRGB(v.Y, v.Cb, v.Cr)
		return color.NRGBA{r, g, b, 255}
	}
	return color.NRGBAModel.Convert(c).(color.NRGBA)
}
