package codec

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// sharedDir is /work/shared/dicom seen from this package directory.
var sharedDir = filepath.Join("..", "..", "..", "..", "shared", "dicom")

// sample is one test file: its transfer syntax, Params and pixel data
// (fragments for encapsulated data, raw bytes for native).
type sample struct {
	ts        string
	p         Params
	frames    int
	fragments [][]byte
	native    []byte
}

func sharedPath(t testing.TB, rel string) string {
	t.Helper()
	path := filepath.Join(sharedDir, rel)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared test data absent (%s): %v", path, err)
	}
	return path
}

func intAttr(t testing.TB, ds dicom.Dataset, tg tag.Tag, def int) int {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		return def
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		if len(v) > 0 {
			return v[0]
		}
	case []string:
		if len(v) > 0 {
			var n int
			for _, c := range bytes.TrimSpace([]byte(v[0])) {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	return def
}

func strAttr(t testing.TB, ds dicom.Dataset, tg tag.Tag) string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		return ""
	}
	if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
		return string(bytes.TrimRight([]byte(v[0]), " \x00"))
	}
	return ""
}

// load parses a shared DICOM file with suyashkumar/dicom.
func load(t testing.TB, rel string) sample {
	t.Helper()
	path := sharedPath(t, rel)
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", rel, err)
	}
	s := sample{
		ts: strAttr(t, ds, tag.TransferSyntaxUID),
		p: Params{
			Rows:            intAttr(t, ds, tag.Rows, 0),
			Columns:         intAttr(t, ds, tag.Columns, 0),
			SamplesPerPixel: intAttr(t, ds, tag.SamplesPerPixel, 1),
			BitsAllocated:   intAttr(t, ds, tag.BitsAllocated, 0),
			BitsStored:      intAttr(t, ds, tag.BitsStored, 0),
			Signed:          intAttr(t, ds, tag.PixelRepresentation, 0) == 1,
			Photometric:     strAttr(t, ds, tag.PhotometricInterpretation),
		},
		frames: intAttr(t, ds, tag.NumberOfFrames, 1),
	}
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatalf("%s: no pixel data: %v", rel, err)
	}
	info := dicom.MustGetPixelDataInfo(e.Value)
	if info.IsEncapsulated {
		for _, f := range info.Frames {
			s.fragments = append(s.fragments, f.EncapsulatedData.Data)
		}
		return s
	}
	raw, err := dicom.ParseFile(path, nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		t.Fatalf("parse %s: %v", rel, err)
	}
	e, err = raw.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatalf("%s: no pixel data: %v", rel, err)
	}
	s.native = dicom.MustGetPixelDataInfo(e.Value).UnprocessedValueData
	return s
}

// frame returns the codestream of frame i: all fragments concatenated for
// a single-frame file, one fragment per frame otherwise.
func (s sample) frame(t testing.TB, i int) []byte {
	t.Helper()
	if s.frames == 1 {
		return bytes.Join(s.fragments, nil)
	}
	if len(s.fragments) != s.frames {
		t.Skipf("%d fragments for %d frames: frame boundaries need the offset table", len(s.fragments), s.frames)
	}
	return s.fragments[i]
}

// nativeFrame returns frame i of native little-endian pixel data.
func (s sample) nativeFrame(i int) []byte {
	n := s.p.frameBytes()
	return s.native[i*n : (i+1)*n]
}

// values turns decoded or native bytes into sample values after masking to
// BitsStored and sign extension, as package pixel will.
func values(p Params, data []byte) []int {
	bps := p.BitsAllocated / 8
	out := make([]int, len(data)/bps)
	mask := uint32(1)<<p.BitsStored - 1
	for i := range out {
		var v uint32
		if bps == 1 {
			v = uint32(data[i])
		} else {
			v = uint32(binary.LittleEndian.Uint16(data[2*i:]))
		}
		v &= mask
		x := int(v)
		if p.Signed && v&(1<<(p.BitsStored-1)) != 0 {
			x -= 1 << p.BitsStored
		}
		out[i] = x
	}
	return out
}

func stats(v []int) (min, max, sum int) {
	min, max = v[0], v[0]
	for _, x := range v {
		if x < min {
			min = x
		}
		if x > max {
			max = x
		}
		sum += x
	}
	return
}

func maxAbsDiff(a, b []int) int {
	d := 0
	for i := range a {
		x := a[i] - b[i]
		if x < 0 {
			x = -x
		}
		if x > d {
			d = x
		}
	}
	return d
}
