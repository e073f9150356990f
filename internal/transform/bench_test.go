package transform

import (
	"image"
	"testing"

	"github.com/radflow/radflow/internal/pixel"
)

func chestSpec() Spec {
	return Spec{ModalityLUT: true, VOI: true, InstanceWindow: true, InvertMonochrome1: true, Grayscale: true,
		Height: 224, Width: 224, Mean: []float32{0.5}, Std: []float32{0.25}, Channels: 1}
}

// BenchmarkFromDICOM preprocesses synthetic frames to 224x224 with the
// chest model's steps: a 512x512 CT slice (int16, rescale -1024, window
// 40/400) and a 2000x2000 CR frame (uint16, 12 bits, MONOCHROME1, min-max).
func BenchmarkFromDICOM(b *testing.B) {
	needPixelLUTs(b)
	ct := make([]int16, 512*512)
	for i := range ct {
		ct[i] = int16((i*37)%3000 - 200)
	}
	cr := make([]uint16, 2000*2000)
	for i := range cr {
		cr[i] = uint16((i * 13) % 4096)
	}
	for _, c := range []struct {
		name    string
		img     *pixel.Image
		lut     pixel.ModalityLUT
		windows []pixel.VOIWindow
	}{
		{"CT-512x512", &pixel.Image{OutputPhotometric: "MONOCHROME2", Frames: []pixel.Frame{{Rows: 512, Columns: 512, SamplesPerPixel: 1, I16: ct}}},
			pixel.ModalityLUT{Slope: 1, Intercept: -1024}, []pixel.VOIWindow{{Center: 40, Width: 400}}},
		{"CR-2000x2000", &pixel.Image{OutputPhotometric: "MONOCHROME1", Frames: []pixel.Frame{{Rows: 2000, Columns: 2000, SamplesPerPixel: 1, U16: cr}}},
			pixel.ModalityLUT{Slope: 1}, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := New(chestSpec())
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]float32, p.SampleLen())
			b.ReportAllocs()
			for range b.N {
				if err := p.FromDICOM(c.img, 0, c.lut, c.windows, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFromImage preprocesses a 224x224 and a 1024x1024 8-bit grey
// image (the JPEG path after decoding).
func BenchmarkFromImage(b *testing.B) {
	for _, n := range []int{224, 1024} {
		im := image.NewGray(image.Rect(0, 0, n, n))
		for i := range im.Pix {
			im.Pix[i] = uint8(i * 7)
		}
		b.Run(image.Pt(n, n).String(), func(b *testing.B) {
			p, err := New(chestSpec())
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]float32, p.SampleLen())
			b.ReportAllocs()
			for range b.N {
				if err := p.FromImage(im, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
