package dicom

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/charset"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding"
)

// Transfer syntax UIDs this package treats specially while parsing.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
)

// MaxInflatedSize bounds the inflated size of a Deflated Explicit VR Little
// Endian data set (decompression-bomb guard).
const MaxInflatedSize = 1 << 30

// maxDepth bounds sequence nesting (stack guard for hostile input).
const maxDepth = 64

var (
	tagItem      = tag.Tag{Group: 0xFFFE, Element: 0xE000}
	tagItemDelim = tag.Tag{Group: 0xFFFE, Element: 0xE00D}
	tagSeqDelim  = tag.Tag{Group: 0xFFFE, Element: 0xE0DD}
)

// undefinedLength is the Value Length 0xFFFFFFFF (PS3.5 7.1.1).
const undefinedLength = 0xFFFFFFFF

// validVRs is every two-letter VR of PS3.5 Table 6.2-1.
var validVRs = map[string]bool{
	"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true, "DT": true,
	"FL": true, "FD": true, "IS": true, "LO": true, "LT": true, "OB": true, "OD": true,
	"OF": true, "OL": true, "OV": true, "OW": true, "PN": true, "SH": true, "SL": true,
	"SQ": true, "SS": true, "ST": true, "SV": true, "TM": true, "UC": true, "UI": true,
	"UL": true, "UN": true, "UR": true, "US": true, "UT": true, "UV": true,
}

// longVR reports whether an explicit-VR element of this VR has the 12-byte
// header (2 reserved bytes and a 32-bit length), PS3.5 Table 7.1-1.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}

// parser walks one data set held entirely in memory. Values of bulk VRs
// (OB, UN, pixel data) are sub-slices of buf: no copies.
type parser struct {
	buf      []byte
	bo       binary.ByteOrder
	explicit bool
	cs       charset.CodingSystem
	warnings []string
	pixel    *PixelData // top-level Pixel Data
	bigEnd   bool
}

func (p *parser) malformed(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, pos, fmt.Sprintf(format, args...))
}

func (p *parser) warn(msg string) {
	p.warnings = append(p.warnings, msg)
}

// header is one element header.
type header struct {
	t        tag.Tag
	vr       string
	vl       uint32
	explicit bool // the header was read with an explicit VR
	valuePos int
}

// readHeader reads the element header at pos. explicit selects the VR mode;
// item and delimiter tags are always implicit (PS3.5 7.5). When an explicit
// header has no valid VR (B03: implicit items inside an explicit data set)
// the header is re-read as implicit with the dictionary VR.
func (p *parser) readHeader(pos int, bo binary.ByteOrder, explicit bool) (header, error) {
	if len(p.buf)-pos < 8 {
		return header{}, p.malformed(pos, "element header needs 8 bytes, %d left", len(p.buf)-pos)
	}
	t := tag.Tag{Group: bo.Uint16(p.buf[pos:]), Element: bo.Uint16(p.buf[pos+2:])}
	if t.Group == 0xFFFE {
		return header{t: t, vl: bo.Uint32(p.buf[pos+4:]), valuePos: pos + 8}, nil
	}
	if explicit {
		vr := string(p.buf[pos+4 : pos+6])
		if validVRs[vr] {
			if longVR(vr) {
				if len(p.buf)-pos < 12 {
					return header{}, p.malformed(pos, "element %v header needs 12 bytes, %d left", t, len(p.buf)-pos)
				}
				return header{t: t, vr: vr, vl: bo.Uint32(p.buf[pos+8:]), explicit: true, valuePos: pos + 12}, nil
			}
			vl := uint32(bo.Uint16(p.buf[pos+6:]))
			return header{t: t, vr: vr, vl: vl, explicit: true, valuePos: pos + 8}, nil
		}
		// Not a VR: tolerate an implicit-VR element here (PS3.5 has no such
		// thing, but writers produce it) and use the dictionary VR.
		p.warn(fmt.Sprintf("element %v has no valid explicit VR; read as implicit VR", t))
	}
	return header{t: t, vr: dictVR(t), vl: bo.Uint32(p.buf[pos+4:]), valuePos: pos + 8}, nil
}

// dictVR returns the first dictionary VR of t, or UN for unknown/private tags.
func dictVR(t tag.Tag) string {
	if t == tag.PixelData {
		return "OW"
	}
	if t.Element == 0 {
		return "UL" // group length
	}
	if t.Group%2 == 1 {
		if t.Element >= 0x10 && t.Element <= 0xFF {
			return "LO" // private creator
		}
		return "UN"
	}
	if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
		vr := info.VRs[0]
		if len(vr) == 2 && validVRs[vr] {
			return vr
		}
	}
	return "UN"
}

// parseDataset reads elements from [pos,end). When inItem is true an Item
// Delimitation Item ends the data set (undefined-length item); the returned
// position is after it. depth counts sequence nesting.
func (p *parser) parseDataset(pos, end int, bo binary.ByteOrder, explicit, undefinedItem bool, depth int) ([]*sdicom.Element, int, error) {
	if depth > maxDepth {
		return nil, pos, p.malformed(pos, "sequences nested deeper than %d", maxDepth)
	}
	var elems []*sdicom.Element
	for pos < end {
		if end-pos < 8 {
			// Trailing padding shorter than a header: tolerate at top level.
			if depth == 0 {
				p.warn(fmt.Sprintf("%d trailing bytes ignored", end-pos))
				return elems, end, nil
			}
			return nil, pos, p.malformed(pos, "item ends inside an element header")
		}
		h, err := p.readHeader(pos, bo, explicit)
		if err != nil {
			return nil, pos, err
		}
		switch h.t {
		case tagItemDelim:
			if undefinedItem {
				return elems, h.valuePos, nil
			}
			p.warn(fmt.Sprintf("stray Item Delimitation Item at byte %d skipped", pos))
			pos = h.valuePos
			continue
		case tagSeqDelim:
			if undefinedItem {
				// Item not closed before its sequence: let the caller see it.
				return elems, pos, nil
			}
			p.warn(fmt.Sprintf("stray Sequence Delimitation Item at byte %d skipped", pos))
			pos = h.valuePos
			continue
		case tagItem:
			// An item outside a sequence (seen after a zero-length SQ):
			// skip it when its length is defined.
			if h.vl == undefinedLength || h.vl > uint32(end-h.valuePos) {
				return nil, pos, p.malformed(pos, "item outside a sequence")
			}
			p.warn(fmt.Sprintf("item outside a sequence at byte %d skipped", pos))
			pos = h.valuePos + int(h.vl)
			continue
		}
		el, next, err := p.parseValue(h, end, bo, explicit, depth)
		if err != nil {
			return nil, pos, err
		}
		if el.Tag == tag.SpecificCharacterSet && depth == 0 {
			p.setCharset(el)
		}
		elems = append(elems, el)
		pos = next
	}
	if undefinedItem {
		if depth == 0 {
			return elems, pos, nil
		}
		return nil, pos, p.malformed(pos, "undefined-length item without Item Delimitation Item")
	}
	return elems, pos, nil
}

func (p *parser) setCharset(el *sdicom.Element) {
	names, _ := el.Value.GetValue().([]string)
	var clean []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" || len(names) > 1 {
			clean = append(clean, n)
		}
	}
	if len(clean) == 0 {
		p.cs = charset.CodingSystem{}
		return
	}
	cs, err := charset.ParseSpecificCharacterSet(clean)
	if err != nil {
		msg := fmt.Sprintf("unknown Specific Character Set %q; strings are read as UTF-8", strings.Join(clean, `\`))
		slog.Warn("dicom: unknown character set, falling back to UTF-8", "charset", strings.Join(clean, `\`))
		p.warn(msg)
		p.cs = charset.CodingSystem{}
		return
	}
	p.cs = cs
}

// parseValue reads the value of h and returns the element and the position after it.
func (p *parser) parseValue(h header, end int, bo binary.ByteOrder, explicit bool, depth int) (*sdicom.Element, int, error) {
	t, vr := h.t, h.vr
	// Implicit VR: a private undefined-length element is a sequence (B02b).
	if h.vl == undefinedLength {
		switch {
		case t == tag.PixelData:
			pd, next, err := p.parseEncapsulated(h.valuePos, end, bo)
			if err != nil {
				return nil, 0, err
			}
			if depth == 0 && p.pixel == nil {
				p.pixel = pd
			}
			return pixelElement(t, vr, h.vl, pd), next, nil
		case vr == "SQ" || vr == "UN" || !h.explicit:
			// UN of undefined length: an implicit VR little endian sequence (PS3.5 6.2.2).
			ibo, iexp := bo, explicit
			if vr == "UN" {
				ibo, iexp = binary.LittleEndian, false
			}
			items, next, err := p.parseSequence(h.valuePos, end, ibo, iexp, true, depth)
			if err != nil {
				return nil, 0, err
			}
			return seqElement(t, "SQ", h.vl, items), next, nil
		case vr == "OB" || vr == "OW":
			pd, next, err := p.parseEncapsulated(h.valuePos, end, bo)
			if err != nil {
				return nil, 0, err
			}
			var all []byte
			for _, f := range pd.Fragments {
				all = append(all, f...)
			}
			return bytesElement(t, vr, h.vl, all), next, nil
		default:
			return nil, 0, p.malformed(h.valuePos, "element %v (VR %s) has undefined length", t, vr)
		}
	}
	if h.vl > uint32(end-h.valuePos) && depth == 0 && end == len(p.buf) &&
		(t == tag.PixelData || t == tag.FloatPixelData || t == tag.DoubleFloatPixelData) {
		// Truncated file (B22): keep the bytes that are there; package pixel
		// reports how many it needed.
		p.warn(fmt.Sprintf("pixel data length %d exceeds the %d bytes left; value truncated", h.vl, end-h.valuePos))
		h.vl = uint32(end - h.valuePos)
	}
	vl := int(h.vl)
	if h.vl > uint32(end-h.valuePos) {
		return nil, 0, p.malformed(h.valuePos, "element %v (VR %s) length %d exceeds the %d bytes left", t, vr, h.vl, end-h.valuePos)
	}
	val := p.buf[h.valuePos : h.valuePos+vl]
	next := h.valuePos + vl
	if vr == "SQ" {
		items, _, err := p.parseSequence(h.valuePos, next, bo, explicit, false, depth)
		if err != nil {
			return nil, 0, err
		}
		return seqElement(t, vr, h.vl, items), next, nil
	}
	if t == tag.PixelData || t == tag.FloatPixelData || t == tag.DoubleFloatPixelData {
		pd := &PixelData{Native: val, BigEndian: bo == binary.BigEndian, VR: vr, Tag: t}
		if depth == 0 && p.pixel == nil {
			p.pixel = pd
		}
		if t == tag.PixelData {
			return pixelElement(t, vr, h.vl, pd), next, nil
		}
		return bytesElement(t, vr, h.vl, val), next, nil
	}
	if vr == "UN" && len(val) >= 8 && bo.Uint16(val) == 0xFFFE && bo.Uint16(val[2:]) == 0xE000 {
		// A private element of unknown VR whose value starts with an Item
		// tag is a sequence (B02b); keep the bytes if it does not parse.
		sub := &parser{buf: p.buf, cs: p.cs}
		if items, _, err := sub.parseSequence(h.valuePos, next, bo, explicit && h.explicit, false, depth); err == nil {
			p.warnings = append(p.warnings, sub.warnings...)
			return seqElement(t, "SQ", h.vl, items), next, nil
		}
	}
	if vr == "UN" {
		// A UN whose tag the dictionary knows: decode with the dictionary VR
		// (the value is implicit VR little endian when it is a sequence).
		if dvr := dictVR(t); dvr != "UN" {
			if dvr == "SQ" {
				items, _, err := p.parseSequence(h.valuePos, next, binary.LittleEndian, false, false, depth)
				if err == nil {
					return seqElement(t, "SQ", h.vl, items), next, nil
				}
				p.warn(fmt.Sprintf("UN element %v is not a valid sequence; kept as bytes", t))
			} else {
				return p.decodeValue(t, dvr, h.vl, val, bo), next, nil
			}
		}
	}
	return p.decodeValue(t, vr, h.vl, val, bo), next, nil
}

// parseSequence reads the items of a sequence value starting at pos.
func (p *parser) parseSequence(pos, end int, bo binary.ByteOrder, explicit, undefined bool, depth int) ([][]*sdicom.Element, int, error) {
	var items [][]*sdicom.Element
	for {
		if !undefined && pos >= end {
			return items, end, nil
		}
		if end-pos < 8 {
			return nil, pos, p.malformed(pos, "sequence ends inside an item header")
		}
		t := tag.Tag{Group: bo.Uint16(p.buf[pos:]), Element: bo.Uint16(p.buf[pos+2:])}
		vl := bo.Uint32(p.buf[pos+4:])
		pos += 8
		switch t {
		case tagSeqDelim:
			if undefined {
				return items, pos, nil
			}
			p.warn("Sequence Delimitation Item inside a defined-length sequence skipped")
			continue
		case tagItemDelim:
			// B04: a stray Item Delimitation Item after a defined-length item.
			p.warn(fmt.Sprintf("stray Item Delimitation Item at byte %d skipped", pos-8))
			continue
		case tagItem:
		default:
			return nil, pos, p.malformed(pos-8, "expected an item in a sequence, found %v", t)
		}
		if vl == undefinedLength {
			elems, next, err := p.parseDataset(pos, end, bo, explicit, true, depth+1)
			if err != nil {
				return nil, pos, err
			}
			items = append(items, elems)
			pos = next
			continue
		}
		if vl > uint32(end-pos) {
			return nil, pos, p.malformed(pos, "item length %d exceeds the %d bytes left", vl, end-pos)
		}
		elems, _, err := p.parseDataset(pos, pos+int(vl), bo, explicit, false, depth+1)
		if err != nil {
			return nil, pos, err
		}
		items = append(items, elems)
		pos += int(vl)
	}
}

// parseEncapsulated reads the items of encapsulated pixel data (PS3.5 A.4):
// the Basic Offset Table then one item per fragment, up to the Sequence
// Delimitation Item (whose length is ignored: B05).
func (p *parser) parseEncapsulated(pos, end int, bo binary.ByteOrder) (*PixelData, int, error) {
	pd := &PixelData{Encapsulated: true, BigEndian: bo == binary.BigEndian, VR: "OB", Tag: tag.PixelData}
	first := true
	for {
		if end-pos < 8 {
			// Missing delimiter at end of file: tolerate with what we have.
			p.warn("encapsulated pixel data without Sequence Delimitation Item")
			return pd, end, nil
		}
		t := tag.Tag{Group: bo.Uint16(p.buf[pos:]), Element: bo.Uint16(p.buf[pos+2:])}
		vl := bo.Uint32(p.buf[pos+4:])
		pos += 8
		if t == tagSeqDelim {
			return pd, pos, nil
		}
		if t != tagItem {
			return nil, pos, p.malformed(pos-8, "expected a fragment item in encapsulated pixel data, found %v", t)
		}
		if vl == undefinedLength || vl > uint32(end-pos) {
			return nil, pos, p.malformed(pos, "fragment length %d exceeds the %d bytes left", vl, end-pos)
		}
		data := p.buf[pos : pos+int(vl)]
		pos += int(vl)
		if first {
			first = false
			if len(data)%4 != 0 {
				return nil, pos, p.malformed(pos, "Basic Offset Table length %d is not a multiple of 4", len(data))
			}
			pd.BasicOffsetTable = make([]uint32, len(data)/4)
			for i := range pd.BasicOffsetTable {
				pd.BasicOffsetTable[i] = bo.Uint32(data[4*i:])
			}
			continue
		}
		pd.Fragments = append(pd.Fragments, data)
	}
}

// decodeValue turns a defined-length value into a suyashkumar Value.
// Multi-byte binary values (OW, OL, OF, OD, OV) are returned little endian.
func (p *parser) decodeValue(t tag.Tag, vr string, vl uint32, val []byte, bo binary.ByteOrder) *sdicom.Element {
	el := &sdicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, ValueLength: vl}
	var data any
	switch vr {
	case "US", "SS", "UL", "SL", "AT", "SV", "UV":
		size := vrSize(vr)
		n := len(val) / size
		ints := make([]int, n)
		for i := 0; i < n; i++ {
			b := val[i*size:]
			switch vr {
			case "US":
				ints[i] = int(bo.Uint16(b))
			case "SS":
				ints[i] = int(int16(bo.Uint16(b)))
			case "UL":
				ints[i] = int(bo.Uint32(b))
			case "SL":
				ints[i] = int(int32(bo.Uint32(b)))
			case "AT":
				ints[i] = int(bo.Uint16(b))<<16 | int(bo.Uint16(b[2:]))
			case "SV":
				ints[i] = int(int64(bo.Uint64(b)))
			case "UV":
				ints[i] = int(bo.Uint64(b)) // values ≥ 2^63 wrap; none seen in practice
			}
		}
		if vr == "SV" || vr == "UV" {
			el.ValueRepresentation = tag.VRInt32List
		}
		data = ints
	case "FL", "FD":
		size := 4
		if vr == "FD" {
			size = 8
		}
		n := len(val) / size
		fs := make([]float64, n)
		for i := 0; i < n; i++ {
			if size == 4 {
				fs[i] = float64(math.Float32frombits(bo.Uint32(val[4*i:])))
			} else {
				fs[i] = math.Float64frombits(bo.Uint64(val[8*i:]))
			}
		}
		data = fs
	case "OB", "UN":
		data = val
	case "OW", "OL", "OF", "OD", "OV":
		data = toLittleEndian(val, bo, vrSize(vr))
		el.ValueRepresentation = tag.VRBytes
	default:
		data = p.decodeStrings(vr, val)
	}
	v, err := sdicom.NewValue(data)
	if err != nil { // cannot happen: data is one of NewValue's types
		v, _ = sdicom.NewValue([]byte(val))
	}
	el.Value = v
	return el
}

// decodeStrings decodes a string VR: character set (for the VRs it applies
// to, PS3.5 6.1.2.3), trailing padding, and backslash-separated values.
func (p *parser) decodeStrings(vr string, val []byte) []string {
	var s string
	switch vr {
	case "SH", "LO", "ST", "LT", "PN", "UC", "UT":
		s = decodeCharset(val, p.cs.Ideographic)
	default:
		s = string(val)
	}
	s = strings.TrimRight(s, " \x00")
	if vr != "LT" && vr != "ST" && vr != "UT" && vr != "UR" {
		s = strings.TrimLeft(s, " ")
	}
	switch vr {
	case "LT", "ST", "UT", "UR":
		return []string{s}
	}
	parts := strings.Split(s, `\`)
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func decodeCharset(val []byte, d *encoding.Decoder) string {
	if d == nil || len(val) == 0 {
		return string(val)
	}
	out, err := d.Bytes(val)
	if err != nil {
		return string(val)
	}
	return string(out)
}

// vrSize is the byte size of one value of a binary VR.
func vrSize(vr string) int {
	switch vr {
	case "US", "SS", "OW":
		return 2
	case "AT", "UL", "SL", "OL", "OF", "FL":
		return 4
	case "SV", "UV", "OD", "OV", "FD":
		return 8
	}
	return 1
}

func toLittleEndian(val []byte, bo binary.ByteOrder, size int) []byte {
	if bo == binary.LittleEndian || size <= 1 {
		return val
	}
	out := make([]byte, len(val))
	n := len(val) / size * size
	for i := 0; i < n; i += size {
		for k := 0; k < size; k++ {
			out[i+k] = val[i+size-1-k]
		}
	}
	copy(out[n:], val[n:])
	return out
}

func seqElement(t tag.Tag, vr string, vl uint32, items [][]*sdicom.Element) *sdicom.Element {
	v, _ := sdicom.NewValue(items)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.VRSequence, RawValueRepresentation: vr, ValueLength: vl, Value: v}
}

func bytesElement(t tag.Tag, vr string, vl uint32, b []byte) *sdicom.Element {
	v, _ := sdicom.NewValue(b)
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.VRBytes, RawValueRepresentation: vr, ValueLength: vl, Value: v}
}

// pixelElement wraps pd as a suyashkumar PixelDataInfo: native data as
// UnprocessedValueData, encapsulated data as one encapsulated frame per
// fragment with the Basic Offset Table in Offsets.
func pixelElement(t tag.Tag, vr string, vl uint32, pd *PixelData) *sdicom.Element {
	info := sdicom.PixelDataInfo{IsEncapsulated: pd.Encapsulated}
	if pd.Encapsulated {
		info.Offsets = pd.BasicOffsetTable
		info.Frames = make([]*frame.Frame, len(pd.Fragments))
		for i, f := range pd.Fragments {
			info.Frames[i] = &frame.Frame{Encapsulated: true, EncapsulatedData: frame.EncapsulatedFrame{Data: f}}
		}
	} else {
		info.IntentionallyUnprocessed = true
		info.UnprocessedValueData = pd.Native
	}
	v, _ := sdicom.NewValue(info)
	if vr == "" {
		vr = "OW"
	}
	return &sdicom.Element{Tag: t, ValueRepresentation: tag.VRPixelData, RawValueRepresentation: vr, ValueLength: vl, Value: v}
}

// parseBytes parses a whole Part 10 file or bare data set held in b.
func parseBytes(b []byte) (*Instance, error) {
	p := &parser{buf: b}
	pos := 0
	var meta []*sdicom.Element
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		pos = 132
	} else if len(b) >= 4 && string(b[:4]) == "DICM" {
		pos = 4
	}
	// File meta information: group 0002, explicit VR LE by the standard,
	// tolerated in implicit VR (B10) and without group length.
	for len(b)-pos >= 8 && binary.LittleEndian.Uint16(b[pos:]) == 0x0002 {
		explicit := validVRs[string(b[pos+4:pos+6])]
		h, err := p.readHeader(pos, binary.LittleEndian, explicit)
		if err != nil {
			return nil, err
		}
		el, next, err := p.parseValue(h, len(b), binary.LittleEndian, explicit, 0)
		if err != nil {
			return nil, err
		}
		meta = append(meta, el)
		pos = next
	}
	if pos == 0 && len(meta) == 0 && !looksLikeDataset(b) || pos == 4 && len(meta) == 0 && !looksLikeDataset(b[4:]) {
		return nil, fmt.Errorf("%w: no DICM prefix, no file meta and no recognisable data set", ErrNotDICOM)
	}
	in := &Instance{}
	for _, el := range meta {
		if el.Tag == tag.TransferSyntaxUID {
			if s, ok := el.Value.GetValue().([]string); ok && len(s) > 0 {
				in.TransferSyntaxUID = strings.TrimRight(s[0], " \x00")
			}
		}
	}
	ds := b[pos:]
	var bo binary.ByteOrder = binary.LittleEndian
	explicit := true
	switch in.TransferSyntaxUID {
	case ImplicitVRLittleEndian:
		explicit = false
	case ExplicitVRBigEndian:
		bo = binary.BigEndian
	case DeflatedExplicitVRLittleEndian:
		inflated, err := inflate(ds)
		if err != nil {
			return nil, err
		}
		ds = inflated
	case "":
		bo, explicit = detectEncoding(ds)
		in.TransferSyntaxUID = ImplicitVRLittleEndian
		if explicit {
			in.TransferSyntaxUID = ExplicitVRLittleEndian
			if bo == binary.BigEndian {
				in.TransferSyntaxUID = ExplicitVRBigEndian
			}
		}
		in.Warnings = append(in.Warnings, "no Transfer Syntax UID in file meta; data set encoding detected as "+in.TransferSyntaxUID)
	default:
		// Every other transfer syntax (the compressed ones) encodes the data set
		// in explicit VR little endian. Guard against an implicit-VR data set
		// mislabelled as explicit.
		_, explicit = detectEncoding(ds)
	}
	p.buf = ds
	p.bo = bo
	p.explicit = explicit
	p.bigEnd = bo == binary.BigEndian
	elems, _, err := p.parseDataset(0, len(ds), bo, explicit, false, 0)
	if err != nil {
		return nil, err
	}
	if len(meta) == 0 && len(elems) == 0 {
		return nil, fmt.Errorf("%w: empty data set", ErrNotDICOM)
	}
	in.Dataset = sdicom.Dataset{Elements: append(meta, elems...)}
	in.Meta = meta
	in.BigEndian = p.bigEnd
	in.ExplicitVR = explicit
	in.Warnings = append(in.Warnings, p.warnings...)
	in.pixel = p.pixel
	return in, nil
}

// looksLikeDataset reports whether b starts like a bare data set: an even
// group in either byte order, small enough to be a standard group.
func looksLikeDataset(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	bo, explicit := detectEncoding(b)
	t := tag.Tag{Group: bo.Uint16(b), Element: bo.Uint16(b[2:])}
	if t.Group%2 == 1 || t.Group < 0x0008 {
		return false
	}
	if _, err := tag.Find(t); err != nil && t.Element != 0 {
		return false
	}
	if !explicit {
		// Implicit VR: the first length must fit in the data.
		return int64(bo.Uint32(b[4:])) <= int64(len(b)-8)
	}
	return true
}

// detectEncoding guesses byte order and VR mode of a data set without file
// meta (B09): the byte order whose first group number is smaller, explicit
// when bytes 4-5 spell a VR.
func detectEncoding(ds []byte) (binary.ByteOrder, bool) {
	if len(ds) < 8 {
		return binary.LittleEndian, false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint16(ds) < binary.LittleEndian.Uint16(ds) {
		bo = binary.BigEndian
	}
	return bo, validVRs[string(ds[4:6])]
}

// inflate decompresses a deflated data set (PS3.5 A.5: raw DEFLATE, RFC 1951;
// a zlib wrapper is tolerated), at most MaxInflatedSize bytes.
func inflate(b []byte) ([]byte, error) {
	var r io.Reader = flate.NewReader(bytes.NewReader(b))
	if len(b) >= 2 && b[0]&0x0F == 8 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0 {
		if zr, err := zlib.NewReader(bytes.NewReader(b)); err == nil {
			r = zr
		}
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxInflatedSize+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
	}
	if len(out) > MaxInflatedSize {
		return nil, fmt.Errorf("%w: deflated data set inflates beyond %d bytes", ErrMalformed, MaxInflatedSize)
	}
	return out, nil
}
