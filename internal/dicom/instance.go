package dicom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrNotDICOM: the bytes are neither a Part 10 file nor a recognisable bare data set.
var ErrNotDICOM = errors.New("dicom: not a DICOM file")

// ErrMalformed: the data set cannot be parsed (bad lengths, truncated elements).
var ErrMalformed = errors.New("dicom: malformed data set")

// Instance is one parsed SOP instance. Pixel Data is kept unprocessed
// (raw bytes or fragments) for package pixel.
//
// Dataset holds the file meta elements followed by the data set's top-level
// elements, as suyashkumar/dicom values: strings decoded with the Specific
// Character Set, binary multi-byte values (OW, OL, OF, OD, OV) little endian,
// sequences as sequence items, Pixel Data as a PixelDataInfo (native bytes in
// UnprocessedValueData, fragments as encapsulated frames, the Basic Offset
// Table in Offsets). Bulk values are sub-slices of the parsed buffer.
type Instance struct {
	Dataset           sdicom.Dataset
	TransferSyntaxUID string

	// Meta holds the file meta information elements (group 0002); empty for
	// a bare data set.
	Meta []*sdicom.Element
	// BigEndian: the data set is Explicit VR Big Endian (native pixel data
	// words are big endian).
	BigEndian bool
	// ExplicitVR: the data set was encoded with explicit VRs.
	ExplicitVR bool
	// Warnings lists the deviations from the standard that parsing tolerated
	// (no file meta, stray delimiters, unknown character set, ...). They
	// never contain attribute values.
	Warnings []string

	pixel *PixelData
}

// PixelData is the unprocessed value of Pixel Data (7FE0,0010) (or Float /
// Double Float Pixel Data), PS3.5 8.2 and A.4.
type PixelData struct {
	Tag tag.Tag
	VR  string // OB or OW (OF/OD for float pixel data)
	// BigEndian: native words are big endian (Explicit VR Big Endian).
	BigEndian bool
	// Native holds the whole native value (all frames, as stored, including
	// any pad byte) when Encapsulated is false.
	Native []byte
	// Encapsulated: the value is a sequence of fragments.
	Encapsulated bool
	// BasicOffsetTable holds the offsets of the first byte of each frame's
	// first fragment item, relative to the first fragment item; may be empty.
	BasicOffsetTable []uint32
	// Fragments holds each fragment's bytes (item headers removed), in order.
	Fragments [][]byte
}

// ParseFile parses the file at path. errors: ErrNotDICOM, ErrMalformed, or
// the *fs.PathError of opening/reading it.
func ParseFile(path string) (*Instance, error) {
	// Refuse FIFOs, devices and sockets before opening: reading one would
	// block forever or never end.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s)", ErrNotDICOM, path, st.Mode().Type())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseBytes(b)
}

// Parse parses size bytes from r. It reads at most size bytes; fewer is
// ErrMalformed. errors: ErrNotDICOM, ErrMalformed.
func Parse(r io.Reader, size int64) (*Instance, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrMalformed, size)
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return nil, fmt.Errorf("dicom: reading: %w", err)
	}
	if int64(len(b)) < size {
		return nil, fmt.Errorf("%w: expected %d bytes, read %d", ErrMalformed, size, len(b))
	}
	return ParseBytes(b)
}

// ParseBytes parses a Part 10 file or a bare data set (no preamble, no file
// meta: byte order and VR mode are detected). The instance keeps sub-slices
// of b (pixel data, OB values): do not modify b afterwards.
//
// Tolerated deviations (recorded in Warnings): implicit-VR file meta and
// missing group lengths, UN of undefined length (read as an implicit VR
// little endian sequence, PS3.5 6.2.2), implicit-VR elements inside an
// explicit data set (dictionary VR), stray item/sequence delimiters, a
// Sequence Delimitation Item with a non-zero length, unknown character
// sets (UTF-8 fallback). Deflated data sets are inflated (at most
// MaxInflatedSize). Every length is checked against the bytes left before
// any allocation. errors: ErrNotDICOM, ErrMalformed.
func ParseBytes(b []byte) (*Instance, error) {
	return parseBytes(b)
}

// PixelData returns the top-level pixel data, or nil when there is none.
func (in *Instance) PixelData() *PixelData { return in.pixel }

// Root returns the top-level data set as an Item (for code that handles
// instances and sequence items alike, e.g. icon images).
func (in *Instance) Root() *Item {
	return &Item{Elements: in.Dataset.Elements, BigEndian: in.BigEndian, TransferSyntaxUID: in.TransferSyntaxUID, pixel: in.pixel}
}

// Element returns the top-level element with tag t, or nil.
func (in *Instance) Element(t tag.Tag) *sdicom.Element { return find(in.Dataset.Elements, t) }

// String returns the first value of a string attribute, trimmed, or "".
func (in *Instance) String(t tag.Tag) string { return str(find(in.Dataset.Elements, t)) }

// Strings returns every value of a string attribute, or nil.
func (in *Instance) Strings(t tag.Tag) []string { return strs(find(in.Dataset.Elements, t)) }

// Int returns the first value of an integer (US/SS/UL/SL/IS) attribute, or def.
func (in *Instance) Int(t tag.Tag, def int) int { return intOf(find(in.Dataset.Elements, t), def) }

// Ints returns every value of an integer attribute (US/SS/UL/SL/SV/UV/IS), or nil.
func (in *Instance) Ints(t tag.Tag) []int { return ints(find(in.Dataset.Elements, t)) }

// Floats returns the values of a DS/FL/FD attribute, or nil.
func (in *Instance) Floats(t tag.Tag) []float64 { return floats(find(in.Dataset.Elements, t)) }

// Bytes returns the value of a binary (OB/OW/UN/...) attribute, little
// endian for OW/OL/OF/OD/OV, or nil.
func (in *Instance) Bytes(t tag.Tag) []byte { return bytesOf(find(in.Dataset.Elements, t)) }

// Uint16s returns a US or OW attribute as 16-bit words (LUT Data and
// palette data may use either VR), or nil.
func (in *Instance) Uint16s(t tag.Tag) []uint16 { return words(find(in.Dataset.Elements, t)) }

// Items returns the items of a sequence attribute, or nil.
func (in *Instance) Items(t tag.Tag) []*Item { return in.Root().Items(t) }

// SOPInstanceUID returns (0008,0018).
func (in *Instance) SOPInstanceUID() string { return in.String(tag.SOPInstanceUID) }

// SOPClassUID returns (0008,0016).
func (in *Instance) SOPClassUID() string { return in.String(tag.SOPClassUID) }

// Modality returns (0008,0060).
func (in *Instance) Modality() string { return in.String(tag.Modality) }

// BodyPartExamined returns (0018,0015).
func (in *Instance) BodyPartExamined() string { return in.String(tag.BodyPartExamined) }

// StudyInstanceUID returns (0020,000D).
func (in *Instance) StudyInstanceUID() string { return in.String(tag.StudyInstanceUID) }

// SeriesInstanceUID returns (0020,000E).
func (in *Instance) SeriesInstanceUID() string { return in.String(tag.SeriesInstanceUID) }

// ExtendedOffsetTable returns the Extended Offset Table (7FE0,0001) and its
// lengths (7FE0,0002) as 64-bit values, or nil when absent (PS3.3 C.7.6.3).
func (in *Instance) ExtendedOffsetTable() (offsets, lengths []uint64) {
	return in.Root().ExtendedOffsetTable()
}

// Item is one sequence item (or the top-level data set, see Root), with the
// same accessors as Instance.
type Item struct {
	Elements          []*sdicom.Element
	BigEndian         bool
	TransferSyntaxUID string
	pixel             *PixelData
}

// Element returns the element with tag t in the item, or nil.
func (it *Item) Element(t tag.Tag) *sdicom.Element { return find(it.Elements, t) }

// String returns the first value of a string attribute, trimmed, or "".
func (it *Item) String(t tag.Tag) string { return str(find(it.Elements, t)) }

// Strings returns every value of a string attribute, or nil.
func (it *Item) Strings(t tag.Tag) []string { return strs(find(it.Elements, t)) }

// Int returns the first value of an integer attribute, or def.
func (it *Item) Int(t tag.Tag, def int) int { return intOf(find(it.Elements, t), def) }

// Ints returns every value of an integer attribute, or nil.
func (it *Item) Ints(t tag.Tag) []int { return ints(find(it.Elements, t)) }

// Floats returns the values of a DS/FL/FD attribute, or nil.
func (it *Item) Floats(t tag.Tag) []float64 { return floats(find(it.Elements, t)) }

// Bytes returns the value of a binary attribute, or nil.
func (it *Item) Bytes(t tag.Tag) []byte { return bytesOf(find(it.Elements, t)) }

// Uint16s returns a US or OW attribute as 16-bit words, or nil.
func (it *Item) Uint16s(t tag.Tag) []uint16 { return words(find(it.Elements, t)) }

// Items returns the items of a sequence attribute, or nil.
func (it *Item) Items(t tag.Tag) []*Item {
	el := find(it.Elements, t)
	if el == nil {
		return nil
	}
	seq, ok := el.Value.GetValue().([]*sdicom.SequenceItemValue)
	if !ok {
		return nil
	}
	out := make([]*Item, len(seq))
	for i, s := range seq {
		elems, _ := s.GetValue().([]*sdicom.Element)
		out[i] = &Item{Elements: elems, BigEndian: it.BigEndian, TransferSyntaxUID: it.TransferSyntaxUID}
	}
	return out
}

// PixelData returns the item's Pixel Data (e.g. an Icon Image Sequence
// item's), or nil.
func (it *Item) PixelData() *PixelData {
	if it.pixel != nil {
		return it.pixel
	}
	el := find(it.Elements, tag.PixelData)
	if el == nil {
		return nil
	}
	info, ok := el.Value.GetValue().(sdicom.PixelDataInfo)
	if !ok {
		return nil
	}
	pd := &PixelData{Tag: tag.PixelData, VR: el.RawValueRepresentation, BigEndian: it.BigEndian, Encapsulated: info.IsEncapsulated, BasicOffsetTable: info.Offsets}
	if info.IsEncapsulated {
		for _, f := range info.Frames {
			pd.Fragments = append(pd.Fragments, f.EncapsulatedData.Data)
		}
	} else {
		pd.Native = info.UnprocessedValueData
	}
	return pd
}

// ExtendedOffsetTable returns (7FE0,0001) and (7FE0,0002), or nil.
func (it *Item) ExtendedOffsetTable() (offsets, lengths []uint64) {
	return u64s(it.Bytes(tag.ExtendedOffsetTable)), u64s(it.Bytes(tag.ExtendedOffsetTableLengths))
}

func u64s(b []byte) []uint64 {
	if len(b) < 8 {
		return nil
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}

func find(elems []*sdicom.Element, t tag.Tag) *sdicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

func strs(el *sdicom.Element) []string {
	if el == nil {
		return nil
	}
	s, _ := el.Value.GetValue().([]string)
	return s
}

func str(el *sdicom.Element) string {
	s := strs(el)
	if len(s) == 0 {
		return ""
	}
	return strings.TrimSpace(s[0])
}

func ints(el *sdicom.Element) []int {
	if el == nil {
		return nil
	}
	switch v := el.Value.GetValue().(type) {
	case []int:
		return v
	case []string: // IS
		out := make([]int, 0, len(v))
		for _, s := range v {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64)
				if ferr != nil {
					return nil
				}
				n = int(f)
			}
			out = append(out, n)
		}
		return out
	}
	return nil
}

func intOf(el *sdicom.Element, def int) int {
	v := ints(el)
	if len(v) == 0 {
		return def
	}
	return v[0]
}

func floats(el *sdicom.Element) []float64 {
	if el == nil {
		return nil
	}
	switch v := el.Value.GetValue().(type) {
	case []float64:
		return v
	case []int:
		out := make([]float64, len(v))
		for i, n := range v {
			out[i] = float64(n)
		}
		return out
	case []string: // DS
		out := make([]float64, 0, len(v))
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil
			}
			out = append(out, f)
		}
		return out
	}
	return nil
}

func bytesOf(el *sdicom.Element) []byte {
	if el == nil {
		return nil
	}
	b, _ := el.Value.GetValue().([]byte)
	return b
}

func words(el *sdicom.Element) []uint16 {
	if el == nil {
		return nil
	}
	switch v := el.Value.GetValue().(type) {
	case []byte:
		out := make([]uint16, len(v)/2)
		for i := range out {
			out[i] = binary.LittleEndian.Uint16(v[2*i:])
		}
		return out
	case []int:
		out := make([]uint16, len(v))
		for i, n := range v {
			out[i] = uint16(n)
		}
		return out
	}
	return nil
}
