package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Principal is the identity a Guard established for a request, with the
// access decision that let it through. It carries no credential material.
type Principal struct {
	// Subject identifies the caller (JWT subject, API token ID, mapped
	// certificate identity, AE title); "anonymous" under AllowAll and for
	// the unauthenticated /healthz.
	Subject string
	// Kind is user, service, ae or anonymous.
	Kind string
	// Roles as authenticated (policy vocabulary: radiologist,
	// referring_physician, technologist, ai_service, admin, auditor).
	Roles []string
	// Organisation the caller acts for ("" when unknown).
	Organisation string
	// AuthMethod is jwt, token, tls or ae ("" when anonymous).
	AuthMethod string
	Anonymous  bool
	// DecisionID is the policy decision that allowed the request (""
	// when no policy ran); audit records of the request carry it.
	DecisionID string
	// BreakGlass: the request was allowed by emergency access only.
	BreakGlass bool
	// ScopeOrganisation, when set, limits a collection-level search to
	// the studies owned by this organisation: the policy allowed it only
	// within that organisation (e.g. a referring physician's QIDO).
	ScopeOrganisation string
}

// Guard is the single identity/policy hook: it is called for every route
// (including /dicomweb, /metrics and the health endpoints) with the route's
// action (e.g. "dicomweb.stow", "results.read") and resource (the request
// path, e.g. "/dicomweb/studies/1.2.3"). Returning an error wrapping
// ErrUnauthenticated answers 401 (with the error's WWW-Authenticate value
// when it implements Challenger, else `Bearer realm="radflow"`),
// ErrForbidden 403, ErrBadRequest 400, ErrUnavailable 503, anything else
// 500 (e.g. an audit record that could not be written: nothing is served).
type Guard interface {
	Authorize(r *http.Request, action, resource string) (Principal, error)
}

// Guard errors.
var (
	ErrUnauthenticated = errors.New("api: unauthenticated")
	ErrForbidden       = errors.New("api: forbidden")
	// ErrBadRequest: the request's access context is malformed (e.g. an
	// X-Purpose-Of-Use that is not a code); the message is shown.
	ErrBadRequest = errors.New("api: bad request")
	// ErrUnavailable: the identity provider cannot be reached (fail closed).
	ErrUnavailable = errors.New("api: authentication unavailable")
)

// Challenger is implemented by Guard errors that know the WWW-Authenticate
// value of their 401 answer.
type Challenger interface {
	WWWAuthenticate() string
}

// DefaultChallenge is the WWW-Authenticate value of a 401 whose error
// does not implement Challenger.
const DefaultChallenge = `Bearer realm="radflow"`

// AllowAll is the default Guard: every request is allowed as anonymous.
type AllowAll struct{}

// Authorize allows r.
func (AllowAll) Authorize(*http.Request, string, string) (Principal, error) {
	return Principal{Subject: "anonymous", Anonymous: true}, nil
}

// AuditEvent is one authorised (or refused) request, after it completed.
// It carries no query values or bodies.
type AuditEvent struct {
	Time      time.Time
	RequestID string
	Principal Principal
	Action    string
	Resource  string
	Method    string
	Status    int
	Duration  time.Duration
}

// Auditor receives an AuditEvent per request that reached a route
// (optional; the audit trail implementation comes with security work).
type Auditor interface {
	Audit(ctx context.Context, ev AuditEvent)
}

// Actions of the routes in this package.
const (
	ActionResultsRead = "results.read"
	ActionModelsRead  = "models.read"
	// ActionHealth is /healthz (liveness), ActionReady /readyz (its
	// answer names failing components, so a Guard may want credentials).
	ActionHealth  = "health.read"
	ActionReady   = "ready.read"
	ActionMetrics = "metrics.read"
)

// Result statuses.
const (
	StatusQueued  = "queued"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Result is one model's result for one instance, as served by
// GET /api/v1/results.
type Result struct {
	SOPInstanceUID   string `json:"sop_instance_uid"`
	StudyInstanceUID string `json:"study_instance_uid"`
	Model            string `json:"model"`
	Version          string `json:"version"`
	// Status is StatusQueued, StatusRunning, StatusDone or StatusFailed.
	Status string `json:"status"`
	// Label is the predicted label ("" until done).
	Label string `json:"label,omitempty"`
	// Probabilities maps each model label to its probability in [0,1].
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
	// Error is the failure reason when Status is failed (no PHI).
	Error string `json:"error,omitempty"`
	// SRSOPInstanceUID is the SOP Instance UID of the DICOM SR written
	// for the result, when any.
	SRSOPInstanceUID string `json:"sr_sop_instance_uid,omitempty"`
	// TimingsMS maps a stage ("decode", "preprocess", "inference", "sr")
	// to its duration in milliseconds.
	TimingsMS map[string]float64 `json:"timings_ms,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// MarshalJSON writes every key, with null for an empty label,
// probabilities, error or sr_sop_instance_uid, so clients see one shape
// whatever the status.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // no MarshalJSON: no recursion
	nullable := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	var probs map[string]float64
	if len(r.Probabilities) > 0 {
		probs = r.Probabilities
	}
	return json.Marshal(struct {
		plain
		Label            *string            `json:"label"`
		Probabilities    map[string]float64 `json:"probabilities"`
		Error            *string            `json:"error"`
		SRSOPInstanceUID *string            `json:"sr_sop_instance_uid"`
	}{plain(r), nullable(r.Label), probs, nullable(r.Error), nullable(r.SRSOPInstanceUID)})
}

// ResultFilter selects results: by study, by instance, or both (AND).
// At least one is non-empty.
type ResultFilter struct {
	StudyInstanceUID string
	SOPInstanceUID   string
}

// Results lists results (implemented by the store package).
type Results interface {
	// ListResults returns the matching results, newest first; an empty
	// slice when none.
	ListResults(ctx context.Context, f ResultFilter) ([]Result, error)
}

// Model describes one loaded model, as served by GET /api/v1/models.
type Model struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Labels  []string `json:"labels"`
	// Modalities the model accepts (e.g. ["CR","DX"]); empty means any.
	Modalities []string `json:"modalities,omitempty"`
}

// Models lists the loaded models (implemented by the models/inference side).
type Models interface {
	ListModels(ctx context.Context) ([]Model, error)
}

// Check is one readiness check; nil means ready. It should return within
// the context's deadline (Config.ReadyTimeout).
type Check func(ctx context.Context) error
