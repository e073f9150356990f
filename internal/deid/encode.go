package deid

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

// encodePart10 writes a Part 10 file: preamble, "DICM", File Meta
// Information, then elems in Explicit VR Little Endian (the data set
// encoding of every transfer syntax but the implicit and big endian ones,
// which are converted). Pixel Data keeps its bytes: native values as stored
// (OW words of a big endian source swapped), encapsulated fragments and the
// Basic Offset Table as they were. It is written here rather than by
// dicom.WritePart10 because that writer always declares Explicit VR Little
// Endian and does not carry Pixel Data or AT values.
func encodePart10(sopClass, sopInstance, ts string, elems []*sdicom.Element, bigEndian bool) ([]byte, error) {
	var meta bytes.Buffer
	w := &writer{buf: &meta}
	metaElems := []*sdicom.Element{
		dicom.NewBytesElement(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		dicom.NewStringElement(tag.MediaStorageSOPClassUID, "UI", sopClass),
		dicom.NewStringElement(tag.MediaStorageSOPInstanceUID, "UI", sopInstance),
		dicom.NewStringElement(tag.TransferSyntaxUID, "UI", ts),
		dicom.NewStringElement(tag.ImplementationClassUID, "UI", dicom.ImplementationClassUID),
		dicom.NewStringElement(tag.ImplementationVersionName, "SH", dicom.ImplementationVersionName),
	}
	for _, e := range metaElems {
		if err := w.element(e); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	ow := &writer{buf: &out}
	ow.header(tag.FileMetaInformationGroupLength, "UL", 4)
	ow.u32(uint32(meta.Len()))
	out.Write(meta.Bytes())
	dw := &writer{buf: &out, bigEndianPixels: bigEndian}
	if err := dw.level(elems); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type writer struct {
	buf             *bytes.Buffer
	bigEndianPixels bool
}

func (w *writer) u16(v uint16) { w.buf.Write(binary.LittleEndian.AppendUint16(nil, v)) }
func (w *writer) u32(v uint32) { w.buf.Write(binary.LittleEndian.AppendUint32(nil, v)) }

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}

func (w *writer) header(t tag.Tag, vr string, n uint32) {
	w.u16(t.Group)
	w.u16(t.Element)
	w.buf.WriteString(vr)
	if longVR(vr) {
		w.u16(0)
		w.u32(n)
	} else {
		w.u16(uint16(n))
	}
}

func (w *writer) level(elems []*sdicom.Element) error {
	sorted := append([]*sdicom.Element(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Tag, sorted[j].Tag
		return a.Group < b.Group || a.Group == b.Group && a.Element < b.Element
	})
	for i, e := range sorted {
		if i > 0 && e.Tag == sorted[i-1].Tag {
			return fmt.Errorf("%w: duplicate element %v", ErrEncode, e.Tag)
		}
		if err := w.element(e); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) element(e *sdicom.Element) error {
	vr := elemVR(e)
	if e.Value == nil {
		w.header(e.Tag, vr, 0)
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []*sdicom.SequenceItemValue:
		w.header(e.Tag, "SQ", 0xFFFFFFFF)
		for _, it := range v {
			sub, _ := it.GetValue().([]*sdicom.Element)
			w.u16(0xFFFE)
			w.u16(0xE000)
			w.u32(0xFFFFFFFF)
			if err := w.level(sub); err != nil {
				return fmt.Errorf("%v: %w", e.Tag, err)
			}
			w.u16(0xFFFE)
			w.u16(0xE00D)
			w.u32(0)
		}
		w.u16(0xFFFE)
		w.u16(0xE0DD)
		w.u32(0)
		return nil
	case sdicom.PixelDataInfo:
		return w.pixels(e.Tag, vr, v)
	case []string:
		s := strings.Join(v, `\`)
		if len(s)%2 == 1 {
			if vr == "UI" {
				s += "\x00"
			} else {
				s += " "
			}
		}
		return w.value(e.Tag, vr, []byte(s))
	case []byte:
		b := v
		if len(b)%2 == 1 {
			b = append(append([]byte(nil), b...), 0)
		}
		return w.value(e.Tag, vr, b)
	case []int:
		var b []byte
		for _, n := range v {
			switch vr {
			case "US", "SS", "OW":
				b = binary.LittleEndian.AppendUint16(b, uint16(n))
			case "UL", "SL", "OL":
				b = binary.LittleEndian.AppendUint32(b, uint32(n))
			case "AT":
				b = binary.LittleEndian.AppendUint16(b, uint16(uint32(n)>>16))
				b = binary.LittleEndian.AppendUint16(b, uint16(n))
			case "SV", "UV", "OV":
				b = binary.LittleEndian.AppendUint64(b, uint64(n))
			default:
				return fmt.Errorf("%w: %v: integer value with VR %s", ErrEncode, e.Tag, vr)
			}
		}
		return w.value(e.Tag, vr, b)
	case []float64:
		var b []byte
		for _, f := range v {
			switch vr {
			case "FL", "OF":
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
			case "FD", "OD":
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
			default:
				return fmt.Errorf("%w: %v: float value with VR %s", ErrEncode, e.Tag, vr)
			}
		}
		return w.value(e.Tag, vr, b)
	}
	return fmt.Errorf("%w: %v: unsupported value type %T", ErrEncode, e.Tag, e.Value.GetValue())
}

func (w *writer) value(t tag.Tag, vr string, b []byte) error {
	limit := 0xFFFE
	if longVR(vr) {
		limit = 0xFFFFFFFE
	}
	if len(b) > limit {
		return fmt.Errorf("%w: %v (VR %s): %d bytes exceed the VR's length field", ErrEncode, t, vr, len(b))
	}
	w.header(t, vr, uint32(len(b)))
	w.buf.Write(b)
	return nil
}

// pixels writes Pixel Data: encapsulated as Basic Offset Table item plus one
// item per fragment and a Sequence Delimitation Item; native as one value.
func (w *writer) pixels(t tag.Tag, vr string, info sdicom.PixelDataInfo) error {
	if info.IsEncapsulated {
		w.header(t, "OB", 0xFFFFFFFF)
		w.u16(0xFFFE)
		w.u16(0xE000)
		w.u32(uint32(4 * len(info.Offsets)))
		for _, o := range info.Offsets {
			w.u32(o)
		}
		for _, f := range info.Frames {
			data := f.EncapsulatedData.Data
			if len(data)%2 == 1 {
				data = append(append([]byte(nil), data...), 0)
			}
			w.u16(0xFFFE)
			w.u16(0xE000)
			w.u32(uint32(len(data)))
			w.buf.Write(data)
		}
		w.u16(0xFFFE)
		w.u16(0xE0DD)
		w.u32(0)
		return nil
	}
	b := info.UnprocessedValueData
	if vr != "OB" && vr != "OW" {
		vr = "OW"
	}
	if w.bigEndianPixels && vr == "OW" {
		s := make([]byte, len(b))
		for i := 0; i+1 < len(b); i += 2 {
			s[i], s[i+1] = b[i+1], b[i]
		}
		b = s
	}
	if len(b)%2 == 1 {
		b = append(append([]byte(nil), b...), 0)
	}
	return w.value(t, vr, b)
}
