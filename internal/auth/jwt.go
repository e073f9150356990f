package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Limits applied before any parsing.
const (
	// MaxJWTBytes bounds a bearer JWT; longer ones are refused unparsed.
	MaxJWTBytes = 16 << 10
	// MaxJWKSBytes bounds a JWKS document (file or HTTP body).
	MaxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted from a JWKS.
	minRSABits = 2048
)

// allowedAlgs are the only JWS algorithms accepted. HS* (a shared secret
// that a public JWKS would turn into a forgery key) and "none" are never
// accepted.
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// JWTConfig configures a JWTVerifier. Exactly one of JWKSFile and JWKSURL
// is set; Issuer and Audience are required.
type JWTConfig struct {
	// JWKSFile is a JSON Web Key Set file (RFC 7517), re-read on refresh.
	JWKSFile string
	// JWKSURL is the identity provider's JWKS endpoint, e.g.
	// https://idp/realms/radflow/protocol/openid-connect/certs.
	JWKSURL string
	// Issuer must equal the token's "iss" exactly.
	Issuer string
	// Audience must be one of the token's "aud" values.
	Audience string
	// RolesClaim is the dotted path of the roles claim (default "roles";
	// Keycloak: "realm_access.roles" or "resource_access.radflow.roles").
	// Its value is an array of strings or a space/comma separated string.
	RolesClaim string
	// OrganisationClaim is the dotted path of the organisation claim
	// (default "organisation"); a string, or an array whose first string
	// is taken.
	OrganisationClaim string
	// ClockSkew is the leeway for exp, nbf and iat (default 60 s, at most 5 min).
	ClockSkew time.Duration
	// RefreshInterval is how old the cached key set may get before it is
	// fetched again (default 15 min); a failed refresh keeps the old keys.
	RefreshInterval time.Duration
	// MinRefreshInterval bounds refreshes caused by tokens with an unknown
	// key ID (default 30 s), so that forged kids cannot hammer the IdP.
	MinRefreshInterval time.Duration
	// CacheTTL is how long a verified token is remembered (by its SHA-256)
	// so that repeated requests skip the signature check (default 60 s;
	// negative: no cache). Expiry is still checked on every use; a key
	// withdrawn from the JWKS stops working for cached tokens after CacheTTL.
	CacheTTL time.Duration
	// HTTPClient fetches JWKSURL (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Now returns the current time (default time.Now); for tests.
	Now func() time.Time
}

// JWTVerifier verifies bearer JWTs (JWS compact, RS256 or ES256) against a
// cached JWKS and turns them into Principals (Kind user, AuthMethod jwt).
// It is safe for concurrent use.
type JWTVerifier struct {
	cfg       JWTConfig
	rolesPath []string
	orgPath   []string
	fetchMu   sync.Mutex // one fetch at a time
	mu        sync.RWMutex
	keys      []jose.JSONWebKey // public signing keys only
	fetched   time.Time         // last successful fetch
	attempted time.Time         // last fetch attempt

	cacheMu sync.Mutex
	cache   map[[32]byte]cachedToken
}

// cachedToken is a verified token's Principal, usable until until.
type cachedToken struct {
	p     Principal
	until time.Time
}

// maxCachedTokens bounds the verified-token cache; when full it is emptied.
const maxCachedTokens = 4096

// NewJWTVerifier checks cfg and loads the key set once, so that a wrong
// file, URL or key set is reported at start.
// errors: ErrInvalidConfig; ErrUnavailable (the key set could not be
// loaded or holds no usable RS256/ES256 key).
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if (cfg.JWKSFile == "") == (cfg.JWKSURL == "") {
		return nil, fmt.Errorf("%w: set exactly one of the JWKS file and the JWKS URL", ErrInvalidConfig)
	}
	if cfg.JWKSURL != "" && !strings.HasPrefix(cfg.JWKSURL, "https://") && !strings.HasPrefix(cfg.JWKSURL, "http://") {
		return nil, fmt.Errorf("%w: JWKS URL must be http(s)", ErrInvalidConfig)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, fmt.Errorf("%w: JWT issuer and audience are required", ErrInvalidConfig)
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.OrganisationClaim == "" {
		cfg.OrganisationClaim = "organisation"
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 60 * time.Second
	}
	if cfg.ClockSkew < 0 || cfg.ClockSkew > 5*time.Minute {
		return nil, fmt.Errorf("%w: clock skew %v outside 0..5m", ErrInvalidConfig, cfg.ClockSkew)
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 15 * time.Minute
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = 30 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 60 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &JWTVerifier{cfg: cfg, cache: map[[32]byte]cachedToken{}, rolesPath: strings.Split(cfg.RolesClaim, "."), orgPath: strings.Split(cfg.OrganisationClaim, ".")}
	if err := v.Refresh(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Refresh fetches the key set now and replaces the cached keys.
// errors: ErrUnavailable (fetch, size, parse, or no usable key); the
// cached keys are kept.
func (v *JWTVerifier) Refresh(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.refreshLocked(ctx)
}

func (v *JWTVerifier) refreshLocked(ctx context.Context) error {
	now := v.cfg.Now()
	v.mu.Lock()
	v.attempted = now
	v.mu.Unlock()
	keys, err := v.load(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	v.mu.Lock()
	v.keys, v.fetched = keys, now
	v.mu.Unlock()
	return nil
}

// load reads and parses the key set, keeping only public RSA (≥2048 bit)
// and EC P-256 signing keys.
func (v *JWTVerifier) load(ctx context.Context) ([]jose.JSONWebKey, error) {
	var body []byte
	if v.cfg.JWKSFile != "" {
		f, err := os.Open(v.cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("JWKS file: %w", err)
		}
		defer f.Close()
		body, err = io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
		if err != nil {
			return nil, fmt.Errorf("JWKS file: %w", err)
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
		if err != nil {
			return nil, fmt.Errorf("JWKS URL: %w", err)
		}
		req.Header.Set("Accept", "application/json, application/jwk-set+json")
		resp, err := v.cfg.HTTPClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("JWKS fetch: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("JWKS fetch: HTTP status %d", resp.StatusCode)
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
		if err != nil {
			return nil, fmt.Errorf("JWKS fetch: %w", err)
		}
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", MaxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS: not a JSON key set: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) != nil || !k.Valid() {
			continue // unsupported key types (e.g. for encryption) are skipped
		}
		if !k.IsPublic() {
			k = k.Public() // never keep private material
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits || (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) {
				continue
			}
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() || (k.Algorithm != "" && k.Algorithm != string(jose.ES256)) {
				continue
			}
		default:
			continue // symmetric ("oct") and other keys are never used
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable RS256 or ES256 signing key")
	}
	return keys, nil
}

// candidates returns the cached keys matching kid and alg ("" kid: every
// key of the algorithm's type), refreshing the set when it is stale or
// kid is unknown (at most once per MinRefreshInterval).
func (v *JWTVerifier) candidates(ctx context.Context, kid string, alg jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	match := func() ([]jose.JSONWebKey, time.Time, time.Time) {
		v.mu.RLock()
		defer v.mu.RUnlock()
		var out []jose.JSONWebKey
		for _, k := range v.keys {
			if kid != "" && k.KeyID != kid {
				continue
			}
			switch k.Key.(type) {
			case *rsa.PublicKey:
				if alg != jose.RS256 {
					continue
				}
			case *ecdsa.PublicKey:
				if alg != jose.ES256 {
					continue
				}
			}
			out = append(out, k)
		}
		return out, v.fetched, v.attempted
	}
	keys, fetched, attempted := match()
	now := v.cfg.Now()
	stale := now.Sub(fetched) >= v.cfg.RefreshInterval
	if len(keys) > 0 && !stale {
		return keys, nil
	}
	if now.Sub(attempted) < v.cfg.MinRefreshInterval {
		if len(keys) > 0 {
			return keys, nil
		}
		return nil, unauthenticated("unknown signing key")
	}
	v.fetchMu.Lock()
	// Another request may have refreshed while we waited.
	v.mu.RLock()
	again := v.attempted.After(attempted)
	v.mu.RUnlock()
	var rerr error
	if !again {
		rerr = v.refreshLocked(ctx)
	}
	v.fetchMu.Unlock()
	keys, _, _ = match()
	switch {
	case len(keys) > 0:
		return keys, nil // a failed periodic refresh keeps serving the cached keys
	case rerr != nil:
		return nil, rerr
	default:
		return nil, unauthenticated("unknown signing key")
	}
}

// Verify checks raw (the JWS compact token, without "Bearer ") and returns
// its Principal: ID = sub, Kind user, AuthMethod jwt, Roles and
// Organisation from the configured claims, Expires = exp.
// errors: ErrUnauthenticated with a reason (malformed, algorithm not
// allowed, unknown signing key, invalid signature, expired, not yet valid,
// issuer, audience, missing exp or sub); ErrUnavailable when the key set
// cannot be fetched and no cached key matches.
func (v *JWTVerifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > MaxJWTBytes {
		return Principal{}, unauthenticated("token too long")
	}
	var digest [32]byte
	if v.cfg.CacheTTL > 0 {
		digest = sha256.Sum256([]byte(raw))
		if p, ok := v.cached(digest); ok {
			return p, nil
		}
	}
	p, err := v.verify(ctx, raw)
	if err == nil && v.cfg.CacheTTL > 0 {
		v.remember(digest, p)
	}
	return p, err
}

// cached returns the Principal of a token verified within CacheTTL that
// has not expired (exp + ClockSkew) since.
func (v *JWTVerifier) cached(digest [32]byte) (Principal, bool) {
	now := v.cfg.Now()
	v.cacheMu.Lock()
	e, ok := v.cache[digest]
	v.cacheMu.Unlock()
	if !ok || !now.Before(e.until) || !now.Before(e.p.Expires.Add(v.cfg.ClockSkew)) {
		return Principal{}, false
	}
	p := e.p
	p.Roles = append([]string{}, p.Roles...)
	return p, true
}

func (v *JWTVerifier) remember(digest [32]byte, p Principal) {
	p.Roles = append([]string{}, p.Roles...)
	until := v.cfg.Now().Add(v.cfg.CacheTTL)
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= maxCachedTokens {
		clear(v.cache)
	}
	v.cache[digest] = cachedToken{p: p, until: until}
}

func (v *JWTVerifier) verify(ctx context.Context, raw string) (Principal, error) {
	tok, err := jwt.ParseSigned(raw, allowedAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return Principal{}, unauthenticated("malformed token or algorithm not allowed (RS256, ES256)")
	}
	h := tok.Headers[0]
	keys, err := v.candidates(ctx, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if err != nil {
		return Principal{}, err
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if tok.Claims(k.Key, &std, &all) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Principal{}, unauthenticated("invalid signature or claims")
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: jwt.Audience{v.cfg.Audience},
		Time:        v.cfg.Now(),
	}, v.cfg.ClockSkew)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return Principal{}, unauthenticated("token expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return Principal{}, unauthenticated("token not yet valid")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Principal{}, unauthenticated("token issued in the future")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Principal{}, unauthenticated("wrong issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Principal{}, unauthenticated("wrong audience")
	case err != nil:
		return Principal{}, unauthenticated("invalid claims")
	}
	if std.Expiry == nil {
		return Principal{}, unauthenticated("token has no expiry")
	}
	if std.Subject == "" {
		return Principal{}, unauthenticated("token has no subject")
	}
	return Principal{
		ID:           std.Subject,
		Kind:         KindUser,
		Roles:        stringList(claimAt(all, v.rolesPath)),
		Organisation: firstString(claimAt(all, v.orgPath)),
		AuthMethod:   MethodJWT,
		Expires:      std.Expiry.Time(),
	}, nil
}

// claimAt walks a dotted path through nested JSON objects; nil when absent.
func claimAt(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// stringList turns a claim into roles: the strings of an array, or the
// fields of a space/comma separated string. Never nil.
func stringList(v any) []string {
	out := []string{}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	case string:
		out = append(out, strings.FieldsFunc(x, func(r rune) bool { return r == ' ' || r == ',' })...)
	}
	return out
}

func firstString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				return s
			}
		}
	}
	return ""
}
