package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
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
		"meta in data set":  {NewStringElement(tag.TransferSyntaxUID, "UI", "1.2.840.10008.1.2")},
		"short VR overflow": {NewStringElement(tag.StudyDescription, "LO", strings.Repeat("x", 70000))},
		"no VR":             {{Tag: tag.PatientID}},
		"odd OB":            {NewBytesElement(tag.EncapsulatedDocument, "OB", []byte{1, 2, 3})},
		"AT":                {NewIntElement(tag.FrameIncrementPointer, "AT", 0x00181063)},
	} {
		if _, err := EncodePart10(testMeta, elems); !errors.Is(err, ErrEncode) {
			t.Errorf("%s: %v, want ErrEncode", name, err)
		}
	}
	if _, err := EncodePart10(FileMeta{}, nil); !errors.Is(err, ErrEncode) {
		t.Errorf("no meta UIDs: %v", err)
	}
	// A long-VR value beyond 64 KiB is fine.
	if _, err := EncodePart10(testMeta, []*sdicom.Element{NewStringElement(tag.TextValue, "UT", strings.Repeat("x", 70000))}); err != nil {
		t.Errorf("70000-byte UT: %v", err)
	}
}
