package deid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

// Errors returned by Apply and Deidentify.
var (
	// ErrNoSecret: Options.ProjectSecret is shorter than MinSecretLen bytes.
	ErrNoSecret = errors.New("deid: project secret missing or shorter than 16 bytes")
	// ErrBurnedInAnnotation: Burned In Annotation (0028,0301) is YES; pixel
	// data cleaning is out of scope, so the instance is refused unless
	// Options.AllowBurnedInAnnotation is set.
	ErrBurnedInAnnotation = errors.New("deid: Burned In Annotation is YES; pixel data would keep identifying text")
	// ErrNoSOPInstance: the instance has no SOP Class UID or SOP Instance UID.
	ErrNoSOPInstance = errors.New("deid: instance has no SOP Class UID or SOP Instance UID")
	// ErrEncode: the de-identified data set cannot be written as Part 10.
	ErrEncode = errors.New("deid: cannot encode de-identified data set")
	// ErrBadPrivateTag: a --keep-private entry is not CREATOR:EE or CREATOR:GGGG,EE.
	ErrBadPrivateTag = errors.New("deid: bad private attribute (want CREATOR:EE or CREATOR:GGGG,EE, hex)")
)

// MinSecretLen is the shortest accepted project secret, in bytes.
const MinSecretLen = 16

// Options select the profile options and the project's keys.
type Options struct {
	// ProjectSecret keys the UID and Patient ID replacement (HMAC-SHA256):
	// the same secret maps the same input UID to the same new UID, so
	// instances de-identified separately still share Study/Series/Frame of
	// Reference UIDs and references. At least MinSecretLen bytes. Keep it
	// secret: with it, a guessed UID or Patient ID can be confirmed.
	ProjectSecret []byte

	RetainLongitudinalFullDates  bool // 113106: dates and times kept
	RetainPatientCharacteristics bool // 113108: sex, age, size, weight, ... kept
	RetainDeviceIdentity         bool // 113109: device serial numbers, station names, ... kept
	CleanDescriptors             bool // 113105: descriptions kept after cleaning instead of removed

	// KeepPrivate lists the private attributes kept (their Private Creator
	// too); every other private attribute is removed.
	KeepPrivate []PrivateTag

	// AllowBurnedInAnnotation de-identifies instances whose Burned In
	// Annotation is YES instead of refusing them; Result.Warnings then says
	// that the pixel data was not cleaned.
	AllowBurnedInAnnotation bool
}

// PrivateTag names a private attribute independently of the block its
// creator was given: the Private Creator value, the (odd) group (0: any)
// and the element's low byte.
type PrivateTag struct {
	Creator string
	Group   uint16
	Element uint8
}

// String formats p as ParsePrivateTag reads it.
func (p PrivateTag) String() string {
	if p.Group == 0 {
		return fmt.Sprintf("%s:%02X", p.Creator, p.Element)
	}
	return fmt.Sprintf("%s:%04X,%02X", p.Creator, p.Group, p.Element)
}

// ParsePrivateTag reads "CREATOR:EE" or "CREATOR:GGGG,EE" (hex; the creator
// may contain colons, the last one separates). errors: ErrBadPrivateTag.
func ParsePrivateTag(s string) (PrivateTag, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 {
		return PrivateTag{}, fmt.Errorf("%w: %q", ErrBadPrivateTag, s)
	}
	p := PrivateTag{Creator: strings.TrimSpace(s[:i])}
	rest := s[i+1:]
	if g, e, ok := strings.Cut(rest, ","); ok {
		gv, err := strconv.ParseUint(g, 16, 16)
		if err != nil || gv%2 == 0 {
			return PrivateTag{}, fmt.Errorf("%w: %q: group must be odd hex", ErrBadPrivateTag, s)
		}
		p.Group = uint16(gv)
		rest = e
	}
	ev, err := strconv.ParseUint(rest, 16, 16)
	if err != nil || ev > 0xFF {
		// Accept a full element (e.g. 1010) by its low byte.
		if err == nil && ev >= 0x1000 && ev <= 0xFFFF {
			ev &= 0xFF
		} else {
			return PrivateTag{}, fmt.Errorf("%w: %q: element must be hex 00-FF", ErrBadPrivateTag, s)
		}
	}
	p.Element = uint8(ev)
	return p, nil
}

// Result is one de-identified instance.
type Result struct {
	Part10            []byte // the Part 10 file
	SOPInstanceUID    string // the new SOP Instance UID
	TransferSyntaxUID string // of the output (the input's when encapsulated, else Explicit VR Little Endian)
	Removed           int    // attributes removed (all levels)
	Replaced          int    // attributes replaced, emptied or cleaned
	Warnings          []string
}

// Apply de-identifies in and returns the Part 10 bytes (see Deidentify).
func Apply(in *dicom.Instance, opts Options) ([]byte, error) {
	r, err := Deidentify(in, opts)
	if err != nil {
		return nil, err
	}
	return r.Part10, nil
}

// Deidentify applies Table E.1-1 (Basic Profile and the selected options)
// to every level of in, removes private attributes not in
// opts.KeepPrivate, curves (50xx) and overlays (60xx), adds Patient
// Identity Removed (0012,0062) YES, De-identification Method (0012,0063)
// and Code Sequence (0012,0064) with the CID 7050 codes, and writes Part 10
// with the Media Storage SOP Instance UID equal to the new SOP Instance
// UID. Attributes the table does not list are kept. Pixel Data bytes are
// copied unchanged (big endian native OW words are swapped to little endian).
// in is not modified. errors: ErrNoSecret, ErrBurnedInAnnotation,
// ErrNoSOPInstance, ErrEncode.
func Deidentify(in *dicom.Instance, opts Options) (*Result, error) {
	if len(opts.ProjectSecret) < MinSecretLen {
		return nil, ErrNoSecret
	}
	if in.SOPClassUID() == "" || in.SOPInstanceUID() == "" {
		return nil, ErrNoSOPInstance
	}
	res := &Result{}
	if strings.EqualFold(in.String(tag.BurnedInAnnotation), "YES") {
		if !opts.AllowBurnedInAnnotation {
			return nil, ErrBurnedInAnnotation
		}
		res.Warnings = append(res.Warnings, "Burned In Annotation is YES: pixel data not cleaned")
	}
	if strings.EqualFold(in.String(tag.Tag{Group: 0x0028, Element: 0x0302}), "YES") {
		res.Warnings = append(res.Warnings, "Recognizable Visual Features is YES: pixel data not cleaned")
	}
	k := NewKeys(opts.ProjectSecret)
	d := &deider{opts: opts, keys: k, res: res, idents: identifiers(in)}
	var top []*sdicom.Element
	for _, e := range in.Dataset.Elements {
		if e.Tag.Group != 0x0002 {
			top = append(top, e)
		}
	}
	out := d.level(top, mode{})
	out = setElem(out, dicom.NewStringElement(tag.Tag{Group: 0x0012, Element: 0x0062}, "CS", "YES"))
	out = setElem(out, dicom.NewStringElement(tag.Tag{Group: 0x0012, Element: 0x0063}, "LO", d.methodNames()...))
	out = setElem(out, dicom.NewSequenceElement(tag.Tag{Group: 0x0012, Element: 0x0064}, d.methodCodes()...))
	ltm := "REMOVED"
	if opts.RetainLongitudinalFullDates {
		ltm = "UNMODIFIED"
	}
	out = setElem(out, dicom.NewStringElement(tag.Tag{Group: 0x0028, Element: 0x0303}, "CS", ltm))
	out = fixCharset(out)

	res.SOPInstanceUID = k.UID(in.SOPInstanceUID())
	res.TransferSyntaxUID = in.TransferSyntaxUID
	switch in.TransferSyntaxUID {
	case dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian, dicom.ExplicitVRBigEndian, dicom.DeflatedExplicitVRLittleEndian, "":
		res.TransferSyntaxUID = dicom.ExplicitVRLittleEndian
	}
	b, err := dicom.EncodePart10(dicom.FileMeta{MediaStorageSOPClassUID: in.SOPClassUID(), MediaStorageSOPInstanceUID: res.SOPInstanceUID,
		TransferSyntaxUID: res.TransferSyntaxUID, SourceBigEndian: in.BigEndian}, out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	res.Part10 = b
	return res, nil
}

// Keys derives replacement UIDs and Patient IDs from a project secret.
type Keys struct{ secret []byte }

// NewKeys returns the keyed mappings of a project secret.
func NewKeys(secret []byte) *Keys { return &Keys{secret: append([]byte(nil), secret...)} }

func (k *Keys) mac(domain, v string) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return m.Sum(nil)
}

// UID maps a UID to 2.25.<decimal of 128 bits>: the first 16 bytes of
// HMAC-SHA256(secret, "radflow-deid-uid\0" + uid), with the RFC 9562
// version (8, custom) and variant bits set so that the value is a UUID as
// PS3.5 B.2 requires of 2.25 UIDs (122 bits of the MAC remain). The same
// secret and UID always give the same result; without the secret it cannot
// be inverted or confirmed. An empty uid maps to "".
func (k *Keys) UID(uid string) string {
	uid = strings.TrimRight(uid, " \x00")
	if uid == "" {
		return ""
	}
	b := k.mac("radflow-deid-uid", uid)[:16]
	b[6] = b[6]&0x0F | 0x80
	b[8] = b[8]&0x3F | 0x80
	return "2.25." + new(big.Int).SetBytes(b).String()
}

// PatientID maps a Patient ID to 32 upper-case hex digits of
// HMAC-SHA256(secret, "radflow-deid-patient-id\0" + id): consistent within
// a project, so a patient's studies still group. An empty id maps to "".
func (k *Keys) PatientID(id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(k.mac("radflow-deid-patient-id", id)[:16]))
}

// mode is the de-identification context of one data set level.
type mode struct {
	dummy      bool // inside a sequence whose action is D: free text is replaced
	dummyCodes bool // ... and that sequence identifies a person: code values too
	clean      bool // inside a sequence whose action is C: free text is cleaned
}

type deider struct {
	opts   Options
	keys   *Keys
	res    *Result
	idents []string
}

// Code Sequence Macro attributes (PS3.3 Table 8.8-1) kept in dummy mode, so
// that SR content keeps its concept names.
var codeAttrs = map[tag.Tag]bool{
	{Group: 0x0008, Element: 0x0100}: true, {Group: 0x0008, Element: 0x0102}: true,
	{Group: 0x0008, Element: 0x0103}: true, {Group: 0x0008, Element: 0x0104}: true,
	{Group: 0x0008, Element: 0x0119}: true, {Group: 0x0008, Element: 0x0120}: true,
	{Group: 0x0008, Element: 0x0105}: true, {Group: 0x0008, Element: 0x010F}: true,
	{Group: 0x0040, Element: 0xA040}: true, {Group: 0x0040, Element: 0xA010}: true,
}

// Sequences whose D action replaces code values too: their codes identify a person.
var identityCodeSeqs = map[tag.Tag]bool{{Group: 0x0040, Element: 0x1101}: true}

func textVR(vr string) bool {
	switch vr {
	case "PN", "LO", "SH", "ST", "LT", "UT", "UC":
		return true
	}
	return false
}

func elemVR(e *sdicom.Element) string {
	if len(e.RawValueRepresentation) == 2 {
		return e.RawValueRepresentation
	}
	if info, err := tag.Find(e.Tag); err == nil && len(info.VRs) > 0 {
		return info.VRs[0]
	}
	return "UN"
}

// level de-identifies one data set level (top level or a sequence item) and
// returns the new element list; the input is not modified.
func (d *deider) level(elems []*sdicom.Element, m mode) []*sdicom.Element {
	creators := map[[2]uint16]string{} // (group, block) → Private Creator
	for _, e := range elems {
		if e.Tag.Group%2 == 1 && e.Tag.Element >= 0x10 && e.Tag.Element <= 0xFF {
			creators[[2]uint16{e.Tag.Group, e.Tag.Element}] = firstString(e)
		}
	}
	usedBlocks := map[[2]uint16]bool{}
	var out []*sdicom.Element
	for _, e := range elems {
		t := e.Tag
		if t.Element == 0x0000 || t.Group == 0xFFFE {
			continue // group lengths (retired) and stray item tags
		}
		if t.Group%2 == 1 {
			if t.Element < 0x1000 {
				continue // creators: re-added below when one of their elements stays
			}
			block := [2]uint16{t.Group, t.Element >> 8}
			if d.privateAllowed(creators[block], t) {
				usedBlocks[block] = true
				out = append(out, d.keep(e, m))
			} else {
				d.res.Removed++
			}
			continue
		}
		if t.Group >= 0x6000 && t.Group <= 0x601E && t.Group%2 == 0 {
			d.res.Removed++ // overlays: the whole group (Table E.1-1 lists Overlay Data and Comments)
			continue
		}
		vr := elemVR(e)
		rule, listed := Lookup(t)
		if !listed {
			out = append(out, d.unlisted(e, vr, m))
			continue
		}
		act := Resolve(rule.Action(d.opts), vr)
		if ne := d.apply(e, vr, act, m); ne != nil {
			out = append(out, ne)
		}
	}
	for _, e := range elems {
		t := e.Tag
		if t.Group%2 == 1 && t.Element >= 0x10 && t.Element <= 0xFF && usedBlocks[[2]uint16{t.Group, t.Element}] {
			out = append(out, e)
		}
	}
	return out
}

func (d *deider) privateAllowed(creator string, t tag.Tag) bool {
	if creator == "" {
		return false
	}
	for _, p := range d.opts.KeepPrivate {
		if strings.TrimSpace(p.Creator) == creator && (p.Group == 0 || p.Group == t.Group) && p.Element == uint8(t.Element) {
			return true
		}
	}
	return false
}

// keep returns e, de-identifying the items when it is a sequence.
func (d *deider) keep(e *sdicom.Element, m mode) *sdicom.Element {
	if items, ok := seqItems(e); ok {
		return d.recurse(e, items, m)
	}
	return e
}

// unlisted handles an attribute Table E.1-1 does not list: kept, except
// free text inside a dummy- or clean-mode sequence.
func (d *deider) unlisted(e *sdicom.Element, vr string, m mode) *sdicom.Element {
	if items, ok := seqItems(e); ok {
		return d.recurse(e, items, m)
	}
	if m.dummy && textVR(vr) && (!codeAttrs[e.Tag] || m.dummyCodes) && hasText(e) {
		d.res.Replaced++
		return dummyElement(e, vr, d.keys)
	}
	if m.clean && textVR(vr) {
		return d.cleanElement(e)
	}
	return e
}

func (d *deider) recurse(e *sdicom.Element, items [][]*sdicom.Element, m mode) *sdicom.Element {
	out := make([][]*sdicom.Element, len(items))
	for i, it := range items {
		out[i] = d.level(it, m)
	}
	c := *e
	c.Value, _ = sdicom.NewValue(out)
	return &c
}

// apply performs one resolved action; nil means removed.
func (d *deider) apply(e *sdicom.Element, vr string, act Action, m mode) *sdicom.Element {
	items, isSeq := seqItems(e)
	switch act {
	case ActRemove:
		d.res.Removed++
		return nil
	case ActKeep:
		return d.keep(e, m)
	case ActZero:
		d.res.Replaced++
		if isSeq {
			return dicom.NewSequenceElement(e.Tag)
		}
		return emptyElement(e, vr)
	case ActClean:
		if isSeq {
			return d.recurse(e, items, mode{dummy: m.dummy, dummyCodes: m.dummyCodes, clean: true})
		}
		if _, text := e.Value.GetValue().([]string); !text {
			d.res.Removed++ // a binary value (Maker Note, Device Setting Description) cannot be cleaned
			return nil
		}
		return d.cleanElement(e)
	case ActUID:
		if isSeq {
			return d.recurse(e, items, m)
		}
		if vr != "UI" {
			d.res.Replaced++
			return dummyElement(e, vr, d.keys)
		}
		d.res.Replaced++
		return d.mapUIDs(e)
	case ActDummy:
		if isSeq {
			d.res.Replaced++
			return d.recurse(e, items, mode{dummy: true, dummyCodes: m.dummyCodes || identityCodeSeqs[e.Tag], clean: m.clean})
		}
		d.res.Replaced++
		if e.Tag == tag.PatientID {
			return dicom.NewStringElement(e.Tag, vr, d.keys.PatientID(firstString(e)))
		}
		if vr == "UI" {
			return d.mapUIDs(e)
		}
		return dummyElement(e, vr, d.keys)
	}
	return e
}

func (d *deider) mapUIDs(e *sdicom.Element) *sdicom.Element {
	vals, _ := e.Value.GetValue().([]string)
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = append(out, d.keys.UID(v))
	}
	return dicom.NewStringElement(e.Tag, "UI", out...)
}

// cleanElement implements C: the value is kept with every occurrence of the
// instance's identifying values (patient names and IDs, birth date,
// accession number, physicians' names, institution name and address parts)
// replaced by "*". This is a best-effort textual scrub; see the docs.
func (d *deider) cleanElement(e *sdicom.Element) *sdicom.Element {
	vals, ok := e.Value.GetValue().([]string)
	if !ok {
		return e
	}
	changed := false
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = scrub(v, d.idents)
		changed = changed || out[i] != v
	}
	if !changed {
		return e
	}
	d.res.Replaced++
	c := *e
	c.Value, _ = sdicom.NewValue(out)
	return &c
}

// identifiers collects the identifying strings the C action scrubs.
func identifiers(in *dicom.Instance) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if utf8.RuneCountInString(s) >= 3 {
			out = append(out, s)
		}
	}
	split := func(s string) {
		add(s)
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == '^' || r == '=' || r == ' ' || r == ',' }) {
			add(p)
		}
	}
	for _, t := range []tag.Tag{tag.PatientName, {Group: 0x0010, Element: 0x1001}, tag.ReferringPhysicianName,
		{Group: 0x0008, Element: 0x1050}, {Group: 0x0008, Element: 0x1060}, {Group: 0x0008, Element: 0x1070},
		{Group: 0x0008, Element: 0x0080}, {Group: 0x0008, Element: 0x0081}, {Group: 0x0010, Element: 0x1040},
		{Group: 0x0010, Element: 0x1005}, {Group: 0x0010, Element: 0x1060}} {
		for _, v := range in.Strings(t) {
			split(v)
		}
	}
	for _, t := range []tag.Tag{tag.PatientID, {Group: 0x0010, Element: 0x1000}, tag.AccessionNumber,
		tag.PatientBirthDate, {Group: 0x0020, Element: 0x0010}, {Group: 0x0038, Element: 0x0010}} {
		for _, v := range in.Strings(t) {
			add(v)
		}
	}
	return out
}

func scrub(s string, idents []string) string {
	low := strings.ToLower(s)
	for _, id := range idents {
		lid := strings.ToLower(id)
		for {
			i := strings.Index(low, lid)
			if i < 0 {
				break
			}
			s = s[:i] + "*" + s[i+len(lid):]
			low = low[:i] + "*" + low[i+len(lid):]
		}
	}
	return s
}

// Dummy values per VR (PS3.15 leaves them to the de-identifier). They are
// valid for their VR, obviously not real, and the same in every instance so
// they carry no information: dates 19000101 (the earliest date many
// validators accept, and not a plausible acquisition date), times 000000,
// names ANONYMOUS, other text ANONYMIZED, numbers 0.
func dummyStrings(vr string) []string {
	switch vr {
	case "PN":
		return []string{"ANONYMOUS"}
	case "DA":
		return []string{"19000101"}
	case "TM":
		return []string{"000000"}
	case "DT":
		return []string{"19000101000000"}
	case "AS":
		return []string{"000Y"}
	case "IS", "DS":
		return []string{"0"}
	case "UR":
		return []string{"urn:radflow:anonymized"}
	case "CS", "AE":
		return []string{"ANONYMIZED"}
	}
	return []string{"ANONYMIZED"}
}

func dummyElement(e *sdicom.Element, vr string, k *Keys) *sdicom.Element {
	switch vr {
	case "US", "SS", "UL", "SL", "SV", "UV":
		return dicom.NewIntElement(e.Tag, vr, 0)
	case "FL", "FD":
		return dicom.NewFloatElement(e.Tag, vr, 0)
	case "OB", "OW", "OD", "OF", "OL", "OV", "UN":
		return dicom.NewBytesElement(e.Tag, vr, make([]byte, 8))
	case "AT":
		return dicom.NewIntElement(e.Tag, vr, 0)
	case "UI":
		return dicom.NewStringElement(e.Tag, vr, k.UID(firstString(e)))
	}
	return dicom.NewStringElement(e.Tag, vr, dummyStrings(vr)...)
}

func emptyElement(e *sdicom.Element, vr string) *sdicom.Element {
	switch vr {
	case "US", "SS", "UL", "SL", "SV", "UV", "AT":
		return dicom.NewIntElement(e.Tag, vr)
	case "FL", "FD":
		return dicom.NewFloatElement(e.Tag, vr)
	case "OB", "OW", "OD", "OF", "OL", "OV", "UN":
		return dicom.NewBytesElement(e.Tag, vr, []byte{})
	}
	return dicom.NewStringElement(e.Tag, vr)
}

func (d *deider) methodNames() []string {
	n := []string{"PS3.15 E.1 Basic Application Confidentiality Profile"}
	if d.opts.RetainLongitudinalFullDates {
		n = append(n, "Retain Longitudinal Temporal Information Full Dates")
	}
	if d.opts.RetainPatientCharacteristics {
		n = append(n, "Retain Patient Characteristics Option")
	}
	if d.opts.RetainDeviceIdentity {
		n = append(n, "Retain Device Identity Option")
	}
	if d.opts.CleanDescriptors {
		n = append(n, "Clean Descriptors Option")
	}
	return n
}

// methodCodes returns the CID 7050 items of De-identification Method Code Sequence.
func (d *deider) methodCodes() [][]*sdicom.Element {
	code := func(v, meaning string) []*sdicom.Element {
		return []*sdicom.Element{
			dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x0100}, "SH", v),
			dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x0102}, "SH", "DCM"),
			dicom.NewStringElement(tag.Tag{Group: 0x0008, Element: 0x0104}, "LO", meaning),
		}
	}
	c := [][]*sdicom.Element{code("113100", "Basic Application Confidentiality Profile")}
	if d.opts.RetainLongitudinalFullDates {
		c = append(c, code("113106", "Retain Longitudinal Temporal Information Full Dates Option"))
	}
	if d.opts.RetainPatientCharacteristics {
		c = append(c, code("113108", "Retain Patient Characteristics Option"))
	}
	if d.opts.RetainDeviceIdentity {
		c = append(c, code("113109", "Retain Device Identity Option"))
	}
	if d.opts.CleanDescriptors {
		c = append(c, code("113105", "Clean Descriptors Option"))
	}
	return c
}

func setElem(elems []*sdicom.Element, e *sdicom.Element) []*sdicom.Element {
	for i, x := range elems {
		if x.Tag == e.Tag {
			elems[i] = e
			return elems
		}
	}
	return append(elems, e)
}

// fixCharset declares UTF-8 (ISO_IR 192) when text kept from a data set in
// another character set is not ASCII: package dicom decoded it to UTF-8.
func fixCharset(elems []*sdicom.Element) []*sdicom.Element {
	var cs *sdicom.Element
	for _, e := range elems {
		if e.Tag == tag.SpecificCharacterSet {
			cs = e
		}
	}
	if cs == nil {
		return elems
	}
	name := strings.Join(stringsOf(cs), `\`)
	if name == "ISO_IR 192" || strings.TrimSpace(name) == "" || name == "ISO_IR 6" || !nonASCII(elems) {
		return elems
	}
	return setElem(elems, dicom.NewStringElement(tag.SpecificCharacterSet, "CS", "ISO_IR 192"))
}

func nonASCII(elems []*sdicom.Element) bool {
	for _, e := range elems {
		if items, ok := seqItems(e); ok {
			for _, it := range items {
				if nonASCII(it) {
					return true
				}
			}
			continue
		}
		if !textVR(elemVR(e)) {
			continue
		}
		for _, s := range stringsOf(e) {
			for i := 0; i < len(s); i++ {
				if s[i] >= 0x80 {
					return true
				}
			}
		}
	}
	return false
}

func stringsOf(e *sdicom.Element) []string {
	if e == nil || e.Value == nil {
		return nil
	}
	s, _ := e.Value.GetValue().([]string)
	return s
}

func firstString(e *sdicom.Element) string {
	s := stringsOf(e)
	if len(s) == 0 {
		return ""
	}
	return strings.TrimSpace(s[0])
}

func hasText(e *sdicom.Element) bool {
	for _, s := range stringsOf(e) {
		if strings.TrimSpace(s) != "" {
			return true
		}
	}
	return false
}

func seqItems(e *sdicom.Element) ([][]*sdicom.Element, bool) {
	if e.Value == nil {
		return nil, false
	}
	seq, ok := e.Value.GetValue().([]*sdicom.SequenceItemValue)
	if !ok {
		return nil, false
	}
	out := make([][]*sdicom.Element, len(seq))
	for i, s := range seq {
		out[i], _ = s.GetValue().([]*sdicom.Element)
	}
	return out, true
}
