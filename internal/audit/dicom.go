package audit

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// DICOM audit message (PS3.15 A.5, RFC 3881 derived schema) elements.
type xmlCode struct {
	Code    string `xml:"csd-code,attr"`
	System  string `xml:"codeSystemName,attr"`
	Display string `xml:"originalText,attr"`
}

func toXMLCode(c Code) xmlCode { return xmlCode{c.Code, c.System, c.Display} }

type xmlAuditMessage struct {
	XMLName      xml.Name           `xml:"AuditMessage"`
	Event        xmlEvent           `xml:"EventIdentification"`
	Participants []xmlParticipant   `xml:"ActiveParticipant"`
	Source       xmlAuditSource     `xml:"AuditSourceIdentification"`
	Objects      []xmlParticipantOb `xml:"ParticipantObjectIdentification"`
}

type xmlEvent struct {
	ActionCode  string    `xml:"EventActionCode,attr"`
	DateTime    string    `xml:"EventDateTime,attr"`
	Outcome     string    `xml:"EventOutcomeIndicator,attr"`
	EventID     xmlCode   `xml:"EventID"`
	Types       []xmlCode `xml:"EventTypeCode"`
	Description string    `xml:"EventOutcomeDescription,omitempty"`
	Purpose     []xmlCode `xml:"PurposeOfUse"`
}

type xmlParticipant struct {
	UserID          string    `xml:"UserID,attr"`
	AltUserID       string    `xml:"AlternativeUserID,attr,omitempty"`
	UserIsRequestor bool      `xml:"UserIsRequestor,attr"`
	NAPID           string    `xml:"NetworkAccessPointID,attr,omitempty"`
	NAPType         string    `xml:"NetworkAccessPointTypeCode,attr,omitempty"`
	Roles           []xmlCode `xml:"RoleIDCode"`
}

type xmlAuditSource struct {
	SiteID   string        `xml:"AuditEnterpriseSiteID,attr,omitempty"`
	SourceID string        `xml:"AuditSourceID,attr"`
	Type     xmlSourceType `xml:"AuditSourceTypeCode"`
}

type xmlSourceType struct {
	Code string `xml:"csd-code,attr"`
}

type xmlValuePair struct {
	Type  string `xml:"type,attr"`
	Value string `xml:"value,attr"` // base64
}

type xmlInstance struct {
	UID string `xml:"UID,attr"`
}

type xmlSOPClass struct {
	UID       string        `xml:"UID,attr,omitempty"`
	Count     int           `xml:"NumberOfInstances,attr"`
	Instances []xmlInstance `xml:"Instance"`
}

type xmlObjectDescription struct {
	SOPClass []xmlSOPClass `xml:"SOPClass"`
}

type xmlParticipantOb struct {
	ID          string                 `xml:"ParticipantObjectID,attr"`
	TypeCode    string                 `xml:"ParticipantObjectTypeCode,attr"`
	Role        string                 `xml:"ParticipantObjectTypeCodeRole,attr"`
	IDType      xmlCode                `xml:"ParticipantObjectIDTypeCode"`
	Details     []xmlValuePair         `xml:"ParticipantObjectDetail"`
	Description []xmlObjectDescription `xml:"ParticipantObjectDescription"`
}

// DICOMAuditMessage returns rec as a DICOM audit message (PS3.15 A.5.1
// schema, UTF-8 XML with declaration, no newlines):
//
//   - EventIdentification: EventID/EventTypeCode/EventActionCode per
//     Classify, EventDateTime (RFC 3339, UTC), EventOutcomeIndicator
//     0/4/8, EventOutcomeDescription (outcome, Detail, break-glass
//     reason), PurposeOfUse (HL7 ActReason).
//   - ActiveParticipant: the requestor (UserID = subject id or
//     "anonymous", network access point = client IP, RoleIDCode = participation role and the subject's roles
//     under urn:radflow:role) and radflow (UserID = src.AETitle for DIMSE,
//     else src.ID).
//   - AuditSourceIdentification: src.ID, src.SiteID, type 4 (application
//     server).
//   - ParticipantObjectIdentification: the Study Instance UID (type 2
//     system object, role 3 report, ID type 110180) with the SOP Instance
//     (and class, from Detail sop_class_uid) in its description and the
//     Series Instance UID as detail; the model (name@version) as a
//     processing element (role 26).
//
// The organisation is not written (the schema has no place for it; the
// FHIR export carries it). No patient participant object is written (radflow's records carry no
// patient identifiers); a repository can resolve patients from the study.
func DICOMAuditMessage(rec Record, src Source) ([]byte, error) {
	ev := Classify(rec)
	m := xmlAuditMessage{
		Event: xmlEvent{ActionCode: ev.Action, DateTime: rec.Time.UTC().Format(time.RFC3339Nano), Outcome: ev.Outcome,
			EventID: toXMLCode(ev.ID), Description: outcomeDescription(rec)},
		Source: xmlAuditSource{SiteID: src.SiteID, SourceID: src.id(), Type: xmlSourceType{"4"}},
	}
	for _, t := range ev.Types {
		m.Event.Types = append(m.Event.Types, toXMLCode(t))
	}
	if rec.PurposeOfUse != "" {
		m.Event.Purpose = []xmlCode{toXMLCode(PurposeCode(rec.PurposeOfUse))}
	}
	req := xmlParticipant{UserID: rec.SubjectID, UserIsRequestor: true}
	if req.UserID == "" {
		req.UserID = KindAnonymous
	}
	if rec.ClientAddress != "" {
		req.NAPID, req.NAPType = clientHost(rec.ClientAddress), "2"
	}
	if ev.RequestorRole.Code != "" {
		req.Roles = append(req.Roles, toXMLCode(ev.RequestorRole))
	}
	for _, r := range rec.Roles {
		req.Roles = append(req.Roles, xmlCode{r, SystemRadflowRole, r})
	}
	self := xmlParticipant{UserID: src.id()}
	if rec.Protocol == ProtocolDIMSE && src.AETitle != "" {
		self.UserID = src.AETitle
	}
	if ev.RadflowRole.Code != "" {
		self.Roles = []xmlCode{toXMLCode(ev.RadflowRole)}
	}
	m.Participants = []xmlParticipant{req, self}
	if uid := rec.Resource.StudyInstanceUID; uid != "" {
		ob := xmlParticipantOb{ID: uid, TypeCode: "2", Role: "3", IDType: toXMLCode(IDTypeStudyInstanceUID)}
		if s := rec.Resource.SeriesInstanceUID; s != "" {
			ob.Details = append(ob.Details, xmlValuePair{"SeriesInstanceUID", base64.StdEncoding.EncodeToString([]byte(s))})
		}
		if sop := rec.Resource.SOPInstanceUID; sop != "" {
			ob.Description = []xmlObjectDescription{{SOPClass: []xmlSOPClass{{UID: rec.Detail["sop_class_uid"],
				Count: 1, Instances: []xmlInstance{{sop}}}}}}
		}
		m.Objects = append(m.Objects, ob)
	}
	if mdl := rec.Resource.Model; mdl != "" {
		m.Objects = append(m.Objects, xmlParticipantOb{ID: mdl, TypeCode: "2", Role: "26",
			IDType: xmlCode{"model", "urn:radflow", "AI model name@version"}})
	}
	var b strings.Builder
	b.WriteString(xml.Header[:len(xml.Header)-1]) // without the newline
	if err := xml.NewEncoder(&b).Encode(m); err != nil {
		return nil, fmt.Errorf("audit: encode DICOM audit message: %w", err)
	}
	return []byte(b.String()), nil
}
