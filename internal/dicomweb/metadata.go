package dicomweb

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

// MaxInlineBinary is the largest binary value (OB, OW, UN, ...) written as
// InlineBinary in metadata; larger values are written without a value (or
// with a BulkDataURI for Pixel Data).
const MaxInlineBinary = 1024

// MetadataOf converts the top-level data set of in to DICOM JSON (PS3.18
// F.2). File meta information (group 0002) and group length elements are
// omitted. Pixel Data (and Float/Double Float Pixel Data) get BulkDataURI
// pixelURI when pixelURI is non-empty, else no value. Binary values of at
// most MaxInlineBinary bytes are InlineBinary; larger ones have no value.
// Private attributes are kept (their VR as stored; UN when unknown).
func MetadataOf(in *dicom.Instance, pixelURI string) Dataset {
	return convertElements(in.Dataset.Elements, pixelURI, 0)
}

func convertElements(elems []*sdicom.Element, pixelURI string, depth int) Dataset {
	d := make(Dataset, len(elems))
	for _, el := range elems {
		if el == nil || el.Tag.Group == 0x0002 || el.Tag.Element == 0x0000 || el.Tag.Group == 0xFFFE {
			continue
		}
		if a, ok := convertElement(el, pixelURI, depth); ok {
			d[TagKey(el.Tag)] = a
		}
	}
	return d
}

func vrOf(el *sdicom.Element) string {
	vr := el.RawValueRepresentation
	if vr == "" || vr == "NA" || len(vr) != 2 {
		if info, err := tag.Find(el.Tag); err == nil && len(info.VRs) > 0 {
			vr = info.VRs[0]
		} else {
			vr = "UN"
		}
	}
	if strings.Contains(vr, " or ") { // dictionary "OB or OW"
		vr = vr[:2]
	}
	return vr
}

func convertElement(el *sdicom.Element, pixelURI string, depth int) (Attribute, bool) {
	vr := vrOf(el)
	a := Attribute{VR: vr}
	if el.Value == nil {
		return a, true
	}
	switch v := el.Value.GetValue().(type) {
	case sdicom.PixelDataInfo:
		if vr != "OB" && vr != "OW" && vr != "OF" && vr != "OD" {
			a.VR = "OW"
			if v.IsEncapsulated {
				a.VR = "OB"
			}
		}
		a.BulkDataURI = pixelURI
	case []*sdicom.SequenceItemValue:
		a.VR = "SQ"
		if depth >= 32 {
			return a, true
		}
		for _, it := range v {
			elems, _ := it.GetValue().([]*sdicom.Element)
			a.Value = append(a.Value, convertElements(elems, "", depth+1))
		}
	case []string:
		a.Value = stringValues(vr, v)
	case []int:
		for _, n := range v {
			if vr == "AT" {
				a.Value = append(a.Value, fmt.Sprintf("%08X", uint32(n)))
			} else {
				a.Value = append(a.Value, n)
			}
		}
	case []float64:
		for _, f := range v {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				a.Value = append(a.Value, nil)
			} else {
				a.Value = append(a.Value, f)
			}
		}
	case []byte:
		if len(v) <= MaxInlineBinary && len(v) > 0 {
			a.InlineBinary = v
		}
	}
	return a, true
}

// stringValues converts the decoded values of a text VR to DICOM JSON values.
func stringValues(vr string, v []string) []any {
	allEmpty := true
	for _, s := range v {
		if strings.TrimSpace(s) != "" {
			allEmpty = false
		}
	}
	if allEmpty {
		return nil
	}
	out := make([]any, 0, len(v))
	for _, s := range v {
		s = strings.TrimRight(s, " \x00")
		if vr != "LT" && vr != "ST" && vr != "UT" {
			s = strings.TrimLeft(s, " ")
		}
		if s == "" {
			out = append(out, nil)
			continue
		}
		switch vr {
		case "PN":
			out = append(out, ParsePersonName(s))
		case "IS":
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				out = append(out, n)
			} else if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
				out = append(out, f)
			} else {
				out = append(out, nil)
			}
		case "DS":
			if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				out = append(out, f)
			} else {
				out = append(out, nil)
			}
		default:
			out = append(out, s)
		}
	}
	return out
}
