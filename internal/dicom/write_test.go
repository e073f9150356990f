package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom/dicomtest"
)

var testMeta = FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.3.4.5"}

// TestWritePart10 writes elements out of order with odd-length strings and
// nested sequences and checks the exact bytes of chosen elements and the
// parse round trip.
func TestWritePart10(t *testing.T) {
	elems := []*sdicom.Element{
		NewStringElement(tag.PatientName, "PN", "Doe^John"),
		NewSequenceElement(tag.ReferencedSeriesSequence,
			[]*sdicom.Element{
				NewStringElement(tag.SeriesInstanceUID, "UI", "1.2.3"),
				NewSequenceElement(tag.ReferencedSOPSequence, []*sdicom.Element{
					NewStringElement(tag.ReferencedSOPInstanceUID, "UI", "1.2.3.4"),
					NewStringElement(tag.ReferencedSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
				}),
			},
			[]*sdicom.Element{NewStringElement(tag.SeriesInstanceUID, "UI", "1.2.5")},
		),
		NewStringElement(tag.SOPInstanceUID, "UI", "1.2.3.4.5"),
		NewStringElement(tag.StudyDescription, "LO", "odd"),
		NewStringElement(tag.ContentDate, "DA", "20250102"),
		NewStringElement(tag.ImageType, "CS", "DERIVED", "SECONDARY"),
		NewIntElement(tag.Rows, "US", 512),
		NewFloatElement(tag.FloatingPointValue, "FD", 0.1),
		NewSequenceElement(tag.PerformedProcedureCodeSequence),
	}
	b, err := EncodePart10(testMeta, elems)
	if err != nil {
		t.Fatal(err)
	}
	// Exact encodings: odd LO padded with a space, odd UI with NUL.
	for _, want := range [][]byte{
		[]byte("\x08\x00\x30\x10LO\x04\x00odd "),
		[]byte("\x08\x00\x18\x00UI\x0a\x001.2.3.4.5\x00"),
		[]byte("\x08\x00\x08\x00CS\x12\x00DERIVED\\SECONDARY "),
		[]byte("\x28\x00\x10\x00US\x02\x00\x00\x02"),
		[]byte("\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff"),
		[]byte("\x40\x00\x72\xa3SQ\x00\x00\xff\xff\xff\xff\xfe\xff\xdd\xe0\x00\x00\x00\x00"), // empty sequence
	} {
		if !bytes.Contains(b, want) {
			t.Errorf("encoding lacks % x", want)
		}
	}
	in, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Warnings) != 0 {
		t.Errorf("warnings %v", in.Warnings)
	}
	// Sorted: tags ascend in the data set.
	var last tag.Tag
	for _, e := range in.Dataset.Elements[len(in.Meta):] {
		if !tagLess(last, e.Tag) {
			t.Errorf("%v after %v", e.Tag, last)
		}
		last = e.Tag
	}
	// Sorted inside items too (0008,1150 before 0008,1155).
	series := in.Items(tag.ReferencedSeriesSequence)
	if len(series) != 2 || series[1].String(tag.SeriesInstanceUID) != "1.2.5" {
		t.Fatalf("%d series items", len(series))
	}
	sop := series[0].Items(tag.ReferencedSOPSequence)
	if len(sop) != 1 || sop[0].Elements[0].Tag != tag.ReferencedSOPClassUID || sop[0].String(tag.ReferencedSOPInstanceUID) != "1.2.3.4" {
		t.Error("nested item not sorted or lost")
	}
	if in.String(tag.StudyDescription) != "odd" || in.Int(tag.Rows, 0) != 512 || in.Floats(tag.FloatingPointValue)[0] != 0.1 ||
		strings.Join(in.Strings(tag.ImageType), `\`) != `DERIVED\SECONDARY` || in.String(tag.PatientName) != "Doe^John" {
		t.Error("values did not round-trip")
	}
	// Group length = bytes from after the group length element to the data set.
	gl := binary.LittleEndian.Uint32(b[140:144])
	if string(b[132:138]) != "\x02\x00\x00\x00UL" || int(gl) != bytes.Index(b, []byte("\x08\x00\x08\x00CS"))-144 {
		t.Errorf("group length %d", gl)
	}
	// The caller's elements are untouched (still unpadded, unsorted).
	if elems[3].Value.GetValue().([]string)[0] != "odd" || elems[0].Tag != tag.PatientName {
		t.Error("caller's elements modified")
	}
}

func TestWritePart10Errors(t *testing.T) {
	for name, elems := range map[string][]*sdicom.Element{
		"duplicate": {NewStringElement(tag.PatientID, "LO", "a"), NewStringElement(tag.PatientID, "LO", "b")},
		"duplicate in item": {NewSequenceElement(tag.ReferencedSeriesSequence, []*sdicom.Element{
			NewStringElement(tag.SeriesInstanceUID, "UI", "1.2"), NewStringElement(tag.SeriesInstanceUID, "UI", "1.3")})},
		"meta in data set":               {NewStringElement(tag.TransferSyntaxUID, "UI", "1.2.840.10008.1.2")},
		"short VR overflow":              {NewStringElement(tag.StudyDescription, "LO", strings.Repeat("x", 70000))},
		"no VR":                          {{Tag: tag.PatientID}},
		"odd OW":                         {NewBytesElement(tag.RedPaletteColorLookupTableData, "OW", []byte{1, 2, 3})},
		"OF not 4n":                      {NewBytesElement(tag.FloatPixelData, "OF", []byte{1, 2, 3, 4, 5, 6})},
		"AT out of range":                {NewIntElement(tag.FrameIncrementPointer, "AT", -1)},
		"US out of range":                {NewIntElement(tag.Rows, "US", 65536)},
		"SS out of range":                {NewIntElement(tag.PixelPaddingValue, "SS", -32769)},
		"FL out of range":                {NewFloatElement(tag.RescaleSlope, "FL", 1e39)},
		"string as US":                   {NewStringElement(tag.Rows, "US", "512")},
		"int as LO":                      {NewIntElement(tag.StudyDescription, "LO", 1)},
		"bytes as CS":                    {NewBytesElement(tag.Modality, "CS", []byte("CT"))},
		"item tag":                       {NewStringElement(tag.Tag{Group: 0xFFFE, Element: 0xE000}, "LO", "x")},
		"bad VR":                         {NewStringElement(tag.PatientID, "XX", "a")},
		"sequence as LO":                 {{Tag: tag.PatientID, RawValueRepresentation: "LO", Value: NewSequenceElement(tag.PatientID).Value}},
		"encapsulated in Explicit VR LE": {encapsulatedPixels([]uint32{0}, []byte{1, 2})},
	} {
		if _, err := EncodePart10(testMeta, elems); !errors.Is(err, ErrEncode) {
			t.Errorf("%s: %v, want ErrEncode", name, err)
		}
	}
	if _, err := EncodePart10(FileMeta{}, nil); !errors.Is(err, ErrEncode) {
		t.Errorf("no meta UIDs: %v", err)
	}
	// Transfer syntaxes whose data set is not Explicit VR Little Endian, an
	// invalid UID, and native Pixel Data under an encapsulated syntax.
	native := NewBytesElement(tag.PixelData, "OW", nil)
	native.Value, _ = sdicom.NewValue(sdicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: []byte{1, 2}})
	for _, c := range []struct {
		ts    string
		elems []*sdicom.Element
	}{
		{ImplicitVRLittleEndian, nil}, {ExplicitVRBigEndian, nil}, {DeflatedExplicitVRLittleEndian, nil},
		{"1.2.840.10008.1.2.4.95", nil}, {"1.2.840.10008.1.2.4.7O", nil}, {jpegBaseline, []*sdicom.Element{native}},
	} {
		m := testMeta
		m.TransferSyntaxUID = c.ts
		if _, err := EncodePart10(m, c.elems); !errors.Is(err, ErrEncode) {
			t.Errorf("transfer syntax %s: %v, want ErrEncode", c.ts, err)
		}
	}
	// Nothing reaches the writer when encoding fails.
	var buf bytes.Buffer
	if err := WritePart10(&buf, testMeta, []*sdicom.Element{NewIntElement(tag.Rows, "US", -1)}); !errors.Is(err, ErrEncode) || buf.Len() != 0 {
		t.Errorf("WritePart10 on bad input: %v, %d bytes written", err, buf.Len())
	}
	// A long-VR value beyond 64 KiB is fine.
	if _, err := EncodePart10(testMeta, []*sdicom.Element{NewStringElement(tag.TextValue, "UT", strings.Repeat("x", 70000))}); err != nil {
		t.Errorf("70000-byte UT: %v", err)
	}
}

const jpegBaseline = "1.2.840.10008.1.2.4.50"

// encapsulatedPixels returns an encapsulated Pixel Data element with the
// given Basic Offset Table and one fragment per frags entry.
func encapsulatedPixels(bot []uint32, frags ...[]byte) *sdicom.Element {
	info := sdicom.PixelDataInfo{IsEncapsulated: true, Offsets: bot}
	for _, f := range frags {
		info.Frames = append(info.Frames, &frame.Frame{Encapsulated: true, EncapsulatedData: frame.EncapsulatedFrame{Data: f}})
	}
	v, _ := sdicom.NewValue(info)
	return &sdicom.Element{Tag: tag.PixelData, ValueRepresentation: tag.VRPixelData, RawValueRepresentation: "OB", Value: v}
}

// TestWritePart10Values checks the exact encoding of the binary VRs, AT,
// odd binary padding, empty values and dropped group lengths, and that
// every value parses back.
func TestWritePart10Values(t *testing.T) {
	doc := []byte("%PDF-1.4 x") // 10 bytes
	elems := []*sdicom.Element{
		NewIntElement(tag.FrameIncrementPointer, "AT", 0x00181063, 0x00185050),
		NewBytesElement(tag.EncapsulatedDocument, "OB", doc[:9]), // odd: NUL pad
		NewIntElement(tag.PixelPaddingValue, "SS", -2000),
		NewIntElement(tag.Tag{Group: 0x0018, Element: 0x9219}, "SS", -1, 32767),
		NewIntElement(tag.Tag{Group: 0x0028, Element: 0x0000}, "UL", 1234), // retired group length: not written
		NewIntElement(tag.Tag{Group: 0x0020, Element: 0x9161}, "UL", 0xFFFFFFFF),
		NewIntElement(tag.Tag{Group: 0x0018, Element: 0x1310}, "US", 0, 256, 256, 0),
		NewIntElement(tag.Tag{Group: 0x0072, Element: 0x0082}, "SV", -5),
		NewIntElement(tag.Tag{Group: 0x0072, Element: 0x0083}, "UV", -1), // bits of 2^64-1
		NewFloatElement(tag.RescaleSlope, "FL", 0.5),
		NewBytesElement(tag.RedPaletteColorLookupTableData, "OW", []byte{0x34, 0x12, 0x78, 0x56}),
		NewFloatElement(tag.Tag{Group: 0x7FE0, Element: 0x0009}, "OD", -1.25),
		NewStringElement(tag.PatientID, "LO"),                    // empty
		{Tag: tag.AccessionNumber, RawValueRepresentation: "SH"}, // nil value
		NewStringElement(tag.SOPInstanceUID, "UI", "1.2.3.4.5"),
	}
	b, err := EncodePart10(testMeta, elems)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{
		[]byte("\x28\x00\x09\x00AT\x08\x00\x18\x00\x63\x10\x18\x00\x50\x50"),
		[]byte("\x42\x00\x11\x00OB\x00\x00\x0a\x00\x00\x00%PDF-1.4 \x00"),
		[]byte("\x28\x00\x20\x01SS\x02\x00\x30\xf8"),
		[]byte("\x20\x00\x61\x91UL\x04\x00\xff\xff\xff\xff"),
		[]byte("\x18\x00\x10\x13US\x08\x00\x00\x00\x00\x01\x00\x01\x00\x00"),
		[]byte("\x72\x00\x82\x00SV\x00\x00\x08\x00\x00\x00\xfb\xff\xff\xff\xff\xff\xff\xff"),
		[]byte("\x72\x00\x83\x00UV\x00\x00\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"),
		[]byte("\x28\x00\x53\x10FL\x04\x00\x00\x00\x00\x3f"),
		[]byte("\x28\x00\x01\x12OW\x00\x00\x04\x00\x00\x00\x34\x12\x78\x56"),
		[]byte("\xe0\x7f\x09\x00OD\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf4\xbf"),
		[]byte("\x10\x00\x20\x00LO\x00\x00"),
		[]byte("\x08\x00\x50\x00SH\x00\x00"),
	} {
		if !bytes.Contains(b, want) {
			t.Errorf("encoding lacks % x", want)
		}
	}
	if bytes.Contains(b, []byte("\x28\x00\x00\x00UL")) {
		t.Error("group length (0028,0000) written")
	}
	in, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Ints(tag.FrameIncrementPointer); len(got) != 2 || got[0] != 0x00181063 || got[1] != 0x00185050 {
		t.Errorf("AT read back as %x", got)
	}
	if got := in.Bytes(tag.EncapsulatedDocument); string(got) != "%PDF-1.4 \x00" {
		t.Errorf("OB read back as %q", got)
	}
	if in.Int(tag.PixelPaddingValue, 0) != -2000 || in.Int(tag.Tag{Group: 0x0020, Element: 0x9161}, 0) != 0xFFFFFFFF ||
		in.Floats(tag.RescaleSlope)[0] != 0.5 || in.Int(tag.Tag{Group: 0x0072, Element: 0x0082}, 0) != -5 {
		t.Error("numbers did not round-trip")
	}
	if w := in.Uint16s(tag.RedPaletteColorLookupTableData); len(w) != 2 || w[0] != 0x1234 || w[1] != 0x5678 {
		t.Errorf("OW read back as %x", w)
	}
}

// TestWritePart10PixelData writes native Pixel Data under Explicit VR
// Little Endian and encapsulated Pixel Data under JPEG Baseline, whose
// odd fragment is padded and Basic Offset Table shifted.
func TestWritePart10PixelData(t *testing.T) {
	px := []byte{1, 0, 2, 0, 0xff, 0x7f}
	native := NewBytesElement(tag.PixelData, "OW", nil)
	native.Value, _ = sdicom.NewValue(sdicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: px})
	b, err := EncodePart10(testMeta, []*sdicom.Element{native})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, append([]byte("\xe0\x7f\x10\x00OW\x00\x00\x06\x00\x00\x00"), px...)) {
		t.Errorf("native pixel data: % x", b[len(b)-18:])
	}

	m := testMeta
	m.TransferSyntaxUID = jpegBaseline
	// Two frames: fragments 3 bytes (odd) + 2 bytes, then 4 bytes.
	enc := encapsulatedPixels([]uint32{0, 8 + 3 + 8 + 2}, []byte{0xff, 0xd8, 0x01}, []byte{0xff, 0xd9}, []byte{0xff, 0xd8, 0xff, 0xd9})
	b, err = EncodePart10(m, []*sdicom.Element{enc})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" +
		"\xfe\xff\x00\xe0\x08\x00\x00\x00\x00\x00\x00\x00\x16\x00\x00\x00" + // BOT: 0, 22 (was 21)
		"\xfe\xff\x00\xe0\x04\x00\x00\x00\xff\xd8\x01\x00" +
		"\xfe\xff\x00\xe0\x02\x00\x00\x00\xff\xd9" +
		"\xfe\xff\x00\xe0\x04\x00\x00\x00\xff\xd8\xff\xd9" +
		"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
	if !bytes.HasSuffix(b, want) {
		t.Errorf("encapsulated pixel data:\n% x\nwant\n% x", b[len(b)-len(want):], want)
	}
	if !bytes.Contains(b, []byte("\x02\x00\x10\x00UI\x16\x00"+jpegBaseline)) {
		t.Error("transfer syntax not declared")
	}
	in, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	pd := in.PixelData()
	if in.TransferSyntaxUID != jpegBaseline || pd == nil || len(pd.Fragments) != 3 || pd.BasicOffsetTable[1] != 22 {
		t.Fatalf("read back: ts %s, %+v", in.TransferSyntaxUID, pd)
	}
	// An icon image inside a sequence item may stay native.
	icon := NewSequenceElement(tag.IconImageSequence, []*sdicom.Element{native})
	if b, err = EncodePart10(m, []*sdicom.Element{enc, icon}); err != nil {
		t.Fatalf("native icon image under %s: %v", jpegBaseline, err)
	}
	if in, err = ParseBytes(b); err != nil || len(in.Items(tag.IconImageSequence)) != 1 ||
		!bytes.Equal(in.Items(tag.IconImageSequence)[0].PixelData().Native, px) {
		t.Errorf("icon image did not round-trip: %v", err)
	}
	// With an Extended Offset Table the padding cannot be accounted for.
	eot := NewBytesElement(tag.Tag{Group: 0x7FE0, Element: 0x0001}, "OV", make([]byte, 16))
	if _, err := EncodePart10(m, []*sdicom.Element{enc, eot}); !errors.Is(err, ErrEncode) {
		t.Errorf("odd fragment with Extended Offset Table: %v, want ErrEncode", err)
	}
	// A Basic Offset Table entry that is no fragment start cannot be shifted.
	bad := encapsulatedPixels([]uint32{0, 5}, []byte{1, 2, 3}, []byte{4, 5})
	if _, err := EncodePart10(m, []*sdicom.Element{bad}); !errors.Is(err, ErrEncode) {
		t.Errorf("bad Basic Offset Table: %v, want ErrEncode", err)
	}
}

// TestWritePart10BigEndian parses the same data set written in Explicit VR
// Little and Big Endian and checks that both encode to the same bytes
// (SourceBigEndian swaps the pixel words the parser leaves big endian).
func TestWritePart10BigEndian(t *testing.T) {
	le16 := func(v ...uint16) (l, b []byte) {
		for _, x := range v {
			l = binary.LittleEndian.AppendUint16(l, x)
			b = binary.BigEndian.AppendUint16(b, x)
		}
		return
	}
	pxLE, pxBE := le16(1, 0x0203, 0xfffe, 0x8000)
	atLE, atBE := le16(0x0018, 0x1063)
	f32 := math.Float32bits(-2.5)
	fpLE, fpBE := binary.LittleEndian.AppendUint32(nil, f32), binary.BigEndian.AppendUint32(nil, f32)
	lutLE, lutBE := le16(0x1234, 0xabcd)
	set := func(enc dicomtest.Encoding, px, at, fp, lut []byte) []byte {
		return dicomtest.Part10(map[bool]string{false: ExplicitVRLittleEndian, true: ExplicitVRBigEndian}[enc.BigEndian], enc,
			dicomtest.S(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
			dicomtest.S(0x0008, 0x0018, "UI", "1.2.3.4"),
			dicomtest.Bytes(0x0028, 0x0009, "AT", at),
			dicomtest.US(0x0028, 0x0010, 2),
			dicomtest.US(0x0028, 0x0011, 2),
			dicomtest.US(0x0028, 0x0100, 16),
			dicomtest.Bytes(0x0028, 0x1201, "OW", lut),
			dicomtest.Elem{Group: 0x0088, Element: 0x0200, VR: "SQ", Items: [][]dicomtest.Elem{{
				dicomtest.US(0x0028, 0x0010, 1), dicomtest.Bytes(0x7FE0, 0x0010, "OW", px[:4])}}},
			dicomtest.Bytes(0x7FE0, 0x0008, "OF", fp),
			dicomtest.Bytes(0x7FE0, 0x0010, "OW", px))
	}
	encode := func(raw []byte) []byte {
		in, err := ParseBytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodePart10(FileMeta{MediaStorageSOPClassUID: in.SOPClassUID(), MediaStorageSOPInstanceUID: in.SOPInstanceUID(),
			SourceBigEndian: in.BigEndian}, topLevel(in))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fromLE := encode(set(dicomtest.Encoding{}, pxLE, atLE, fpLE, lutLE))
	fromBE := encode(set(dicomtest.Encoding{BigEndian: true}, pxBE, atBE, fpBE, lutBE))
	if !bytes.Equal(fromLE, fromBE) {
		t.Fatalf("big endian source encodes differently:\n% x\n% x", fromLE, fromBE)
	}
	for _, want := range [][]byte{
		append([]byte("\xe0\x7f\x10\x00OW\x00\x00\x08\x00\x00\x00"), pxLE...),
		append([]byte("\xe0\x7f\x10\x00OW\x00\x00\x04\x00\x00\x00"), pxLE[:4]...), // icon image
		append([]byte("\xe0\x7f\x08\x00OF\x00\x00\x04\x00\x00\x00"), fpLE...),
		append([]byte("\x28\x00\x09\x00AT\x04\x00"), atLE...),
		append([]byte("\x28\x00\x01\x12OW\x00\x00\x04\x00\x00\x00"), lutLE...),
	} {
		if !bytes.Contains(fromBE, want) {
			t.Errorf("encoding lacks % x", want)
		}
	}
}

// BenchmarkEncodePart10 encodes a 512x512 16-bit image with 40 attributes
// (the size of a CT slice), as deid does for each instance.
func BenchmarkEncodePart10(b *testing.B) {
	px := NewBytesElement(tag.PixelData, "OW", nil)
	px.Value, _ = sdicom.NewValue(sdicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: make([]byte, 512*512*2)})
	elems := []*sdicom.Element{px, NewIntElement(tag.Rows, "US", 512), NewIntElement(tag.Columns, "US", 512),
		NewSequenceElement(tag.ReferencedSeriesSequence, []*sdicom.Element{NewStringElement(tag.SeriesInstanceUID, "UI", "1.2.3")})}
	for i := 0; len(elems) < 40; i++ {
		elems = append(elems, NewStringElement(tag.Tag{Group: 0x0009, Element: uint16(0x1000 + i)}, "LO", "some text value"))
	}
	b.SetBytes(512 * 512 * 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodePart10(testMeta, elems); err != nil {
			b.Fatal(err)
		}
	}
}
