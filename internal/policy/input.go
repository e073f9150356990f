package policy

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is what one authorization decision is about. It is handed to the
// policy as `input`; the JSON tags give the key names the Rego sees. Every
// key is always present (empty strings, empty arrays and objects, false), so
// policies need not guard against missing keys.
type Input struct {
	Subject  Subject        `json:"subject"`
	Action   string         `json:"action"`
	Resource Resource       `json:"resource"`
	Context  RequestContext `json:"context"`
}

// Subject is the authenticated caller.
type Subject struct {
	// ID identifies the caller: user name, service account, AE title.
	// Empty for an unauthenticated request.
	ID string `json:"id"`
	// Kind is "user", "service", "ae", or "anonymous" for a request that
	// carried no credentials (the policy treats anything else as
	// unauthenticated).
	Kind string `json:"kind"`
	// Roles: radiologist, referring_physician, technologist, ai_service,
	// admin, auditor. Unknown roles grant nothing.
	Roles []string `json:"roles"`
	// Organisation the subject belongs to ("" when unknown).
	Organisation string `json:"organisation"`
}

// Resource is what the action is applied to.
type Resource struct {
	// Type: study, instance, result, model, audit or system.
	Type             string `json:"type"`
	StudyInstanceUID string `json:"study_instance_uid"`
	SOPInstanceUID   string `json:"sop_instance_uid"`
	// Organisation owning the study ("" when unknown): from Institution
	// Name (0008,0080) or the sending AE's configured organisation. For a
	// search not about one study, the organisation the search is scoped to.
	Organisation string `json:"organisation"`
	// Attributes: further non-PHI facts, e.g. "modality": "CT".
	Attributes map[string]string `json:"attributes"`
}

// RequestContext carries the circumstances of the request.
type RequestContext struct {
	// PurposeOfUse is an HL7 v3 PurposeOfUse code (TREAT, ETREAT, HOPERAT,
	// HRESCH, ...) from the X-Purpose-Of-Use header; "" when not stated.
	PurposeOfUse string `json:"purpose_of_use"`
	// BreakGlass is set when the caller invoked emergency access
	// (X-Break-Glass header); BreakGlassReason is its free-text reason. The
	// reason may contain PHI: it goes to the policy and the audit trail
	// only, never to logs or errors.
	BreakGlass       bool   `json:"break_glass"`
	BreakGlassReason string `json:"break_glass_reason"`
	// Time is the request time, RFC 3339; "" is filled with the engine's
	// clock (UTC) by Decide.
	Time string `json:"time"`
	// ClientAddress is the peer address (IP or IP:port).
	ClientAddress string `json:"client_address"`
}

// Input limits. They keep a forged or buggy input from making the policy
// evaluate arbitrarily large documents.
const (
	MaxStringBytes = 1024 // any one string field, role or attribute
	MaxActionBytes = 64
	MaxRoles       = 64
	MaxAttributes  = 64
)

// validate checks the limits and the action's syntax. Messages name the
// field, never its content (which may be PHI, e.g. a break-glass reason).
func (in *Input) validate() error {
	if in.Action == "" {
		return fmt.Errorf("%w: action is empty", ErrInvalidInput)
	}
	if len(in.Action) > MaxActionBytes {
		return fmt.Errorf("%w: action is %d bytes, max %d", ErrInvalidInput, len(in.Action), MaxActionBytes)
	}
	for i := 0; i < len(in.Action); i++ {
		c := in.Action[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-' || c == '*') {
			return fmt.Errorf("%w: action has a character outside [a-z0-9:_*-] at byte %d", ErrInvalidInput, i)
		}
	}
	if len(in.Subject.Roles) > MaxRoles {
		return fmt.Errorf("%w: subject.roles has %d entries, max %d", ErrInvalidInput, len(in.Subject.Roles), MaxRoles)
	}
	if len(in.Resource.Attributes) > MaxAttributes {
		return fmt.Errorf("%w: resource.attributes has %d entries, max %d", ErrInvalidInput, len(in.Resource.Attributes), MaxAttributes)
	}
	fields := [...]struct {
		name, v string
	}{
		{"subject.id", in.Subject.ID}, {"subject.kind", in.Subject.Kind}, {"subject.organisation", in.Subject.Organisation},
		{"resource.type", in.Resource.Type}, {"resource.study_instance_uid", in.Resource.StudyInstanceUID},
		{"resource.sop_instance_uid", in.Resource.SOPInstanceUID}, {"resource.organisation", in.Resource.Organisation},
		{"context.purpose_of_use", in.Context.PurposeOfUse}, {"context.break_glass_reason", in.Context.BreakGlassReason},
		{"context.time", in.Context.Time}, {"context.client_address", in.Context.ClientAddress},
	}
	for _, f := range fields {
		if err := checkString(f.name, f.v); err != nil {
			return err
		}
	}
	for i, r := range in.Subject.Roles {
		if len(r) > MaxStringBytes || !utf8.ValidString(r) { // name built only on failure
			return checkString("subject.roles["+strconv.Itoa(i)+"]", r)
		}
	}
	for k, v := range in.Resource.Attributes {
		if err := checkString("resource.attributes key", k); err != nil {
			return err
		}
		if err := checkString("resource.attributes value", v); err != nil {
			return err
		}
	}
	if in.Context.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, in.Context.Time); err != nil {
			return fmt.Errorf("%w: context.time is not RFC 3339", ErrInvalidInput)
		}
	}
	return nil
}

func checkString(name, v string) error {
	if len(v) > MaxStringBytes {
		return fmt.Errorf("%w: %s is %d bytes, max %d", ErrInvalidInput, name, len(v), MaxStringBytes)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, name)
	}
	return nil
}

// Object keys of the input document, built once.
var (
	kSubject, kAction, kResource, kContext     = ast.StringTerm("subject"), ast.StringTerm("action"), ast.StringTerm("resource"), ast.StringTerm("context")
	kID, kKind, kRoles, kOrganisation          = ast.StringTerm("id"), ast.StringTerm("kind"), ast.StringTerm("roles"), ast.StringTerm("organisation")
	kType, kStudyUID, kSOPUID, kAttributes     = ast.StringTerm("type"), ast.StringTerm("study_instance_uid"), ast.StringTerm("sop_instance_uid"), ast.StringTerm("attributes")
	kPurpose, kBreakGlass, kReason, kTime, kIP = ast.StringTerm("purpose_of_use"), ast.StringTerm("break_glass"), ast.StringTerm("break_glass_reason"), ast.StringTerm("time"), ast.StringTerm("client_address")
)

// value builds the policy input directly as an OPA value, avoiding the JSON
// round trip rego.EvalInput would make. Keys match the JSON tags.
func (in *Input) value() ast.Value {
	roles := make([]*ast.Term, len(in.Subject.Roles))
	for i, r := range in.Subject.Roles {
		roles[i] = ast.StringTerm(r)
	}
	var attrs [][2]*ast.Term
	if len(in.Resource.Attributes) > 0 {
		attrs = make([][2]*ast.Term, 0, len(in.Resource.Attributes))
		for k, v := range in.Resource.Attributes {
			attrs = append(attrs, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
		}
	}
	s := ast.StringTerm
	return ast.NewObject(
		ast.Item(kSubject, ast.ObjectTerm(
			ast.Item(kID, s(in.Subject.ID)),
			ast.Item(kKind, s(in.Subject.Kind)),
			ast.Item(kRoles, ast.ArrayTerm(roles...)),
			ast.Item(kOrganisation, s(in.Subject.Organisation)),
		)),
		ast.Item(kAction, s(in.Action)),
		ast.Item(kResource, ast.ObjectTerm(
			ast.Item(kType, s(in.Resource.Type)),
			ast.Item(kStudyUID, s(in.Resource.StudyInstanceUID)),
			ast.Item(kSOPUID, s(in.Resource.SOPInstanceUID)),
			ast.Item(kOrganisation, s(in.Resource.Organisation)),
			ast.Item(kAttributes, ast.ObjectTerm(attrs...)),
		)),
		ast.Item(kContext, ast.ObjectTerm(
			ast.Item(kPurpose, s(in.Context.PurposeOfUse)),
			ast.Item(kBreakGlass, ast.BooleanTerm(in.Context.BreakGlass)),
			ast.Item(kReason, s(in.Context.BreakGlassReason)),
			ast.Item(kTime, s(in.Context.Time)),
			ast.Item(kIP, s(in.Context.ClientAddress)),
		)),
	)
}
