package dicom

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const chestXRay = "nhsx-nih-chestxray/1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"

func pneumoniaResult() ResultSR {
	return ResultSR{
		ModelName:      "chest-xray-pneumonia",
		ModelVersion:   "3",
		Labels:         []string{"NORMAL", "PNEUMONIA"},
		Probabilities:  []float64{0.25, 0.75},
		Label:          "PNEUMONIA",
		PositiveLabel:  "PNEUMONIA",
		Threshold:      0.615,
		ProcessingTime: 1234567 * time.Microsecond,
		SeriesNumber:   900,
		InstanceNumber: 7,
		ContentTime:    time.Date(2025, 1, 2, 4, 4, 5, 6000, time.FixedZone("CET", 3600)),
	}
}

// contentItem is one SR content item, flattened for assertions.
type contentItem struct {
	depth        int
	rel, vt      string
	name         string // concept name code meaning
	nameCode     string // value^scheme
	it           *Item
	children     []*Item
	parentMeanng string
}

// walk flattens the content tree under items (depth-first, document order).
func walk(items []*Item, depth int, parent string, out *[]contentItem) {
	for _, it := range items {
		ci := contentItem{depth: depth, rel: it.String(tag.RelationshipType), vt: it.String(tag.ValueType), it: it, parentMeanng: parent}
		if cn := it.Items(tag.ConceptNameCodeSequence); len(cn) == 1 {
			ci.name = cn[0].String(tag.CodeMeaning)
			v := cn[0].String(tag.CodeValue)
			if v == "" {
				v = cn[0].String(tag.LongCodeValue)
			}
			ci.nameCode = v + "^" + cn[0].String(tag.CodingSchemeDesignator)
		}
		ci.children = it.Items(tag.ContentSequence)
		*out = append(*out, ci)
		walk(ci.children, depth+1, ci.name, out)
	}
}

func findItems(all []contentItem, name string) []contentItem {
	var out []contentItem
	for _, c := range all {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func one(t *testing.T, all []contentItem, name string) contentItem {
	t.Helper()
	f := findItems(all, name)
	if len(f) != 1 {
		t.Fatalf("%d content items named %q, want 1", len(f), name)
	}
	return f[0]
}

func numValue(t *testing.T, c contentItem) (float64, string) {
	t.Helper()
	mv := c.it.Items(tag.MeasuredValueSequence)
	if c.vt != "NUM" || len(mv) != 1 {
		t.Fatalf("%q: value type %s, %d measured values", c.name, c.vt, len(mv))
	}
	f := mv[0].Floats(tag.NumericValue)
	units := mv[0].Items(tag.MeasurementUnitsCodeSequence)
	if len(f) != 1 || len(units) != 1 {
		t.Fatalf("%q: numeric value %v, %d units", c.name, f, len(units))
	}
	return f[0], units[0].String(tag.CodeValue) + "^" + units[0].String(tag.CodingSchemeDesignator)
}

// buildAndParse builds the SR of r and parses it back with ParseBytes.
func buildAndParse(t *testing.T, src *Instance, r ResultSR) (BuiltSR, *Instance) {
	t.Helper()
	out, err := BuildResultSR(src, r)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := ParseBytes(out.Data)
	if err != nil {
		t.Fatal(err)
	}
	return out, sr
}

func TestBuildResultSR(t *testing.T) {
	src := mustParse(t, chestXRay)
	r := pneumoniaResult()
	out, sr := buildAndParse(t, src, r)
	if len(sr.Warnings) != 0 {
		t.Errorf("parse warnings: %v", sr.Warnings)
	}
	if string(out.Data[128:132]) != "DICM" || !bytes.Equal(out.Data[:128], make([]byte, 128)) {
		t.Error("no zero preamble + DICM")
	}
	// File meta.
	meta := map[tag.Tag]string{}
	metaLen := 0
	for _, e := range sr.Meta {
		if s, ok := e.Value.GetValue().([]string); ok {
			meta[e.Tag] = s[0]
		}
		if e.Tag == tag.FileMetaInformationGroupLength {
			metaLen = intOf(e, -1)
		}
	}
	// Group length counts every meta byte after its own 12-byte element.
	if want := bytes.Index(out.Data, []byte{0x08, 0x00}) - 144; metaLen != want {
		t.Errorf("File Meta Information Group Length %d, want %d", metaLen, want)
	}
	for tg, want := range map[tag.Tag]string{
		tag.MediaStorageSOPClassUID:    ComprehensiveSRStorage,
		tag.MediaStorageSOPInstanceUID: out.SOPInstanceUID,
		tag.TransferSyntaxUID:          ExplicitVRLittleEndian,
		tag.ImplementationClassUID:     ImplementationClassUID,
		tag.ImplementationVersionName:  ImplementationVersionName,
	} {
		if meta[tg] != want {
			t.Errorf("meta %v = %q, want %q", tg, meta[tg], want)
		}
	}
	if sr.TransferSyntaxUID != ExplicitVRLittleEndian || !sr.ExplicitVR {
		t.Errorf("transfer syntax %s explicit=%v", sr.TransferSyntaxUID, sr.ExplicitVR)
	}

	// Top-level attributes.
	for tg, want := range map[tag.Tag]string{
		tag.SOPClassUID:           "1.2.840.10008.5.1.4.1.1.88.33",
		tag.SOPInstanceUID:        out.SOPInstanceUID,
		tag.StudyInstanceUID:      "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708",
		tag.SeriesInstanceUID:     out.SeriesInstanceUID,
		tag.Modality:              "SR",
		tag.PatientName:           "Covid0000",
		tag.PatientID:             "Covid0000",
		tag.PatientSex:            "M",
		tag.StudyDescription:      "No Finding",
		tag.SeriesNumber:          "900",
		tag.InstanceNumber:        "7",
		tag.CompletionFlag:        "COMPLETE",
		tag.VerificationFlag:      "UNVERIFIED",
		tag.ContentDate:           "20250102",
		tag.ContentTime:           "030405.000006", // 04:04:05 CET in UTC
		tag.TimezoneOffsetFromUTC: "+0000",
		tag.Manufacturer:          "radflow",
		tag.ValueType:             "CONTAINER",
		tag.ContinuityOfContent:   "SEPARATE",
		tag.SpecificCharacterSet:  "", // ASCII source: default repertoire
	} {
		if got := sr.String(tg); got != want {
			t.Errorf("%v = %q, want %q", tg, got, want)
		}
	}
	if sr.StudyInstanceUID() != src.StudyInstanceUID() {
		t.Error("study UID differs from the source's")
	}
	// Type 2 attributes the source lacks are present and empty.
	for _, tg := range []tag.Tag{tag.StudyDate, tag.StudyTime, tag.ReferringPhysicianName, tag.StudyID, tag.AccessionNumber, tag.PatientBirthDate} {
		if sr.Element(tg) == nil || sr.String(tg) != "" {
			t.Errorf("Type 2 %v: element %v value %q, want present and empty", tg, sr.Element(tg) != nil, sr.String(tg))
		}
	}
	if out.SeriesInstanceUID != SRSeriesUID(src.StudyInstanceUID(), "chest-xray-pneumonia", "3") {
		t.Error("default series UID is not SRSeriesUID(study, model, version)")
	}
	if !ValidUID(out.SOPInstanceUID) || !strings.HasPrefix(out.SOPInstanceUID, "2.25.") {
		t.Errorf("SOP Instance UID %q", out.SOPInstanceUID)
	}
	if e := sr.Element(tag.PerformedProcedureCodeSequence); e == nil || len(sr.Items(tag.PerformedProcedureCodeSequence)) != 0 {
		t.Error("Performed Procedure Code Sequence missing or not empty")
	}

	// Evidence: study / series / SOP of the source.
	ev := sr.Items(tag.CurrentRequestedProcedureEvidenceSequence)
	if len(ev) != 1 || ev[0].String(tag.StudyInstanceUID) != src.StudyInstanceUID() {
		t.Fatalf("evidence %d items", len(ev))
	}
	series := ev[0].Items(tag.ReferencedSeriesSequence)
	if len(series) != 1 || series[0].String(tag.SeriesInstanceUID) != src.SeriesInstanceUID() {
		t.Fatal("evidence series")
	}
	sops := series[0].Items(tag.ReferencedSOPSequence)
	if len(sops) != 1 || sops[0].String(tag.ReferencedSOPInstanceUID) != src.SOPInstanceUID() ||
		sops[0].String(tag.ReferencedSOPClassUID) != "1.2.840.10008.5.1.4.1.1.7" {
		t.Fatal("evidence SOP reference")
	}
	if tpl := sr.Items(tag.ContentTemplateSequence); len(tpl) != 1 || tpl[0].String(tag.TemplateIdentifier) != "1500" || tpl[0].String(tag.MappingResource) != "DCMR" {
		t.Error("Content Template Sequence is not TID 1500 / DCMR")
	}
	root := sr.Items(tag.ConceptNameCodeSequence)
	if len(root) != 1 || root[0].String(tag.CodeValue) != "126000" || root[0].String(tag.CodingSchemeDesignator) != "DCM" {
		t.Error("root concept name is not (126000, DCM)")
	}

	// Content tree.
	var all []contentItem
	walk(sr.Items(tag.ContentSequence), 1, "Imaging Measurement Report", &all)
	text := func(name string) string {
		c := one(t, all, name)
		if c.vt != "TEXT" {
			t.Fatalf("%q has value type %s", name, c.vt)
		}
		return c.it.String(tag.TextValue)
	}
	if got := text("Algorithm Name"); got != "chest-xray-pneumonia" {
		t.Errorf("Algorithm Name %q", got)
	}
	if got := text("Algorithm Version"); got != "3" {
		t.Errorf("Algorithm Version %q", got)
	}
	if c := one(t, all, "Algorithm Name"); c.nameCode != "111001^DCM" || c.rel != "HAS CONCEPT MOD" || c.parentMeanng != "Measurement Group" {
		t.Errorf("Algorithm Name item %+v", c)
	}
	if c := one(t, all, "Algorithm Version"); c.nameCode != "111003^DCM" {
		t.Errorf("Algorithm Version code %s", c.nameCode)
	}
	if got := text("Device Observer Name"); got != "chest-xray-pneumonia" {
		t.Errorf("Device Observer Name %q", got)
	}
	dev := one(t, all, "Device Observer UID")
	if dev.rel != "HAS OBS CONTEXT" || dev.it.String(tag.UID) != NameUID("radflow device observer\x00chest-xray-pneumonia\x003") {
		t.Errorf("Device Observer UID item rel %s uid %s", dev.rel, dev.it.String(tag.UID))
	}
	obs := one(t, all, "Observer Type")
	if cc := obs.it.Items(tag.ConceptCodeSequence); len(cc) != 1 || cc[0].String(tag.CodeValue) != "121007" {
		t.Error("Observer Type is not Device")
	}
	if lang := one(t, all, "Language of Content Item and Descendants"); lang.rel != "HAS CONCEPT MOD" || lang.depth != 1 {
		t.Error("language item")
	}
	finding := one(t, all, "Finding")
	if cc := finding.it.Items(tag.ConceptCodeSequence); finding.vt != "CODE" || len(cc) != 1 ||
		cc[0].String(tag.CodeValue) != "PNEUMONIA" || cc[0].String(tag.CodingSchemeDesignator) != "99RADFLOW" {
		t.Error("Finding is not (PNEUMONIA, 99RADFLOW)")
	}
	for i, l := range r.Labels {
		c := one(t, all, "Probability of "+l)
		v, unit := numValue(t, c)
		if v != r.Probabilities[i] || unit != "1^UCUM" || c.rel != "CONTAINS" || c.nameCode != "P:"+l+"^99RADFLOW" {
			t.Errorf("P(%s) = %v %s rel %s code %s, want %v 1^UCUM CONTAINS", l, v, unit, c.rel, c.nameCode, r.Probabilities[i])
		}
		// Each probability is INFERRED FROM the source image.
		if len(c.children) != 1 || c.children[0].String(tag.RelationshipType) != "INFERRED FROM" ||
			c.children[0].Items(tag.ReferencedSOPSequence)[0].String(tag.ReferencedSOPInstanceUID) != src.SOPInstanceUID() {
			t.Errorf("P(%s) has no INFERRED FROM source image", l)
		}
	}
	th := one(t, all, "Decision threshold")
	if v, unit := numValue(t, th); v != 0.615 || unit != "1^UCUM" {
		t.Errorf("threshold %v %s", v, unit)
	}
	pos := one(t, all, "Positive label")
	if cc := pos.it.Items(tag.ConceptCodeSequence); pos.rel != "HAS CONCEPT MOD" || pos.parentMeanng != "Decision threshold" || cc[0].String(tag.CodeValue) != "PNEUMONIA" {
		t.Error("positive label item")
	}
	if v, unit := numValue(t, one(t, all, "Processing time")); v != 1234.567 || unit != "ms^UCUM" {
		t.Errorf("processing time %v %s", v, unit)
	}
	// The image library entry references the source.
	var images []contentItem
	for _, c := range all {
		if c.vt == "IMAGE" {
			images = append(images, c)
		}
	}
	if len(images) != 3 || images[0].parentMeanng != "Image Library Group" {
		t.Fatalf("%d IMAGE items, first under %q", len(images), images[0].parentMeanng)
	}
	for _, im := range images {
		ref := im.it.Items(tag.ReferencedSOPSequence)
		if len(ref) != 1 || ref[0].String(tag.ReferencedSOPInstanceUID) != src.SOPInstanceUID() || ref[0].String(tag.ReferencedSOPClassUID) != src.SOPClassUID() {
			t.Error("IMAGE item does not reference the source")
		}
	}
}

// TestBuildResultSRUnicode: a non-ASCII patient name and label switch the
// character set to ISO_IR 192; labels longer than 16 bytes use Long Code
// Value; a float32-derived probability keeps its exact value in FD.
func TestBuildResultSRUnicode(t *testing.T) {
	src := mustParse(t, chestXRay)
	setString(src, tag.PatientName, "Müller^Jürgen=山田^太郎")
	r := pneumoniaResult()
	r.Labels = []string{"NORMAL", "Pneumonie bilatérale étendue"}
	p := float64(float32(0.9)) // 0.8999999761581421: 18 characters as DS
	r.Probabilities = []float64{1 - p, p}
	r.Label, r.PositiveLabel = r.Labels[1], r.Labels[1]
	r.ProcessingTime = 0
	out, sr := buildAndParse(t, src, r)
	if got := sr.String(tag.SpecificCharacterSet); got != "ISO_IR 192" {
		t.Errorf("Specific Character Set %q", got)
	}
	if got := sr.String(tag.PatientName); got != "Müller^Jürgen=山田^太郎" {
		t.Errorf("Patient's Name %q", got)
	}
	var all []contentItem
	walk(sr.Items(tag.ContentSequence), 1, "", &all)
	c := one(t, all, "Probability of Pneumonie bilatérale étendue")
	if c.nameCode != "P:Pneumonie bilatérale étendue^99RADFLOW" {
		t.Errorf("long code %s", c.nameCode)
	}
	mv := c.it.Items(tag.MeasuredValueSequence)[0]
	if ds := mv.String(tag.NumericValue); len(ds) > 16 || mv.Floats(tag.FloatingPointValue)[0] != p {
		t.Errorf("Numeric Value %q (%d bytes), Floating Point Value %v, want ≤16 bytes and %v", ds, len(ds), mv.Floats(tag.FloatingPointValue), p)
	}
	if len(findItems(all, "Processing time")) != 0 {
		t.Error("processing time written though zero")
	}
	if f := one(t, all, "Finding").it.Items(tag.ConceptCodeSequence)[0]; f.String(tag.LongCodeValue) != r.Labels[1] || f.Element(tag.CodeValue) != nil {
		t.Error("finding code > 16 characters not in Long Code Value")
	}
	validate(t, out.Data)
}

// setString replaces (or adds) a top-level string attribute of in.
func setString(in *Instance, tg tag.Tag, v string) {
	el := NewStringElement(tg, "PN", v)
	for i, e := range in.Dataset.Elements {
		if e.Tag == tg {
			in.Dataset.Elements[i] = el
			return
		}
	}
	in.Dataset.Elements = append(in.Dataset.Elements, el)
}

// TestResultSRValidators runs dciodvfy (dicom3tools) and dsrdump (DCMTK) on
// the SR of the real chest radiograph.
func TestResultSRValidators(t *testing.T) {
	src := mustParse(t, chestXRay)
	out, err := BuildResultSR(src, pneumoniaResult())
	if err != nil {
		t.Fatal(err)
	}
	validate(t, out.Data)
}

// validate fails on any dciodvfy "Error" line and on a dsrdump failure;
// dciodvfy warnings are logged.
func validate(t *testing.T, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sr.dcm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		t.Log("dciodvfy (Debian package dicom3tools) not installed: IOD validation skipped")
	} else {
		outb, _ := exec.Command("dciodvfy", path).CombinedOutput() // exits non-zero on warnings too
		out := string(outb)
		if !strings.Contains(out, "ComprehensiveSR") {
			t.Errorf("dciodvfy did not recognise a Comprehensive SR:\n%s", out)
		}
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, "Error"):
				t.Errorf("dciodvfy: %s", line)
			case strings.HasPrefix(line, "Warning"):
				if i := strings.Index(line, " = <"); i >= 0 && strings.Contains(line, "(0x0010,") {
					line = line[:i] + " = <redacted>" // patient attribute values stay out of logs
				}
				t.Logf("dciodvfy: %s", line)
			}
		}
	}
	if _, err := exec.LookPath("dsrdump"); err != nil {
		t.Log("dsrdump (Debian package dcmtk) not installed: SR tree check skipped")
		return
	}
	cmd := exec.Command("dsrdump", "+Pc", path) // +Pc: print concept name codes
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dsrdump: %v\n%s", err, stderr.String())
	}
	// DCMTK logs "E:"/"F:" for errors; "W:" lines are logged (3.6.7 warns
	// that its VR checker does not support ISO_IR 192).
	for _, line := range strings.Split(stderr.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "W:"):
			t.Logf("dsrdump: %s", line)
		case strings.TrimSpace(line) != "":
			t.Errorf("dsrdump: %s", line)
		}
	}
	for _, want := range []string{
		"Comprehensive SR Document",
		`<CONTAINER:(126000,DCM,"Imaging Measurement Report")=SEPARATE>`,
		`<has concept mod TEXT:(111001,DCM,"Algorithm Name")="chest-xray-pneumonia">`,
		`<has concept mod TEXT:(111003,DCM,"Algorithm Version")="3">`,
		`<inferred from IMAGE:(121112,DCM,"Source of Measurement")=`,
		`"Decision threshold")="0.615" (1,UCUM,"no units")>`,
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dsrdump output lacks %s:\n%s", want, stdout.String())
		}
	}
}

func TestBuildResultSRErrors(t *testing.T) {
	src := mustParse(t, chestXRay)
	for name, mod := range map[string]func(*ResultSR){
		"no model name":        func(r *ResultSR) { r.ModelName = " " },
		"no version":           func(r *ResultSR) { r.ModelVersion = "" },
		"length mismatch":      func(r *ResultSR) { r.Probabilities = r.Probabilities[:1] },
		"no labels":            func(r *ResultSR) { r.Labels, r.Probabilities = nil, nil },
		"probability > 1":      func(r *ResultSR) { r.Probabilities[1] = 1.5 },
		"probability NaN":      func(r *ResultSR) { r.Probabilities[0] = nanF() },
		"unknown decided":      func(r *ResultSR) { r.Label = "COVID" },
		"unknown positive":     func(r *ResultSR) { r.PositiveLabel = "COVID" },
		"threshold < 0":        func(r *ResultSR) { r.Threshold = -0.1 },
		"backslash label":      func(r *ResultSR) { r.Labels[0], r.Label = `A\B`, `A\B` },
		"duplicate label":      func(r *ResultSR) { r.Labels[0] = "PNEUMONIA" },
		"long label":           func(r *ResultSR) { r.Labels[0] = strings.Repeat("x", 65) },
		"bad SOP UID":          func(r *ResultSR) { r.SOPInstanceUID = "1.02.3" },
		"bad series UID":       func(r *ResultSR) { r.SeriesInstanceUID = "2.25.x" },
		"negative time":        func(r *ResultSR) { r.ProcessingTime = -time.Second },
		"incomplete code":      func(r *ResultSR) { r.LabelCodes = map[string]Code{"NORMAL": {Value: "17621005", Scheme: "SCT"}} },
		"incomplete procedure": func(r *ResultSR) { r.ProcedureReported = &Code{Value: "x"} },
	} {
		r := pneumoniaResult()
		r.Labels = append([]string(nil), r.Labels...)
		r.Probabilities = append([]float64(nil), r.Probabilities...)
		mod(&r)
		if _, err := BuildResultSR(src, r); !errors.Is(err, ErrInvalidResult) {
			t.Errorf("%s: %v, want ErrInvalidResult", name, err)
		}
	}
	if _, err := BuildResultSR(nil, pneumoniaResult()); !errors.Is(err, ErrInvalidSource) {
		t.Errorf("nil source: %v", err)
	}
	noStudy := &Instance{Dataset: sdicom.Dataset{Elements: []*sdicom.Element{
		NewStringElement(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		NewStringElement(tag.SOPInstanceUID, "UI", "1.2.3"),
		NewStringElement(tag.SeriesInstanceUID, "UI", "1.2.4"),
	}}}
	if _, err := BuildResultSR(noStudy, pneumoniaResult()); !errors.Is(err, ErrInvalidSource) {
		t.Errorf("source without Study Instance UID: %v", err)
	}
}

func nanF() float64 { f, _ := strconv.ParseFloat("NaN", 64); return f }

// TestBuildResultSROptions: caller UIDs, label codes and procedure code are
// written as given.
func TestBuildResultSROptions(t *testing.T) {
	src := mustParse(t, chestXRay)
	r := pneumoniaResult()
	r.SOPInstanceUID, r.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"
	r.LabelCodes = map[string]Code{"PNEUMONIA": {"233604007", "SCT", "Pneumonia"}}
	r.ProcedureReported = &Code{"399208008", "SCT", "Plain chest X-ray"}
	r.SoftwareVersion = "radflow 0.1.0"
	out, sr := buildAndParse(t, src, r)
	if out.SOPInstanceUID != r.SOPInstanceUID || sr.SOPInstanceUID() != r.SOPInstanceUID || sr.SeriesInstanceUID() != r.SeriesInstanceUID {
		t.Error("caller UIDs not used")
	}
	if sr.String(tag.SoftwareVersions) != "radflow 0.1.0" {
		t.Error("Software Versions")
	}
	var all []contentItem
	walk(sr.Items(tag.ContentSequence), 1, "", &all)
	if f := one(t, all, "Finding").it.Items(tag.ConceptCodeSequence)[0]; f.String(tag.CodeValue) != "233604007" || f.String(tag.CodeMeaning) != "Pneumonia" {
		t.Error("label code not used for the finding")
	}
	if p := one(t, all, "Procedure reported").it.Items(tag.ConceptCodeSequence)[0]; p.String(tag.CodeValue) != "399208008" {
		t.Error("procedure code not used")
	}
}

func TestUIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		u := NewUID()
		if !ValidUID(u) || !strings.HasPrefix(u, "2.25.") || len(u) > 44 || seen[u] {
			t.Fatalf("NewUID %q: valid=%v len=%d repeat=%v", u, ValidUID(u), len(u), seen[u])
		}
		seen[u] = true
	}
	a, b := NameUID("x"), NameUID("y")
	if a != NameUID("x") || a == b || !ValidUID(a) || !ValidUID(b) {
		t.Errorf("NameUID: %q %q", a, b)
	}
	if !ValidUID(ImplementationClassUID) {
		t.Error(ImplementationClassUID)
	}
	for s, want := range map[string]bool{
		"1.2.840.10008.1.2.1": true, "2.25.0": true, "": false, "1..2": false, "1.02": false,
		"1.2.": false, "1.a": false, "2.25." + strings.Repeat("1", 60): false,
	} {
		if ValidUID(s) != want {
			t.Errorf("ValidUID(%q) = %v", s, !want)
		}
	}
}

func TestFormatDS(t *testing.T) {
	for v, want := range map[float64]string{
		0.25: "0.25", 1: "1", 0: "0", 0.615: "0.615", 1234.567: "1234.567",
		float64(float32(0.9)): "0.89999997615814", 1e-20: "1e-20", 0.123456789012345678: "0.12345678901235",
	} {
		if got := formatDS(v); got != want || len(got) > 16 {
			t.Errorf("formatDS(%v) = %q, want %q", v, got, want)
		}
	}
}

func BenchmarkBuildResultSR(b *testing.B) {
	src := mustParseB(b, chestXRay)
	r := pneumoniaResult()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildResultSR(src, r); err != nil {
			b.Fatal(err)
		}
	}
}

func mustParseB(b *testing.B, rel string) *Instance {
	in, err := ParseFile(shared(b, rel))
	if err != nil {
		b.Fatal(err)
	}
	return in
}
