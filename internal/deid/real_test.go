package deid

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

const sharedDICOM = "../../../shared/dicom"

func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(sharedDICOM, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared DICOM test data not found at %s (run from a checkout beside ../shared): %v", p, err)
	}
	return p
}

// secrets collects what must not survive de-identification: patient names
// and ID, dates of the table's date attributes, and every UID the table
// replaces (any level), with the attribute it came from.
func secrets(in *dicom.Instance) map[string]string {
	out := map[string]string{}
	var walk func(elems []*sdicom.Element)
	walk = func(elems []*sdicom.Element) {
		for _, e := range elems {
			if items, ok := seqItems(e); ok {
				for _, it := range items {
					walk(it)
				}
				continue
			}
			r, listed := Lookup(e.Tag)
			if !listed || r.Pattern != "" {
				continue
			}
			vr := elemVR(e)
			for _, v := range stringsOf(e) {
				v = strings.TrimSpace(v)
				switch {
				case vr == "UI" && r.Basic == ActUID, vr == "DA" && len(v) == 8, vr == "DT" && len(v) >= 8:
					out[v] = r.Name
				case vr == "PN" || e.Tag == tag.PatientID || e.Tag == tag.AccessionNumber:
					for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == '^' || r == '=' || r == ' ' }) {
						if len(p) >= 4 {
							out[p] = r.Name
						}
					}
				}
			}
		}
	}
	walk(in.Dataset.Elements)
	return out
}

func samePixels(t *testing.T, a, b *dicom.PixelData) {
	t.Helper()
	if a == nil || b == nil {
		if a != b {
			t.Fatalf("pixel data presence changed: %v → %v", a != nil, b != nil)
		}
		return
	}
	if a.Encapsulated != b.Encapsulated || !bytes.Equal(a.Native, b.Native) || len(a.Fragments) != len(b.Fragments) {
		t.Fatalf("pixel data changed: encapsulated %v→%v, native %d→%d bytes, %d→%d fragments",
			a.Encapsulated, b.Encapsulated, len(a.Native), len(b.Native), len(a.Fragments), len(b.Fragments))
	}
	for i := range a.Fragments {
		if !bytes.Equal(a.Fragments[i], b.Fragments[i]) {
			t.Fatalf("fragment %d changed", i)
		}
	}
	if len(a.BasicOffsetTable) != len(b.BasicOffsetTable) {
		t.Fatalf("Basic Offset Table %v → %v", a.BasicOffsetTable, b.BasicOffsetTable)
	}
}

func TestRealFiles(t *testing.T) {
	keys := NewKeys(testSecret)
	for _, c := range []struct {
		rel     string
		minGone int // how many identifying values the file holds at least
		wantTS  string
	}{
		{"nhsx-nih-chestxray/sample.dcm", 3, dicom.ExplicitVRLittleEndian},
		{"debian-python3-pydicom/CT_small.dcm", 8, dicom.ExplicitVRLittleEndian},
		{"debian-python3-pydicom/MR_small.dcm", 8, dicom.ExplicitVRLittleEndian},
		{"debian-python3-pydicom/MR_small_implicit.dcm", 8, dicom.ExplicitVRLittleEndian},
		{"cornerstoneWADOImageLoader/no-pixel-data.dcm", 6, dicom.ExplicitVRLittleEndian},
		{"cornerstoneWADOImageLoader/CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm", 4, "1.2.840.10008.1.2.4.90"},
	} {
		t.Run(filepath.Base(c.rel), func(t *testing.T) {
			p := sharedFile(t, c.rel)
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			in, err := dicom.ParseBytes(raw)
			if err != nil {
				t.Fatal(err)
			}
			gone := secrets(in)
			if len(gone) < c.minGone {
				t.Fatalf("only %d identifying values found in the original, want ≥ %d: %v", len(gone), c.minGone, gone)
			}
			res, err := Deidentify(in, Options{ProjectSecret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			for v, name := range gone {
				if bytes.Contains(res.Part10, []byte(v)) {
					t.Errorf("original %s value %q still in the output bytes", name, v)
				}
			}
			out, err := dicom.ParseBytes(res.Part10)
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			if out.TransferSyntaxUID != c.wantTS {
				t.Errorf("transfer syntax %s, want %s", out.TransferSyntaxUID, c.wantTS)
			}
			if got, want := out.SOPInstanceUID(), keys.UID(in.SOPInstanceUID()); got != want || res.SOPInstanceUID != want {
				t.Errorf("SOP Instance UID %s, want %s", got, want)
			}
			var msi string
			for _, e := range out.Meta {
				if e.Tag == tag.MediaStorageSOPInstanceUID {
					msi = firstString(e)
				}
			}
			if msi != out.SOPInstanceUID() {
				t.Errorf("Media Storage SOP Instance UID %s ≠ SOP Instance UID %s", msi, out.SOPInstanceUID())
			}
			if out.StudyInstanceUID() != keys.UID(in.StudyInstanceUID()) || !strings.HasPrefix(out.StudyInstanceUID(), "2.25.") {
				t.Errorf("Study Instance UID %s", out.StudyInstanceUID())
			}
			if out.String(tag.Tag{Group: 0x0012, Element: 0x0062}) != "YES" {
				t.Error("Patient Identity Removed is not YES")
			}
			codes := out.Items(tag.Tag{Group: 0x0012, Element: 0x0064})
			if len(codes) != 1 || codes[0].String(tag.Tag{Group: 0x0008, Element: 0x0100}) != "113100" {
				t.Errorf("De-identification Method Code Sequence: %d items", len(codes))
			}
			if out.Modality() != in.Modality() || out.SOPClassUID() != in.SOPClassUID() {
				t.Errorf("Modality/SOP Class changed: %s %s", out.Modality(), out.SOPClassUID())
			}
			samePixels(t, in.PixelData(), out.PixelData())
		})
	}
}

// TestSRContent: in the Content Sequence (action D) names, dates and UIDs
// are replaced, text values become dummies, concept names stay.
func TestSRContent(t *testing.T) {
	in, err := dicom.ParseFile(sharedFile(t, "cornerstoneWADOImageLoader/no-pixel-data.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Apply(in, Options{ProjectSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	out, err := dicom.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	cs := tag.Tag{Group: 0x0040, Element: 0xA730}
	before, after := in.Items(cs), out.Items(cs)
	if len(before) == 0 || len(after) != len(before) {
		t.Fatalf("Content Sequence items %d → %d", len(before), len(after))
	}
	var texts, meanings int
	var walk func(a, b []*dicom.Item)
	walk = func(a, b []*dicom.Item) {
		for i := range a {
			if v := a[i].String(tag.Tag{Group: 0x0040, Element: 0xA160}); v != "" {
				texts++
				if got := b[i].String(tag.Tag{Group: 0x0040, Element: 0xA160}); got != "ANONYMIZED" {
					t.Errorf("Text Value %q kept", got)
				}
			}
			for j, cn := range a[i].Items(tag.Tag{Group: 0x0040, Element: 0xA043}) {
				meanings++
				if got := b[i].Items(tag.Tag{Group: 0x0040, Element: 0xA043})[j].String(tag.Tag{Group: 0x0008, Element: 0x0104}); got != cn.String(tag.Tag{Group: 0x0008, Element: 0x0104}) {
					t.Errorf("concept name %q became %q", cn.String(tag.Tag{Group: 0x0008, Element: 0x0104}), got)
				}
			}
			walk(a[i].Items(cs), b[i].Items(cs))
		}
	}
	walk(before, after)
	if texts == 0 || meanings == 0 {
		t.Errorf("SR had %d text values and %d concept names; the test needs both", texts, meanings)
	}
}

// TestUIDConsistencyRealStudy: two MR instances of one study de-identified
// separately share the new Study, Series and Frame of Reference UIDs.
func TestUIDConsistencyRealStudy(t *testing.T) {
	var outs []*dicom.Instance
	var ins []*dicom.Instance
	for _, f := range []string{"MR1/4919", "MR2/4950"} {
		in, err := dicom.ParseFile(sharedFile(t, "debian-python3-pydicom/dicomdirtests/98892003/"+f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Apply(in, Options{ProjectSecret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		out, err := dicom.ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		ins, outs = append(ins, in), append(outs, out)
	}
	if ins[0].StudyInstanceUID() != ins[1].StudyInstanceUID() || ins[0].SOPInstanceUID() == ins[1].SOPInstanceUID() {
		t.Fatal("test files are not two instances of one study")
	}
	if outs[0].StudyInstanceUID() != outs[1].StudyInstanceUID() || outs[0].StudyInstanceUID() == ins[0].StudyInstanceUID() {
		t.Errorf("Study Instance UIDs %s / %s", outs[0].StudyInstanceUID(), outs[1].StudyInstanceUID())
	}
	if (ins[0].SeriesInstanceUID() == ins[1].SeriesInstanceUID()) != (outs[0].SeriesInstanceUID() == outs[1].SeriesInstanceUID()) {
		t.Error("series grouping changed")
	}
	if outs[0].SOPInstanceUID() == outs[1].SOPInstanceUID() {
		t.Error("distinct SOP Instance UIDs collapsed")
	}
	if outs[0].String(tag.PatientID) != outs[1].String(tag.PatientID) || outs[0].String(tag.PatientID) == ins[0].String(tag.PatientID) {
		t.Errorf("Patient IDs %q / %q", outs[0].String(tag.PatientID), outs[1].String(tag.PatientID))
	}
	// A different project secret gives different UIDs.
	b, err := Apply(ins[0], Options{ProjectSecret: []byte("another-project-secret-000000000")})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := dicom.ParseBytes(b)
	if other.StudyInstanceUID() == outs[0].StudyInstanceUID() {
		t.Error("the project secret does not change the UIDs")
	}
}
