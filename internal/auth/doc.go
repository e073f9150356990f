// Package auth authenticates radflow's callers and turns them into a
// Principal (ID, Kind user|service|ae, Roles, Organisation, AuthMethod
// jwt|token|tls|ae).
//
// HTTP: an HTTPAuthenticator reads "Authorization: Bearer <credential>".
// A JWS is verified by a JWTVerifier (RS256/ES256 only, against the
// identity provider's JWKS from a file or URL, cached, refreshed when a
// token names an unknown key ID at most once per MinRefreshInterval; iss,
// aud, exp, nbf, iat checked with ClockSkew; roles and organisation from
// configurable dotted claim paths such as "realm_access.roles"). A
// credential starting "rf_" is a static API token looked up in a
// TokenStore (SQLite table auth_tokens, SHA-256 of the token only,
// constant-time compare, expiry and revocation). With mutual TLS on the
// HTTPS listener, a verified client certificate maps through a PeerMapper.
//
//	jv, err := auth.NewJWTVerifier(ctx, auth.JWTConfig{JWKSURL: u, Issuer: iss, Audience: "radflow", RolesClaim: "realm_access.roles"})
//	ts, err := auth.OpenTokenStore(ctx, filepath.Join(dataDir, "auth.db"))
//	first, err := ts.Bootstrap(ctx, os.Getenv("RADFLOW_ADMIN_TOKEN")) // print first once if non-empty
//	a := &auth.HTTPAuthenticator{JWT: jv, Tokens: ts}
//	p, err := a.Authenticate(r) // errors.Is(err, auth.ErrUnauthenticated) → 401
//
// DIMSE: PeerMapper.AssociationPrincipal(callingAE, peerCert) maps the
// verified TLS client certificate (subject CN or SAN → Identity, limited
// to its configured AE titles) or, without TLS, the calling AE title to a
// Principal.
//
// Errors wrap ErrUnauthenticated with a fixed reason that never contains
// the credential or claim values; ErrUnavailable when the JWKS cannot be
// fetched for an unknown key.
//
// It owns: credential parsing and verification, the API token store and
// its bootstrap, peer identity mapping. It does not own: authorisation
// decisions (package policy), TLS configuration (package tlsconfig), the
// HTTP error responses (package api's Guard), audit records (package audit).
package auth
