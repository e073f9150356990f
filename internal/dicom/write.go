package dicom

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrEncode: a data set cannot be encoded (a value too long for its VR, a
// value of the wrong Go type for its VR, a duplicate tag, a group 0002
// element in the data set, a missing file meta UID, an AT value).
var ErrEncode = errors.New("dicom: cannot encode data set")

// ImplementationVersionName is written to (0002,0013) by WritePart10 unless
// FileMeta overrides it (SH, at most 16 characters).
const ImplementationVersionName = "RADFLOW_1"

// ImplementationClassUID is radflow's Implementation Class UID (0002,0012):
// a name-based 2.25 UID (PS3.5 B.2), the same in every build.
var ImplementationClassUID = NameUID("radflow implementation class")

// FileMeta is the File Meta Information (PS3.10 7.1) WritePart10 writes. The
// transfer syntax is always Explicit VR Little Endian.
type FileMeta struct {
	MediaStorageSOPClassUID    string // (0002,0002), required
	MediaStorageSOPInstanceUID string // (0002,0003), required
	// ImplementationClassUID and ImplementationVersionName default to the
	// package's values when empty.
	ImplementationClassUID    string
	ImplementationVersionName string
}

// maxShortValue is the largest even value length of an explicit-VR element
// with a 16-bit length field (PS3.5 7.1.2).
const maxShortValue = 0xFFFE

// WritePart10 writes a Part 10 file to w: 128-byte preamble, "DICM", the
// File Meta Information group (with its group length, Transfer Syntax UID
// 1.2.840.10008.1.2.1) and elems encoded in Explicit VR Little Endian by
// suyashkumar/dicom's writer. elems must not contain group 0002 elements.
//
// Before writing, each level of the data set (top level and every sequence
// item) is copied and sorted by tag, string values are padded to even
// length with the VR's padding byte (NUL for UI, space otherwise, PS3.5
// 6.2), and every value is checked against its VR's length field. Sequences
// and items are written with undefined length. The caller's elements are
// not modified. errors: ErrEncode (wrapped with the tag), or w's error.
func WritePart10(w io.Writer, meta FileMeta, elems []*sdicom.Element) error {
	if meta.MediaStorageSOPClassUID == "" || meta.MediaStorageSOPInstanceUID == "" {
		return fmt.Errorf("%w: file meta needs Media Storage SOP Class and Instance UIDs", ErrEncode)
	}
	if meta.ImplementationClassUID == "" {
		meta.ImplementationClassUID = ImplementationClassUID
	}
	if meta.ImplementationVersionName == "" {
		meta.ImplementationVersionName = ImplementationVersionName
	}
	for _, e := range elems {
		if e.Tag.Group == 0x0002 {
			return fmt.Errorf("%w: %v: file meta elements are written from FileMeta", ErrEncode, e.Tag)
		}
	}
	metaElems := []*sdicom.Element{
		NewBytesElement(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		NewStringElement(tag.MediaStorageSOPClassUID, "UI", meta.MediaStorageSOPClassUID),
		NewStringElement(tag.MediaStorageSOPInstanceUID, "UI", meta.MediaStorageSOPInstanceUID),
		NewStringElement(tag.TransferSyntaxUID, "UI", ExplicitVRLittleEndian),
		NewStringElement(tag.ImplementationClassUID, "UI", meta.ImplementationClassUID),
		NewStringElement(tag.ImplementationVersionName, "SH", meta.ImplementationVersionName),
	}
	all, err := prepareLevel(append(metaElems, elems...))
	if err != nil {
		return err
	}
	// suyashkumar's writer verifies value types but not VRs we chose
	// deliberately (e.g. dictionary entries with several VRs).
	if err := sdicom.Write(w, sdicom.Dataset{Elements: all}, sdicom.SkipVRVerification()); err != nil {
		return fmt.Errorf("%w: %v", ErrEncode, err)
	}
	return nil
}

// EncodePart10 is WritePart10 into a new byte slice.
func EncodePart10(meta FileMeta, elems []*sdicom.Element) ([]byte, error) {
	var buf bytes.Buffer
	if err := WritePart10(&buf, meta, elems); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// prepareLevel returns a sorted, padded, checked copy of one data set level.
func prepareLevel(elems []*sdicom.Element) ([]*sdicom.Element, error) {
	out := make([]*sdicom.Element, 0, len(elems))
	for _, e := range elems {
		if e == nil {
			continue
		}
		p, err := prepareElement(e)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return tagLess(out[i].Tag, out[j].Tag) })
	for i := 1; i < len(out); i++ {
		if out[i].Tag == out[i-1].Tag {
			return nil, fmt.Errorf("%w: duplicate element %v", ErrEncode, out[i].Tag)
		}
	}
	return out, nil
}

func tagLess(a, b tag.Tag) bool {
	if a.Group != b.Group {
		return a.Group < b.Group
	}
	return a.Element < b.Element
}

// prepareElement copies e with even-length padded strings and sorted
// sequence items, checking lengths.
func prepareElement(e *sdicom.Element) (*sdicom.Element, error) {
	vr := e.RawValueRepresentation
	if len(vr) != 2 {
		return nil, fmt.Errorf("%w: %v has no two-letter VR", ErrEncode, e.Tag)
	}
	c := *e
	if e.Value == nil {
		c.ValueLength = 0
		return &c, nil
	}
	switch v := e.Value.GetValue().(type) {
	case []*sdicom.SequenceItemValue:
		if vr != "SQ" {
			return nil, fmt.Errorf("%w: %v: sequence value with VR %s", ErrEncode, e.Tag, vr)
		}
		items := make([][]*sdicom.Element, len(v))
		for i, it := range v {
			sub, _ := it.GetValue().([]*sdicom.Element)
			p, err := prepareLevel(sub)
			if err != nil {
				return nil, fmt.Errorf("%v item %d: %w", e.Tag, i+1, err)
			}
			items[i] = p
		}
		c.Value, _ = sdicom.NewValue(items)
		c.ValueLength = tag.VLUndefinedLength
	case []string:
		s := strings.Join(v, `\`)
		n := len(s) + len(s)%2
		if len(s)%2 == 1 && vr != "UI" {
			// suyashkumar pads UI (and, wrongly, DA/AS/UC/UR) with NUL;
			// pad the others here. UI stays unpadded so the writer can
			// still look up the Transfer Syntax UID.
			s += " "
		}
		if err := checkLength(e.Tag, vr, n); err != nil {
			return nil, err
		}
		c.Value, _ = sdicom.NewValue([]string{s})
		c.ValueLength = uint32(n)
	case []byte:
		if len(v)%2 == 1 {
			return nil, fmt.Errorf("%w: %v: odd byte length %d", ErrEncode, e.Tag, len(v))
		}
		if err := checkLength(e.Tag, vr, len(v)); err != nil {
			return nil, err
		}
	case []int:
		if vr == "AT" { // suyashkumar v1.1.0 writes only the group of each tag
			return nil, fmt.Errorf("%w: %v: AT values are not supported by the writer", ErrEncode, e.Tag)
		}
		if err := checkLength(e.Tag, vr, len(v)*vrSize(vr)); err != nil {
			return nil, err
		}
	case []float64:
		if err := checkLength(e.Tag, vr, len(v)*vrSize(vr)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %v: unsupported value type %T", ErrEncode, e.Tag, v)
	}
	return &c, nil
}

func checkLength(t tag.Tag, vr string, n int) error {
	limit := maxShortValue
	if longVR(vr) {
		limit = 0xFFFFFFFE
	}
	if n > limit {
		return fmt.Errorf("%w: %v (VR %s): value of %d bytes exceeds the %d the VR's length field holds", ErrEncode, t, vr, n, limit)
	}
	return nil
}

// NewStringElement returns a string element (AE, AS, CS, DA, DS, DT, IS, LO,
// LT, PN, SH, ST, TM, UC, UI, UR, UT) with the given values, unpadded.
func NewStringElement(t tag.Tag, vr string, values ...string) *sdicom.Element {
	if values == nil {
		values = []string{}
	}
	v, _ := sdicom.NewValue(values)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: v}
}

// NewBytesElement returns an OB/OW/UN element.
func NewBytesElement(t tag.Tag, vr string, b []byte) *sdicom.Element {
	v, _ := sdicom.NewValue(b)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.VRBytes, RawValueRepresentation: vr, Value: v}
}

// NewIntElement returns a US/SS/UL/SL element.
func NewIntElement(t tag.Tag, vr string, values ...int) *sdicom.Element {
	if values == nil {
		values = []int{}
	}
	v, _ := sdicom.NewValue(values)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: v}
}

// NewFloatElement returns an FL/FD element.
func NewFloatElement(t tag.Tag, vr string, values ...float64) *sdicom.Element {
	if values == nil {
		values = []float64{}
	}
	v, _ := sdicom.NewValue(values)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: v}
}

// NewSequenceElement returns an SQ element with one item per argument (none
// for an empty sequence).
func NewSequenceElement(t tag.Tag, items ...[]*sdicom.Element) *sdicom.Element {
	if items == nil {
		items = [][]*sdicom.Element{}
	}
	v, _ := sdicom.NewValue(items)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.VRSequence, RawValueRepresentation: "SQ", ValueLength: tag.VLUndefinedLength, Value: v}
}
