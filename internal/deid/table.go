package deid

//go:generate /usr/bin/python3 tablegen/gen.py

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Action is a PS3.15 Table E.1-1 action code: D (replace with a dummy
// value), Z (zero-length value), X (remove), K (keep), C (clean), U (replace
// UID consistently), or a composite such as Z/D, X/Z, X/D, X/Z/D, X/Z/U*.
type Action string

// The action codes of PS3.15 Table E.1-1.
const (
	ActDummy      Action = "D"
	ActZero       Action = "Z"
	ActRemove     Action = "X"
	ActKeep       Action = "K"
	ActClean      Action = "C"
	ActUID        Action = "U"
	ActZeroDummy  Action = "Z/D"
	ActRemoveZero Action = "X/Z"
	ActRemoveD    Action = "X/D"
	ActRemoveZD   Action = "X/Z/D"
	ActRemoveZU   Action = "X/Z/U*"
	actNone       Action = "-"
)

// Pattern names the rows of Table E.1-1 that match more than one tag.
const (
	PatternCurve          = "50xxxxxx" // every element of groups 5000-501E
	PatternOverlayData    = "60xx3000"
	PatternOverlayComment = "60xx4000"
	PatternPrivate        = "private" // every element of an odd group
)

// Rule is one row of Table E.1-1: the attribute, its Basic Profile action and
// the action under each supported option ("" when the option does not change
// it).
type Rule struct {
	Tag     tag.Tag
	Pattern string // non-empty for the repeating-group and private rows; Tag is then zero
	Name    string
	Basic   Action
	// Option columns.
	FullDates, PatientCharacteristics, DeviceIdentity, CleanDescriptors Action
}

//go:embed table_e1_1.tsv
var tableTSV string

var (
	table   []Rule
	byTag   map[tag.Tag]Rule
	byPatrn map[string]Rule
)

func init() {
	rules, err := parseTable(tableTSV)
	if err != nil {
		panic("deid: embedded table_e1_1.tsv: " + err.Error()) // a build defect, caught by TestTable
	}
	table = rules
	byTag = make(map[tag.Tag]Rule, len(rules))
	byPatrn = map[string]Rule{}
	for _, r := range rules {
		if r.Pattern != "" {
			byPatrn[r.Pattern] = r
		} else {
			byTag[r.Tag] = r
		}
	}
}

var validActions = map[Action]bool{ActDummy: true, ActZero: true, ActRemove: true, ActKeep: true, ActClean: true,
	ActUID: true, ActZeroDummy: true, ActRemoveZero: true, ActRemoveD: true, ActRemoveZD: true, ActRemoveZU: true}

func parseTable(s string) ([]Rule, error) {
	var out []Rule
	for i, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("line %d: %d columns, want 7", i+1, len(f))
		}
		r := Rule{Name: f[1], Basic: Action(f[2])}
		switch f[0] {
		case PatternCurve, PatternOverlayData, PatternOverlayComment, PatternPrivate:
			r.Pattern = f[0]
		default:
			v, err := strconv.ParseUint(f[0], 16, 32)
			if err != nil || len(f[0]) != 8 {
				return nil, fmt.Errorf("line %d: bad tag %q", i+1, f[0])
			}
			r.Tag = tag.Tag{Group: uint16(v >> 16), Element: uint16(v)}
		}
		opts := []*Action{&r.FullDates, &r.PatientCharacteristics, &r.DeviceIdentity, &r.CleanDescriptors}
		for k, p := range opts {
			if a := Action(f[3+k]); a != actNone {
				*p = a
			}
		}
		for _, a := range []Action{r.Basic, r.FullDates, r.PatientCharacteristics, r.DeviceIdentity, r.CleanDescriptors} {
			if a != "" && !validActions[a] {
				return nil, fmt.Errorf("line %d: unknown action %q", i+1, a)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Table returns a copy of every row of Table E.1-1 as transcribed (647 rows,
// PS3.15 2025 edition), in the standard's order.
func Table() []Rule { return append([]Rule(nil), table...) }

// Lookup returns the rule that applies to t: its own row, or the curve,
// overlay or private row matching its group. ok is false for attributes the
// table does not list (they are kept).
func Lookup(t tag.Tag) (Rule, bool) {
	if r, ok := byTag[t]; ok {
		return r, true
	}
	switch {
	case t.Group%2 == 1:
		return byPatrn[PatternPrivate], true
	case t.Group >= 0x5000 && t.Group <= 0x501E:
		return byPatrn[PatternCurve], true
	case t.Group >= 0x6000 && t.Group <= 0x601E && t.Element == 0x3000:
		return byPatrn[PatternOverlayData], true
	case t.Group >= 0x6000 && t.Group <= 0x601E && t.Element == 0x4000:
		return byPatrn[PatternOverlayComment], true
	}
	return Rule{}, false
}

// Action returns the table action for the rule under opts: the Basic
// Profile action, overridden by the selected options. When several
// selected options name an action, K wins over C (the option retaining more
// is the one asked for). The result may be composite; see Resolve.
func (r Rule) Action(o Options) Action {
	var picked []Action
	if o.RetainLongitudinalFullDates && r.FullDates != "" {
		picked = append(picked, r.FullDates)
	}
	if o.RetainPatientCharacteristics && r.PatientCharacteristics != "" {
		picked = append(picked, r.PatientCharacteristics)
	}
	if o.RetainDeviceIdentity && r.DeviceIdentity != "" {
		picked = append(picked, r.DeviceIdentity)
	}
	if o.CleanDescriptors && r.CleanDescriptors != "" {
		picked = append(picked, r.CleanDescriptors)
	}
	best := Action("")
	for _, a := range picked {
		if a == ActKeep || best == "" {
			best = a
		}
	}
	if best != "" {
		return best
	}
	return r.Basic
}

// Resolve picks the one action radflow performs for a (possibly composite)
// table action on an attribute of value representation vr. Without IOD
// knowledge radflow chooses the choice that keeps every IOD conformant:
//
//   - non-sequences: a composite containing D → D (a dummy satisfies Type 1),
//     X/Z → Z (an empty value satisfies Type 2);
//   - sequences: a composite containing Z → Z (empty sequence), X/D → X,
//     X/Z/U* → U (items kept, their UIDs replaced), D → the items are kept and
//     de-identified in dummy mode (free text replaced, see Apply).
func Resolve(a Action, vr string) Action {
	if vr == "SQ" {
		switch a {
		case ActZeroDummy, ActRemoveZero, ActRemoveZD:
			return ActZero
		case ActRemoveD:
			return ActRemove
		case ActRemoveZU:
			return ActUID
		}
		return a
	}
	switch a {
	case ActZeroDummy, ActRemoveD, ActRemoveZD:
		return ActDummy
	case ActRemoveZero, ActRemoveZU:
		return ActZero
	}
	return a
}
