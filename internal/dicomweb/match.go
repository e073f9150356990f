package dicomweb

import (
	"slices"
	"strings"
)

// MatchString reports whether value matches pattern with PS3.4 C.2.2.2.4
// wildcard matching: * matches any run of characters, ? one character, the
// rest is case-sensitive and exact. An empty pattern matches everything.
func MatchString(pattern, value string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	p, v := []rune(pattern), []rune(value)
	// Iterative wildcard match with single backtrack point.
	pi, vi, star, mark := 0, 0, -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == v[vi]):
			pi++
			vi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// MatchPersonName matches a PN value. Without fuzzy: MatchString on the
// values with trailing empty components ('^') removed. With fuzzy
// (fuzzymatching=true): case-insensitive; every word of the pattern (words
// split on '^', ' ', ',') must be a prefix of some word of the value, in
// any order; wildcards in the pattern are ignored.
func MatchPersonName(pattern, value string, fuzzy bool) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	if !fuzzy {
		return MatchString(strings.TrimRight(pattern, "^"), strings.TrimRight(value, "^"))
	}
	split := func(s string) []string {
		return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
			return r == '^' || r == ' ' || r == ',' || r == '=' || r == '*' || r == '?'
		})
	}
	words := split(value)
	for _, pw := range split(pattern) {
		if !slices.ContainsFunc(words, func(w string) bool { return strings.HasPrefix(w, pw) }) {
			return false
		}
	}
	return true
}

// MatchDate reports whether date (YYYYMMDD) lies in [from, to]; empty
// bounds are open. An empty date matches only when both bounds are empty.
func MatchDate(from, to, date string) bool {
	if from == "" && to == "" {
		return true
	}
	if date == "" {
		return false
	}
	return (from == "" || date >= from) && (to == "" || date <= to)
}

func matchUID(list []string, uid string) bool {
	return len(list) == 0 || slices.Contains(list, uid)
}

// MatchStudy reports whether row satisfies the study-level keys of q
// (for in-memory catalogs and tests; a database catalog translates q to SQL).
func (q Query) MatchStudy(row StudyRow) bool {
	return matchUID(q.StudyInstanceUIDs, row.StudyInstanceUID) &&
		MatchString(q.PatientID, row.PatientID) &&
		MatchPersonName(q.PatientName, row.PatientName, q.FuzzyMatching) &&
		MatchDate(q.StudyDateFrom, q.StudyDateTo, row.StudyDate) &&
		MatchString(q.AccessionNumber, row.AccessionNumber) &&
		(q.ModalitiesInStudy == "" || slices.ContainsFunc(row.ModalitiesInStudy, func(m string) bool { return MatchString(q.ModalitiesInStudy, m) }))
}

// MatchSeries reports whether row and its study satisfy q's study- and
// series-level keys.
func (q Query) MatchSeries(row SeriesRow) bool {
	return q.MatchStudy(row.Study) &&
		matchUID(q.SeriesInstanceUIDs, row.SeriesInstanceUID) &&
		MatchString(q.Modality, row.Modality)
}

// MatchInstance reports whether row and its parents satisfy every key of q.
func (q Query) MatchInstance(row InstanceRow) bool {
	return q.MatchSeries(row.Series) &&
		matchUID(q.SOPInstanceUIDs, row.SOPInstanceUID) &&
		MatchString(q.SOPClassUID, row.SOPClassUID)
}

// Page applies q.Offset and q.Limit to rows (for in-memory catalogs).
func Page[T any](rows []T, q Query) []T {
	if q.Offset >= len(rows) {
		return nil
	}
	rows = rows[q.Offset:]
	if q.Limit > 0 && q.Limit < len(rows) {
		rows = rows[:q.Limit]
	}
	return rows
}
