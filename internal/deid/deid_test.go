package deid

import (
	"errors"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

func build(t *testing.T, sop string, elems ...*sdicom.Element) *dicom.Instance {
	t.Helper()
	elems = append(elems,
		dicom.NewStringElement(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2"),
		dicom.NewStringElement(tag.SOPInstanceUID, "UI", sop))
	b, err := dicom.EncodePart10(dicom.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", MediaStorageSOPInstanceUID: sop}, elems)
	if err != nil {
		t.Fatal(err)
	}
	in, err := dicom.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func reparse(t *testing.T, in *dicom.Instance, o Options) *dicom.Instance {
	t.Helper()
	o.ProjectSecret = testSecret
	b, err := Apply(in, o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dicom.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReferencesStayConsistent: a second instance referencing the first
// (Referenced Image Sequence, Source Image Sequence) points at the first's
// new SOP Instance UID after both are de-identified separately.
func TestReferencesStayConsistent(t *testing.T) {
	study, frame := "1.2.3.4.100", "1.2.3.4.200"
	a := build(t, "1.2.3.4.1", dicom.NewStringElement(tag.StudyInstanceUID, "UI", study),
		dicom.NewStringElement(tag.FrameOfReferenceUID, "UI", frame))
	ref := func(tg tag.Tag) *sdicom.Element {
		return dicom.NewSequenceElement(tg, []*sdicom.Element{
			dicom.NewStringElement(tag.ReferencedSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2"),
			dicom.NewStringElement(tag.ReferencedSOPInstanceUID, "UI", "1.2.3.4.1"),
		})
	}
	b := build(t, "1.2.3.4.2", dicom.NewStringElement(tag.StudyInstanceUID, "UI", study),
		dicom.NewStringElement(tag.FrameOfReferenceUID, "UI", frame),
		ref(tag.Tag{Group: 0x0008, Element: 0x1140}), ref(tag.Tag{Group: 0x0008, Element: 0x2112}))
	oa, ob := reparse(t, a, Options{}), reparse(t, b, Options{})
	if oa.StudyInstanceUID() != ob.StudyInstanceUID() || oa.StudyInstanceUID() == study {
		t.Errorf("Study Instance UID %s / %s", oa.StudyInstanceUID(), ob.StudyInstanceUID())
	}
	if oa.String(tag.FrameOfReferenceUID) != ob.String(tag.FrameOfReferenceUID) || oa.String(tag.FrameOfReferenceUID) == frame {
		t.Error("Frame of Reference UIDs differ")
	}
	for _, seq := range []tag.Tag{{Group: 0x0008, Element: 0x1140}, {Group: 0x0008, Element: 0x2112}} {
		items := ob.Items(seq)
		if len(items) != 1 {
			t.Fatalf("%v: %d items", seq, len(items))
		}
		if got := items[0].String(tag.ReferencedSOPInstanceUID); got != oa.SOPInstanceUID() {
			t.Errorf("%v Referenced SOP Instance UID %s, want the referenced instance's new %s", seq, got, oa.SOPInstanceUID())
		}
		if got := items[0].String(tag.ReferencedSOPClassUID); got != "1.2.840.10008.5.1.4.1.1.2" {
			t.Errorf("Referenced SOP Class UID changed to %s", got)
		}
	}
}

func TestPrivateAttributes(t *testing.T) {
	priv := func(g, e uint16) tag.Tag { return tag.Tag{Group: g, Element: e} }
	in := build(t, "1.2.3.9",
		dicom.NewStringElement(priv(0x0009, 0x0010), "LO", "ACME 1.0"),
		dicom.NewStringElement(priv(0x0009, 0x1001), "LO", "kept value"),
		dicom.NewStringElement(priv(0x0009, 0x1002), "LO", "SMITHERS"),
		dicom.NewStringElement(priv(0x0009, 0x0011), "LO", "OTHER"),
		dicom.NewStringElement(priv(0x0009, 0x1101), "LO", "other block"),
		dicom.NewSequenceElement(tag.Tag{Group: 0x0008, Element: 0x1115}, []*sdicom.Element{
			dicom.NewStringElement(priv(0x0029, 0x0010), "LO", "ACME 1.0"),
			dicom.NewStringElement(priv(0x0029, 0x1001), "LO", "nested"),
		}),
		dicom.NewBytesElement(tag.Tag{Group: 0x5000, Element: 0x3000}, "OW", []byte{1, 2}),
		dicom.NewBytesElement(tag.Tag{Group: 0x6000, Element: 0x3000}, "OW", []byte{1, 2}),
		dicom.NewIntElement(tag.Tag{Group: 0x6000, Element: 0x0010}, "US", 512),
		dicom.NewStringElement(tag.Tag{Group: 0x6002, Element: 0x4000}, "LT", "overlay comment"),
	)
	out := reparse(t, in, Options{})
	for _, e := range out.Dataset.Elements {
		if e.Tag.Group%2 == 1 || e.Tag.Group >= 0x5000 && e.Tag.Group <= 0x60FF {
			t.Errorf("%v kept without an allow-list", e.Tag)
		}
	}
	if it := out.Items(tag.Tag{Group: 0x0008, Element: 0x1115}); len(it) != 1 || len(it[0].Elements) != 0 {
		t.Errorf("nested private attributes kept: %+v", it)
	}
	keep, err := ParsePrivateTag("ACME 1.0:01")
	if err != nil {
		t.Fatal(err)
	}
	out = reparse(t, in, Options{KeepPrivate: []PrivateTag{keep}})
	if out.String(priv(0x0009, 0x1001)) != "kept value" || out.String(priv(0x0009, 0x0010)) != "ACME 1.0" {
		t.Errorf("allow-listed private attribute or its creator removed")
	}
	for _, g := range []tag.Tag{priv(0x0009, 0x1002), priv(0x0009, 0x0011), priv(0x0009, 0x1101)} {
		if out.Element(g) != nil {
			t.Errorf("%v kept although not allow-listed", g)
		}
	}
	if it := out.Items(tag.Tag{Group: 0x0008, Element: 0x1115}); len(it) != 1 || it[0].String(priv(0x0029, 0x1001)) != "nested" {
		t.Error("allow-listed private attribute in a sequence item removed")
	}
	for _, s := range []string{"nocolon", "ACME:ZZ", "ACME:0008,01", "ACME:100"} {
		if _, err := ParsePrivateTag(s); !errors.Is(err, ErrBadPrivateTag) {
			t.Errorf("ParsePrivateTag(%q) err %v", s, err)
		}
	}
	if p, err := ParsePrivateTag("SIEMENS CSA HEADER:0029,10"); err != nil || p.Group != 0x29 || p.Element != 0x10 || p.Creator != "SIEMENS CSA HEADER" {
		t.Errorf("ParsePrivateTag with group: %+v %v", p, err)
	}
}

func TestRefusals(t *testing.T) {
	in := build(t, "1.2.3.10", dicom.NewStringElement(tag.BurnedInAnnotation, "CS", "YES"))
	if _, err := Apply(in, Options{ProjectSecret: testSecret}); !errors.Is(err, ErrBurnedInAnnotation) {
		t.Errorf("burned-in: %v", err)
	}
	r, err := Deidentify(in, Options{ProjectSecret: testSecret, AllowBurnedInAnnotation: true})
	if err != nil || len(r.Warnings) != 1 {
		t.Errorf("allowed burned-in: %v %v", err, r)
	}
	if _, err := Apply(in, Options{ProjectSecret: []byte("short")}); !errors.Is(err, ErrNoSecret) {
		t.Errorf("short secret: %v", err)
	}
}

func TestMethodAttributes(t *testing.T) {
	in := build(t, "1.2.3.11", dicom.NewStringElement(tag.PatientName, "PN", "M\xfcller^J\xfcrgen"),
		dicom.NewStringElement(tag.SpecificCharacterSet, "CS", "ISO_IR 100"),
		dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x1030}, "LO", "Knie M\xfcller"))
	out := reparse(t, in, Options{RetainLongitudinalFullDates: true, RetainPatientCharacteristics: true, RetainDeviceIdentity: true, CleanDescriptors: true})
	var codes []string
	for _, it := range out.Items(tag.Tag{Group: 0x0012, Element: 0x0064}) {
		codes = append(codes, it.String(tag.Tag{Group: 0x0008, Element: 0x0100}))
	}
	if want := "[113100 113106 113108 113109 113105]"; fmtList(codes) != want {
		t.Errorf("method codes %v, want %s", codes, want)
	}
	if n := len(out.Strings(tag.Tag{Group: 0x0012, Element: 0x0063})); n != 5 {
		t.Errorf("%d De-identification Method values, want 5", n)
	}
	if got := out.String(tag.Tag{Group: 0x0028, Element: 0x0303}); got != "UNMODIFIED" {
		t.Errorf("Longitudinal Temporal Information Modified %q", got)
	}
	// The cleaned Study Description keeps non-ASCII text: the output declares UTF-8.
	if got := out.String(tag.Tag{Group: 0x0008, Element: 0x1030}); got != "Knie *" {
		t.Errorf("cleaned Study Description %q, want \"Knie *\"", got)
	}
	in2 := build(t, "1.2.3.12", dicom.NewStringElement(tag.SpecificCharacterSet, "CS", "ISO_IR 100"),
		dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x1030}, "LO", "Kn\xf6chel")) // ISO 8859-1 bytes
	out2 := reparse(t, in2, Options{CleanDescriptors: true})
	if cs := out2.String(tag.SpecificCharacterSet); cs != "ISO_IR 192" || out2.String(tag.Tag{Group: 0x0008, Element: 0x1030}) != "Knöchel" {
		t.Errorf("charset %q, description %q", cs, out2.String(tag.Tag{Group: 0x0008, Element: 0x1030}))
	}
}

func fmtList(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}

func BenchmarkDeidentifyCT(b *testing.B) {
	in, err := dicom.ParseFile("../../../shared/dicom/debian-python3-pydicom/CT_small.dcm")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := Apply(in, Options{ProjectSecret: testSecret}); err != nil {
			b.Fatal(err)
		}
	}
}
