package audit

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/radflow/radflow/internal/dicom"
)

// Outcome is the result of the audited event.
type Outcome string

// Outcomes. In exports they map to the DICOM/FHIR outcome codes
// success → 0, denied → 4 (minor failure), unauthenticated → 4,
// error → 8 (serious failure).
const (
	OutcomeSuccess         Outcome = "success"
	OutcomeDenied          Outcome = "denied"
	OutcomeUnauthenticated Outcome = "unauthenticated"
	OutcomeError           Outcome = "error"
)

// Subject kinds (who acted).
const (
	KindUser      = "user"
	KindService   = "service"
	KindAE        = "ae" // a DICOM Application Entity (DIMSE peer)
	KindAnonymous = "anonymous"
	KindSystem    = "system" // radflow itself (e.g. audit:recovered)
)

// Protocols.
const (
	ProtocolHTTP     = "http"
	ProtocolDIMSE    = "dimse"
	ProtocolCLI      = "cli"
	ProtocolInternal = "internal"
)

// Actions not in the policy vocabulary that the trail itself knows.
const (
	// ActionAuthentication records a login/credential check.
	ActionAuthentication = "authentication"
	// ActionPolicy records a policy event (e.g. a refused request that
	// carried no recognisable action, a policy reload).
	ActionPolicy = "policy"
	// ActionAuditRecovered is written by Open when it removed a torn
	// (unacknowledged) final line left by a crash.
	ActionAuditRecovered = "audit:recovered"
	// ActionAuditStarted is written by Open at every start of the trail
	// (subject system "radflow", detail version): a trail that has been
	// opened once always holds at least one record, so an empty or missing
	// trail next to its key is a trail that vanished (see Verify).
	ActionAuditStarted = "audit:started"
	// ActionInstanceRemoved is written by radflow serve at start for an
	// instance it removed because its blob did not survive an unclean
	// stop before the instance was acknowledged (package ingest,
	// blob_unflushed; detail reason).
	ActionInstanceRemoved = "instance:delete"
)

// Resource identifies what was acted on, by DICOM UIDs and model
// name@version only: the record has no field for patient names, patient
// IDs, accession numbers or any other PHI.
type Resource struct {
	// Type is study, instance, result, model, audit, system or "".
	Type              string `json:"type,omitempty"`
	StudyInstanceUID  string `json:"study_instance_uid,omitempty"`
	SeriesInstanceUID string `json:"series_instance_uid,omitempty"`
	SOPInstanceUID    string `json:"sop_instance_uid,omitempty"`
	// Model is "name@version" (or "name").
	Model string `json:"model,omitempty"`
}

// Record is one audit record. The caller fills the event fields; Append
// sets Seq, PrevHash and Hash (and Time/EventID when empty). The JSON
// field order below is the on-disk order.
type Record struct {
	// Seq is the record's position in the trail, 1, 2, 3, ... (set by Append).
	Seq uint64 `json:"seq"`
	// Time of the event, UTC, written as RFC 3339 with nanoseconds; zero
	// means "now" at Append.
	Time time.Time `json:"time"`
	// EventID is a unique id for the event ([A-Za-z0-9._:-], ≤ 64); empty
	// means Append generates a random UUID.
	EventID string `json:"event_id"`
	// SubjectID is the acting principal (user id, service account, AE
	// title); "" only for unauthenticated events. Printable, ≤ 1024 bytes.
	SubjectID string `json:"subject_id,omitempty"`
	// SubjectKind is user, service, ae, anonymous or system.
	SubjectKind string `json:"subject_kind"`
	// Roles of the subject (radiologist, ai_service, ...): [a-z][a-z0-9_]*.
	Roles []string `json:"roles,omitempty"`
	// Organisation of the subject. Printable, ≤ 1024 bytes.
	Organisation string `json:"organisation,omitempty"`
	// Action is the policy action (study:read, instance:store,
	// result:read, ...) or authentication, policy, audit:recovered,
	// audit:started.
	Action   string   `json:"action"`
	Resource Resource `json:"resource"`
	Outcome  Outcome  `json:"outcome"`
	// ClientAddress is the peer's IP or IP:port.
	ClientAddress string `json:"client_address,omitempty"`
	// PurposeOfUse is an HL7 v3 ActReason code (TREAT, HOPERAT, HRESCH, ...).
	PurposeOfUse string `json:"purpose_of_use,omitempty"`
	// BreakGlass marks emergency access; BreakGlassReason is the caller's
	// stated reason (printable, ≤ 1024 bytes). It is free text and may
	// hold PHI: it goes to the trail and its exports, never to logs.
	BreakGlass       bool   `json:"break_glass,omitempty"`
	BreakGlassReason string `json:"break_glass_reason,omitempty"`
	// PolicyDecisionID is the policy engine's decision id.
	PolicyDecisionID string `json:"policy_decision_id,omitempty"`
	// RequestID is the HTTP request id or a DIMSE association/message id.
	RequestID string `json:"request_id,omitempty"`
	// Protocol is http, dimse, cli or internal.
	Protocol string `json:"protocol"`
	// Detail holds non-PHI facts under the keys of DetailKeys only, each
	// value checked against its key's syntax (e.g. http_status "403",
	// dimse_status "0110"); Append drops keys with empty values.
	Detail map[string]string `json:"detail,omitempty"`
	// PrevHash is the Hash of record Seq-1 ("" for Seq 1), set by Append.
	PrevHash string `json:"prev_hash"`
	// Hash is hex HMAC-SHA256(key, the record's JSON without "hash"),
	// set by Append.
	Hash string `json:"hash,omitempty"`
}

// ErrInvalidRecord is returned (wrapped) by Append for a record that fails
// validation. The message names the field but never echoes its value.
var ErrInvalidRecord = errors.New("audit: invalid record")

var (
	reToken    = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	reLowerTok = regexp.MustCompile(`^[a-z0-9][a-z0-9_.:-]{0,63}$`)
	reRole     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	reAction   = regexp.MustCompile(`^[a-z][a-z_]{0,31}(:[a-z][a-z_]{0,31})?$`)
	reModel    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}(@[A-Za-z0-9._+-]{1,64})?$`)
	rePurpose  = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{0,31}$`)
	reDigits   = regexp.MustCompile(`^[0-9]{1,20}$`)
	reDecimal  = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]{1,6})?$`)
	reHTTP     = regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	reDIMSE    = regexp.MustCompile(`^[0-9A-Fa-f]{4}$`)
	reMethod   = regexp.MustCompile(`^[A-Z]{3,7}$`)
	reRoute    = regexp.MustCompile(`^([A-Z]{3,7} )?/[A-Za-z0-9/{}._$-]{0,255}$`)
	reSegment  = regexp.MustCompile(`^audit-[0-9]{6}\.jsonl$`)
	reVersion  = regexp.MustCompile(`^[A-Za-z0-9._+()-]{1,64}$`)
	reID       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// maxText bounds the free-text fields (the policy engine's input limit).
const maxText = 1024

// detailKeys maps each allowed Detail key to its value check.
var detailKeys = map[string]func(string) bool{
	"http_status":         reHTTP.MatchString,
	"http_method":         reMethod.MatchString,
	"route":               reRoute.MatchString, // route pattern, e.g. GET /dicomweb/studies/{study}
	"dimse_status":        reDIMSE.MatchString, // hex, e.g. 0000, A700
	"operation":           reLowerTok.MatchString,
	"reason":              reLowerTok.MatchString, // a reason code, e.g. policy_denied
	"auth_method":         reLowerTok.MatchString,
	"query_level":         reLowerTok.MatchString,
	"error_kind":          reLowerTok.MatchString,
	"sop_class_uid":       dicom.ValidReceivedUID,
	"transfer_syntax_uid": dicom.ValidReceivedUID,
	"calling_ae":          isAETitle,
	"called_ae":           isAETitle,
	"duration_ms":         reDecimal.MatchString,
	"bytes":               reDigits.MatchString,
	"instances":           reDigits.MatchString,
	"records":             reDigits.MatchString,
	"truncated_bytes":     reDigits.MatchString,
	"segment":             reSegment.MatchString,
	"version":             reVersion.MatchString, // software version, e.g. v1.2.0 or (devel)+1a2b3c4d5e6f
	// Admin commands (radflow tokens, radflow keys): identifiers only,
	// never a token or key material.
	"token_id":         reID.MatchString, // API token id, e.g. tok_0123456789abcdef
	"granted_roles":    listOf(reRole),   // roles granted to a token, comma-separated
	"kek_id":           reID.MatchString, // key-encryption key id acted on
	"previous_kek_ids": listOf(reID),     // KEK ids before a rotation, comma-separated
}

// listOf returns a check for 1..32 comma-separated values each matching re.
func listOf(re *regexp.Regexp) func(string) bool {
	return func(s string) bool {
		parts := strings.Split(s, ",")
		if len(parts) > 32 {
			return false
		}
		for _, p := range parts {
			if !re.MatchString(p) {
				return false
			}
		}
		return true
	}
}

// DetailKeys returns the keys a Record's Detail may use, sorted.
func DetailKeys() []string {
	keys := make([]string, 0, len(detailKeys))
	for k := range detailKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isAETitle: 1..16 characters of the DICOM default repertoire, no backslash
// or control characters (PS3.5 AE value representation).
func isAETitle(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\' {
			return false
		}
	}
	return true
}

// printable reports whether s is 0..max bytes of valid printable UTF-8
// without control characters.
func printable(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, a...))
}

// Validate checks r's event fields (not Seq/PrevHash/Hash) against the
// rules documented on Record. Errors wrap ErrInvalidRecord and name the
// offending field, never its value.
func (r *Record) Validate() error {
	if r.EventID != "" && (len(r.EventID) > 64 || !reToken.MatchString(r.EventID)) {
		return invalid("event_id: want [A-Za-z0-9._:-]{1,64}")
	}
	switch r.SubjectKind {
	case KindUser, KindService, KindAE, KindAnonymous, KindSystem:
	default:
		return invalid("subject_kind: want user, service, ae, anonymous or system")
	}
	if !printable(r.SubjectID, maxText) {
		return invalid("subject_id: want printable text of at most 1024 bytes")
	}
	if r.SubjectID == "" && r.Outcome != OutcomeUnauthenticated && r.SubjectKind != KindAnonymous {
		return invalid("subject_id: required unless the outcome is unauthenticated or the subject anonymous")
	}
	if len(r.Roles) > 32 {
		return invalid("roles: at most 32")
	}
	for i, role := range r.Roles {
		if !reRole.MatchString(role) {
			return invalid("roles[%d]: want [a-z][a-z0-9_]{0,63}", i)
		}
	}
	if !printable(r.Organisation, maxText) {
		return invalid("organisation: want printable text of at most 1024 bytes")
	}
	if !reAction.MatchString(r.Action) {
		return invalid("action: want a policy action such as study:read")
	}
	switch r.Resource.Type {
	case "", "study", "instance", "result", "model", "audit", "system":
	default:
		return invalid("resource.type: want study, instance, result, model, audit or system")
	}
	for name, uid := range map[string]string{"resource.study_instance_uid": r.Resource.StudyInstanceUID,
		"resource.series_instance_uid": r.Resource.SeriesInstanceUID, "resource.sop_instance_uid": r.Resource.SOPInstanceUID} {
		if uid != "" && !dicom.ValidReceivedUID(uid) {
			return invalid("%s: want a DICOM UID (digits and dots, at most 64)", name)
		}
	}
	if r.Resource.Model != "" && !reModel.MatchString(r.Resource.Model) {
		return invalid("resource.model: want name@version")
	}
	switch r.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeUnauthenticated, OutcomeError:
	default:
		return invalid("outcome: want success, denied, unauthenticated or error")
	}
	if r.ClientAddress != "" {
		if _, err := netip.ParseAddrPort(r.ClientAddress); err != nil {
			if _, err := netip.ParseAddr(r.ClientAddress); err != nil {
				return invalid("client_address: want IP or IP:port")
			}
		}
	}
	if r.PurposeOfUse != "" && !rePurpose.MatchString(r.PurposeOfUse) {
		return invalid("purpose_of_use: want an HL7 ActReason code such as TREAT")
	}
	if !r.BreakGlass && r.BreakGlassReason != "" {
		return invalid("break_glass_reason: set without break_glass")
	}
	if !printable(r.BreakGlassReason, maxText) {
		return invalid("break_glass_reason: want printable text of at most 1024 bytes")
	}
	if r.PolicyDecisionID != "" && !reToken.MatchString(r.PolicyDecisionID) {
		return invalid("policy_decision_id: want [A-Za-z0-9._:-]{1,128}")
	}
	if r.RequestID != "" && !reToken.MatchString(r.RequestID) {
		return invalid("request_id: want [A-Za-z0-9._:-]{1,128}")
	}
	switch r.Protocol {
	case ProtocolHTTP, ProtocolDIMSE, ProtocolCLI, ProtocolInternal:
	default:
		return invalid("protocol: want http, dimse, cli or internal")
	}
	if len(r.Detail) > len(detailKeys) {
		return invalid("detail: too many keys")
	}
	for k, v := range r.Detail {
		check, ok := detailKeys[k]
		if !ok {
			return invalid("detail: key not allowed (allowed: %s)", strings.Join(DetailKeys(), ", "))
		}
		if v != "" && !check(v) {
			return invalid("detail[%s]: value does not match the key's syntax", k)
		}
	}
	return nil
}
