package auth

import (
	"errors"
	"net/http"
	"strings"
)

// Authenticator establishes the Principal of an HTTP request.
type Authenticator interface {
	// Authenticate returns the request's Principal.
	// errors: ErrUnauthenticated (with a reason free of secrets),
	// ErrUnavailable, or a storage error.
	Authenticate(r *http.Request) (Principal, error)
}

// HTTPAuthenticator authenticates "Authorization: Bearer <credential>":
// a credential that starts with "rf_" or is not a three-part JWS goes to
// Tokens, a JWS goes to JWT. A request without an Authorization header is
// authenticated by its verified TLS client certificate when Certs is set
// (mutual TLS on the HTTPS listener). Credentials in query parameters are
// never read (they end up in logs).
type HTTPAuthenticator struct {
	JWT    *JWTVerifier // nil: JWTs are refused
	Tokens *TokenStore  // nil: API tokens are refused
	Certs  *PeerMapper  // nil: client certificates are not used for HTTP
}

var _ Authenticator = (*HTTPAuthenticator)(nil)

// Authenticate implements Authenticator.
func (a *HTTPAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		if a.Certs != nil && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			p, err := a.Certs.CertificatePrincipal(r.TLS.VerifiedChains[0][0])
			if err == nil && p.Kind == KindAE {
				p.Kind = KindService
			}
			return p, err
		}
		return Principal{}, unauthenticated("missing credentials")
	}
	if len(hs) > 1 {
		return Principal{}, unauthenticated("more than one Authorization header")
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(hs[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, unauthenticated("unsupported authorization scheme (want Bearer)")
	}
	cred = strings.TrimSpace(cred)
	if cred == "" {
		return Principal{}, unauthenticated("empty bearer credential")
	}
	if !strings.HasPrefix(cred, TokenPrefix) && strings.Count(cred, ".") == 2 {
		if a.JWT == nil {
			return Principal{}, unauthenticated("JWT authentication is not configured")
		}
		return a.JWT.Verify(r.Context(), cred)
	}
	if a.Tokens == nil {
		return Principal{}, unauthenticated("API tokens are not configured")
	}
	return a.Tokens.Authenticate(r.Context(), cred)
}

// Challenge returns the WWW-Authenticate header value for a 401 answer
// to err (RFC 6750 3): `Bearer realm="radflow"`, with error="invalid_token"
// when a credential was sent but refused. The reason is not included.
func Challenge(err error) string {
	if errors.Is(err, ErrUnauthenticated) && !strings.Contains(err.Error(), "missing credentials") {
		return `Bearer realm="radflow", error="invalid_token"`
	}
	return `Bearer realm="radflow"`
}
