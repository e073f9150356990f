package codec

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	ctRef = "cornerstoneWADOImageLoader/CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
	ctTS  = "cornerstoneWADOImageLoader/CTImage.dcm_"
	pyd   = "pydicom-data/"
	plj   = "pylibjpeg-data/"
	kh    = "known-hard/"
)

// decodeFrame decodes frame i of a shared file and returns its values
// after masking and sign extension.
func decodeFrame(t *testing.T, s sample, i int) ([]int, Result) {
	t.Helper()
	r, err := Decode(s.ts, s.frame(t, i), s.p)
	if err != nil {
		t.Fatalf("Decode frame %d: %v", i, err)
	}
	if len(r.Data) != s.p.frameBytes() {
		t.Fatalf("decoded %d bytes, want %d", len(r.Data), s.p.frameBytes())
	}
	return values(s.p, r.Data), r
}

// referenceFrame returns frame i of a twin: native, or decoded when the
// twin is itself a lossless codestream.
func referenceFrame(t *testing.T, rel string, i int) []int {
	t.Helper()
	ref := load(t, rel)
	if ref.native != nil {
		return values(ref.p, ref.nativeFrame(i))
	}
	v, _ := decodeFrame(t, ref, i)
	return v
}

// TestDecodeAgainstTwins compares decoded frames with the same image
// stored uncompressed (or losslessly in another syntax): identical for
// lossless syntaxes, within the measured maximum absolute difference for
// lossy ones.
func TestDecodeAgainstTwins(t *testing.T) {
	cases := []struct {
		file, twin  string
		frames      int
		maxDiff     int    // measured; 0 for lossless
		photometric string // expected Result.Photometric
	}{
		// The 512x512 signed 16-bit CT in every syntax.
		{ctTS + "JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm", ctRef, 1, 0, "MONOCHROME2"},
		{ctTS + "JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm", ctRef, 1, 0, "MONOCHROME2"},
		{ctTS + "JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm", ctRef, 1, 0, "MONOCHROME2"},
		{ctTS + "JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm", ctRef, 1, 0, "MONOCHROME2"},
		{ctTS + "JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm", ctRef, 1, 1, "MONOCHROME2"},
		{ctTS + "JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm", ctRef, 1, 5, "MONOCHROME2"},
		// JPEG-LS, lossless and near-lossless, grey and RGB in all interleave modes.
		{pyd + "JLSL_RGB_ILV1.dcm", pyd + "JLSL_RGB_ILV0.dcm", 1, 0, "RGB"},
		{pyd + "JLSL_RGB_ILV2.dcm", pyd + "JLSL_RGB_ILV0.dcm", 1, 0, "RGB"},
		{pyd + "JLSN_RGB_ILV0.dcm", pyd + "JLSL_RGB_ILV0.dcm", 1, 3, "RGB"},
		{pyd + "emri_small_jpeg_ls_lossless.dcm", pyd + "emri_small.dcm", 10, 0, "MONOCHROME2"},
		{plj + "JPEGLSLossless/MR_small_jpeg_ls_lossless.dcm", plj + "LittleEndianExplicit/MR_small.dcm", 1, 0, "MONOCHROME2"},
		{plj + "JPEGLS/RG2_JLSN.dcm", plj + "JPEGLSLossless/RG2_JLSL.dcm", 1, 4, "MONOCHROME2"},
		{plj + "JPEGLS/CT1_JLSN.dcm", "cornerstoneWADOImageLoader/CT1_J2KR", 1, 4, "MONOCHROME2"},
		// JPEG 2000: signed CT with codestream precision != Bits Stored
		// (B17), MR, CR, US with reversible/irreversible colour transform.
		{pyd + "693_J2KR.dcm", pyd + "693_UNCR.dcm", 1, 0, "MONOCHROME2"},
		{kh + "B17_693_J2KR.dcm", kh + "B17_ref_693_UNCR.dcm", 1, 0, "MONOCHROME2"},
		{kh + "B17_693_J2KI.dcm", kh + "B17_ref_693_UNCI.dcm", 1, 0, "MONOCHROME2"},
		{pyd + "MR2_J2KR.dcm", pyd + "MR2_UNCR.dcm", 1, 0, "MONOCHROME2"},
		{pyd + "MR2_J2KI.dcm", pyd + "MR2_UNCI.dcm", 1, 0, "MONOCHROME2"},
		{pyd + "US1_J2KR.dcm", pyd + "US1_UNCR.dcm", 1, 0, "RGB"},
		{pyd + "US1_J2KI.dcm", pyd + "US1_UNCI.dcm", 1, 0, "RGB"},
		{plj + "JPEG2000/JPEG2000.dcm", pyd + "JPEG2000_UNC.dcm", 1, 0, "MONOCHROME2"},
		{plj + "JPEG2000Lossless/MR_small_jp2klossless.dcm", plj + "LittleEndianExplicit/MR_small.dcm", 1, 0, "MONOCHROME2"},
		{plj + "JPEG2000/SC_rgb_gdcm_KY.dcm", pyd + "SC_rgb.dcm", 1, 0, "RGB"},
		// JPEG lossless process 14: 8-bit RGB (never colour-converted),
		// 12-bit MR, 10-bit CR.
		{plj + "JPEGLosslessSV1/SC_rgb_jpeg_gdcm.dcm", pyd + "SC_rgb.dcm", 1, 0, "RGB"},
		{plj + "JPEGLossless/JPEGLossless_1s_1f_u_16_12.dcm", pyd + "MR2_UNCR.dcm", 1, 0, "MONOCHROME2"},
		{plj + "JPEGLosslessSV1/RG2_JPLL.dcm", plj + "JPEGLSLossless/RG2_JLSL.dcm", 1, 0, "MONOCHROME2"},
		// JPEG baseline colour: the dcmtk-decompressed twins match exactly.
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cr.dcm", pyd + "SC_rgb_dcmtk_ebcr_dcmd.dcm", 1, 0, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+n1.dcm", pyd + "SC_rgb_dcmtk_ebcyn1_dcmd.dcm", 1, 0, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+n2.dcm", pyd + "SC_rgb_dcmtk_ebcyn2_dcmd.dcm", 1, 0, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+np.dcm", pyd + "SC_rgb_dcmtk_ebcynp_dcmd.dcm", 1, 0, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+s2.dcm", pyd + "SC_rgb_dcmtk_ebcys2_dcmd.dcm", 1, 0, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+s4.dcm", pyd + "SC_rgb_dcmtk_ebcys4_dcmd.dcm", 1, 0, "RGB"},
		// ... and against the original RGB: 4:4:4 and horizontal 4:2:2
		// stay within 6 (vertical chroma subsampling smears the bands' edges).
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cr.dcm", pyd + "SC_rgb.dcm", 1, 2, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+s4.dcm", pyd + "SC_rgb.dcm", 1, 6, "RGB"},
		{plj + "JPEGBaseline/SC_rgb_jpeg_dcmtk.dcm", pyd + "SC_rgb.dcm", 1, 6, "RGB"},
		{kh + "B25_SC_rgb_jpeg_ybr_full_422.dcm", kh + "B25_ref_SC_rgb.dcm", 1, 6, "RGB"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := load(t, c.file)
			for i := 0; i < c.frames; i++ {
				got, r := decodeFrame(t, s, i)
				want := referenceFrame(t, c.twin, i)
				if len(got) != len(want) {
					t.Fatalf("frame %d: %d samples, twin has %d", i, len(got), len(want))
				}
				if d := maxAbsDiff(got, want); d != c.maxDiff {
					t.Errorf("frame %d: max abs diff to %s = %d, measured %d", i, c.twin, d, c.maxDiff)
				}
				if r.Photometric != c.photometric {
					t.Errorf("Photometric %q, want %q", r.Photometric, c.photometric)
				}
			}
		})
	}
}

// TestDecodeKnownValues checks files without a twin against values from
// EXPECTED.md and the MANIFEST (pydicom+GDCM).
func TestDecodeKnownValues(t *testing.T) {
	cases := []struct {
		file          string
		min, max, sum int
		checkSum      bool
	}{
		{kh + "B27_JPGLosslessP14SV1_1s_1f_8b.dcm", 0, 255, 13572107, true},
		{kh + "B27_JPEG-LL.dcm", 0, 278, 3596452, true},
		{kh + "B17_693_J2KI.dcm", -2971, 2836, -2181784, true},
		{kh + "B17_693_J2KR.dcm", -2000, 2492, -3031175, true},
		// 8-bit baseline of the 16-bit CT: its own 8-bit data.
		{ctTS + "JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm", 30, 168, 0, false},
		// 12-bit extended, spectral selection and progressive: same coefficients.
		{ctTS + "JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", 497, 2708, 405866194, true},
		{ctTS + "JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm", 497, 2708, 405866194, true},
		{ctTS + "JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm", 497, 2708, 405866194, true},
		{plj + "JPEGExtended/JPEG-lossy.dcm", 0, 264, 0, false},
		{plj + "JPEGExtended/RG2_JPLY.dcm", 0, 960, 0, false},
		{plj + "JPEGLosslessSV1/JPEGLosslessP14SV1_1s_1f_u_16_16.dcm", 0, 63736, 0, false},
		{plj + "JPEG2000/ELSCINT1_JP2vsJ2K.dcm", 0, 4095, 0, false}, // JP2 file format
		{plj + "JPEG2000/RG1_J2KI.dcm", 803, 26512, 0, false},
		{plj + "JPEG2000Lossless/TOSHIBA_J2K_SIZ0_PixRep1.dcm", -2048, 1717, 0, false},
		{plj + "JPEG2000Lossless/TOSHIBA_J2K_SIZ1_PixRep0.dcm", 0, 65535, 0, false},
		{plj + "JPEG2000Lossless/966_fixed.dcm", 0, 4095, 0, false},
		{pyd + "JLSL_08_07_0_1F.dcm", 0, 127, 0, false},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			v, _ := decodeFrame(t, load(t, c.file), 0)
			mn, mx, sum := stats(v)
			if mn != c.min || mx != c.max || (c.checkSum && sum != c.sum) {
				t.Errorf("min %d max %d sum %d, want %d %d %d", mn, mx, sum, c.min, c.max, c.sum)
			}
		})
	}
}

// TestJPEGColour: YCbCr codestreams come out RGB; a codestream coded
// directly in RGB (no JFIF/Adobe marker, component IDs 0,1,2, Photometric
// RGB) is not converted (B25b).
func TestJPEGColour(t *testing.T) {
	pixel := func(v []int, cols, x, y int) [3]int {
		i := (y*cols + x) * 3
		return [3]int{v[i], v[i+1], v[i+2]}
	}
	t.Run("B25b", func(t *testing.T) {
		s := load(t, kh+"B25b_SC_jpeg_no_color_transform.dcm")
		v, r := decodeFrame(t, s, 0)
		if got := pixel(v, s.p.Columns, 0, 0); got != [3]int{244, 244, 244} {
			t.Errorf("pixel (0,0) = %v, want (244,244,244)", got)
		}
		if r.Photometric != "RGB" {
			t.Errorf("Photometric %q", r.Photometric)
		}
	})
	// Band colours of SC_rgb at column 50, rows 5,15,...,95 (EXPECTED.md B25).
	bands := [][3]int{{255, 0, 0}, {255, 128, 128}, {0, 255, 0}, {128, 255, 128}, {0, 0, 255},
		{128, 128, 255}, {0, 0, 0}, {64, 64, 64}, {192, 192, 192}, {255, 255, 255}}
	for _, f := range []string{
		kh + "B25_SC_rgb_jpeg_ybr_full_422.dcm",
		plj + "JPEGBaseline/SC_rgb_jpeg_lossy_gdcm.dcm", // YCbCr labelled RGB, IDs 1,2,3
		plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cr.dcm",    // Adobe transform 0
		plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+n1.dcm",
		plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+np.dcm",
		plj + "JPEGBaseline/SC_rgb_dcmtk_+eb+cy+s2.dcm",
	} {
		t.Run(f, func(t *testing.T) {
			s := load(t, f)
			v, _ := decodeFrame(t, s, 0)
			for k, want := range bands {
				got := pixel(v, s.p.Columns, 50, 5+10*k)
				for c := range 3 {
					if d := got[c] - want[c]; d > 6 || d < -6 {
						t.Errorf("row %d: %v, want %v ±6", 5+10*k, got, want)
						break
					}
				}
			}
		})
	}
}

// TestSynthesizedLossless round-trips images through an independent T.81
// Annex H encoder for every selection value and several precisions,
// including differences that only decode right modulo 2^16 (H.2.1).
func TestSynthesizedLossless(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	smooth := func(w, h, comps, p int) []int {
		max := 1<<p - 1
		v := make([]int, w*h*comps)
		for i := range v {
			x, y := (i/comps)%w, (i/comps)/w
			n := (x*max)/(w-1)/2 + (y*max)/(h-1)/3 + rng.IntN(max/8+1)
			if rng.IntN(17) == 0 {
				n = rng.IntN(max + 1) // spikes: large differences
			}
			v[i] = min(n, max)
		}
		return v
	}
	// wrap alternates extremes so that prediction + difference leaves
	// [0, 2^16) for every predictor, and has a difference of exactly 32768.
	wrap := func(w, h int) []int {
		v := make([]int, w*h)
		for i := range v {
			x, y := i%w, i/w
			switch {
			case (x+y)%2 == 0:
				v[i] = 65535
			case x%3 == 0:
				v[i] = 32767
			default:
				v[i] = 0
			}
		}
		return v
	}
	type img struct {
		name           string
		w, h, comps, p int
		px             []int
	}
	imgs := []img{
		{"p2", 17, 9, 1, 2, smooth(17, 9, 1, 2)},
		{"p7", 31, 12, 1, 7, smooth(31, 12, 1, 7)},
		{"p8", 64, 40, 1, 8, smooth(64, 40, 1, 8)},
		{"p8-rgb", 33, 21, 3, 8, smooth(33, 21, 3, 8)},
		{"p12", 50, 30, 1, 12, smooth(50, 30, 1, 12)},
		{"p16", 64, 48, 1, 16, smooth(64, 48, 1, 16)},
		{"p16-wrap", 40, 20, 1, 16, wrap(40, 20)},
	}
	for _, im := range imgs {
		for sv := 1; sv <= 7; sv++ {
			ts := JPEGLossless
			if sv == 1 {
				ts = JPEGLosslessSV1
			}
			t.Run(im.name+"/sv"+string(rune('0'+sv)), func(t *testing.T) {
				cs := encodeLossless(im.px, im.w, im.h, im.comps, im.p, sv)
				p := Params{Rows: im.h, Columns: im.w, SamplesPerPixel: im.comps, BitsAllocated: 8,
					BitsStored: im.p, Photometric: "MONOCHROME2"}
				if im.p > 8 {
					p.BitsAllocated = 16
				}
				if im.comps == 3 {
					p.Photometric = "RGB"
				}
				r, err := Decode(ts, cs, p)
				if err != nil {
					t.Fatal(err)
				}
				got := values(p, r.Data)
				for i := range got {
					if got[i] != im.px[i] {
						t.Fatalf("sample %d (x %d, y %d) = %d, want %d", i, (i/im.comps)%im.w,
							(i/im.comps)/im.w, got[i], im.px[i])
					}
				}
			})
		}
	}
}

// TestDecodeErrors: unsupported syntaxes, geometry mismatches, truncated
// and corrupt codestreams give the sentinel errors, never a panic.
func TestDecodeErrors(t *testing.T) {
	for _, ts := range []string{"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.1", ""} {
		_, err := Decode(ts, []byte{0xFF, 0xD8}, Params{Rows: 1, Columns: 1, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), ts) {
			t.Errorf("%q: %v, want ErrUnsupported naming the UID", ts, err)
		}
	}
	files := []string{
		ctTS + "JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
		ctTS + "JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm",
		ctTS + "JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
		ctTS + "JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm",
		ctTS + "JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
		ctTS + "JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm",
		ctTS + "JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm",
		pyd + "JLSL_RGB_ILV0.dcm",
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s := load(t, f)
			cs := s.frame(t, 0)
			for _, n := range []int{0, 1, 2, 20, 100, len(cs) / 4, len(cs) / 2, len(cs) * 9 / 10} {
				if _, err := Decode(s.ts, cs[:n:n], s.p); !errors.Is(err, ErrCorrupt) {
					t.Errorf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(cs), err)
				}
			}
			wrong := s.p
			wrong.Rows++
			if _, err := Decode(s.ts, cs, wrong); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Rows+1: %v, want ErrCorrupt", err)
			}
			// Flipped bytes in the entropy-coded data: an error or a frame
			// of the right size, never a crash.
			rng := rand.New(rand.NewPCG(3, 4))
			for range 20 {
				bad := append([]byte(nil), cs...)
				for range 8 {
					bad[len(bad)/3+rng.IntN(len(bad)*2/3)] ^= byte(1 + rng.IntN(255))
				}
				r, err := Decode(s.ts, bad, s.p)
				if err == nil && len(r.Data) != s.p.frameBytes() {
					t.Errorf("corrupt input decoded to %d bytes", len(r.Data))
				} else if err != nil && !errors.Is(err, ErrCorrupt) {
					t.Errorf("corrupt input: %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

// FuzzDecode: arbitrary bytes in every syntax never panic, and success
// means a frame of exactly the expected size.
func FuzzDecode(f *testing.F) {
	px := make([]int, 16*8)
	for i := range px {
		px[i] = i * 37 % 4096
	}
	f.Add(uint8(0), encodeLossless(px, 16, 8, 1, 12, 1))
	f.Add(uint8(0), encodeLossless(px[:16*8], 16, 8, 1, 16, 5))
	f.Add(uint8(1), []byte{0xFF, 0xD8, 0xFF, 0xF7, 0, 11, 8, 0, 8, 0, 16, 1, 1, 0x11, 0})
	f.Add(uint8(2), []byte{0xFF, 0x4F, 0xFF, 0x51, 0, 41})
	syntaxes := []string{JPEGLossless, JPEGLSLossless, JPEG2000Lossless, JPEGBaseline8Bit}
	f.Fuzz(func(t *testing.T, which uint8, src []byte) {
		p := Params{Rows: 8, Columns: 16, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16}
		r, err := Decode(syntaxes[int(which)%len(syntaxes)], src, p)
		if err == nil && len(r.Data) != p.frameBytes() {
			t.Fatalf("decoded %d bytes, want %d", len(r.Data), p.frameBytes())
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error %v is neither ErrCorrupt nor ErrUnsupported", err)
		}
	})
}
