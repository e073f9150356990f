// Package dicomtest writes small synthetic DICOM files for tests: Part 10
// or bare data sets in explicit VR little/big endian or implicit VR little
// endian, with sequences and native or encapsulated pixel data. It writes
// exactly what it is told (including invalid lengths), so tests can build
// malformed inputs too. It owns nothing used outside tests.
package dicomtest

import (
	"encoding/binary"
)

// Elem is one element to write. Exactly one of the value fields is used:
// Raw (bytes as-is), Items (a sequence), Frags (encapsulated pixel data:
// Frags[0] is the Basic Offset Table), Str, U16s, U32s.
type Elem struct {
	Group, Element uint16
	VR             string
	Str            string
	U16s           []uint16
	U32s           []uint32
	Raw            []byte
	Items          [][]Elem
	Frags          [][]byte
	// Length overrides the written length when non-zero (hostile inputs);
	// UndefinedLength writes 0xFFFFFFFF for sequences and items.
	Length          uint32
	UndefinedLength bool
}

// Encoding of the data set.
type Encoding struct {
	BigEndian, Implicit bool
}

// S returns a string element.
func S(g, e uint16, vr, s string) Elem { return Elem{Group: g, Element: e, VR: vr, Str: s} }

// US returns a US element.
func US(g, e uint16, v ...uint16) Elem { return Elem{Group: g, Element: e, VR: "US", U16s: v} }

// Bytes returns an element with raw bytes.
func Bytes(g, e uint16, vr string, b []byte) Elem { return Elem{Group: g, Element: e, VR: vr, Raw: b} }

// Part10 returns a preamble, DICM, explicit VR LE file meta with the given
// transfer syntax, then the data set encoded per enc.
func Part10(tsUID string, enc Encoding, elems ...Elem) []byte {
	var meta []byte
	le := Encoding{}
	for _, e := range []Elem{
		Bytes(0x0002, 0x0001, "OB", []byte{0, 1}),
		S(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		S(0x0002, 0x0003, "UI", "1.2.3.4"),
		S(0x0002, 0x0010, "UI", tsUID),
	} {
		meta = append(meta, encode(e, le)...)
	}
	out := make([]byte, 128, 128+4+12+len(meta)+1024)
	out = append(out, "DICM"...)
	out = append(out, encode(Elem{Group: 2, Element: 0, VR: "UL", U32s: []uint32{uint32(len(meta))}}, le)...)
	out = append(out, meta...)
	return append(out, Dataset(enc, elems...)...)
}

// Dataset encodes elems (in the given order) per enc.
func Dataset(enc Encoding, elems ...Elem) []byte {
	var out []byte
	for _, e := range elems {
		out = append(out, encode(e, enc)...)
	}
	return out
}

func pad(b []byte, vr string) []byte {
	if len(b)%2 == 0 {
		return b
	}
	switch vr {
	case "UI", "OB", "UN":
		return append(b, 0)
	}
	return append(b, ' ')
}

func encode(e Elem, enc Encoding) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if enc.BigEndian {
		bo = binary.BigEndian
	}
	var val []byte
	undefined := e.UndefinedLength
	switch {
	case e.Frags != nil:
		for _, f := range e.Frags {
			val = append(val, item(bo, uint32(len(f)))...)
			val = append(val, f...)
		}
		val = append(val, tagBytes(bo, 0xFFFE, 0xE0DD, 0)...)
		undefined = true
	case e.Items != nil:
		for _, it := range e.Items {
			var body []byte
			for _, s := range it {
				body = append(body, encode(s, enc)...)
			}
			if undefined {
				val = append(val, item(bo, 0xFFFFFFFF)...)
				val = append(val, body...)
				val = append(val, tagBytes(bo, 0xFFFE, 0xE00D, 0)...)
			} else {
				val = append(val, item(bo, uint32(len(body)))...)
				val = append(val, body...)
			}
		}
		if undefined {
			val = append(val, tagBytes(bo, 0xFFFE, 0xE0DD, 0)...)
		}
	case e.U16s != nil:
		for _, v := range e.U16s {
			val = bo.AppendUint16(val, v)
		}
	case e.U32s != nil:
		for _, v := range e.U32s {
			val = bo.AppendUint32(val, v)
		}
	case e.Raw != nil:
		val = append(val, e.Raw...)
	default:
		val = []byte(e.Str)
	}
	if e.Raw == nil && e.Frags == nil {
		val = pad(val, e.VR)
	}
	length := uint32(len(val))
	if undefined {
		length = 0xFFFFFFFF
	}
	if e.Length != 0 {
		length = e.Length
	}
	var h []byte
	h = bo.AppendUint16(h, e.Group)
	h = bo.AppendUint16(h, e.Element)
	switch {
	case enc.Implicit:
		h = bo.AppendUint32(h, length)
	case longVR(e.VR):
		h = append(h, e.VR...)
		h = append(h, 0, 0)
		h = bo.AppendUint32(h, length)
	default:
		h = append(h, e.VR...)
		h = bo.AppendUint16(h, uint16(length))
	}
	return append(h, val...)
}

func item(bo binary.AppendByteOrder, length uint32) []byte {
	return tagBytes(bo, 0xFFFE, 0xE000, length)
}

func tagBytes(bo binary.AppendByteOrder, g, e uint16, length uint32) []byte {
	var b []byte
	b = bo.AppendUint16(b, g)
	b = bo.AppendUint16(b, e)
	return bo.AppendUint32(b, length)
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}
