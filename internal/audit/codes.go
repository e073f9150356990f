package audit

import (
	"net/netip"
	"sort"
	"strings"
)

// Code is one coded value (DICOM "csd-code"/codeSystemName/originalText;
// FHIR Coding system/code/display).
type Code struct {
	Code    string
	System  string // DICOM codeSystemName, e.g. "DCM"
	Display string
}

// Code systems.
const (
	SystemDCM         = "DCM" // DICOM Controlled Terminology (PS3.16)
	FHIRSystemDCM     = "http://dicom.nema.org/resources/ontology/DCM"
	SystemActReason   = "2.16.840.1.113883.5.8" // HL7 v3 ActReason (purpose of use), OID
	FHIRSystemActReas = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemRadflowRole = "urn:radflow:role"
)

// DICOM audit vocabulary used (PS3.16 CID 400–404).
var (
	EventApplicationActivity   = Code{"110100", SystemDCM, "Application Activity"}
	EventAuditLogUsed          = Code{"110101", SystemDCM, "Audit Log Used"}
	EventInstancesTransferred  = Code{"110104", SystemDCM, "DICOM Instances Transferred"}
	EventStudyDeleted          = Code{"110105", SystemDCM, "DICOM Study Deleted"}
	EventExport                = Code{"110106", SystemDCM, "Export"}
	EventPatientRecord         = Code{"110110", SystemDCM, "Patient Record"}
	EventQuery                 = Code{"110112", SystemDCM, "Query"}
	EventSecurityAlert         = Code{"110113", SystemDCM, "Security Alert"}
	EventUserAuthentication    = Code{"110114", SystemDCM, "User Authentication"}
	TypeApplicationStart       = Code{"110120", SystemDCM, "Application Start"}
	TypeLogin                  = Code{"110122", SystemDCM, "Login"}
	TypeEmergencyOverride      = Code{"110127", SystemDCM, "Emergency Override Started"}
	TypeSecurityConfiguration  = Code{"110129", SystemDCM, "Security Configuration"}
	TypeSoftwareConfiguration  = Code{"110131", SystemDCM, "Software Configuration"}
	TypeUserSecurityAttributes = Code{"110137", SystemDCM, "User Security Attributes Changed"}
	RoleApplication            = Code{"110150", SystemDCM, "Application"}
	RoleDestination            = Code{"110152", SystemDCM, "Destination Role ID"}
	RoleSource                 = Code{"110153", SystemDCM, "Source Role ID"}
	IDTypeStudyInstanceUID     = Code{"110180", SystemDCM, "Study Instance UID"}
)

// Event is how a Record maps onto the DICOM/FHIR audit vocabulary.
type Event struct {
	ID     Code
	Types  []Code
	Action string // EventActionCode: C, R, U, D or E
	// RequestorRole and RadflowRole are the DICOM participation roles of
	// the requesting participant and of radflow (zero when none applies).
	RequestorRole, RadflowRole Code
	// Outcome is the EventOutcomeIndicator: "0", "4", "8" or "12".
	Outcome string
}

// queryOperations are Detail["operation"] values that make a study:read a
// Query (QIDO-RS, C-FIND) rather than a retrieval.
var queryOperations = map[string]bool{"qido": true, "query": true, "search": true, "c-find": true}

// Classify maps rec to its audit event codes:
//
//	instance:store              110104 Instances Transferred, C (requestor Source, radflow Destination)
//	study:read, operation=qido  110112 Query, E
//	study:read (retrieve)       110104 Instances Transferred, R (radflow Source, requestor Destination)
//	result:read                 110110 Patient Record, R
//	instance:delete             110105 DICOM Study Deleted, D
//	export, deid                110106 Export, R
//	authentication              110114 User Authentication + 110122 Login, E
//	policy, audit:recovered     110113 Security Alert, E
//	model:promote               110113 + 110131 Software Configuration, U
//	admin:keys                  110113 + 110129 Security Configuration, U
//	admin:tokens                110113 + 110137 User Security Attributes Changed, U
//	audit:read, audit:verify    110101 Audit Log Used, R
//	audit:started               110100 Application Activity + 110120 Application Start, E
//	anything else               110100 Application Activity, E
//
// Break-glass adds event type 110127 Emergency Override Started. Outcome:
// success 0, denied 4, unauthenticated 4, error 8.
func Classify(rec Record) Event {
	ev := Event{ID: EventApplicationActivity, Action: "E"}
	switch rec.Action {
	case "instance:store":
		ev = Event{ID: EventInstancesTransferred, Action: "C", RequestorRole: RoleSource, RadflowRole: RoleDestination}
	case "study:read":
		if queryOperations[rec.Detail["operation"]] {
			ev = Event{ID: EventQuery, Action: "E", RadflowRole: RoleApplication}
		} else {
			ev = Event{ID: EventInstancesTransferred, Action: "R", RequestorRole: RoleDestination, RadflowRole: RoleSource}
		}
	case "result:read":
		ev = Event{ID: EventPatientRecord, Action: "R", RadflowRole: RoleApplication}
	case ActionInstanceRemoved:
		ev = Event{ID: EventStudyDeleted, Action: "D", RadflowRole: RoleApplication}
	case "export", "deid":
		ev = Event{ID: EventExport, Action: "R", RadflowRole: RoleSource}
	case ActionAuthentication:
		ev = Event{ID: EventUserAuthentication, Types: []Code{TypeLogin}, Action: "E", RadflowRole: RoleApplication}
	case ActionPolicy, ActionAuditRecovered:
		ev = Event{ID: EventSecurityAlert, Action: "E", RadflowRole: RoleApplication}
	case "model:promote":
		ev = Event{ID: EventSecurityAlert, Types: []Code{TypeSoftwareConfiguration}, Action: "U", RadflowRole: RoleApplication}
	case "admin:keys":
		ev = Event{ID: EventSecurityAlert, Types: []Code{TypeSecurityConfiguration}, Action: "U", RadflowRole: RoleApplication}
	case "admin:tokens":
		ev = Event{ID: EventSecurityAlert, Types: []Code{TypeUserSecurityAttributes}, Action: "U", RadflowRole: RoleApplication}
	case "audit:read", "audit:verify":
		ev = Event{ID: EventAuditLogUsed, Action: "R", RadflowRole: RoleApplication}
	case ActionAuditStarted:
		ev = Event{ID: EventApplicationActivity, Types: []Code{TypeApplicationStart}, Action: "E", RadflowRole: RoleApplication}
	}
	if rec.BreakGlass {
		ev.Types = append(ev.Types, TypeEmergencyOverride)
	}
	ev.Outcome = OutcomeCode(rec.Outcome)
	return ev
}

// OutcomeCode returns the DICOM EventOutcomeIndicator / FHIR
// AuditEvent.outcome of o: "0" success, "4" denied or unauthenticated
// (minor failure), "8" error (serious failure).
func OutcomeCode(o Outcome) string {
	switch o {
	case OutcomeSuccess:
		return "0"
	case OutcomeDenied, OutcomeUnauthenticated:
		return "4"
	default:
		return "8"
	}
}

var purposeText = map[string]string{
	"TREAT": "treatment", "ETREAT": "emergency treatment", "HOPERAT": "healthcare operations",
	"HRESCH": "healthcare research", "HPAYMT": "healthcare payment", "PUBHLTH": "public health",
	"HSYSADMIN": "health system administration", "PATRQT": "patient requested", "HLEGAL": "legal",
}

// PurposeCode returns the HL7 v3 ActReason code of a purpose of use.
func PurposeCode(p string) Code {
	d := purposeText[p]
	if d == "" {
		d = p
	}
	return Code{p, SystemActReason, d}
}

// outcomeDescription is the non-PHI summary of rec's outcome: its outcome
// word, its Detail as key=value pairs (sorted) and the break-glass reason.
func outcomeDescription(rec Record) string {
	parts := []string{string(rec.Outcome)}
	keys := make([]string, 0, len(rec.Detail))
	for k := range rec.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+rec.Detail[k])
	}
	if rec.BreakGlass {
		parts = append(parts, "break-glass reason: "+rec.BreakGlassReason)
	}
	return strings.Join(parts, "; ")
}

// clientHost returns the IP of an IP or IP:port client address.
func clientHost(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String()
	}
	return addr
}
