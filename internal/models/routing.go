package models

import (
	"fmt"
	"regexp"
	"strings"
)

// Routing is a model's routing section: which DICOM instances it accepts.
//
// Rules, in order (Match):
//
//  1. Modality (0008,0060) must equal one of Modalities (trimmed,
//     case-insensitive); otherwise no match.
//  2. When SOPClassUIDs is non-empty, SOP Class UID (0008,0016) must be one
//     of them; when CallingAETitles is non-empty, the sending AE title
//     must be one of them (trimmed, case-sensitive). These two are radflow
//     extensions to the models/README.md schema; empty means any.
//  3. Body Part Examined (0018,0015) present and non-empty: it must equal
//     one of BodyParts (trimmed, case-insensitive) → reason "body_part";
//     otherwise no match. An empty BodyParts list accepts any body part
//     (reason "modality_only").
//  4. Body Part Examined absent or empty (common: it is Type 3 and many
//     devices leave it out) — MissingBodyPart decides:
//     "reject" (the default): no match;
//     "accept": match on modality alone → "modality_only";
//     "match_descriptions": match only when a description attribute
//     (DescriptionTags, default StudyDescription and SeriesDescription)
//     matches one of DescriptionPatterns (Go RE2) → "description";
//     "match_descriptions_then_modality": always match; "description" when
//     a description matches, else "modality_only".
type Routing struct {
	Modalities          []string `yaml:"modalities"`
	BodyParts           []string `yaml:"body_parts"`
	MissingBodyPart     string   `yaml:"missing_body_part"`
	DescriptionTags     []string `yaml:"description_tags"`
	DescriptionPatterns []string `yaml:"description_patterns"`
	SOPClassUIDs        []string `yaml:"sop_class_uids"`
	CallingAETitles     []string `yaml:"calling_ae_titles"`

	patterns []*regexp.Regexp
}

// Missing Body Part Examined policies (Routing.MissingBodyPart).
const (
	MissingReject                        = "reject"
	MissingAccept                        = "accept"
	MissingMatchDescriptions             = "match_descriptions"
	MissingMatchDescriptionsThenModality = "match_descriptions_then_modality"
)

// Reason says why an instance was routed to a model.
type Reason string

// Routing reasons.
const (
	ReasonBodyPart     Reason = "body_part"     // Body Part Examined matched
	ReasonDescription  Reason = "description"   // no body part; a description matched
	ReasonModalityOnly Reason = "modality_only" // no body part; modality alone
)

// Attributes are what routing looks at, from the instance (and, for
// CallingAETitle, from the association that delivered it). Values as stored;
// Match trims them.
type Attributes struct {
	Modality          string // (0008,0060)
	BodyPartExamined  string // (0018,0015)
	SOPClassUID       string // (0008,0016)
	StudyDescription  string // (0008,1030)
	SeriesDescription string // (0008,103E)
	CallingAETitle    string // the sender's AE title; "" for files
}

func (r *Routing) compile() error {
	if len(r.Modalities) == 0 {
		return fmt.Errorf("no modalities")
	}
	switch r.MissingBodyPart {
	case "":
		r.MissingBodyPart = MissingReject
	case MissingReject, MissingAccept, MissingMatchDescriptions, MissingMatchDescriptionsThenModality:
	default:
		return fmt.Errorf("missing_body_part %q: want %s, %s, %s or %s", r.MissingBodyPart,
			MissingReject, MissingAccept, MissingMatchDescriptions, MissingMatchDescriptionsThenModality)
	}
	if len(r.DescriptionTags) == 0 {
		r.DescriptionTags = []string{"StudyDescription", "SeriesDescription"}
	}
	for _, t := range r.DescriptionTags {
		if t != "StudyDescription" && t != "SeriesDescription" {
			return fmt.Errorf("description_tags: %q; want StudyDescription or SeriesDescription", t)
		}
	}
	if r.MissingBodyPart == MissingMatchDescriptions && len(r.DescriptionPatterns) == 0 {
		return fmt.Errorf("missing_body_part %s without description_patterns matches nothing", r.MissingBodyPart)
	}
	r.patterns = r.patterns[:0]
	for _, p := range r.DescriptionPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Errorf("description_patterns: %v", err)
		}
		r.patterns = append(r.patterns, re)
	}
	return nil
}

// Match applies the rules above to a; ok is false when the model does not
// take the instance.
func (r *Routing) Match(a Attributes) (reason Reason, ok bool) {
	if !containsFold(r.Modalities, a.Modality) {
		return "", false
	}
	if len(r.SOPClassUIDs) > 0 && !containsExact(r.SOPClassUIDs, a.SOPClassUID) {
		return "", false
	}
	if len(r.CallingAETitles) > 0 && !containsExact(r.CallingAETitles, a.CallingAETitle) {
		return "", false
	}
	if bp := strings.TrimSpace(a.BodyPartExamined); bp != "" {
		if len(r.BodyParts) == 0 {
			return ReasonModalityOnly, true
		}
		if containsFold(r.BodyParts, bp) {
			return ReasonBodyPart, true
		}
		return "", false
	}
	switch r.MissingBodyPart {
	case MissingAccept:
		return ReasonModalityOnly, true
	case MissingMatchDescriptions:
		if r.descriptionMatches(a) {
			return ReasonDescription, true
		}
	case MissingMatchDescriptionsThenModality:
		if r.descriptionMatches(a) {
			return ReasonDescription, true
		}
		return ReasonModalityOnly, true
	}
	return "", false
}

func (r *Routing) descriptionMatches(a Attributes) bool {
	for _, t := range r.DescriptionTags {
		d := a.StudyDescription
		if t == "SeriesDescription" {
			d = a.SeriesDescription
		}
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		for _, re := range r.patterns {
			if re.MatchString(d) {
				return true
			}
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	s = strings.TrimSpace(s)
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

func containsExact(list []string, s string) bool {
	s = strings.TrimSpace(s)
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}
