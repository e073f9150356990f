package deid

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

var testSecret = []byte("radflow-test-project-secret-0001")

func TestTableParses(t *testing.T) {
	rules := Table()
	if len(rules) != 647 {
		t.Fatalf("%d rows, want 647 (PS3.15 2025 Table E.1-1 as transcribed)", len(rules))
	}
	counts := map[Action]int{}
	for _, r := range rules {
		counts[r.Basic]++
	}
	// The distribution of basic actions of the transcription; a changed
	// transcription must update these on purpose.
	want := map[Action]int{"X": 409, "D": 92, "U": 55, "Z": 42, "X/D": 22, "X/Z": 11, "X/Z/D": 8, "Z/D": 6, "X/Z/U*": 2}
	for a, n := range want {
		if counts[a] != n {
			t.Errorf("basic action %s: %d rows, want %d", a, counts[a], n)
		}
	}
	for _, c := range []struct {
		t    tag.Tag
		name string
		a    Action
	}{
		{tag.PatientName, "Patient's Name", "Z"},
		{tag.PatientID, "Patient ID", "Z/D"},
		{tag.StudyInstanceUID, "Study Instance UID", "U"},
		{tag.Tag{Group: 0x0008, Element: 0x1140}, "Referenced Image Sequence", "X/Z/U*"},
		{tag.Tag{Group: 0x0040, Element: 0xA730}, "Content Sequence", "D"},
	} {
		r, ok := Lookup(c.t)
		if !ok || r.Name != c.name || r.Basic != c.a {
			t.Errorf("Lookup(%v) = %+v, %v; want %s %s", c.t, r, ok, c.name, c.a)
		}
	}
	if r, _ := Lookup(tag.Tag{Group: 0x0008, Element: 0x0020}); r.FullDates != ActKeep || r.Action(Options{RetainLongitudinalFullDates: true}) != ActKeep {
		t.Errorf("Study Date under Full Dates: %+v", r)
	}
	if r, ok := Lookup(tag.Tag{Group: 0x6004, Element: 0x3000}); !ok || r.Pattern != PatternOverlayData {
		t.Errorf("overlay 6004,3000: %+v %v", r, ok)
	}
	if r, ok := Lookup(tag.Tag{Group: 0x0029, Element: 0x1010}); !ok || r.Pattern != PatternPrivate || r.Basic != ActRemove {
		t.Errorf("private: %+v %v", r, ok)
	}
	if _, ok := Lookup(tag.Modality); ok {
		t.Error("Modality is not in Table E.1-1")
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		a    Action
		vr   string
		want Action
	}{
		{"X/Z", "DA", "Z"}, {"X/D", "LO", "D"}, {"X/Z/D", "SH", "D"}, {"Z/D", "DA", "D"},
		{"X/Z", "SQ", "Z"}, {"X/D", "SQ", "X"}, {"X/Z/D", "SQ", "Z"}, {"Z/D", "SQ", "Z"},
		{"X/Z/U*", "SQ", "U"}, {"D", "SQ", "D"}, {"K", "LO", "K"}, {"C", "LT", "C"},
	} {
		if got := Resolve(c.a, c.vr); got != c.want {
			t.Errorf("Resolve(%s, %s) = %s, want %s", c.a, c.vr, got, c.want)
		}
	}
}

// vrOf returns the dictionary VR of t, or one guessed from the name for
// attributes newer than suyashkumar/dicom's dictionary.
func vrOf(r Rule) string {
	if info, err := tag.Find(r.Tag); err == nil && len(info.VRs) > 0 && len(info.VRs[0]) == 2 {
		return info.VRs[0]
	}
	switch n := r.Name; {
	case r.Basic == ActUID:
		return "UI"
	case strings.HasSuffix(n, "Sequence"):
		return "SQ"
	case strings.HasSuffix(n, "DateTime"):
		return "DT"
	case strings.HasSuffix(n, "Date"):
		return "DA"
	case strings.HasSuffix(n, "Time"):
		return "TM"
	case strings.HasSuffix(n, "UID"):
		return "UI"
	}
	return "LO"
}

const ident = "SMITHERS" // a patient name part every sample text contains

func sampleUID(t tag.Tag) string {
	return fmt.Sprintf("1.2.826.0.1.3680043.9.7777.%d.%d", t.Group, t.Element)
}

// sample returns an element of t with a recognisable value.
func sample(t tag.Tag, vr string) *sdicom.Element {
	switch vr {
	case "PN":
		return dicom.NewStringElement(t, vr, ident+"^JOHN")
	case "DA":
		return dicom.NewStringElement(t, vr, "20240131")
	case "TM":
		return dicom.NewStringElement(t, vr, "101010")
	case "DT":
		return dicom.NewStringElement(t, vr, "20240131101010")
	case "AS":
		return dicom.NewStringElement(t, vr, "045Y")
	case "IS":
		return dicom.NewStringElement(t, vr, "7")
	case "DS":
		return dicom.NewStringElement(t, vr, "7.5")
	case "CS":
		return dicom.NewStringElement(t, vr, "VALUE7")
	case "UI":
		return dicom.NewStringElement(t, vr, sampleUID(t))
	case "US", "SS", "UL", "SL", "SV", "UV":
		return dicom.NewIntElement(t, vr, 7)
	case "AT":
		return dicom.NewIntElement(t, vr, 0x00100010)
	case "FL", "FD":
		return dicom.NewFloatElement(t, vr, 7.5)
	case "OB", "OW", "OF", "OD", "OL", "OV", "UN":
		return dicom.NewBytesElement(t, vr, []byte("SMITHERS"))
	case "SQ":
		return dicom.NewSequenceElement(t, []*sdicom.Element{
			dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x0100}, "SH", "C7"),
			dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x0104}, "LO", "meaning "+ident),
			dicom.NewStringElement(tag.Tag{Group: 0x0040, Element: 0xA123}, "PN", ident+"^JOHN"),
		})
	}
	return dicom.NewStringElement(t, vr, "text "+ident)
}

var nestParent = tag.Tag{Group: 0x0008, Element: 0x1115} // Referenced Series Sequence: not in the table

// syntheticAll builds an instance holding every non-pattern attribute of
// the table at the top level and again inside an item of nestParent.
func syntheticAll(t *testing.T) (*dicom.Instance, map[tag.Tag]string) {
	t.Helper()
	vrs := map[tag.Tag]string{}
	var top, nested []*sdicom.Element
	for _, r := range Table() {
		if r.Pattern != "" || r.Tag.Group == 0x0002 {
			continue
		}
		vr := vrOf(r)
		vrs[r.Tag] = vr
		top = append(top, sample(r.Tag, vr))
		nested = append(nested, sample(r.Tag, vr))
	}
	// (0008,0016) and (0008,0018) are needed to write the file; 0008,0018 is in the table.
	top = append(top, dicom.NewStringElement(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dicom.NewSequenceElement(nestParent, nested))
	b, err := dicom.EncodePart10(dicom.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: sampleUID(tag.SOPInstanceUID)}, top)
	if err != nil {
		t.Fatal(err)
	}
	in, err := dicom.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return in, vrs
}

func find(elems []*sdicom.Element, t tag.Tag) *sdicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

// TestEveryTableAction applies the profile under six option sets to a data
// set holding every attribute of Table E.1-1 (top level and nested in a
// sequence) and checks each attribute's outcome against its action.
func TestEveryTableAction(t *testing.T) {
	in, vrs := syntheticAll(t)
	keys := NewKeys(testSecret)
	sets := map[string]Options{
		"basic":     {},
		"fulldates": {RetainLongitudinalFullDates: true},
		"patient":   {RetainPatientCharacteristics: true},
		"device":    {RetainDeviceIdentity: true},
		"clean":     {CleanDescriptors: true},
		"all":       {RetainLongitudinalFullDates: true, RetainPatientCharacteristics: true, RetainDeviceIdentity: true, CleanDescriptors: true},
	}
	for name, o := range sets {
		t.Run(name, func(t *testing.T) {
			o.ProjectSecret = testSecret
			b, err := Apply(in, o)
			if err != nil {
				t.Fatal(err)
			}
			out, err := dicom.ParseBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			items := out.Items(nestParent)
			if len(items) != 1 {
				t.Fatalf("nested parent has %d items", len(items))
			}
			seen := map[Action]int{}
			for tg, vr := range vrs {
				r, _ := Lookup(tg)
				act := Resolve(r.Action(o), vr)
				seen[act]++
				for lvl, elems := range map[string][]*sdicom.Element{"top": out.Dataset.Elements, "nested": items[0].Elements} {
					if tg == tag.SOPInstanceUID && lvl == "top" || tg.Group == 0x0012 && tg.Element >= 0x0062 && tg.Element <= 0x0064 {
						continue
					}
					if msg := checkAction(find(elems, tg), sample(tg, vr), tg, vr, act, keys); msg != "" {
						t.Errorf("%s %v %s (%s, %s→%s): %s", lvl, tg, r.Name, vr, r.Action(o), act, msg)
					}
				}
			}
			for _, a := range []Action{ActRemove, ActZero, ActDummy, ActUID} {
				if seen[a] == 0 {
					t.Errorf("no attribute exercised action %s", a)
				}
			}
			if (o.RetainLongitudinalFullDates || o.RetainPatientCharacteristics || o.RetainDeviceIdentity) && seen[ActKeep] == 0 {
				t.Error("option set exercised no K")
			}
			if o.CleanDescriptors && seen[ActClean] == 0 {
				t.Error("Clean Descriptors exercised no C")
			}
		})
	}
}

func strs(e *sdicom.Element) []string {
	if e == nil || e.Value == nil {
		return nil
	}
	s, _ := e.Value.GetValue().([]string)
	return s
}

func empty(e *sdicom.Element) bool {
	switch v := e.Value.GetValue().(type) {
	case []string:
		return strings.Join(v, "") == ""
	case []byte:
		return len(v) == 0
	case []int:
		return len(v) == 0
	case []float64:
		return len(v) == 0
	case []*sdicom.SequenceItemValue:
		return len(v) == 0
	}
	return false
}

func same(a, b *sdicom.Element) bool {
	switch av := a.Value.GetValue().(type) {
	case []string:
		return strings.Join(av, `\`) == strings.Join(strs(b), `\`)
	case []byte:
		bv, _ := b.Value.GetValue().([]byte)
		return bytes.Equal(av, bv)
	}
	return fmt.Sprint(a.Value.GetValue()) == fmt.Sprint(b.Value.GetValue())
}

func checkAction(got, orig *sdicom.Element, tg tag.Tag, vr string, act Action, keys *Keys) string {
	_, binary := orig.Value.GetValue().([]byte)
	if act == ActRemove || act == ActClean && binary {
		if got != nil {
			return "present, want removed"
		}
		return ""
	}
	if got == nil {
		return "removed, want present"
	}
	if vr == "SQ" {
		items, _ := seqItems(got)
		switch act {
		case ActZero:
			if len(items) != 0 {
				return fmt.Sprintf("%d items, want empty sequence", len(items))
			}
		case ActDummy, ActKeep, ActUID, ActClean:
			if len(items) != 1 {
				return fmt.Sprintf("%d items, want 1", len(items))
			}
			if pn := firstString(find(items[0], tag.Tag{Group: 0x0040, Element: 0xA123})); strings.Contains(pn, ident) {
				return "Person Name inside the sequence not replaced (the table applies recursively)"
			}
			meaning := firstString(find(items[0], tag.Tag{Group: 0x0008, Element: 0x0104}))
			if act == ActClean && meaning != "meaning *" {
				return fmt.Sprintf("Code Meaning %q, want cleaned \"meaning *\"", meaning)
			}
			if act == ActDummy && identityCodeSeqs[tg] && meaning != "ANONYMIZED" {
				return fmt.Sprintf("Code Meaning %q kept in a person's identification code sequence", meaning)
			}
			if act == ActDummy && !identityCodeSeqs[tg] && meaning != "meaning "+ident {
				return fmt.Sprintf("Code Meaning %q changed in a D sequence (code attributes are kept)", meaning)
			}
		}
		return ""
	}
	switch act {
	case ActZero:
		if !empty(got) {
			return fmt.Sprintf("value %v, want zero length", got.Value.GetValue())
		}
	case ActKeep:
		if !same(got, orig) {
			return fmt.Sprintf("value %v, want kept %v", got.Value.GetValue(), orig.Value.GetValue())
		}
	case ActUID:
		if want := keys.UID(firstString(orig)); firstString(got) != want {
			return fmt.Sprintf("UID %q, want %q", firstString(got), want)
		}
	case ActDummy:
		if empty(got) || same(got, orig) {
			return fmt.Sprintf("value %v, want a dummy", got.Value.GetValue())
		}
		if tg == tag.PatientID && firstString(got) != keys.PatientID(firstString(orig)) {
			return "Patient ID is not the keyed pseudonym"
		}
		if vr == "UI" && firstString(got) != keys.UID(firstString(orig)) {
			return "UI dummy is not the keyed UID"
		}
	case ActClean:
		s := strings.Join(strs(got), `\`)
		if strings.Contains(s, ident) || s == "" {
			return fmt.Sprintf("value %q, want cleaned of %q", s, ident)
		}
	}
	return ""
}
