package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/policy"
)

// Decider decides one access request (implemented by *policy.Engine).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Appender appends one audit record durably (implemented by *audit.Trail).
// An error means the access must not happen.
type Appender interface {
	Append(ctx context.Context, rec audit.Record) error
}

// OwnerLookup returns the organisation owning a study ("" when unknown).
type OwnerLookup interface {
	StudyOrganisation(ctx context.Context, studyInstanceUID string) (string, error)
}

// Action maps an api route action to the policy vocabulary.
type Action struct {
	// Policy is the policy action (study:read, instance:store, ...).
	Policy string
	// Resource is the policy/audit resource type (study, instance,
	// result, model, system).
	Resource string
	// PHI: successful requests are audited too (failures always are).
	PHI bool
	// Operation is the audit detail "operation" (e.g. qido, wado).
	Operation string
	// Anonymous: no credentials are read, no policy runs and nothing is
	// recorded (liveness probes).
	Anonymous bool
	// OutcomeAfter: with Guard.DeferOutcomes, an allowed request is
	// recorded once, after its handler, with its real outcome (see
	// Guard.Audit) instead of a success record at authorisation, whose
	// outcome is not known yet (STOW-RS: the upload may break off).
	// Refusals are recorded at once either way.
	OutcomeAfter bool
}

// DefaultActions maps the api and dicomweb route actions.
func DefaultActions() map[string]Action {
	return map[string]Action{
		dicomweb.ActionStore:    {Policy: "instance:store", Resource: "instance", PHI: true, Operation: "stow", OutcomeAfter: true},
		dicomweb.ActionSearch:   {Policy: "study:read", Resource: "study", PHI: true, Operation: "qido"},
		dicomweb.ActionRetrieve: {Policy: "study:read", Resource: "study", PHI: true, Operation: "wado"},
		api.ActionResultsRead:   {Policy: "result:read", Resource: "result", PHI: true, Operation: "results"},
		api.ActionModelsRead:    {Policy: "model:read", Resource: "model"},
		api.ActionMetrics:       {Policy: "metrics:read", Resource: "system"},
		api.ActionReady:         {Policy: "health:read", Resource: "system"},
		api.ActionHealth:        {Anonymous: true},
	}
}

// Request context headers.
const (
	HeaderPurposeOfUse = "X-Purpose-Of-Use"
	HeaderBreakGlass   = "X-Break-Glass"
)

// Guard is the api.Guard: authentication → policy → audit.
type Guard struct {
	// Authn authenticates requests (an *auth.HTTPAuthenticator). Required.
	Authn auth.Authenticator
	// Policy decides. Required.
	Policy Decider
	// Trail records. Required.
	Trail Appender
	// Owners gives a study's organisation; nil: always unknown (then
	// organisation-scoped grants never match: fail closed).
	Owners OwnerLookup
	// StudyOf returns the Study Instance UID of a stored SOP instance
	// (results?instance=); nil or an error: unknown.
	StudyOf func(ctx context.Context, sopInstanceUID string) (string, error)
	// Actions maps route actions; nil: DefaultActions(). A route whose
	// action is not mapped is refused (500): fail closed.
	Actions map[string]Action
	// Logger gets guard failures (no credentials, no PHI).
	Logger *slog.Logger
	// DeferOutcomes records the allowed requests of OutcomeAfter actions
	// after the handler (Guard.Audit) with their real outcome. Set it only
	// when g is also the api.Config.Auditor, else those requests go
	// unrecorded at the request level. The handler reports each stored
	// or failed instance with NoteInstance.
	DeferOutcomes bool

	pendingMu sync.Mutex
	pending   map[string]*pendingOutcome // by policy decision id
}

// pendingOutcome is an allowed OutcomeAfter request waiting for its outcome.
type pendingOutcome struct {
	rec            audit.Record
	stored, failed atomic.Int64
}

var (
	_ api.Guard   = (*Guard)(nil)
	_ api.Auditor = (*Guard)(nil)
)

var reUID = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// UID returns s when it is a DICOM UID (digits and dots, ≤ 64), else "".
func UID(s string) string { return uid(s) }

func uid(s string) string {
	if len(s) <= 64 && reUID.MatchString(s) {
		return s
	}
	return ""
}

var (
	rePurpose = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{0,31}$`)
	reRole    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// unauthenticated is the 401 error: it wraps api.ErrUnauthenticated and
// carries the WWW-Authenticate value (auth.Challenge).
type unauthenticated struct{ challenge string }

func (e unauthenticated) Error() string           { return api.ErrUnauthenticated.Error() }
func (e unauthenticated) Unwrap() error           { return api.ErrUnauthenticated }
func (e unauthenticated) WWWAuthenticate() string { return e.challenge }

// requestContext reads X-Purpose-Of-Use and X-Break-Glass.
// errors: api.ErrBadRequest naming the header (never its value).
func requestContext(r *http.Request) (policy.RequestContext, error) {
	var c policy.RequestContext
	if v := strings.ToUpper(strings.TrimSpace(r.Header.Get(HeaderPurposeOfUse))); v != "" {
		if !rePurpose.MatchString(v) {
			return c, fmt.Errorf("%w: %s must be an HL7 PurposeOfUse code such as TREAT", api.ErrBadRequest, HeaderPurposeOfUse)
		}
		c.PurposeOfUse = v
	}
	if vs, ok := r.Header[http.CanonicalHeaderKey(HeaderBreakGlass)]; ok {
		c.BreakGlass = true
		if len(vs) > 0 {
			c.BreakGlassReason = strings.TrimSpace(vs[0])
		}
		if len(vs) > 1 || !printable(c.BreakGlassReason, policy.MaxStringBytes) {
			return c, fmt.Errorf("%w: %s must be one reason of printable text, at most %d bytes", api.ErrBadRequest, HeaderBreakGlass, policy.MaxStringBytes)
		}
	}
	c.ClientAddress = r.RemoteAddr
	return c, nil
}

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

// AuditRoles keeps the roles an audit record accepts (an identity
// provider may send others, e.g. "default-roles-radflow"), at most 32.
func AuditRoles(roles []string) []string { return auditRoles(roles) }

func auditRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if reRole.MatchString(r) && len(out) < 32 {
			out = append(out, r)
		}
	}
	return out
}

// resourceOf reads the resource UIDs of a request: path values {study},
// {series}, {instance}; for searches a single StudyInstanceUID query
// value; for results the study/instance query values. Values that are not
// UIDs are left out (the handler answers 400).
func resourceOf(r *http.Request, a Action) (study, series, sop string) {
	study, series, sop = uid(r.PathValue("study")), uid(r.PathValue("series")), uid(r.PathValue("instance"))
	q := r.URL.Query()
	switch a.Policy {
	case "study:read":
		if study == "" && len(q["StudyInstanceUID"]) == 1 && !strings.Contains(q.Get("StudyInstanceUID"), ",") {
			study = uid(q.Get("StudyInstanceUID"))
		}
		if study == "" && len(q["0020000D"]) == 1 {
			study = uid(q.Get("0020000D"))
		}
	case "result:read":
		study, sop = uid(q.Get("study")), uid(q.Get("instance"))
	}
	return study, series, sop
}

// Authorize implements api.Guard.
func (g *Guard) Authorize(r *http.Request, action, _ string) (api.Principal, error) {
	actions := g.Actions
	if actions == nil {
		actions = defaultActions
	}
	a, ok := actions[action]
	if !ok {
		return api.Principal{}, fmt.Errorf("access: route action %q has no policy mapping", action)
	}
	if a.Anonymous {
		return api.Principal{Subject: "anonymous", Kind: audit.KindAnonymous, Anonymous: true}, nil
	}
	ctx := r.Context()
	study, series, sop := resourceOf(r, a)
	if study == "" && sop != "" && g.StudyOf != nil {
		if s, err := g.StudyOf(ctx, sop); err == nil {
			study = uid(s)
		}
	}
	rec := audit.Record{
		Protocol:      audit.ProtocolHTTP,
		RequestID:     api.RequestID(ctx),
		ClientAddress: r.RemoteAddr,
		Action:        a.Policy,
		Resource:      audit.Resource{Type: a.Resource, StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop},
		Detail:        map[string]string{"http_method": r.Method, "route": r.Pattern, "operation": a.Operation},
	}
	rc, cerr := requestContext(r)
	if cerr == nil {
		rec.PurposeOfUse = rc.PurposeOfUse
	}

	p, err := g.Authn.Authenticate(r)
	if err != nil {
		rec.Action, rec.SubjectKind = audit.ActionAuthentication, audit.KindAnonymous
		rec.Outcome = audit.OutcomeUnauthenticated
		rec.Detail["reason"] = "invalid_credentials"
		if len(r.Header.Values("Authorization")) == 0 {
			rec.Detail["reason"] = "no_credentials"
		}
		var out error = unauthenticated{challenge: auth.Challenge(err)}
		rec.Detail["http_status"] = "401"
		if !errors.Is(err, auth.ErrUnauthenticated) {
			// Identity provider down or token store failing: fail closed.
			rec.Outcome, rec.Detail["reason"], rec.Detail["http_status"] = audit.OutcomeError, "authn_unavailable", "503"
			out = fmt.Errorf("%w: %w", api.ErrUnavailable, err)
			if !errors.Is(err, auth.ErrUnavailable) {
				rec.Detail["http_status"] = "500"
				out = fmt.Errorf("access: authentication: %w", err)
			}
		}
		if aerr := appendRecord(ctx, g.Trail, rec); aerr != nil {
			return api.Principal{}, fmt.Errorf("access: audit: %w", aerr)
		}
		return api.Principal{}, out
	}
	rec.SubjectID, rec.SubjectKind, rec.Roles, rec.Organisation = p.ID, string(p.Kind), auditRoles(p.Roles), p.Organisation
	rec.Detail["auth_method"] = string(p.AuthMethod)
	if cerr != nil {
		rec.Outcome, rec.Detail["reason"], rec.Detail["http_status"] = audit.OutcomeDenied, "bad_request_context", "400"
		if aerr := appendRecord(ctx, g.Trail, rec); aerr != nil {
			return api.Principal{}, fmt.Errorf("access: audit: %w", aerr)
		}
		return api.Principal{}, cerr
	}

	in := policy.Input{
		Subject:  policy.Subject{ID: p.ID, Kind: string(p.Kind), Roles: p.Roles, Organisation: p.Organisation},
		Action:   a.Policy,
		Resource: policy.Resource{Type: a.Resource, StudyInstanceUID: study, SOPInstanceUID: sop},
		Context:  rc,
	}
	if in.Subject.Roles == nil {
		in.Subject.Roles = []string{}
	}
	if study != "" && g.Owners != nil {
		org, err := g.Owners.StudyOrganisation(ctx, study)
		if err != nil {
			return api.Principal{}, fmt.Errorf("access: study owner: %w", err)
		}
		in.Resource.Organisation = org
	}
	dec, derr := g.Policy.Decide(ctx, in)
	scope := ""
	if derr == nil && !dec.Allow && study == "" && a.Policy == "study:read" && p.Organisation != "" {
		// A collection-level search the subject may make only within its
		// organisation: decide again scoped to it; the catalog then limits
		// the search to that organisation's studies.
		in.Resource.Organisation = p.Organisation
		if d2, err2 := g.Policy.Decide(ctx, in); err2 == nil && d2.Allow {
			dec, scope = d2, p.Organisation
		}
	}
	rec.PolicyDecisionID, rec.BreakGlass = dec.ID, dec.BreakGlass && dec.Allow
	if rec.BreakGlass {
		rec.BreakGlassReason = rc.BreakGlassReason
	}
	var out error
	switch {
	case derr != nil:
		rec.Outcome, rec.Detail["error_kind"], rec.Detail["http_status"] = audit.OutcomeError, "policy_error", "500"
		out = fmt.Errorf("access: policy: %w", derr)
	case !dec.Allow:
		rec.Outcome, rec.Detail["reason"], rec.Detail["http_status"] = audit.OutcomeDenied, "policy_denied", "403"
		out = api.ErrForbidden
	default:
		rec.Outcome = audit.OutcomeSuccess
	}
	switch {
	case out == nil && a.OutcomeAfter && g.DeferOutcomes && dec.ID != "":
		// Recorded by Audit once the outcome is known; refuse now if the
		// trail cannot take records, as an Append error would.
		if f, ok := g.Trail.(Failer); ok {
			if ferr := f.Err(); ferr != nil {
				return api.Principal{}, fmt.Errorf("access: audit: %w", ferr)
			}
		}
		g.pendingMu.Lock()
		if g.pending == nil {
			g.pending = map[string]*pendingOutcome{}
		}
		g.pending[dec.ID] = &pendingOutcome{rec: rec}
		g.pendingMu.Unlock()
	case out != nil || a.PHI || rec.BreakGlass:
		if aerr := appendRecord(ctx, g.Trail, rec); aerr != nil {
			return api.Principal{}, fmt.Errorf("access: audit: %w", aerr)
		}
	}
	if out != nil {
		if derr != nil && g.Logger != nil {
			g.Logger.Error("policy evaluation failed", "request_id", rec.RequestID, "action", a.Policy, "error", derr.Error())
		}
		return api.Principal{}, out
	}
	return api.Principal{
		Subject: p.ID, Kind: string(p.Kind), Roles: p.Roles, Organisation: p.Organisation, AuthMethod: string(p.AuthMethod),
		DecisionID: dec.ID, BreakGlass: rec.BreakGlass, ScopeOrganisation: scope,
	}, nil
}

var defaultActions = DefaultActions()

// appendRecord appends rec with a context the client cannot cancel
// (audit.DetachedContext): the record of what happened must not be lost
// because the client went away.
func appendRecord(ctx context.Context, a Appender, rec audit.Record) error {
	ctx, cancel := audit.DetachedContext(ctx, 0)
	defer cancel()
	return a.Append(ctx, rec)
}

// NoteInstance reports, for the request of ctx (an OutcomeAfter request
// allowed under DeferOutcomes), that one instance was stored (and
// recorded) or failed; Audit uses the counts. Other requests are ignored.
func (g *Guard) NoteInstance(ctx context.Context, stored bool) {
	p, ok := api.PrincipalFrom(ctx)
	if !ok || p.DecisionID == "" {
		return
	}
	g.pendingMu.Lock()
	po := g.pending[p.DecisionID]
	g.pendingMu.Unlock()
	switch {
	case po == nil:
	case stored:
		po.stored.Add(1)
	default:
		po.failed.Add(1)
	}
}

// Audit implements api.Auditor: after the handler of an allowed
// OutcomeAfter request it appends the request's record (the fields of
// authorisation: subject, decision id, break-glass, ...) with the real
// outcome: success when the answer is 200 with every noted instance
// stored, or 202 (some stored, the failed ones have their own records);
// otherwise error with detail error_kind aborted (the client went away),
// server_error (5xx), none_stored (409: no instance stored),
// request_failed (other 4xx) or incomplete (no status but not every
// instance stored: the handler gave up, e.g. at its deadline). Detail
// also holds http_status, instances (how many were stored) and
// duration_ms. The append cannot be cancelled by the client; an error is
// logged (the answer has been sent; the instances have their own
// records, appended before they were reported stored).
func (g *Guard) Audit(ctx context.Context, ev api.AuditEvent) {
	if ev.Principal.DecisionID == "" {
		return
	}
	g.pendingMu.Lock()
	po := g.pending[ev.Principal.DecisionID]
	delete(g.pending, ev.Principal.DecisionID)
	g.pendingMu.Unlock()
	if po == nil {
		return
	}
	rec := po.rec
	rec.Detail = make(map[string]string, len(po.rec.Detail)+4)
	for k, v := range po.rec.Detail {
		rec.Detail[k] = v
	}
	stored, failed := po.stored.Load(), po.failed.Load()
	rec.Detail["instances"] = strconv.FormatInt(stored, 10)
	rec.Detail["duration_ms"] = strconv.FormatFloat(float64(ev.Duration.Microseconds())/1000, 'f', 3, 64)
	if ev.Status >= 100 && ev.Status <= 599 {
		rec.Detail["http_status"] = strconv.Itoa(ev.Status)
	}
	kind := ""
	switch {
	case ev.Status >= 500:
		kind = "server_error"
	case ev.Status == http.StatusConflict:
		kind = "none_stored"
	case ev.Status >= 400:
		kind = "request_failed"
	case ev.Status == http.StatusAccepted && stored > 0:
	case ev.Status == http.StatusOK && stored > 0 && failed == 0:
	default:
		kind = "incomplete"
	}
	rec.Outcome = audit.OutcomeSuccess
	if kind != "" {
		if ctx.Err() != nil {
			kind = "aborted"
		}
		rec.Outcome, rec.Detail["error_kind"] = audit.OutcomeError, kind
	}
	if err := appendRecord(ctx, g.Trail, rec); err != nil && g.Logger != nil {
		g.Logger.Error("audit record of a completed request failed", "request_id", rec.RequestID, "action", rec.Action, "error", err.Error())
	}
}
