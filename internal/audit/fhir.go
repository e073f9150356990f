package audit

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html), the
// subset radflow writes.
type fhirCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type fhirConcept struct {
	Coding []fhirCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type fhirIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type fhirReference struct {
	Identifier *fhirIdentifier `json:"identifier,omitempty"`
	Type       string          `json:"type,omitempty"`
	Display    string          `json:"display,omitempty"`
}

type fhirNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type fhirAgent struct {
	Type         *fhirConcept  `json:"type,omitempty"`
	Role         []fhirConcept `json:"role,omitempty"`
	Who          fhirReference `json:"who"`
	Requestor    bool          `json:"requestor"`
	Network      *fhirNetwork  `json:"network,omitempty"`
	PurposeOfUse []fhirConcept `json:"purposeOfUse,omitempty"`
}

type fhirSource struct {
	Site     string        `json:"site,omitempty"`
	Observer fhirReference `json:"observer"`
	Type     []fhirCoding  `json:"type,omitempty"`
}

type fhirEntityDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type fhirEntity struct {
	What        *fhirReference     `json:"what,omitempty"`
	Type        *fhirCoding        `json:"type,omitempty"`
	Role        *fhirCoding        `json:"role,omitempty"`
	Name        string             `json:"name,omitempty"`
	Description string             `json:"description,omitempty"`
	Detail      []fhirEntityDetail `json:"detail,omitempty"`
}

// FHIRAuditEvent is the FHIR R4 AuditEvent resource written by
// FHIRAuditEventJSON (exported for tests and callers that embed it).
type FHIRAuditEvent struct {
	ResourceType   string        `json:"resourceType"`
	ID             string        `json:"id,omitempty"`
	Type           fhirCoding    `json:"type"`
	Subtype        []fhirCoding  `json:"subtype,omitempty"`
	Action         string        `json:"action,omitempty"`
	Recorded       string        `json:"recorded"`
	Outcome        string        `json:"outcome"`
	OutcomeDesc    string        `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []fhirConcept `json:"purposeOfEvent,omitempty"`
	Agent          []fhirAgent   `json:"agent"`
	Source         fhirSource    `json:"source"`
	Entity         []fhirEntity  `json:"entity,omitempty"`
}

// FHIR code systems.
const (
	fhirSourceType = "http://terminology.hl7.org/CodeSystem/security-source-type"
	fhirEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	fhirObjectRole = "http://terminology.hl7.org/CodeSystem/object-role"
	fhirDICOMUID   = "urn:dicom:uid"
)

var reFHIRID = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)

func fhirCode(c Code) fhirCoding {
	sys := c.System
	switch sys {
	case SystemDCM:
		sys = FHIRSystemDCM
	case SystemActReason:
		sys = FHIRSystemActReas
	}
	return fhirCoding{sys, c.Code, c.Display}
}

// ToFHIR maps rec to a FHIR R4 AuditEvent: type/subtype/action/outcome
// per Classify (DICOM codes under http://dicom.nema.org/resources/ontology/DCM),
// recorded = rec.Time (UTC), purposeOfEvent (v3-ActReason), agent[0] the
// requestor (who.identifier = subject id, role = participation role and
// subject roles, network = client IP), agent[1] radflow, agent[2] the
// subject's organisation when set; source (observer = src.ID, site, type 4
// application server); entity: the study (what.identifier system
// urn:dicom:uid, value urn:oid:<Study Instance UID>, type 2 system object,
// role 3 report, series as detail), the SOP instance, the model
// (urn:radflow:model), and the break-glass reason (role 13 security
// resource). id = the event id when it is a valid FHIR id.
func ToFHIR(rec Record, src Source) FHIRAuditEvent {
	ev := Classify(rec)
	a := FHIRAuditEvent{ResourceType: "AuditEvent", Type: fhirCode(ev.ID), Action: ev.Action,
		Recorded: rec.Time.UTC().Format(time.RFC3339Nano), Outcome: ev.Outcome}
	if reFHIRID.MatchString(rec.EventID) {
		a.ID = rec.EventID
	}
	for _, t := range ev.Types {
		a.Subtype = append(a.Subtype, fhirCode(t))
	}
	if rec.Outcome != OutcomeSuccess || len(rec.Detail) > 0 {
		a.OutcomeDesc = outcomeDescription(rec)
	}
	var purposes []fhirConcept
	if rec.PurposeOfUse != "" {
		purposes = []fhirConcept{{Coding: []fhirCoding{fhirCode(PurposeCode(rec.PurposeOfUse))}}}
	}
	a.PurposeOfEvent = purposes
	subject := rec.SubjectID
	if subject == "" {
		subject = KindAnonymous
	}
	req := fhirAgent{Who: fhirReference{Identifier: &fhirIdentifier{Value: subject}, Display: subject}, Requestor: true,
		PurposeOfUse: purposes}
	if ev.RequestorRole.Code != "" {
		req.Type = &fhirConcept{Coding: []fhirCoding{fhirCode(ev.RequestorRole)}}
	}
	for _, r := range rec.Roles {
		req.Role = append(req.Role, fhirConcept{Coding: []fhirCoding{{SystemRadflowRole, r, r}}})
	}
	if rec.ClientAddress != "" {
		req.Network = &fhirNetwork{Address: clientHost(rec.ClientAddress), Type: "2"}
	}
	self := fhirAgent{Who: fhirReference{Identifier: &fhirIdentifier{Value: src.id()}, Type: "Device", Display: src.id()}}
	if ev.RadflowRole.Code != "" {
		self.Type = &fhirConcept{Coding: []fhirCoding{fhirCode(ev.RadflowRole)}}
	}
	a.Agent = []fhirAgent{req, self}
	if rec.Organisation != "" {
		a.Agent = append(a.Agent, fhirAgent{Who: fhirReference{Identifier: &fhirIdentifier{Value: rec.Organisation},
			Type: "Organization", Display: rec.Organisation}})
	}
	a.Source = fhirSource{Site: src.SiteID, Observer: fhirReference{Identifier: &fhirIdentifier{Value: src.id()}, Display: src.id()},
		Type: []fhirCoding{{fhirSourceType, "4", "Application Server"}}}
	systemObject := &fhirCoding{fhirEntityType, "2", "System Object"}
	if uid := rec.Resource.StudyInstanceUID; uid != "" {
		e := fhirEntity{What: &fhirReference{Identifier: &fhirIdentifier{System: fhirDICOMUID, Value: "urn:oid:" + uid}},
			Type: systemObject, Role: &fhirCoding{fhirObjectRole, "3", "Report"}, Name: "Study Instance UID"}
		if s := rec.Resource.SeriesInstanceUID; s != "" {
			e.Detail = []fhirEntityDetail{{"SeriesInstanceUID", s}}
		}
		a.Entity = append(a.Entity, e)
	}
	if uid := rec.Resource.SOPInstanceUID; uid != "" {
		e := fhirEntity{What: &fhirReference{Identifier: &fhirIdentifier{System: fhirDICOMUID, Value: "urn:oid:" + uid}},
			Type: systemObject, Role: &fhirCoding{fhirObjectRole, "3", "Report"}, Name: "SOP Instance UID"}
		if c := rec.Detail["sop_class_uid"]; c != "" {
			e.Detail = []fhirEntityDetail{{"SOPClassUID", c}}
		}
		a.Entity = append(a.Entity, e)
	}
	if m := rec.Resource.Model; m != "" {
		a.Entity = append(a.Entity, fhirEntity{What: &fhirReference{Identifier: &fhirIdentifier{System: "urn:radflow:model", Value: m}},
			Type: systemObject, Role: &fhirCoding{fhirObjectRole, "4", "Resource"}, Name: "AI model"})
	}
	if rec.BreakGlass {
		a.Entity = append(a.Entity, fhirEntity{Type: &fhirCoding{fhirEntityType, "4", "Other"},
			Role: &fhirCoding{fhirObjectRole, "13", "Security Resource"}, Name: "break-glass", Description: rec.BreakGlassReason})
	}
	return a
}

// FHIRAuditEventJSON returns ToFHIR(rec, src) as compact JSON (one line).
func FHIRAuditEventJSON(rec Record, src Source) ([]byte, error) {
	b, err := json.Marshal(ToFHIR(rec, src))
	if err != nil {
		return nil, fmt.Errorf("audit: encode FHIR AuditEvent: %w", err)
	}
	return b, nil
}
