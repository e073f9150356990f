package dicomweb

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel"
)

// renderMedia picks image/png (default) or image/jpeg from Accept.
func renderMedia(accept string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return MediaPNG, true
	}
	for _, rng := range splitAccept(accept) {
		mt, _, err := parseMediaType(strings.TrimSpace(rng))
		if err != nil {
			continue
		}
		switch mt {
		case MediaPNG, "image/*", "*/*":
			return MediaPNG, true
		case MediaJPEG:
			return MediaJPEG, true
		}
	}
	return "", false
}

// parseWindow parses the rendered "window" parameter: center,width[,function]
// with function linear (default), linear-exact or sigmoid (PS3.18 8.3.5.1.3).
func parseWindow(s string) (pixel.VOIWindow, error) {
	f := strings.Split(s, ",")
	if len(f) < 2 || len(f) > 3 {
		return pixel.VOIWindow{}, fmt.Errorf("window must be center,width[,function]")
	}
	c, err1 := strconv.ParseFloat(strings.TrimSpace(f[0]), 64)
	wd, err2 := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
	if err1 != nil || err2 != nil || math.IsNaN(c) || math.IsInf(c, 0) || math.IsNaN(wd) || math.IsInf(wd, 0) {
		return pixel.VOIWindow{}, fmt.Errorf("window center and width must be numbers")
	}
	fn := "LINEAR"
	if len(f) == 3 {
		switch strings.ToLower(strings.TrimSpace(f[2])) {
		case "linear":
		case "linear-exact", "linear_exact":
			fn = "LINEAR_EXACT"
		case "sigmoid":
			fn = "SIGMOID"
		default:
			return pixel.VOIWindow{}, fmt.Errorf("window function must be linear, linear-exact or sigmoid")
		}
	}
	if (fn == "LINEAR" && wd < 1) || wd <= 0 {
		return pixel.VOIWindow{}, fmt.Errorf("window width must be >= 1 (linear) or > 0")
	}
	return pixel.VOIWindow{Center: c, Width: wd, Function: fn}, nil
}

// rendered handles WADO-RS /rendered (instance: first frame; frame level:
// that frame): PNG (default) or JPEG (Accept: image/jpeg, quality=1..100),
// 8-bit. Greyscale: modality LUT, then the window query parameter, else the
// instance's first Window Center/Width, else its first VOI LUT, else the
// frame's min..max; MONOCHROME1 inverted. Colour: samples scaled to 8 bits.
func (s *Service) rendered(w http.ResponseWriter, r *http.Request) {
	media, ok := renderMedia(r.Header.Get("Accept"))
	if !ok {
		httpError(w, http.StatusNotAcceptable, "rendered images are available as image/png or image/jpeg")
		return
	}
	var win *pixel.VOIWindow
	if ws := r.URL.Query().Get("window"); ws != "" {
		v, err := parseWindow(ws)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		win = &v
	}
	quality := 90
	if qs := r.URL.Query().Get("quality"); qs != "" {
		q, err := strconv.Atoi(qs)
		if err != nil || q < 1 || q > 100 {
			httpError(w, http.StatusBadRequest, "quality must be an integer 1..100")
			return
		}
		quality = q
	}
	_, in, ok := s.addressedInstance(w, r)
	if !ok {
		return
	}
	frame := 1
	if fs := r.PathValue("frames"); fs != "" {
		n, err := strconv.Atoi(fs)
		if err != nil || n < 1 {
			httpError(w, http.StatusBadRequest, "rendered needs a single frame number starting at 1")
			return
		}
		frame = n
	}
	img, err := pixel.Decode(in)
	if err != nil {
		s.storedError(w, r, err)
		return
	}
	if frame > len(img.Frames) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("frame %d does not exist; the instance has %d frames", frame, len(img.Frames)))
		return
	}
	out, err := Render(in, img, frame-1, win)
	if err != nil {
		s.storedError(w, r, err)
		return
	}
	var buf bytes.Buffer
	if media == MediaJPEG {
		err = jpeg.Encode(&buf, out, &jpeg.Options{Quality: quality})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, out)
	}
	if err != nil {
		s.storedError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", media)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// Render turns frame f (0-based) of a decoded instance into an 8-bit image:
// *image.Gray for one sample per pixel, *image.RGBA for colour. For
// greyscale the modality LUT applies, then win (when non-nil), else the
// instance's first Window Center/Width, else its first VOI LUT, else a
// linear min..max window; MONOCHROME1 is inverted; outputs are
// round(255*v). Colour samples are scaled from Bits Stored to 8 bits.
// errors: pixel.ErrInconsistent for a frame index out of range or an
// unsupported sample layout.
func Render(in *dicom.Instance, img *pixel.Image, f int, win *pixel.VOIWindow) (image.Image, error) {
	if f < 0 || f >= len(img.Frames) {
		return nil, fmt.Errorf("%w: frame %d of %d", pixel.ErrInconsistent, f+1, len(img.Frames))
	}
	fr := &img.Frames[f]
	rows, cols := fr.Rows, fr.Columns
	switch fr.SamplesPerPixel {
	case 1:
		v := pixel.ModalityLUTOf(in).Apply(fr, 0, nil)
		switch {
		case win != nil:
			win.Apply(v)
		case len(pixel.VOIWindowsOf(in)) > 0:
			pixel.VOIWindowsOf(in)[0].Apply(v)
		case len(pixel.VOILUTsOf(in)) > 0:
			pixel.VOILUTsOf(in)[0].Apply(v)
		default:
			minMax(v)
		}
		if img.OutputPhotometric == "MONOCHROME1" {
			pixel.InvertMonochrome1(v)
		}
		g := image.NewGray(image.Rect(0, 0, cols, rows))
		for i, x := range v {
			g.Pix[i] = to8(float64(x))
		}
		return g, nil
	case 3, 4:
		spp := fr.SamplesPerPixel
		maxv := math.Exp2(float64(img.BitsStored)) - 1
		if fr.F32 != nil || fr.F64 != nil || maxv <= 0 {
			maxv = 1
		}
		out := image.NewRGBA(image.Rect(0, 0, cols, rows))
		for i := 0; i < rows*cols; i++ {
			out.Set(i%cols, i/cols, color.RGBA{
				R: to8(fr.At(i*spp) / maxv), G: to8(fr.At(i*spp+1) / maxv), B: to8(fr.At(i*spp+2) / maxv), A: 255,
			})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %d samples per pixel", pixel.ErrInconsistent, fr.SamplesPerPixel)
}

// minMax maps v linearly from its min..max to 0..1 in place.
func minMax(v []float32) {
	if len(v) == 0 {
		return
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	span := hi - lo
	for i, x := range v {
		if span == 0 {
			v[i] = 0
		} else {
			v[i] = (x - lo) / span
		}
	}
}

func to8(x float64) uint8 {
	if !(x > 0) {
		return 0
	}
	if x >= 1 {
		return 255
	}
	return uint8(math.Round(255 * x))
}
