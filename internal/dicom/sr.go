package dicom

import (
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOP Class UIDs written by BuildResultSR.
const (
	ComprehensiveSRStorage = "1.2.840.10008.5.1.4.1.1.88.33"
)

// CodingScheme is radflow's private coding scheme designator (PS3.16 8.2:
// "99" prefix), declared in the Coding Scheme Identification Sequence of
// every SR written. Its codes are listed in docs/sr-template.md.
const CodingScheme = "99RADFLOW"

// ErrInvalidResult: the ResultSR cannot be written (empty model name or
// version, labels and probabilities of different lengths, a probability or
// threshold outside [0,1] or NaN, a decided or positive label that is not
// one of the labels, a label with a backslash or control character or
// longer than 64 characters, an invalid UID).
var ErrInvalidResult = errors.New("dicom: invalid result for a structured report")

// ErrInvalidSource: the source instance lacks an attribute the SR must
// reference (SOP Class UID, SOP Instance UID, Study Instance UID, Series
// Instance UID).
var ErrInvalidSource = errors.New("dicom: source instance cannot be referenced")

// Code is a coded concept (PS3.3 Table 8.8-1): code value, coding scheme
// designator, code meaning.
type Code struct {
	Value, Scheme, Meaning string
}

// ResultSR is one AI result to write as a Comprehensive SR (see
// docs/sr-template.md for where each field goes in the content tree).
type ResultSR struct {
	ModelName    string // Algorithm Name (111001, DCM); required
	ModelVersion string // Algorithm Version (111003, DCM); required
	// Labels are the model's class labels; Probabilities[i] in [0,1] is the
	// probability of Labels[i]. One NUM item is written per label.
	Labels        []string
	Probabilities []float64
	// Label is the decided label (one of Labels), written as the Finding.
	Label string
	// PositiveLabel (one of Labels, or "" when the model has none) and
	// Threshold in [0,1]: the decision rule, written as a NUM "Decision
	// threshold" modified by the positive label. Threshold is ignored when
	// PositiveLabel is "".
	PositiveLabel string
	Threshold     float64
	// ProcessingTime is written as a NUM in ms when positive.
	ProcessingTime time.Duration

	// SOPInstanceUID of the SR; NewUID() when "".
	SOPInstanceUID string
	// SeriesInstanceUID of the SR; when "", SRSeriesUID(study, model,
	// version): one SR series per study and model version.
	SeriesInstanceUID string
	// SeriesNumber and InstanceNumber (IS); 0 means 1.
	SeriesNumber, InstanceNumber int
	// ContentTime is the Content Date/Time (written in UTC with Timezone
	// Offset From UTC +0000); time.Now() when zero.
	ContentTime time.Time

	// LabelCodes optionally maps a label to a standard coded concept (e.g.
	// SNOMED CT); labels without one get (label, 99RADFLOW, label).
	LabelCodes map[string]Code
	// ProcedureReported defaults to (363679005, SCT, "Imaging").
	ProcedureReported *Code
	// SoftwareVersion is written to Software Versions (0018,1020) when set.
	SoftwareVersion string
}

// BuiltSR is an encoded SR and the UIDs it was given.
type BuiltSR struct {
	// Data is the complete Part 10 file (Explicit VR Little Endian).
	Data              []byte
	SOPInstanceUID    string
	SeriesInstanceUID string
}

// Codes used in the content tree (PS3.16 Annex D for DCM).
var (
	codeImagingMeasurementReport = Code{"126000", "DCM", "Imaging Measurement Report"}
	codeLanguage                 = Code{"121049", "DCM", "Language of Content Item and Descendants"}
	codeEnglishUS                = Code{"en-US", "RFC5646", "English (United States)"}
	codeObserverType             = Code{"121005", "DCM", "Observer Type"}
	codeDevice                   = Code{"121007", "DCM", "Device"}
	codeDeviceObserverUID        = Code{"121012", "DCM", "Device Observer UID"}
	codeDeviceObserverName       = Code{"121013", "DCM", "Device Observer Name"}
	codeDeviceManufacturer       = Code{"121014", "DCM", "Device Observer Manufacturer"}
	codeDeviceModelName          = Code{"121015", "DCM", "Device Observer Model Name"}
	codeProcedureReported        = Code{"121058", "DCM", "Procedure reported"}
	codeImaging                  = Code{"363679005", "SCT", "Imaging"}
	codeImageLibrary             = Code{"111028", "DCM", "Image Library"}
	codeImageLibraryGroup        = Code{"126200", "DCM", "Image Library Group"}
	codeImagingMeasurements      = Code{"126010", "DCM", "Imaging Measurements"}
	codeMeasurementGroup         = Code{"125007", "DCM", "Measurement Group"}
	codeTrackingIdentifier       = Code{"112039", "DCM", "Tracking Identifier"}
	codeTrackingUID              = Code{"112040", "DCM", "Tracking Unique Identifier"}
	codeFinding                  = Code{"121071", "DCM", "Finding"}
	codeAlgorithmName            = Code{"111001", "DCM", "Algorithm Name"}
	codeAlgorithmVersion         = Code{"111003", "DCM", "Algorithm Version"}
	codeSourceOfMeasurement      = Code{"121112", "DCM", "Source of Measurement"}
	codeNoUnits                  = Code{"1", "UCUM", "no units"}
	codeMillisecond              = Code{"ms", "UCUM", "millisecond"}
	codeThreshold                = Code{"THRESHOLD", CodingScheme, "Decision threshold"}
	codePositiveLabel            = Code{"POSITIVE-LABEL", CodingScheme, "Positive label"}
	codeProcessingTime           = Code{"PROCESSING-TIME", CodingScheme, "Processing time"}
)

// Manufacturer is written to Manufacturer (0008,0070) and Device Observer
// Manufacturer.
const Manufacturer = "radflow"

// BuildResultSR encodes r as a Comprehensive SR (SOP Class
// 1.2.840.10008.5.1.4.1.1.88.33) in the source's study: Patient and General
// Study attributes copied from src, a new SR series (Modality SR), SR
// Document General (COMPLETE, UNVERIFIED, Current Requested Procedure
// Evidence referencing src) and a TID 1500-structured content tree
// (docs/sr-template.md). Strings are written in ISO_IR 192 (UTF-8) when any
// is non-ASCII, else in the default repertoire. Nothing is logged.
// errors: ErrInvalidResult, ErrInvalidSource, ErrEncode.
func BuildResultSR(src *Instance, r ResultSR) (BuiltSR, error) {
	if src == nil {
		return BuiltSR{}, fmt.Errorf("%w: nil instance", ErrInvalidSource)
	}
	ref := srcRef{
		classUID:  src.SOPClassUID(),
		instUID:   src.SOPInstanceUID(),
		studyUID:  src.StudyInstanceUID(),
		seriesUID: src.SeriesInstanceUID(),
	}
	for name, v := range map[string]string{"SOP Class UID": ref.classUID, "SOP Instance UID": ref.instUID,
		"Study Instance UID": ref.studyUID, "Series Instance UID": ref.seriesUID} {
		if !ValidUID(v) {
			return BuiltSR{}, fmt.Errorf("%w: missing or invalid %s", ErrInvalidSource, name)
		}
	}
	if err := r.validate(); err != nil {
		return BuiltSR{}, err
	}
	if r.SOPInstanceUID == "" {
		r.SOPInstanceUID = NewUID()
	}
	if r.SeriesInstanceUID == "" {
		r.SeriesInstanceUID = SRSeriesUID(ref.studyUID, r.ModelName, r.ModelVersion)
	}
	if r.SeriesNumber <= 0 {
		r.SeriesNumber = 1
	}
	if r.InstanceNumber <= 0 {
		r.InstanceNumber = 1
	}
	if r.ContentTime.IsZero() {
		r.ContentTime = time.Now()
	}
	t := r.ContentTime.UTC()
	date, tm := t.Format("20060102"), t.Format("150405.000000")

	var elems []*sdicom.Element
	add := func(e ...*sdicom.Element) { elems = append(elems, e...) }
	str := func(tg tag.Tag, vr string, v ...string) { add(NewStringElement(tg, vr, v...)) }

	// SOP Common.
	str(tag.SOPClassUID, "UI", ComprehensiveSRStorage)
	str(tag.SOPInstanceUID, "UI", r.SOPInstanceUID)
	str(tag.InstanceCreationDate, "DA", date)
	str(tag.InstanceCreationTime, "TM", tm)
	str(tag.TimezoneOffsetFromUTC, "SH", "+0000")
	add(NewSequenceElement(tag.CodingSchemeIdentificationSequence, []*sdicom.Element{
		NewStringElement(tag.CodingSchemeDesignator, "SH", CodingScheme),
		NewStringElement(tag.CodingSchemeName, "ST", "radflow private codes"),
		NewStringElement(tag.CodingSchemeResponsibleOrganization, "ST", "radflow project"),
	}))

	// Patient and General Study, copied (Type 2: empty when absent).
	for _, c := range []struct {
		t  tag.Tag
		vr string
	}{
		{tag.PatientName, "PN"}, {tag.PatientID, "LO"}, {tag.IssuerOfPatientID, "LO"},
		{tag.PatientBirthDate, "DA"}, {tag.PatientSex, "CS"},
		{tag.StudyDate, "DA"}, {tag.StudyTime, "TM"}, {tag.ReferringPhysicianName, "PN"},
		{tag.StudyID, "SH"}, {tag.AccessionNumber, "SH"}, {tag.StudyDescription, "LO"},
	} {
		vals := src.Strings(c.t)
		if c.t == tag.IssuerOfPatientID || c.t == tag.StudyDescription { // Type 3
			if src.Element(c.t) == nil {
				continue
			}
		}
		str(c.t, c.vr, vals...)
	}
	str(tag.StudyInstanceUID, "UI", ref.studyUID)

	// SR Document Series.
	str(tag.Modality, "CS", "SR")
	str(tag.SeriesInstanceUID, "UI", r.SeriesInstanceUID)
	str(tag.SeriesNumber, "IS", strconv.Itoa(r.SeriesNumber))
	str(tag.SeriesDescription, "LO", truncRunes("AI result "+r.ModelName, 64))
	add(NewSequenceElement(tag.ReferencedPerformedProcedureStepSequence))

	// General Equipment.
	str(tag.Manufacturer, "LO", Manufacturer)
	if r.SoftwareVersion != "" {
		str(tag.SoftwareVersions, "LO", truncRunes(r.SoftwareVersion, 64))
	}

	// SR Document General.
	str(tag.InstanceNumber, "IS", strconv.Itoa(r.InstanceNumber))
	str(tag.CompletionFlag, "CS", "COMPLETE")
	str(tag.VerificationFlag, "CS", "UNVERIFIED")
	str(tag.ContentDate, "DA", date)
	str(tag.ContentTime, "TM", tm)
	add(NewSequenceElement(tag.PerformedProcedureCodeSequence))
	add(NewSequenceElement(tag.CurrentRequestedProcedureEvidenceSequence, []*sdicom.Element{
		NewStringElement(tag.StudyInstanceUID, "UI", ref.studyUID),
		NewSequenceElement(tag.ReferencedSeriesSequence, []*sdicom.Element{
			NewStringElement(tag.SeriesInstanceUID, "UI", ref.seriesUID),
			NewSequenceElement(tag.ReferencedSOPSequence, ref.sopRef()),
		}),
	}))

	// SR Document Content (root content item).
	add(r.content(ref)...)

	// Character set: every string is UTF-8 in Go; declare it when needed.
	if !asciiOnly(elems) {
		str(tag.SpecificCharacterSet, "CS", "ISO_IR 192")
	}

	data, err := EncodePart10(FileMeta{MediaStorageSOPClassUID: ComprehensiveSRStorage, MediaStorageSOPInstanceUID: r.SOPInstanceUID}, elems)
	if err != nil {
		return BuiltSR{}, err
	}
	return BuiltSR{Data: data, SOPInstanceUID: r.SOPInstanceUID, SeriesInstanceUID: r.SeriesInstanceUID}, nil
}

type srcRef struct{ classUID, instUID, studyUID, seriesUID string }

func (s srcRef) sopRef() []*sdicom.Element {
	return []*sdicom.Element{
		NewStringElement(tag.ReferencedSOPClassUID, "UI", s.classUID),
		NewStringElement(tag.ReferencedSOPInstanceUID, "UI", s.instUID),
	}
}

func (r *ResultSR) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidResult, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(r.ModelName) == "" || strings.TrimSpace(r.ModelVersion) == "" {
		return bad("empty model name or version")
	}
	if len(r.Labels) == 0 || len(r.Labels) != len(r.Probabilities) {
		return bad("%d labels for %d probabilities", len(r.Labels), len(r.Probabilities))
	}
	seen := map[string]bool{}
	for i, l := range r.Labels {
		if err := checkLabel(l); err != nil {
			return bad("label %d: %v", i, err)
		}
		if seen[l] {
			return bad("label %d repeats an earlier label", i)
		}
		seen[l] = true
		if p := r.Probabilities[i]; !(p >= 0 && p <= 1) {
			return bad("probability %d is %v, not in [0,1]", i, p)
		}
		if c, ok := r.LabelCodes[l]; ok && !validCode(c) {
			return bad("code for label %d is incomplete or too long", i)
		}
	}
	if !seen[r.Label] {
		return bad("decided label is not one of the labels")
	}
	if r.PositiveLabel != "" {
		if !seen[r.PositiveLabel] {
			return bad("positive label is not one of the labels")
		}
		if !(r.Threshold >= 0 && r.Threshold <= 1) {
			return bad("threshold %v not in [0,1]", r.Threshold)
		}
	}
	if r.ProcessingTime < 0 {
		return bad("negative processing time")
	}
	if r.ProcedureReported != nil && !validCode(*r.ProcedureReported) {
		return bad("procedure reported code is incomplete or too long")
	}
	for name, u := range map[string]string{"SOP Instance UID": r.SOPInstanceUID, "Series Instance UID": r.SeriesInstanceUID} {
		if u != "" && !ValidUID(u) {
			return bad("invalid %s", name)
		}
	}
	return nil
}

func checkLabel(l string) error {
	if strings.TrimSpace(l) == "" {
		return errors.New("empty")
	}
	if utf8.RuneCountInString(l) > 64 || !utf8.ValidString(l) {
		return errors.New("longer than 64 characters or not UTF-8")
	}
	for _, c := range l {
		if c == '\\' || unicode.IsControl(c) {
			return errors.New("contains a backslash or control character")
		}
	}
	return nil
}

func validCode(c Code) bool {
	return c.Value != "" && c.Scheme != "" && c.Meaning != "" && len(c.Scheme) <= 16 &&
		utf8.RuneCountInString(c.Meaning) <= 64 && !strings.ContainsAny(c.Value+c.Scheme+c.Meaning, `\`)
}

// labelCode is the coded concept for a label.
func (r *ResultSR) labelCode(l string) Code {
	if c, ok := r.LabelCodes[l]; ok {
		return c
	}
	return Code{l, CodingScheme, l}
}

// content returns the root content item's attributes (docs/sr-template.md).
func (r *ResultSR) content(ref srcRef) []*sdicom.Element {
	proc := codeImaging
	if r.ProcedureReported != nil {
		proc = *r.ProcedureReported
	}
	deviceUID := NameUID("radflow device observer\x00" + r.ModelName + "\x00" + r.ModelVersion)
	image := func(rel string, name *Code) []*sdicom.Element {
		it := []*sdicom.Element{
			relType(rel), valueType("IMAGE"),
			NewSequenceElement(tag.ReferencedSOPSequence, ref.sopRef()),
		}
		if name != nil {
			it = append(it, conceptName(*name))
		}
		return it
	}
	source := func() []*sdicom.Element { return image("INFERRED FROM", &codeSourceOfMeasurement) }

	group := [][]*sdicom.Element{
		textItem("HAS OBS CONTEXT", codeTrackingIdentifier, truncRunes(r.ModelName+" "+r.ModelVersion, 64)),
		uidItem("HAS OBS CONTEXT", codeTrackingUID, NewUID()),
		codeItem("CONTAINS", codeFinding, r.labelCode(r.Label)),
		textItem("HAS CONCEPT MOD", codeAlgorithmName, r.ModelName),
		textItem("HAS CONCEPT MOD", codeAlgorithmVersion, r.ModelVersion),
	}
	for i, l := range r.Labels {
		group = append(group, numItem("CONTAINS", probabilityCode(l), r.Probabilities[i], codeNoUnits, source()))
	}
	if r.PositiveLabel != "" {
		group = append(group, numItem("CONTAINS", codeThreshold, r.Threshold, codeNoUnits,
			codeItem("HAS CONCEPT MOD", codePositiveLabel, r.labelCode(r.PositiveLabel))))
	}
	if r.ProcessingTime > 0 {
		group = append(group, numItem("CONTAINS", codeProcessingTime, float64(r.ProcessingTime)/float64(time.Millisecond), codeMillisecond))
	}

	root := [][]*sdicom.Element{
		codeItem("HAS CONCEPT MOD", codeLanguage, codeEnglishUS),
		codeItem("HAS OBS CONTEXT", codeObserverType, codeDevice),
		uidItem("HAS OBS CONTEXT", codeDeviceObserverUID, deviceUID),
		textItem("HAS OBS CONTEXT", codeDeviceObserverName, r.ModelName),
		textItem("HAS OBS CONTEXT", codeDeviceManufacturer, Manufacturer),
		textItem("HAS OBS CONTEXT", codeDeviceModelName, r.ModelName),
		codeItem("HAS CONCEPT MOD", codeProcedureReported, proc),
		container("CONTAINS", codeImageLibrary,
			container("CONTAINS", codeImageLibraryGroup, image("CONTAINS", nil))),
		container("CONTAINS", codeImagingMeasurements,
			container("CONTAINS", codeMeasurementGroup, group...)),
	}
	return []*sdicom.Element{
		valueType("CONTAINER"),
		conceptName(codeImagingMeasurementReport),
		NewStringElement(tag.ContinuityOfContent, "CS", "SEPARATE"),
		NewSequenceElement(tag.ContentTemplateSequence, []*sdicom.Element{
			NewStringElement(tag.MappingResource, "CS", "DCMR"),
			NewStringElement(tag.TemplateIdentifier, "CS", "1500"),
		}),
		NewSequenceElement(tag.ContentSequence, root...),
	}
}

// probabilityCode names the NUM item holding P(label).
func probabilityCode(l string) Code {
	return Code{"P:" + l, CodingScheme, truncRunes("Probability of "+l, 64)}
}

func relType(rel string) *sdicom.Element { return NewStringElement(tag.RelationshipType, "CS", rel) }
func valueType(vt string) *sdicom.Element {
	return NewStringElement(tag.ValueType, "CS", vt)
}

// codeItems returns a code sequence item (Code Value, or Long Code Value
// when longer than 16 characters, PS3.3 8.8).
func codeItems(c Code) []*sdicom.Element {
	it := []*sdicom.Element{
		NewStringElement(tag.CodingSchemeDesignator, "SH", c.Scheme),
		NewStringElement(tag.CodeMeaning, "LO", c.Meaning),
	}
	if utf8.RuneCountInString(c.Value) > 16 {
		return append(it, NewStringElement(tag.LongCodeValue, "UC", c.Value))
	}
	return append(it, NewStringElement(tag.CodeValue, "SH", c.Value))
}

func conceptName(c Code) *sdicom.Element {
	return NewSequenceElement(tag.ConceptNameCodeSequence, codeItems(c))
}

func container(rel string, name Code, children ...[]*sdicom.Element) []*sdicom.Element {
	return []*sdicom.Element{
		relType(rel), valueType("CONTAINER"), conceptName(name),
		NewStringElement(tag.ContinuityOfContent, "CS", "SEPARATE"),
		NewSequenceElement(tag.ContentSequence, children...),
	}
}

func textItem(rel string, name Code, text string) []*sdicom.Element {
	return []*sdicom.Element{relType(rel), valueType("TEXT"), conceptName(name), NewStringElement(tag.TextValue, "UT", text)}
}

func uidItem(rel string, name Code, uid string) []*sdicom.Element {
	return []*sdicom.Element{relType(rel), valueType("UIDREF"), conceptName(name), NewStringElement(tag.UID, "UI", uid)}
}

func codeItem(rel string, name, value Code) []*sdicom.Element {
	return []*sdicom.Element{relType(rel), valueType("CODE"), conceptName(name), NewSequenceElement(tag.ConceptCodeSequence, codeItems(value))}
}

// numItem writes v as Numeric Value (DS, at most 16 characters) and, when
// the DS string does not hold v exactly, also as Floating Point Value (FD).
func numItem(rel string, name Code, v float64, unit Code, children ...[]*sdicom.Element) []*sdicom.Element {
	ds := formatDS(v)
	mv := []*sdicom.Element{
		NewSequenceElement(tag.MeasurementUnitsCodeSequence, codeItems(unit)),
		NewStringElement(tag.NumericValue, "DS", ds),
	}
	if back, err := strconv.ParseFloat(ds, 64); err != nil || back != v {
		mv = append(mv, NewFloatElement(tag.FloatingPointValue, "FD", v))
	}
	it := []*sdicom.Element{relType(rel), valueType("NUM"), conceptName(name), NewSequenceElement(tag.MeasuredValueSequence, mv)}
	if len(children) > 0 {
		it = append(it, NewSequenceElement(tag.ContentSequence, children...))
	}
	return it
}

// formatDS formats a finite v as a Decimal String of at most 16 bytes
// (PS3.5 Table 6.2-1), with as many significant digits as fit.
func formatDS(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	for prec := 16; len(s) > 16 && prec > 0; prec-- {
		s = strconv.FormatFloat(v, 'g', prec, 64)
	}
	return s
}

func truncRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// asciiOnly reports whether every string value (at any depth) is ASCII.
func asciiOnly(elems []*sdicom.Element) bool {
	for _, e := range elems {
		if e.Value == nil {
			continue
		}
		switch v := e.Value.GetValue().(type) {
		case []string:
			for _, s := range v {
				for i := 0; i < len(s); i++ {
					if s[i] >= 0x80 {
						return false
					}
				}
			}
		case []*sdicom.SequenceItemValue:
			for _, it := range v {
				sub, _ := it.GetValue().([]*sdicom.Element)
				if !asciiOnly(sub) {
					return false
				}
			}
		}
	}
	return true
}

// NewUID returns a new random UID under the 2.25 root (PS3.5 B.2): "2.25."
// followed by the decimal value of a random (version 4) UUID; at most 44
// characters.
func NewUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	return uuidUID(u)
}

// NameUID returns the 2.25 UID of the name-based (SHA-1, version 5) UUID of
// name in radflow's namespace: the same name always gives the same UID.
func NameUID(name string) string {
	h := sha1.New()
	h.Write(uidNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0F | 0x50
	u[8] = u[8]&0x3F | 0x80
	return uuidUID(u)
}

// SRSeriesUID is the default Series Instance UID of the SRs a model version
// writes into a study: NameUID of the study UID, model name and version.
func SRSeriesUID(studyUID, model, version string) string {
	return NameUID("radflow sr series\x00" + studyUID + "\x00" + model + "\x00" + version)
}

// uidNamespace is radflow's UUID namespace for NameUID (a fixed random UUID).
var uidNamespace = [16]byte{0x6b, 0x1f, 0x3e, 0x52, 0x9a, 0x0c, 0x4d, 0x7e, 0x8f, 0x21, 0x53, 0xc4, 0x0a, 0x9e, 0x77, 0xd6}

func uuidUID(u [16]byte) string {
	return "2.25." + new(big.Int).SetBytes(u[:]).String()
}
