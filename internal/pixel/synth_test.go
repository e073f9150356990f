package pixel

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
	dt "github.com/radflow/radflow/internal/dicom/dicomtest"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const (
	tsELE = "1.2.840.10008.1.2.1"
	tsEBE = "1.2.840.10008.1.2.2"
	tsEnc = "1.2.840.10008.1.2.1.98" // encapsulated uncompressed: framing without a codec
)

// image returns the Image Pixel module elements.
func image(rows, cols, spp, ba, bs, hb, rep int, photometric string, extra ...dt.Elem) []dt.Elem {
	e := []dt.Elem{
		dt.US(0x0028, 0x0002, uint16(spp)),
		dt.S(0x0028, 0x0004, "CS", photometric),
		dt.US(0x0028, 0x0010, uint16(rows)),
		dt.US(0x0028, 0x0011, uint16(cols)),
		dt.US(0x0028, 0x0100, uint16(ba)),
		dt.US(0x0028, 0x0101, uint16(bs)),
		dt.US(0x0028, 0x0102, uint16(hb)),
		dt.US(0x0028, 0x0103, uint16(rep)),
	}
	return append(e, extra...)
}

func frames(n int) dt.Elem { return dt.S(0x0028, 0x0008, "IS", strings.TrimSpace(string(rune('0'+n)))) }

func pixelsOB(b []byte) dt.Elem { return dt.Bytes(0x7FE0, 0x0010, "OB", b) }
func pixelsOW(b []byte) dt.Elem { return dt.Bytes(0x7FE0, 0x0010, "OW", b) }

func build(t *testing.T, ts string, enc dt.Encoding, elems ...dt.Elem) *dicom.Instance {
	t.Helper()
	in, err := dicom.ParseBytes(dt.Part10(ts, enc, elems...))
	if err != nil {
		t.Fatalf("ParseBytes: %v", err)
	}
	return in
}

func decodeOK(t *testing.T, in *dicom.Instance) *Image {
	t.Helper()
	img, err := Decode(in)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return img
}

func samples(f *Frame) []float64 {
	out := make([]float64, f.Len())
	for i := range out {
		out[i] = f.At(i)
	}
	return out
}

func le16s(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func TestOneBit(t *testing.T) {
	// Two 3x3 frames = 18 bits, packed contiguously LSB first (PS3.5 8.1.1).
	bits := []uint8{1, 0, 1, 1, 0, 0, 0, 1, 1 /**/, 0, 1, 0, 0, 1, 1, 1, 0, 1}
	packed := make([]byte, 4) // 18 bits -> 3 bytes, plus a pad byte
	for i, b := range bits {
		packed[i/8] |= b << (i % 8)
	}
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(3, 3, 1, 1, 1, 0, 0, "MONOCHROME2", frames(2)), pixelsOB(packed))...))
	if len(img.Frames) != 2 {
		t.Fatalf("frames = %d", len(img.Frames))
	}
	got := append(slices.Clone(img.Frames[0].U8), img.Frames[1].U8...)
	if !slices.Equal(got, bits) {
		t.Errorf("bits = %v, want %v", got, bits)
	}
}

func TestMaskAndSignExtend(t *testing.T) {
	// Signed 12-bit in 16 with garbage above High Bit.
	raw := le16s(0xF7FF, 0x0800, 0xA000, 0x0FFF)
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(2, 2, 1, 16, 12, 11, 1, "MONOCHROME2"), pixelsOW(raw))...))
	if got, want := img.Frames[0].I16, []int16{2047, -2048, 0, -1}; !slices.Equal(got, want) {
		t.Errorf("signed 12-bit = %v, want %v", got, want)
	}
	// Unsigned 12 bits stored at High Bit 15 (shifted).
	raw = le16s(0xFFF0, 0x0010, 0x800F, 0x1234)
	img = decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(2, 2, 1, 16, 12, 15, 0, "MONOCHROME2"), pixelsOW(raw))...))
	if got, want := img.Frames[0].U16, []uint16{0xFFF, 1, 0x800, 0x123}; !slices.Equal(got, want) {
		t.Errorf("12 bits at high bit 15 = %v, want %v", got, want)
	}
	// Signed 8-bit stored in 6 bits.
	img = decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(1, 2, 1, 8, 6, 5, 1, "MONOCHROME2"), pixelsOB([]byte{0x20, 0xDF}))...))
	if got, want := img.Frames[0].I8, []int8{-32, 31}; !slices.Equal(got, want) {
		t.Errorf("signed 6-bit = %v, want %v", got, want)
	}
}

func TestBigEndian32(t *testing.T) {
	var raw []byte
	vals := []int32{-70000, 1 << 30, 0, -1}
	for _, v := range vals {
		raw = binary.BigEndian.AppendUint32(raw, uint32(v))
	}
	img := decodeOK(t, build(t, tsEBE, dt.Encoding{BigEndian: true}, append(image(2, 2, 1, 32, 32, 31, 1, "MONOCHROME2"), pixelsOW(raw))...))
	if got := img.Frames[0].I32; !slices.Equal(got, vals) {
		t.Errorf("big endian 32-bit = %v, want %v", got, vals)
	}
}

func TestNativeLengths(t *testing.T) {
	mk := func(data []byte) (*Image, error) {
		return Decode(build(t, tsELE, dt.Encoding{}, append(image(3, 3, 1, 8, 8, 7, 0, "MONOCHROME1"), pixelsOB(data))...))
	}
	nine := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for name, data := range map[string][]byte{"odd unpadded": nine, "odd padded": append(slices.Clone(nine), 0), "longer trimmed": append(slices.Clone(nine), 1, 2, 3, 4, 5)} {
		img, err := mk(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(img.Frames[0].U8, nine) || img.OutputPhotometric != "MONOCHROME1" {
			t.Errorf("%s: %v %s", name, img.Frames[0].U8, img.OutputPhotometric)
		}
	}
	if _, err := mk(nine[:8]); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "needs 9 bytes, has 8") {
		t.Errorf("short: err = %v", err)
	}
}

func TestMultiFrameNative(t *testing.T) {
	raw := le16s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(2, 2, 1, 16, 16, 15, 0, "MONOCHROME2", frames(3)), pixelsOW(raw))...))
	if len(img.Frames) != 3 || !slices.Equal(img.Frames[2].U16, []uint16{9, 10, 11, 12}) {
		t.Errorf("frames %d, third %v", len(img.Frames), img.Frames[2].U16)
	}
	if st := Stats(img); st.Sum != 78 || st.Min != 1 || st.Max != 12 || st.Count != 12 {
		t.Errorf("stats %+v", st)
	}
}

func TestPlanarConfiguration(t *testing.T) {
	// 2 pixels RGB planar: RR GG BB.
	planar := []byte{10, 11, 20, 21, 30, 31}
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(1, 2, 3, 8, 8, 7, 0, "RGB", dt.US(0x0028, 0x0006, 1)), pixelsOB(planar))...))
	if got, want := img.Frames[0].U8, []uint8{10, 20, 30, 11, 21, 31}; !slices.Equal(got, want) {
		t.Errorf("de-planarised = %v, want %v", got, want)
	}
}

func TestYBRNative(t *testing.T) {
	// YBR_FULL: (Y,Cb,Cr) = (128,128,128) grey; (76,85,255) ≈ red.
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(1, 2, 3, 8, 8, 7, 0, "YBR_FULL"), pixelsOB([]byte{128, 128, 128, 76, 85, 255}))...))
	if img.OutputPhotometric != "RGB" {
		t.Errorf("output %q", img.OutputPhotometric)
	}
	if got := img.Frames[0].U8; !slices.Equal(got[:3], []uint8{128, 128, 128}) || got[3] < 250 || got[4] > 3 || got[5] > 3 {
		t.Errorf("YBR_FULL -> %v", got)
	}
	// YBR_FULL_422: Y1 Y2 Cb Cr for each pixel pair.
	img = decodeOK(t, build(t, tsELE, dt.Encoding{}, append(image(1, 2, 3, 8, 8, 7, 0, "YBR_FULL_422"), pixelsOB([]byte{76, 128, 85, 255}))...))
	f := img.Frames[0]
	if f.Len() != 6 || f.U8[0] < 250 || f.U8[1] > 3 {
		t.Errorf("YBR_FULL_422 -> %v", f.U8)
	}
	// The second pixel shares the chroma: Y=128 with red chroma.
	if want := uint8(math.Round(128 + 1.402*127)); f.U8[3] != 255 && f.U8[3] != want {
		t.Errorf("pixel 2 red = %d", f.U8[3])
	}
}

func TestEncapsulatedFraming(t *testing.T) {
	f0, f1, f2 := le16s(1, 2, 3, 4), le16s(5, 6, 7, 8), le16s(9, 10, 11, 12)
	u32 := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		return b
	}
	u64 := func(v ...uint64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
		return b
	}
	mod := image(2, 2, 1, 16, 16, 15, 0, "MONOCHROME2", frames(3))
	cases := []struct {
		name  string
		extra []dt.Elem
		frags [][]byte
	}{
		{"no BOT one fragment per frame", nil, [][]byte{{}, f0, f1, f2}},
		{"BOT", nil, [][]byte{u32(0, 16, 32), f0, f1, f2}},
		{"BOT with a frame in two fragments", nil, [][]byte{u32(0, 16, 40), f0, f1[:4], f1[4:], f2}},
		{"Extended Offset Table", []dt.Elem{dt.Bytes(0x7FE0, 0x0001, "OV", u64(0, 16, 32)), dt.Bytes(0x7FE0, 0x0002, "OV", u64(8, 8, 8))}, [][]byte{{}, f0, f1, f2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			el := append(slices.Clone(mod), c.extra...)
			el = append(el, dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: c.frags})
			img := decodeOK(t, build(t, tsEnc, dt.Encoding{}, el...))
			var got []uint16
			for _, f := range img.Frames {
				got = append(got, f.U16...)
			}
			if want := []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; !slices.Equal(got, want) {
				t.Errorf("samples = %v, want %v", got, want)
			}
		})
	}
	t.Run("fewer fragments than frames", func(t *testing.T) {
		el := append(slices.Clone(mod), dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: [][]byte{{}, f0, f1}})
		if _, err := Decode(build(t, tsEnc, dt.Encoding{}, el...)); !errors.Is(err, ErrInconsistent) {
			t.Errorf("err = %v, want ErrInconsistent", err)
		}
	})
}

// TestSplitFramesByMarkers: no offset table, more fragments than frames:
// frames begin at fragments starting with a JPEG SOI or J2K SOC marker.
func TestSplitFramesByMarkers(t *testing.T) {
	pd := &dicom.PixelData{Encapsulated: true, Fragments: [][]byte{{0xFF, 0xD8, 1}, {2, 3}, {0xFF, 0xD8, 4}, {5}, {6}}}
	got, err := splitFrames(pd, 2, nil, nil, "1.2.840.10008.1.2.4.50")
	if err != nil || len(got) != 2 || string(got[0]) != "\xff\xd8\x01\x02\x03" || string(got[1]) != "\xff\xd8\x04\x05\x06" {
		t.Errorf("frames = %q, err %v", got, err)
	}
	pd.Fragments[2] = []byte{7}
	if _, err := splitFrames(pd, 2, nil, nil, "1.2.840.10008.1.2.4.90"); !errors.Is(err, ErrInconsistent) {
		t.Errorf("err = %v, want ErrInconsistent", err)
	}
}

// rleEncode encodes one frame (PS3.5 Annex G) using a repeat run for the
// first byte pair of each segment and literal runs for the rest.
func rleEncode(samples []uint32, spp, bytesPer int) []byte {
	nseg := spp * bytesPer
	pixels := len(samples) / spp
	var segs [][]byte
	for s := 0; s < spp; s++ {
		for b := 0; b < bytesPer; b++ {
			plane := make([]byte, pixels)
			for p := 0; p < pixels; p++ {
				plane[p] = byte(samples[p*spp+s] >> (8 * (bytesPer - 1 - b)))
			}
			var seg []byte
			i := 0
			if pixels >= 2 && plane[0] == plane[1] {
				seg = append(seg, 0xFF, plane[0]) // -1: repeat twice
				i = 2
			}
			for i < len(plane) {
				n := min(128, len(plane)-i)
				seg = append(seg, byte(n-1))
				seg = append(seg, plane[i:i+n]...)
				i += n
			}
			if len(seg)%2 == 1 {
				seg = append(seg, 0x80) // no-op byte keeps segments even
			}
			segs = append(segs, seg)
		}
	}
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, uint32(nseg))
	off := 64
	for i, s := range segs {
		binary.LittleEndian.PutUint32(hdr[4+4*i:], uint32(off))
		off += len(s)
	}
	for _, s := range segs {
		hdr = append(hdr, s...)
	}
	return hdr
}

func TestRLE(t *testing.T) {
	for _, c := range []struct {
		bits, spp, frames int
		photometric       string
	}{{8, 1, 1, "MONOCHROME2"}, {8, 3, 2, "RGB"}, {16, 1, 2, "MONOCHROME2"}, {16, 3, 1, "RGB"}, {32, 1, 1, "MONOCHROME2"}, {32, 3, 2, "RGB"}} {
		t.Run(c.photometric+string(rune('0'+c.bits/8)), func(t *testing.T) {
			rows, cols := 3, 5
			frags := [][]byte{{}}
			var want []float64
			for f := 0; f < c.frames; f++ {
				s := make([]uint32, rows*cols*c.spp)
				for i := range s {
					s[i] = uint32(i*2654435761+f*7) & uint32(uint64(1)<<c.bits-1)
				}
				s[1] = s[0]
				for _, v := range s {
					want = append(want, float64(v))
				}
				frags = append(frags, rleEncode(s, c.spp, c.bits/8))
			}
			el := append(image(rows, cols, c.spp, c.bits, c.bits, c.bits-1, 0, c.photometric, frames(c.frames)), dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: frags})
			img := decodeOK(t, build(t, "1.2.840.10008.1.2.5", dt.Encoding{}, el...))
			var got []float64
			for i := range img.Frames {
				got = append(got, samples(&img.Frames[i])...)
			}
			if !slices.Equal(got, want) {
				t.Errorf("RLE decode differs:\n got %v\nwant %v", got, want)
			}
		})
	}
	t.Run("short segment", func(t *testing.T) {
		frag := rleEncode([]uint32{1, 2, 3, 4}, 1, 1)
		frag = frag[:len(frag)-2]
		el := append(image(2, 2, 1, 8, 8, 7, 0, "MONOCHROME2"), dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: [][]byte{{}, frag}})
		if _, err := Decode(build(t, "1.2.840.10008.1.2.5", dt.Encoding{}, el...)); !errors.Is(err, ErrCodec) {
			t.Errorf("err = %v, want ErrCodec", err)
		}
	})
}

func TestPalette(t *testing.T) {
	// 65536-entry 16-bit palette (descriptor first value 0).
	n := 65536
	var r, g, b []uint16
	for i := 0; i < n; i++ {
		r, g, b = append(r, uint16(i)), append(g, uint16(n-1-i)), append(b, 0x1234)
	}
	desc := func(e uint16) dt.Elem { return dt.US(0x0028, e, 0, 0, 16) }
	el := append(image(1, 3, 1, 16, 16, 15, 0, "PALETTE COLOR"),
		desc(0x1101), desc(0x1102), desc(0x1103),
		dt.Bytes(0x0028, 0x1201, "OW", le16s(r...)), dt.Bytes(0x0028, 0x1202, "OW", le16s(g...)), dt.Bytes(0x0028, 0x1203, "OW", le16s(b...)),
		pixelsOW(le16s(0, 1000, 65535)))
	img := decodeOK(t, build(t, tsELE, dt.Encoding{}, el...))
	want := []uint16{0, 65535, 0x1234, 1000, 64535, 0x1234, 65535, 0, 0x1234}
	if img.OutputPhotometric != "RGB" || !slices.Equal(img.Frames[0].U16, want) {
		t.Errorf("65536-entry palette: %s %v, want %v", img.OutputPhotometric, img.Frames[0].U16, want)
	}

	// Segmented 8-bit palette of 8 entries, first mapped value 10:
	// discrete [0, 10], linear to 50 over 4, indirect copy of the discrete segment.
	seg := le16s(0, 2, 0, 10, 1, 4, 50, 2, 1, 0, 0)
	desc8 := func(e uint16) dt.Elem { return dt.US(0x0028, e, 8, 10, 8) }
	el = append(image(1, 4, 1, 8, 8, 7, 0, "PALETTE COLOR"),
		desc8(0x1101), desc8(0x1102), desc8(0x1103),
		dt.Bytes(0x0028, 0x1221, "OW", seg), dt.Bytes(0x0028, 0x1222, "OW", seg), dt.Bytes(0x0028, 0x1223, "OW", seg),
		pixelsOB([]byte{9, 12, 15, 17}))
	img = decodeOK(t, build(t, tsELE, dt.Encoding{}, el...))
	// Expanded LUT: 0,10,20,30,40,50,0,10; 9 clamps to entry 0, 17 to entry 7.
	lutAt := []uint8{0, 20, 50, 10}
	for i, w := range lutAt {
		if got := img.Frames[0].U8[3*i]; got != w {
			t.Errorf("segmented palette pixel %d red = %d, want %d (frame %v)", i, got, w, img.Frames[0].U8)
			break
		}
	}
}

func TestIconImageSequence(t *testing.T) {
	icon := append(image(2, 2, 1, 8, 8, 7, 0, "MONOCHROME2"), pixelsOB([]byte{1, 2, 3, 4}))
	el := append(image(2, 3, 1, 16, 16, 15, 1, "MONOCHROME2"),
		dt.Elem{Group: 0x0088, Element: 0x0200, VR: "SQ", UndefinedLength: true, Items: [][]dt.Elem{icon}},
		pixelsOW(le16s(0xFFFF, 1, 2, 3, 4, 5)))
	in := build(t, tsELE, dt.Encoding{}, el...)
	img := decodeOK(t, in)
	if got := img.Frames[0].I16; !slices.Equal(got, []int16{-1, 1, 2, 3, 4, 5}) {
		t.Errorf("main image = %v", got)
	}
	items := in.Items(tag.IconImageSequence)
	if len(items) != 1 {
		t.Fatalf("icon items = %d", len(items))
	}
	ic, err := DecodeItem(items[0])
	if err != nil || !slices.Equal(ic.Frames[0].U8, []uint8{1, 2, 3, 4}) {
		t.Errorf("icon = %v, %v", ic, err)
	}
}

func TestUnsupportedTransferSyntax(t *testing.T) {
	for _, ts := range []string{"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.100"} {
		el := append(image(2, 2, 1, 8, 8, 7, 0, "MONOCHROME2"), dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: [][]byte{{}, {0xFF, 0x4F, 0xFF, 0x51}}})
		_, err := Decode(build(t, ts, dt.Encoding{}, el...))
		if !errors.Is(err, ErrUnsupportedTransferSyntax) || !strings.Contains(err.Error(), ts) {
			t.Errorf("%s: err = %v, want ErrUnsupportedTransferSyntax naming the UID", ts, err)
		}
	}
}

func TestNoPixelData(t *testing.T) {
	if _, err := Decode(build(t, tsELE, dt.Encoding{}, dt.S(0x0008, 0x0060, "CS", "SR"))); !errors.Is(err, ErrNoPixelData) {
		t.Errorf("err = %v", err)
	}
}

func TestInconsistentModule(t *testing.T) {
	for name, el := range map[string][]dt.Elem{
		"bits stored > allocated": image(2, 2, 1, 8, 12, 11, 0, "MONOCHROME2"),
		"zero rows":               image(0, 2, 1, 8, 8, 7, 0, "MONOCHROME2"),
		"bits allocated 12":       image(2, 2, 1, 12, 12, 11, 0, "MONOCHROME2"),
	} {
		_, err := Decode(build(t, tsELE, dt.Encoding{}, append(el, pixelsOB(make([]byte, 16)))...))
		if !errors.Is(err, ErrInconsistent) {
			t.Errorf("%s: err = %v, want ErrInconsistent", name, err)
		}
	}
}
