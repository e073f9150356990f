package dicom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrEncode: a data set cannot be encoded (a value too long for its VR's
// length field, a value of the wrong Go type for its VR, an integer out of
// its VR's range, a duplicate tag, a group 0002 element in the data set, a
// missing file meta UID, a transfer syntax whose data set is not Explicit VR
// Little Endian, Pixel Data not encoded as the transfer syntax requires).
var ErrEncode = errors.New("dicom: cannot encode data set")

// ImplementationVersionName is written to (0002,0013) by WritePart10 unless
// FileMeta overrides it (SH, at most 16 characters).
const ImplementationVersionName = "RADFLOW_010"

// ImplementationClassUID is radflow's Implementation Class UID (0002,0012):
// a UUID-derived 2.25 UID (PS3.5 B.2), the same in every build, used by
// the Part 10 writer, the result SR and the DIMSE layer alike.
const ImplementationClassUID = "2.25.312397114479576338223260045952907761377"

// FileMeta is the File Meta Information (PS3.10 7.1) WritePart10 writes,
// and how the data set's values are to be read.
type FileMeta struct {
	MediaStorageSOPClassUID    string // (0002,0002), required
	MediaStorageSOPInstanceUID string // (0002,0003), required

	// TransferSyntaxUID (0002,0010) of the data set; empty means Explicit
	// VR Little Endian (1.2.840.10008.1.2.1). The data set itself is always
	// encoded in Explicit VR Little Endian, so the syntaxes that can be
	// declared are Explicit VR Little Endian (native Pixel Data) and the
	// encapsulated ones (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, MPEG, ...,
	// and any other UID but the four below), whose top-level Pixel Data
	// must be encapsulated and is written fragment by fragment as given
	// (Pixel Data inside sequence items, such as an icon image, may be
	// native or encapsulated). Encapsulated Pixel Data under Explicit VR
	// Little Endian is refused.
	// Implicit VR Little Endian, Explicit VR Big Endian, Deflated Explicit
	// VR Little Endian and JPIP Referenced Deflate are refused (ErrEncode):
	// write such a source as Explicit VR Little Endian instead.
	TransferSyntaxUID string

	// SourceBigEndian says that the pixel values came from an Explicit VR
	// Big Endian source as this package's parser leaves them
	// (Instance.BigEndian): native Pixel Data (PixelDataInfo) of VR OW,
	// Float Pixel Data (7FE0,0008, OF) and Double Float Pixel Data
	// (7FE0,0009, OD) given as []byte hold big endian words, which are
	// swapped to little endian (2, 4 and 8 bytes), at every level. All
	// other values are Go values ([]int, []float64, []string) or, for
	// OW/OL/OF/OD/OV, little endian bytes, as the parser returns them, and
	// are written little endian regardless.
	SourceBigEndian bool

	// ImplementationClassUID and ImplementationVersionName default to the
	// package's values when empty.
	ImplementationClassUID    string
	ImplementationVersionName string
}

// jpipReferencedDeflate is JPIP Referenced Deflate, whose data set is
// deflated (so WritePart10 cannot declare it).
const jpipReferencedDeflate = "1.2.840.10008.1.2.4.95"

// maxShortValue is the largest even value length of an explicit-VR element
// with a 16-bit length field (PS3.5 7.1.2).
const maxShortValue = 0xFFFE

// maxLongValue is the largest even value length of a 32-bit length field
// (0xFFFFFFFF means undefined length).
const maxLongValue = 0xFFFFFFFE

var (
	tagFloatPixelData       = tag.Tag{Group: 0x7FE0, Element: 0x0008}
	tagDoubleFloatPixelData = tag.Tag{Group: 0x7FE0, Element: 0x0009}
	tagExtendedOffsetTable  = tag.Tag{Group: 0x7FE0, Element: 0x0001}
)

// WritePart10 writes a Part 10 file to w: 128-byte zero preamble, "DICM",
// the File Meta Information group (group length, version 00 01, the Media
// Storage SOP Class and Instance UIDs, meta.TransferSyntaxUID, the
// implementation class UID and version name) and elems in Explicit VR
// Little Endian. elems must not contain group 0002 elements.
//
// Each level of the data set (top level and every sequence item) is
// written sorted by tag; retired group lengths (gggg,0000) are not written
// (they would not match the re-encoded values). Values are padded to even
// length (PS3.5 6.2, 7.1.1): text with a space, UI and binary values (OB,
// UN, Pixel Data, fragments) with NUL; each value's length is checked
// against its VR's length field (16-bit: 0xFFFE bytes, 32-bit:
// 0xFFFFFFFE). Sequences and items are written with undefined length and
// delimitation items. Go value types by VR: []string for AE AS CS DA DS DT
// IS LO LT PN SH ST TM UC UI UR UT (joined with "\"); []int for US SS UL SL
// AT SV UV (AT as group<<16|element; range-checked; UV as the bits of an
// int64) and OW OL OV; []float64 for FL FD OF OD; []byte for OB UN OW OL
// OF OD OV (little endian, a whole number of values);
// []*sdicom.SequenceItemValue for SQ; sdicom.PixelDataInfo for Pixel Data
// (native: UnprocessedValueData as OB or OW; encapsulated: the Basic
// Offset Table from Offsets and one fragment item per Frames entry, a
// Basic Offset Table shifted when an odd fragment is padded). A nil Value
// is written with zero length.
//
// The file is built in memory and written to w with one Write, so nothing
// reaches w when encoding fails. The caller's elements are not modified.
// errors: ErrEncode (wrapped, naming the tag), or w's error.
func WritePart10(w io.Writer, meta FileMeta, elems []*sdicom.Element) error {
	b, err := EncodePart10(meta, elems)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// EncodePart10 is WritePart10 into a new byte slice.
func EncodePart10(meta FileMeta, elems []*sdicom.Element) ([]byte, error) {
	if meta.MediaStorageSOPClassUID == "" || meta.MediaStorageSOPInstanceUID == "" {
		return nil, fmt.Errorf("%w: file meta needs Media Storage SOP Class and Instance UIDs", ErrEncode)
	}
	ts := meta.TransferSyntaxUID
	if ts == "" {
		ts = ExplicitVRLittleEndian
	}
	switch {
	case ts == ImplicitVRLittleEndian || ts == ExplicitVRBigEndian || ts == DeflatedExplicitVRLittleEndian || ts == jpipReferencedDeflate:
		return nil, fmt.Errorf("%w: transfer syntax %s: the writer encodes only Explicit VR Little Endian data sets", ErrEncode, ts)
	case !ValidUID(ts):
		return nil, fmt.Errorf("%w: transfer syntax UID %q is not a valid UID", ErrEncode, ts)
	}
	if meta.ImplementationClassUID == "" {
		meta.ImplementationClassUID = ImplementationClassUID
	}
	if meta.ImplementationVersionName == "" {
		meta.ImplementationVersionName = ImplementationVersionName
	}
	size := 512
	for _, e := range elems {
		if e == nil {
			continue
		}
		if e.Tag.Group == 0x0002 {
			return nil, fmt.Errorf("%w: %v: file meta elements are written from FileMeta", ErrEncode, e.Tag)
		}
		size += encodedSize(e)
	}

	// File meta group: always Explicit VR Little Endian, never swapped.
	me := &encoder{buf: make([]byte, 0, 256)}
	for _, e := range []*sdicom.Element{
		NewBytesElement(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		NewStringElement(tag.MediaStorageSOPClassUID, "UI", meta.MediaStorageSOPClassUID),
		NewStringElement(tag.MediaStorageSOPInstanceUID, "UI", meta.MediaStorageSOPInstanceUID),
		NewStringElement(tag.TransferSyntaxUID, "UI", ts),
		NewStringElement(tag.ImplementationClassUID, "UI", meta.ImplementationClassUID),
		NewStringElement(tag.ImplementationVersionName, "SH", meta.ImplementationVersionName),
	} {
		if err := me.element(e, 0); err != nil {
			return nil, err
		}
	}

	e := &encoder{
		buf:          make([]byte, 0, size+len(me.buf)),
		swap:         meta.SourceBigEndian,
		encapsulated: ts != ExplicitVRLittleEndian,
	}
	e.buf = append(e.buf, make([]byte, 128)...)
	e.buf = append(e.buf, "DICM"...)
	e.header(tag.FileMetaInformationGroupLength, "UL", 4)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(me.buf)))
	e.buf = append(e.buf, me.buf...)
	if err := e.level(elems, 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// encodedSize estimates the encoded size of e (for preallocation; exact
// for most values, an upper bound for strings and pixel data).
func encodedSize(e *sdicom.Element) int {
	if e == nil || e.Value == nil {
		return 12
	}
	switch v := e.Value.GetValue().(type) {
	case []*sdicom.SequenceItemValue:
		n := 20
		for _, it := range v {
			n += 16
			if it != nil {
				sub, _ := it.GetValue().([]*sdicom.Element)
				for _, s := range sub {
					n += encodedSize(s)
				}
			}
		}
		return n
	case []string:
		n := 13
		for _, s := range v {
			n += len(s) + 1
		}
		return n
	case []byte:
		return len(v) + 13
	case []int:
		return 12 + 8*len(v)
	case []float64:
		return 12 + 8*len(v)
	case sdicom.PixelDataInfo:
		n := len(v.UnprocessedValueData) + 13 + 8 + 4*len(v.Offsets) + 8
		for _, f := range v.Frames {
			if f != nil {
				n += len(f.EncapsulatedData.Data) + 9
			}
		}
		return n
	}
	return 12
}

// encoder appends Explicit VR Little Endian elements to buf.
type encoder struct {
	buf          []byte
	swap         bool // pixel values are big endian (FileMeta.SourceBigEndian)
	encapsulated bool // the transfer syntax encapsulates Pixel Data
	sawEOT       bool // the current level has an Extended Offset Table
}

func tagLess(a, b tag.Tag) bool {
	if a.Group != b.Group {
		return a.Group < b.Group
	}
	return a.Element < b.Element
}

// level writes one data set level sorted by tag (a copy; elems is not
// reordered), skipping nil elements and group lengths.
func (e *encoder) level(elems []*sdicom.Element, depth int) error {
	sorted := make([]*sdicom.Element, 0, len(elems))
	for _, el := range elems {
		if el != nil && el.Tag.Element != 0x0000 {
			sorted = append(sorted, el)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return tagLess(sorted[i].Tag, sorted[j].Tag) })
	saved := e.sawEOT
	e.sawEOT = false
	defer func() { e.sawEOT = saved }()
	for i, el := range sorted {
		if i > 0 && el.Tag == sorted[i-1].Tag {
			return fmt.Errorf("%w: duplicate element %v", ErrEncode, el.Tag)
		}
		if el.Tag.Group == 0xFFFE {
			return fmt.Errorf("%w: %v: item and delimitation tags are not data elements", ErrEncode, el.Tag)
		}
		if el.Tag == tagExtendedOffsetTable {
			e.sawEOT = true
		}
		if err := e.element(el, depth); err != nil {
			return err
		}
	}
	return nil
}

// header appends an explicit VR LE element header with value length n.
func (e *encoder) header(t tag.Tag, vr string, n uint32) {
	e.buf = binary.LittleEndian.AppendUint16(e.buf, t.Group)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, t.Element)
	e.buf = append(e.buf, vr...)
	if longVR(vr) {
		e.buf = append(e.buf, 0, 0)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, n)
	} else {
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n))
	}
}

// item appends an item or delimitation tag (FFFE,xxxx) with length n.
func (e *encoder) item(elem uint16, n uint32) {
	e.buf = binary.LittleEndian.AppendUint16(e.buf, 0xFFFE)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, elem)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, n)
}

// stringVRs are the VRs whose values are []string.
var stringVRs = map[string]bool{
	"AE": true, "AS": true, "CS": true, "DA": true, "DS": true, "DT": true, "IS": true, "LO": true,
	"LT": true, "PN": true, "SH": true, "ST": true, "TM": true, "UC": true, "UI": true, "UR": true, "UT": true,
}

// element appends el; depth is its sequence nesting (0: top level).
func (e *encoder) element(el *sdicom.Element, d int) error {
	t, vr := el.Tag, el.RawValueRepresentation
	if !validVRs[vr] {
		return fmt.Errorf("%w: %v has no valid two-letter VR (%q)", ErrEncode, t, vr)
	}
	if el.Value == nil {
		e.header(t, vr, 0)
		return nil
	}
	switch v := el.Value.GetValue().(type) {
	case []*sdicom.SequenceItemValue:
		if vr != "SQ" {
			return fmt.Errorf("%w: %v: sequence value with VR %s", ErrEncode, t, vr)
		}
		e.header(t, "SQ", undefinedLength)
		for i, it := range v {
			var sub []*sdicom.Element
			if it != nil {
				sub, _ = it.GetValue().([]*sdicom.Element)
			}
			e.item(0xE000, undefinedLength)
			if err := e.level(sub, d+1); err != nil {
				return fmt.Errorf("%v item %d: %w", t, i+1, err)
			}
			e.item(0xE00D, 0)
		}
		e.item(0xE0DD, 0)
		return nil
	case sdicom.PixelDataInfo:
		return e.pixels(t, vr, v, d)
	case []string:
		if !stringVRs[vr] {
			return fmt.Errorf("%w: %v: string value with VR %s", ErrEncode, t, vr)
		}
		s := strings.Join(v, `\`)
		pad := " "
		if vr == "UI" {
			pad = "\x00"
		}
		n := len(s) + len(s)%2
		if err := e.begin(t, vr, n); err != nil {
			return err
		}
		e.buf = append(e.buf, s...)
		if len(s)%2 == 1 {
			e.buf = append(e.buf, pad...)
		}
		return nil
	case []byte:
		size := 1
		switch vr {
		case "OB", "UN":
		case "OW", "OL", "OF", "OD", "OV":
			size = vrSize(vr)
			if len(v)%size != 0 {
				return fmt.Errorf("%w: %v: %s value of %d bytes is not a whole number of %d-byte values", ErrEncode, t, vr, len(v), size)
			}
		default:
			return fmt.Errorf("%w: %v: byte value with VR %s", ErrEncode, t, vr)
		}
		n := len(v) + len(v)%2
		if err := e.begin(t, vr, n); err != nil {
			return err
		}
		if e.swap && size > 1 && (t == tagFloatPixelData || t == tagDoubleFloatPixelData) {
			e.buf = appendSwapped(e.buf, v, size)
		} else {
			e.buf = append(e.buf, v...)
		}
		if len(v)%2 == 1 {
			e.buf = append(e.buf, 0)
		}
		return nil
	case []int:
		size := vrSize(vr)
		var lo, hi int64
		switch vr {
		case "US", "OW":
			lo, hi = 0, math.MaxUint16
		case "SS":
			lo, hi = math.MinInt16, math.MaxInt16
		case "UL", "OL", "AT":
			lo, hi = 0, math.MaxUint32
		case "SL":
			lo, hi = math.MinInt32, math.MaxInt32
		case "SV", "UV", "OV":
			lo, hi = math.MinInt64, math.MaxInt64
		default:
			return fmt.Errorf("%w: %v: integer value with VR %s", ErrEncode, t, vr)
		}
		if err := e.begin(t, vr, len(v)*size); err != nil {
			return err
		}
		for i, n := range v {
			if int64(n) < lo || int64(n) > hi {
				return fmt.Errorf("%w: %v: value %d (#%d) out of range for VR %s", ErrEncode, t, n, i+1, vr)
			}
			switch size {
			case 2:
				e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n))
			case 4:
				if vr == "AT" {
					e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(uint32(n)>>16))
					e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n))
				} else {
					e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(n))
				}
			case 8:
				e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(n))
			}
		}
		return nil
	case []float64:
		size := 0
		switch vr {
		case "FL", "OF":
			size = 4
		case "FD", "OD":
			size = 8
		default:
			return fmt.Errorf("%w: %v: float value with VR %s", ErrEncode, t, vr)
		}
		if err := e.begin(t, vr, len(v)*size); err != nil {
			return err
		}
		for i, f := range v {
			if size == 4 {
				if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
					return fmt.Errorf("%w: %v: value %g (#%d) out of range for VR %s", ErrEncode, t, f, i+1, vr)
				}
				e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(f)))
			} else {
				e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(f))
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %v: unsupported value type %T", ErrEncode, t, el.Value.GetValue())
}

// pixels writes Pixel Data: encapsulated as an undefined-length OB with the
// Basic Offset Table item, one item per fragment and a Sequence
// Delimitation Item; native as one OB or OW value.
func (e *encoder) pixels(t tag.Tag, vr string, info sdicom.PixelDataInfo, depth int) error {
	if !info.IsEncapsulated {
		if depth == 0 && e.encapsulated {
			return fmt.Errorf("%w: %v: native pixel data in an encapsulated transfer syntax", ErrEncode, t)
		}
		b := info.UnprocessedValueData
		if b == nil && len(info.Frames) > 0 {
			return fmt.Errorf("%w: %v: native pixel data must be given as UnprocessedValueData", ErrEncode, t)
		}
		if vr != "OB" && vr != "OW" {
			vr = "OW"
		}
		n := len(b) + len(b)%2
		if err := e.begin(t, vr, n); err != nil {
			return err
		}
		if e.swap && vr == "OW" {
			e.buf = appendSwapped(e.buf, b, 2)
		} else {
			e.buf = append(e.buf, b...)
		}
		if len(b)%2 == 1 {
			e.buf = append(e.buf, 0)
		}
		return nil
	}
	if !e.encapsulated {
		return fmt.Errorf("%w: %v: encapsulated pixel data needs an encapsulated transfer syntax, not Explicit VR Little Endian", ErrEncode, t)
	}
	if 4*uint64(len(info.Offsets)) > maxLongValue {
		return fmt.Errorf("%w: %v: Basic Offset Table of %d entries too long", ErrEncode, t, len(info.Offsets))
	}
	offsets := info.Offsets
	var old, shifted []uint32 // item starts before and after padding
	var pos, npos uint64
	for i, f := range info.Frames {
		if f == nil {
			return fmt.Errorf("%w: %v: fragment %d is nil", ErrEncode, t, i+1)
		}
		n := uint64(len(f.EncapsulatedData.Data))
		if n > maxLongValue {
			return fmt.Errorf("%w: %v: fragment %d of %d bytes exceeds the item length field", ErrEncode, t, i+1, n)
		}
		old, shifted = append(old, uint32(pos)), append(shifted, uint32(npos))
		pos += 8 + n
		npos += 8 + n + n%2
		if npos > math.MaxUint32 && len(offsets) > 0 {
			return fmt.Errorf("%w: %v: fragments beyond the 4 GiB the Basic Offset Table addresses", ErrEncode, t)
		}
	}
	if npos != pos {
		if e.sawEOT {
			return fmt.Errorf("%w: %v: odd-length fragments would need padding, which the Extended Offset Table does not account for", ErrEncode, t)
		}
		offsets = make([]uint32, len(info.Offsets))
		for i, o := range info.Offsets {
			k := sort.Search(len(old), func(k int) bool { return old[k] >= o })
			if k == len(old) || old[k] != o {
				return fmt.Errorf("%w: %v: Basic Offset Table entry %d (%d) is not the start of a fragment, so it cannot be shifted for padding", ErrEncode, t, i+1, o)
			}
			offsets[i] = shifted[k]
		}
	}
	e.header(t, "OB", undefinedLength)
	e.item(0xE000, uint32(4*len(offsets)))
	for _, o := range offsets {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, o)
	}
	for _, f := range info.Frames {
		data := f.EncapsulatedData.Data
		e.item(0xE000, uint32(len(data)+len(data)%2))
		e.buf = append(e.buf, data...)
		if len(data)%2 == 1 {
			e.buf = append(e.buf, 0)
		}
	}
	e.item(0xE0DD, 0)
	return nil
}

// appendSwapped appends b with the byte order of each size-byte word
// reversed (a trailing partial word as is).
func appendSwapped(dst, b []byte, size int) []byte {
	n := len(b) / size * size
	for i := 0; i < n; i += size {
		for k := size - 1; k >= 0; k-- {
			dst = append(dst, b[i+k])
		}
	}
	return append(dst, b[n:]...)
}

// begin appends the header of a defined-length value of n bytes after
// checking n against the VR's length field.
func (e *encoder) begin(t tag.Tag, vr string, n int) error {
	limit := maxShortValue
	if longVR(vr) {
		limit = maxLongValue
	}
	if n > limit {
		return fmt.Errorf("%w: %v (VR %s): value of %d bytes exceeds the %d the VR's length field holds", ErrEncode, t, vr, n, limit)
	}
	e.header(t, vr, uint32(n))
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
