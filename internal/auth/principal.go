package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind is what a Principal is.
type Kind string

// Principal kinds.
const (
	KindUser    Kind = "user"    // a person, authenticated by the identity provider (JWT)
	KindService Kind = "service" // a service account (static API token, or a mapped client certificate)
	KindAE      Kind = "ae"      // a DICOM application entity (calling AE title, optionally with a TLS client certificate)
)

// Method is how a Principal was authenticated.
type Method string

// Authentication methods.
const (
	MethodJWT   Method = "jwt"   // bearer JWT verified against the identity provider's JWKS
	MethodToken Method = "token" // static API token ("rf_...") from the TokenStore
	MethodTLS   Method = "tls"   // verified TLS client certificate (mutual TLS)
	MethodAE    Method = "ae"    // calling AE title alone (no cryptographic proof)
)

// Roles of radflow's policy vocabulary. Principals may carry other roles
// (whatever the identity provider sends); the policy decides what they mean.
const (
	RoleRadiologist        = "radiologist"
	RoleReferringPhysician = "referring_physician"
	RoleTechnologist       = "technologist"
	RoleAIService          = "ai_service"
	RoleAdmin              = "admin"
	RoleAuditor            = "auditor"
)

// KnownRoles lists the roles of the policy vocabulary, in a stable order.
func KnownRoles() []string {
	return []string{RoleRadiologist, RoleReferringPhysician, RoleTechnologist, RoleAIService, RoleAdmin, RoleAuditor}
}

// Principal is an authenticated identity: a user, a service account or a
// DICOM application entity. It carries no credential material.
type Principal struct {
	// ID identifies the principal within its Method: the JWT subject
	// ("sub"), the API token ID ("tok_..."), the mapped certificate
	// identity, or the calling AE title.
	ID   string
	Kind Kind
	// Roles as granted (JWT roles claim, token record, DIMSE mapping);
	// never nil for a successful authentication, possibly empty.
	Roles []string
	// Organisation the principal acts for ("" when unknown).
	Organisation string
	AuthMethod   Method
	// AETitle is the calling AE title for DIMSE principals ("" otherwise).
	AETitle string
	// Expires is when the credential stops being valid (JWT exp, token
	// expiry); zero when it does not expire.
	Expires time.Time
}

// HasRole reports whether p has role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// Errors. Every authentication failure wraps ErrUnauthenticated with a
// short reason (e.g. "auth: unauthenticated: token expired") that never
// contains the credential or claim values, so it may be logged and
// returned to the client.
var (
	// ErrUnauthenticated: missing, malformed, invalid, expired or revoked
	// credentials (HTTP 401).
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrUnavailable: the identity provider's keys could not be fetched
	// and the token's key is not cached (fail closed; HTTP 503 or 500).
	ErrUnavailable = errors.New("auth: identity provider unavailable")
	// ErrInvalidConfig: a configuration value is missing or wrong.
	ErrInvalidConfig = errors.New("auth: invalid configuration")
	// ErrNotFound: no API token with that ID.
	ErrNotFound = errors.New("auth: not found")
)

// unauthenticated returns ErrUnauthenticated with a fixed reason (never a
// value taken from the credential).
func unauthenticated(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}
