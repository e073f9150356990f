package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://idp.test/realms/radflow"
	testAudience = "radflow"
)

// testKey is a signing key with its kid and algorithm.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

var (
	keysOnce         sync.Once
	rsaKey, ecKey    testKey
	rsaKey2, otherEC testKey
)

// testKeys generates the test keys once per process (RSA generation is slow).
func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		r1, _ := rsa.GenerateKey(rand.Reader, 2048)
		r2, _ := rsa.GenerateKey(rand.Reader, 2048)
		e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		e2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		rsaKey = testKey{"rsa-1", jose.RS256, r1}
		rsaKey2 = testKey{"rsa-2", jose.RS256, r2}
		ecKey = testKey{"ec-1", jose.ES256, e1}
		otherEC = testKey{"ec-other", jose.ES256, e2}
	})
}

// jwksJSON returns the public JWKS of keys.
func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign returns a compact JWS of claims signed with k.
func sign(t testing.TB, k testKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// claims returns valid claims at t0 with overrides applied (nil deletes).
func claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "aud": []string{testAudience, "account"}, "sub": "user-42",
		"iat": t0.Unix(), "nbf": t0.Unix() - 10, "exp": t0.Add(5 * time.Minute).Unix(),
		"roles": []string{"radiologist"}, "organisation": "st-elsewhere",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// jwksServer serves the current body of *set and counts requests.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	hits atomic.Int32
	fail atomic.Bool
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	js := &jwksServer{body: body}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.hits.Add(1)
		if js.fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		js.mu.Lock()
		defer js.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(js.body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(b []byte) { js.mu.Lock(); js.body = b; js.mu.Unlock() }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newVerifier(t testing.TB, cfg JWTConfig) (*JWTVerifier, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	cfg.Now = clk.now
	v, err := NewJWTVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk
}

func wantUnauth(t *testing.T, err error, reason string) {
	t.Helper()
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("error %v, want ErrUnauthenticated with %q", err, reason)
	}
}

func TestJWTValid(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey, ecKey))
	v, _ := newVerifier(t, JWTConfig{JWKSURL: js.URL})
	for _, k := range []testKey{rsaKey, ecKey} {
		t.Run(string(k.alg), func(t *testing.T) {
			p, err := v.Verify(context.Background(), sign(t, k, claims(nil)))
			if err != nil {
				t.Fatal(err)
			}
			want := Principal{ID: "user-42", Kind: KindUser, Roles: []string{"radiologist"}, Organisation: "st-elsewhere", AuthMethod: MethodJWT, Expires: t0.Add(5 * time.Minute)}
			if p.ID != want.ID || p.Kind != want.Kind || !slices.Equal(p.Roles, want.Roles) || p.Organisation != want.Organisation || p.AuthMethod != want.AuthMethod || !p.Expires.Equal(want.Expires) {
				t.Fatalf("principal %+v, want %+v", p, want)
			}
		})
	}
	if n := js.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached)", n)
	}
}

func TestJWTFromFile(t *testing.T) {
	testKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, ecKey), 0o600); err != nil {
		t.Fatal(err)
	}
	v, clk := newVerifier(t, JWTConfig{JWKSFile: path, MinRefreshInterval: time.Second})
	if _, err := v.Verify(context.Background(), sign(t, ecKey, claims(nil))); err != nil {
		t.Fatal(err)
	}
	// A key added to the file is picked up on the first token that uses it.
	tok := sign(t, rsaKey, claims(nil))
	if err := os.WriteFile(path, jwksJSON(t, ecKey, rsaKey), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after adding the key to the file: %v", err)
	}
}

func TestJWTNestedClaims(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey))
	v, _ := newVerifier(t, JWTConfig{JWKSURL: js.URL, RolesClaim: "realm_access.roles", OrganisationClaim: "org.name"})
	p, err := v.Verify(context.Background(), sign(t, rsaKey, claims(map[string]any{
		"roles":        nil,
		"realm_access": map[string]any{"roles": []any{"admin", "auditor", 7}},
		"org":          map[string]any{"name": "hospital-a"},
	})))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Roles, []string{"admin", "auditor"}) || p.Organisation != "hospital-a" {
		t.Fatalf("roles %v org %q, want [admin auditor] hospital-a", p.Roles, p.Organisation)
	}
	// Space-separated string roles; absent claim gives no roles (not nil).
	v2, _ := newVerifier(t, JWTConfig{JWKSURL: js.URL, RolesClaim: "scope"})
	p, err = v2.Verify(context.Background(), sign(t, rsaKey, claims(map[string]any{"scope": "technologist ai_service"})))
	if err != nil || !slices.Equal(p.Roles, []string{"technologist", "ai_service"}) {
		t.Fatalf("string roles: %v %v", p.Roles, err)
	}
	p, err = v.Verify(context.Background(), sign(t, rsaKey, claims(nil)))
	if err != nil || p.Roles == nil || len(p.Roles) != 0 {
		t.Fatalf("absent roles claim: %#v %v", p.Roles, err)
	}
}

func TestJWTRejected(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey, ecKey))
	v, _ := newVerifier(t, JWTConfig{JWKSURL: js.URL, ClockSkew: time.Minute})
	good := sign(t, rsaKey, claims(nil))
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	// HS256 signed with the RSA public key's bytes as the shared secret
	// (the classic key-confusion forgery), under the RSA key's kid.
	pub, _ := json.Marshal(jose.JSONWebKey{Key: rsaKey.priv.Public()})
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pub, KeyID: rsaKey.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hsTok, _ := jwt.Signed(hs).Claims(claims(nil)).Serialize()
	noneTok := b64([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + parts[1] + "."
	// Payload changed (roles → admin), signature kept.
	tamperedPayload := parts[0] + "." + b64(mustJSON(t, claims(map[string]any{"roles": []string{"admin"}}))) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + b64(sig)

	for _, tc := range []struct {
		name, tok, reason string
	}{
		{"expired", sign(t, rsaKey, claims(map[string]any{"exp": t0.Add(-2 * time.Minute).Unix()})), "token expired"},
		{"not yet valid", sign(t, ecKey, claims(map[string]any{"nbf": t0.Add(2 * time.Minute).Unix()})), "token not yet valid"},
		{"issued in the future", sign(t, ecKey, claims(map[string]any{"iat": t0.Add(10 * time.Minute).Unix()})), "issued in the future"},
		{"wrong issuer", sign(t, rsaKey, claims(map[string]any{"iss": "https://evil.test"})), "wrong issuer"},
		{"wrong audience", sign(t, rsaKey, claims(map[string]any{"aud": "other-app"})), "wrong audience"},
		{"no exp", sign(t, rsaKey, claims(map[string]any{"exp": nil})), "no expiry"},
		{"no sub", sign(t, rsaKey, claims(map[string]any{"sub": nil})), "no subject"},
		{"HS256", hsTok, "algorithm not allowed"},
		{"none", noneTok, "algorithm not allowed"},
		{"unknown kid", sign(t, otherEC, claims(nil)), "unknown signing key"},
		{"tampered payload", tamperedPayload, "invalid signature"},
		{"tampered signature", tamperedSig, "invalid signature"},
		{"garbage", "a.b.c", "malformed"},
		{"too long", strings.Repeat("a", MaxJWTBytes+1), "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.tok)
			wantUnauth(t, err, tc.reason)
			if strings.Contains(err.Error(), tc.tok[:min(len(tc.tok), 20)]) {
				t.Fatalf("error %q contains the token", err)
			}
		})
	}
	// Within the clock skew an expired token still passes.
	if _, err := v.Verify(context.Background(), sign(t, rsaKey, claims(map[string]any{"exp": t0.Add(-30 * time.Second).Unix()}))); err != nil {
		t.Fatalf("exp 30 s ago with 60 s skew: %v", err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWKSRefresh: an unknown kid refreshes the key set at most once per
// MinRefreshInterval; a rotated-in key is found; a failing IdP keeps the
// cached keys and reports ErrUnavailable only for keys it cannot know.
func TestJWKSRefresh(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey))
	v, clk := newVerifier(t, JWTConfig{JWKSURL: js.URL, MinRefreshInterval: 30 * time.Second, RefreshInterval: time.Hour})
	ctx := context.Background()
	rotated := sign(t, rsaKey2, claims(map[string]any{"exp": t0.Add(time.Hour).Unix()}))
	wantUnauth(t, errOf(v.Verify(ctx, rotated)), "unknown signing key")
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (the start's fetch is within MinRefreshInterval)", n)
	}
	clk.advance(31 * time.Second)
	wantUnauth(t, errOf(v.Verify(ctx, rotated)), "unknown signing key")
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start + unknown kid)", n)
	}
	js.set(jwksJSON(t, rsaKey, rsaKey2)) // the IdP rotates the new key in
	wantUnauth(t, errOf(v.Verify(ctx, rotated)), "unknown signing key")
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times within MinRefreshInterval, want still 2", n)
	}
	clk.advance(31 * time.Second)
	if _, err := v.Verify(ctx, rotated); err != nil {
		t.Fatalf("rotated key after the refresh interval: %v", err)
	}
	if n := js.hits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
	// IdP down: cached keys keep working, unknown keys are ErrUnavailable.
	js.fail.Store(true)
	clk.advance(2 * time.Hour) // cache stale: a refresh is attempted and fails
	if _, err := v.Verify(ctx, sign(t, rsaKey, claims(map[string]any{"exp": clk.now().Add(time.Minute).Unix()}))); err != nil {
		t.Fatalf("cached key while the IdP is down: %v", err)
	}
	clk.advance(time.Minute)
	if _, err := v.Verify(ctx, sign(t, otherEC, claims(nil))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown key while the IdP is down: %v, want ErrUnavailable", err)
	}
}

func errOf(_ Principal, err error) error { return err }

func TestJWTConfigErrors(t *testing.T) {
	testKeys(t)
	ctx := context.Background()
	js := newJWKSServer(t, jwksJSON(t, rsaKey))
	for name, cfg := range map[string]JWTConfig{
		"no source":   {Issuer: testIssuer, Audience: testAudience},
		"two sources": {JWKSURL: js.URL, JWKSFile: "x", Issuer: testIssuer, Audience: testAudience},
		"no issuer":   {JWKSURL: js.URL, Audience: testAudience},
		"no audience": {JWKSURL: js.URL, Issuer: testIssuer},
		"ftp":         {JWKSURL: "ftp://x", Issuer: testIssuer, Audience: testAudience},
		"huge skew":   {JWKSURL: js.URL, Issuer: testIssuer, Audience: testAudience, ClockSkew: time.Hour},
	} {
		if _, err := NewJWTVerifier(ctx, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	down := newJWKSServer(t, nil)
	down.fail.Store(true)
	if _, err := NewJWTVerifier(ctx, JWTConfig{JWKSURL: down.URL, Issuer: testIssuer, Audience: testAudience}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("IdP down at start: %v, want ErrUnavailable", err)
	}
	// A JWKS with only a symmetric key or a small RSA key has no usable key.
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, body := range map[string][]byte{
		"oct":      []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`),
		"rsa-1024": jwksJSON(t, testKey{"small", jose.RS256, small}),
		"not json": []byte("<html>"),
	} {
		path := filepath.Join(t.TempDir(), "jwks.json")
		os.WriteFile(path, body, 0o600)
		if _, err := NewJWTVerifier(ctx, JWTConfig{JWKSFile: path, Issuer: testIssuer, Audience: testAudience}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s JWKS: %v, want ErrUnavailable", name, err)
		}
	}
}

// TestJWTCache: a cached token still expires, and stops working CacheTTL
// after its key left the JWKS.
func TestJWTCache(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey, ecKey))
	v, clk := newVerifier(t, JWTConfig{JWKSURL: js.URL, ClockSkew: time.Minute, CacheTTL: 30 * time.Second, MinRefreshInterval: time.Second, RefreshInterval: 10 * time.Second})
	ctx := context.Background()
	short := sign(t, rsaKey, claims(map[string]any{"exp": t0.Add(40 * time.Second).Unix()}))
	p, err := v.Verify(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	p.Roles[0] = "admin" // the cache must not share the slice
	clk.advance(20 * time.Second)
	if p, err := v.Verify(ctx, short); err != nil || p.Roles[0] != "radiologist" {
		t.Fatalf("cached: %v %v", p.Roles, err)
	}
	clk.advance(81 * time.Second) // t0+101s > exp+skew
	wantUnauth(t, errOf(v.Verify(ctx, short)), "token expired")

	long := sign(t, ecKey, claims(map[string]any{"exp": t0.Add(time.Hour).Unix()}))
	if _, err := v.Verify(ctx, long); err != nil {
		t.Fatal(err)
	}
	js.set(jwksJSON(t, rsaKey)) // ec-1 withdrawn
	clk.advance(11 * time.Second)
	if _, err := v.Verify(ctx, long); err != nil {
		t.Fatalf("within CacheTTL: %v", err)
	}
	clk.advance(20 * time.Second)
	wantUnauth(t, errOf(v.Verify(ctx, long)), "unknown signing key")
}

// BenchmarkJWTVerify measures the per-request cost of a bearer JWT:
// signature verification (uncached) and a repeated token (cached).
func BenchmarkJWTVerify(b *testing.B) {
	testKeys(b)
	js := newJWKSServer(b, jwksJSON(b, rsaKey, ecKey))
	for _, cache := range []struct {
		name string
		ttl  time.Duration
	}{{"uncached", -1}, {"cached", time.Hour}} {
		v, _ := newVerifier(b, JWTConfig{JWKSURL: js.URL, RolesClaim: "realm_access.roles", CacheTTL: cache.ttl})
		for _, k := range []testKey{rsaKey, ecKey} {
			tok := sign(b, k, claims(map[string]any{"realm_access": map[string]any{"roles": []string{"radiologist", "auditor"}}}))
			b.Run(string(k.alg)+"/"+cache.name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
