package dicomweb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Media types.
const (
	MediaDICOM       = "application/dicom"
	MediaDICOMJSON   = "application/dicom+json"
	MediaMultipart   = "multipart/related"
	MediaOctet       = "application/octet-stream"
	MediaPNG         = "image/png"
	MediaJPEG        = "image/jpeg"
	explicitVRLittle = "1.2.840.10008.1.2.1"
)

// Dataset is a DICOM JSON object (PS3.18 F.2): attribute tags as 8
// upper-case hex digits ("0020000D") mapped to attributes. encoding/json
// writes map keys sorted, i.e. in tag order.
type Dataset map[string]Attribute

// Attribute is one DICOM JSON attribute (PS3.18 F.2.2).
//
// Value elements by VR: string for text VRs (AE AS CS DA DT LO LT SH ST TM UC
// UI UR UT, and AT as 8 hex digits), PersonName for PN, Dataset for SQ
// items, numbers for IS DS US SS UL SL FL FD SV UV (int or float64 when
// built here; float64 when decoded), nil for an empty value.
type Attribute struct {
	VR           string
	Value        []any
	InlineBinary []byte
	BulkDataURI  string
}

// PersonName is a PN value's component groups (PS3.18 F.2.2).
type PersonName struct {
	Alphabetic  string `json:"Alphabetic,omitempty"`
	Ideographic string `json:"Ideographic,omitempty"`
	Phonetic    string `json:"Phonetic,omitempty"`
}

// ParsePersonName splits a DICOM PN value (groups separated by '=').
func ParsePersonName(s string) PersonName {
	g := strings.SplitN(s, "=", 3)
	var p PersonName
	p.Alphabetic = g[0]
	if len(g) > 1 {
		p.Ideographic = g[1]
	}
	if len(g) > 2 {
		p.Phonetic = g[2]
	}
	return p
}

type wireAttribute struct {
	VR           string `json:"vr"`
	Value        []any  `json:"Value,omitempty"`
	InlineBinary []byte `json:"InlineBinary,omitempty"`
	BulkDataURI  string `json:"BulkDataURI,omitempty"`
}

type wireAttributeIn struct {
	VR           string            `json:"vr"`
	Value        []json.RawMessage `json:"Value"`
	InlineBinary []byte            `json:"InlineBinary"`
	BulkDataURI  string            `json:"BulkDataURI"`
}

// MarshalJSON writes {"vr":..,"Value":[..]} (Value omitted when empty).
func (a Attribute) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireAttribute(a))
}

// UnmarshalJSON decodes an attribute, typing Value by VR (see Attribute).
func (a *Attribute) UnmarshalJSON(b []byte) error {
	var w wireAttributeIn
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = Attribute{VR: w.VR, InlineBinary: w.InlineBinary, BulkDataURI: w.BulkDataURI}
	for _, raw := range w.Value {
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			a.Value = append(a.Value, nil)
			continue
		}
		var v any
		var err error
		switch w.VR {
		case "SQ":
			var d Dataset
			err = json.Unmarshal(raw, &d)
			v = d
		case "PN":
			var p PersonName
			err = json.Unmarshal(raw, &p)
			v = p
		default:
			err = json.Unmarshal(raw, &v)
		}
		if err != nil {
			return fmt.Errorf("dicomweb: attribute with VR %s: %w", w.VR, err)
		}
		a.Value = append(a.Value, v)
	}
	return nil
}

// TagKey returns the DICOM JSON key of t ("0020000D").
func TagKey(t tag.Tag) string { return fmt.Sprintf("%04X%04X", t.Group, t.Element) }

// ParseTag parses an attribute given as a keyword ("PatientID") or as 8 hex
// digits ("00100020"). ok is false for anything else.
func ParseTag(s string) (tag.Tag, bool) {
	if len(s) == 8 {
		if n, err := strconv.ParseUint(s, 16, 32); err == nil {
			return tag.Tag{Group: uint16(n >> 16), Element: uint16(n)}, true
		}
	}
	if s == "" || !isKeyword(s) {
		return tag.Tag{}, false
	}
	info, err := tag.FindByKeyword(s)
	if err != nil || info.Keyword != s {
		return tag.Tag{}, false
	}
	return info.Tag, true
}

func isKeyword(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Set sets t to the given VR and values; an empty values list leaves the
// attribute present with no Value (PS3.18 F.2.5).
func (d Dataset) Set(t tag.Tag, vr string, values ...any) {
	d[TagKey(t)] = Attribute{VR: vr, Value: values}
}

// SetString sets a text attribute with one value, or no value when s is "".
func (d Dataset) SetString(t tag.Tag, vr, s string) {
	if s == "" {
		d.Set(t, vr)
		return
	}
	if vr == "PN" {
		d.Set(t, vr, ParsePersonName(s))
		return
	}
	d.Set(t, vr, s)
}

// String returns the first value of t as a string ("" when absent; PN gives
// the Alphabetic group; numbers are formatted).
func (d Dataset) String(t tag.Tag) string {
	a, ok := d[TagKey(t)]
	if !ok || len(a.Value) == 0 || a.Value[0] == nil {
		return ""
	}
	switch v := a.Value[0].(type) {
	case string:
		return v
	case PersonName:
		return v.Alphabetic
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Int returns the first numeric value of t, or def.
func (d Dataset) Int(t tag.Tag, def int) int {
	a, ok := d[TagKey(t)]
	if !ok || len(a.Value) == 0 {
		return def
	}
	switch v := a.Value[0].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case json.Number:
		n, err := v.Int64()
		if err == nil {
			return int(n)
		}
	}
	return def
}

// Items returns the items of sequence t.
func (d Dataset) Items(t tag.Tag) []Dataset {
	a := d[TagKey(t)]
	var out []Dataset
	for _, v := range a.Value {
		if it, ok := v.(Dataset); ok {
			out = append(out, it)
		}
	}
	return out
}
