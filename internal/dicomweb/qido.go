package dicomweb

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

type level int

const (
	levelStudy level = iota
	levelSeries
	levelInstance
)

// matching keys supported per level (a key of a higher level also applies
// to lower levels).
var (
	studyKeys    = []tag.Tag{tag.StudyInstanceUID, tag.PatientID, tag.PatientName, tag.StudyDate, tag.AccessionNumber, tag.ModalitiesInStudy}
	seriesKeys   = []tag.Tag{tag.SeriesInstanceUID, tag.Modality}
	instanceKeys = []tag.Tag{tag.SOPInstanceUID, tag.SOPClassUID}
	reDate       = regexp.MustCompile(`^\d{8}$`)
	reUID        = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
)

// errBadQuery: a 400 with the message as the reason.
type errBadQuery string

func (e errBadQuery) Error() string { return string(e) }

// parseQuery parses QIDO-RS query parameters (PS3.18 8.3.4) for lvl, with
// the path's study/series UIDs. Unknown parameters → errBadQuery. Known
// attributes that are not matching keys at lvl are ignored and reported in
// the returned warnings. Error messages name keys, never values.
func (s *Service) parseQuery(r *http.Request, lvl level) (Query, []string, error) {
	var q Query
	var warnings []string
	q.Limit = s.cfg.DefaultLimit
	if st := r.PathValue("study"); st != "" {
		q.StudyInstanceUIDs = []string{st}
	}
	if se := r.PathValue("series"); se != "" {
		q.SeriesInstanceUIDs = []string{se}
	}
	supported := slices.Clone(studyKeys)
	if lvl >= levelSeries {
		supported = append(supported, seriesKeys...)
	}
	if lvl >= levelInstance {
		supported = append(supported, instanceKeys...)
	}
	vals := r.URL.Query()
	seen := map[tag.Tag]bool{}
	for key, vs := range vals {
		switch strings.ToLower(key) {
		case "limit", "offset":
			if len(vs) != 1 {
				return q, nil, errBadQuery(key + " given more than once")
			}
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 {
				return q, nil, errBadQuery(key + " must be a non-negative integer")
			}
			if strings.ToLower(key) == "limit" {
				if n == 0 || n > s.cfg.MaxLimit {
					n = s.cfg.MaxLimit
					warnings = append(warnings, fmt.Sprintf("limit capped at %d", s.cfg.MaxLimit))
				}
				q.Limit = n
			} else {
				q.Offset = n
			}
			continue
		case "fuzzymatching":
			switch strings.ToLower(vs[0]) {
			case "true":
				q.FuzzyMatching = true
			case "false":
			default:
				return q, nil, errBadQuery("fuzzymatching must be true or false")
			}
			continue
		case "includefield":
			for _, v := range vs {
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f != "all" && f != "" {
						if _, ok := ParseTag(f); !ok {
							return q, nil, errBadQuery(fmt.Sprintf("includefield %q is not a DICOM attribute keyword or tag", f))
						}
					}
				}
			}
			continue
		}
		t, ok := ParseTag(key)
		if !ok {
			return q, nil, errBadQuery(fmt.Sprintf("unknown query parameter %q: not a DICOM attribute keyword or tag, nor limit, offset, fuzzymatching, includefield", key))
		}
		name := keywordOf(t)
		if !slices.Contains(supported, t) {
			warnings = append(warnings, fmt.Sprintf("matching key %s is not supported at this level and was ignored", name))
			continue
		}
		if len(vs) != 1 || seen[t] {
			return q, nil, errBadQuery(fmt.Sprintf("matching key %s given more than once", name))
		}
		seen[t] = true
		v := strings.TrimSpace(vs[0])
		switch t {
		case tag.StudyInstanceUID, tag.SeriesInstanceUID, tag.SOPInstanceUID:
			uids, err := parseUIDList(v, name)
			if err != nil {
				return q, nil, err
			}
			switch t {
			case tag.StudyInstanceUID:
				q.StudyInstanceUIDs = intersect(q.StudyInstanceUIDs, uids)
			case tag.SeriesInstanceUID:
				q.SeriesInstanceUIDs = intersect(q.SeriesInstanceUIDs, uids)
			default:
				q.SOPInstanceUIDs = uids
			}
		case tag.PatientID:
			q.PatientID = v
		case tag.PatientName:
			q.PatientName = v
		case tag.AccessionNumber:
			q.AccessionNumber = v
		case tag.ModalitiesInStudy:
			q.ModalitiesInStudy = v
		case tag.Modality:
			q.Modality = v
		case tag.SOPClassUID:
			q.SOPClassUID = v
		case tag.StudyDate:
			from, to, ok := parseDateRange(v)
			if !ok {
				return q, nil, errBadQuery("StudyDate must be YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-")
			}
			q.StudyDateFrom, q.StudyDateTo = from, to
		}
	}
	return q, warnings, nil
}

func keywordOf(t tag.Tag) string {
	if info, err := tag.Find(t); err == nil && info.Keyword != "" {
		return info.Keyword
	}
	return TagKey(t)
}

func parseUIDList(v, name string) ([]string, error) {
	var uids []string
	for _, u := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\\' }) {
		u = strings.TrimSpace(u)
		if len(u) > 64 || !reUID.MatchString(u) {
			return nil, errBadQuery(name + " must be a UID or a comma-separated list of UIDs")
		}
		uids = append(uids, u)
	}
	if len(uids) == 0 {
		return nil, errBadQuery(name + " is empty")
	}
	return uids, nil
}

// intersect combines a path UID with a query UID list: both must hold.
func intersect(path, query []string) []string {
	if len(path) == 0 {
		return query
	}
	var out []string
	for _, u := range path {
		if slices.Contains(query, u) {
			out = append(out, u)
		}
	}
	if out == nil {
		out = []string{"\x00no-match"} // contradictory: matches nothing
	}
	return out
}

func parseDateRange(v string) (from, to string, ok bool) {
	if !strings.Contains(v, "-") {
		return v, v, reDate.MatchString(v)
	}
	from, to, _ = strings.Cut(v, "-")
	if from == "" && to == "" {
		return "", "", false
	}
	if (from != "" && !reDate.MatchString(from)) || (to != "" && !reDate.MatchString(to)) {
		return "", "", false
	}
	return from, to, true
}

func (s *Service) qidoStudies(w http.ResponseWriter, r *http.Request) {
	s.qido(w, r, levelStudy)
}

func (s *Service) qidoSeries(w http.ResponseWriter, r *http.Request) {
	s.qido(w, r, levelSeries)
}

func (s *Service) qidoInstances(w http.ResponseWriter, r *http.Request) {
	s.qido(w, r, levelInstance)
}

func (s *Service) qido(w http.ResponseWriter, r *http.Request, lvl level) {
	q, warnings, err := s.parseQuery(r, lvl)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := q.Limit
	q.Limit = limit + 1 // one more to know whether the page is complete
	base := s.baseURL(r)
	inStudy, inSeries := r.PathValue("study") != "", r.PathValue("series") != ""
	var out []Dataset
	switch lvl {
	case levelStudy:
		rows, err := s.cfg.Catalog.SearchStudies(r.Context(), q)
		if err != nil {
			s.catalogError(w, r, err)
			return
		}
		for _, row := range rows {
			d := Dataset{}
			studyAttrs(d, row, base)
			out = append(out, d)
		}
	case levelSeries:
		rows, err := s.cfg.Catalog.SearchSeries(r.Context(), q)
		if err != nil {
			s.catalogError(w, r, err)
			return
		}
		for _, row := range rows {
			d := Dataset{}
			if !inStudy {
				studyAttrs(d, row.Study, base)
			}
			seriesAttrs(d, row, base)
			out = append(out, d)
		}
	default:
		rows, err := s.cfg.Catalog.SearchInstances(r.Context(), q)
		if err != nil {
			s.catalogError(w, r, err)
			return
		}
		for _, row := range rows {
			d := Dataset{}
			if !inStudy {
				studyAttrs(d, row.Series.Study, base)
			}
			if !inSeries {
				seriesAttrs(d, row.Series, base)
			}
			instanceAttrs(d, row, base)
			out = append(out, d)
		}
	}
	if len(out) > limit {
		out = out[:limit]
		warnings = append(warnings, fmt.Sprintf("there are more matches; request the next page with offset=%d", q.Offset+limit))
	}
	if out == nil {
		out = []Dataset{}
	}
	for _, wmsg := range warnings {
		w.Header().Add("Warning", warning(wmsg))
	}
	writeDICOMJSON(w, http.StatusOK, out)
}

func (s *Service) catalogError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Context().Err() != nil {
		return
	}
	s.log.Error("dicomweb: catalog error", "request_id", r.Header.Get("X-Request-ID"), "path_pattern", r.Pattern, "error", err.Error())
	httpError(w, http.StatusInternalServerError, "catalog error")
}

func setIS(d Dataset, t tag.Tag, s string) {
	if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
		d.Set(t, "IS", n)
	} else {
		d.Set(t, "IS")
	}
}

func setCount(d Dataset, t tag.Tag, n int) {
	if n >= 0 {
		d.Set(t, "IS", n)
	}
}

func studyAttrs(d Dataset, row StudyRow, base string) {
	d.SetString(tag.StudyDate, "DA", row.StudyDate)
	d.SetString(tag.StudyTime, "TM", row.StudyTime)
	d.SetString(tag.AccessionNumber, "SH", row.AccessionNumber)
	mods := make([]any, len(row.ModalitiesInStudy))
	for i, m := range row.ModalitiesInStudy {
		mods[i] = m
	}
	d.Set(tag.ModalitiesInStudy, "CS", mods...)
	d.SetString(tag.ReferringPhysicianName, "PN", row.ReferringPhysicianName)
	d.SetString(tag.StudyDescription, "LO", row.StudyDescription)
	d.SetString(tag.PatientName, "PN", row.PatientName)
	d.SetString(tag.PatientID, "LO", row.PatientID)
	d.SetString(tag.PatientBirthDate, "DA", row.PatientBirthDate)
	d.SetString(tag.PatientSex, "CS", row.PatientSex)
	d.SetString(tag.StudyInstanceUID, "UI", row.StudyInstanceUID)
	d.SetString(tag.StudyID, "SH", row.StudyID)
	setCount(d, tag.NumberOfStudyRelatedSeries, row.NumberOfStudyRelatedSeries)
	setCount(d, tag.NumberOfStudyRelatedInstances, row.NumberOfStudyRelatedInstances)
	d.SetString(tag.RetrieveURL, "UR", base+"/studies/"+row.StudyInstanceUID)
}

func seriesAttrs(d Dataset, row SeriesRow, base string) {
	d.SetString(tag.StudyInstanceUID, "UI", row.Study.StudyInstanceUID)
	d.SetString(tag.Modality, "CS", row.Modality)
	d.SetString(tag.SeriesDescription, "LO", row.SeriesDescription)
	d.SetString(tag.BodyPartExamined, "CS", row.BodyPartExamined)
	d.SetString(tag.SeriesInstanceUID, "UI", row.SeriesInstanceUID)
	setIS(d, tag.SeriesNumber, row.SeriesNumber)
	setCount(d, tag.NumberOfSeriesRelatedInstances, row.NumberOfSeriesRelatedInstances)
	d.SetString(tag.RetrieveURL, "UR", base+"/studies/"+row.Study.StudyInstanceUID+"/series/"+row.SeriesInstanceUID)
}

func instanceAttrs(d Dataset, row InstanceRow, base string) {
	d.SetString(tag.StudyInstanceUID, "UI", row.Series.Study.StudyInstanceUID)
	d.SetString(tag.SeriesInstanceUID, "UI", row.Series.SeriesInstanceUID)
	d.SetString(tag.SOPClassUID, "UI", row.SOPClassUID)
	d.SetString(tag.SOPInstanceUID, "UI", row.SOPInstanceUID)
	setIS(d, tag.InstanceNumber, row.InstanceNumber)
	d.SetString(tag.AvailableTransferSyntaxUID, "UI", row.TransferSyntaxUID)
	if row.Rows > 0 {
		d.Set(tag.Rows, "US", row.Rows)
		d.Set(tag.Columns, "US", row.Columns)
		d.Set(tag.BitsAllocated, "US", row.BitsAllocated)
		d.Set(tag.NumberOfFrames, "IS", max(row.NumberOfFrames, 1))
	}
	d.SetString(tag.RetrieveURL, "UR", base+"/studies/"+row.Series.Study.StudyInstanceUID+"/series/"+row.Series.SeriesInstanceUID+"/instances/"+row.SOPInstanceUID)
}
