package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/service"
)

// The NIH chest radiograph of the shared data, stored by STOW-RS.
const (
	jwtChestFile  = "nhsx-nih-chestxray/1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"
	jwtChestSOP   = "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888"
	jwtChestStudy = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708"
	jwtIssuer     = "https://idp.test/realms/radflow"
	jwtAudience   = "radflow-e2e"
)

// jwtKey is a test identity provider's signing key.
type jwtKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// newJWTKeys generates an RSA 2048 (RS256) and an EC P-256 (ES256) key.
func newJWTKeys(t *testing.T) (rsaKey, ecKey jwtKey) {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jwtKey{"rsa-e2e", jose.RS256, r}, jwtKey{"ec-e2e", jose.ES256, e}
}

// jwtJWKS is the public JSON Web Key Set of keys.
func jwtJWKS(t *testing.T, keys ...jwtKey) []byte {
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

// signJWT returns the compact JWS of claims signed with k.
func signJWT(t *testing.T, k jwtKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwtClaims are valid standard claims (iss, aud, sub, iat, exp in 10 min)
// plus extra.
func jwtClaims(sub string, extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": jwtIssuer, "aud": []string{jwtAudience}, "sub": sub, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// jwtService parses `radflow serve` flags (loopback listeners on free
// ports, no inference workers, data in a temporary directory) plus extra,
// and starts the service in process; it is shut down at the end of t.
func jwtService(t *testing.T, extra ...string) (*service.Service, string) {
	t.Helper()
	t.Setenv("RADFLOW_ADMIN_TOKEN", "")
	t.Setenv("RADFLOW_KEK", "")
	data := filepath.Join(t.TempDir(), "data")
	args := append([]string{"--data", data, "--http", "127.0.0.1:0", "--dicom", "127.0.0.1:0", "--workers", "0", "--min-free-disk", "0"}, extra...)
	cfg, _, err := parseServe(args, io.Discard)
	if err != nil {
		t.Fatalf("radflow serve %v: %v", args, err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	s, err := service.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, data
}

// jwtCall sends method path to s with a bearer JWT (none when "") and
// returns the status, the response headers and the body.
func jwtCall(t *testing.T, s *service.Service, method, path, jwt string, body []byte, ctype string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if jwt != "" {
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Accept", "application/dicom+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// stowJWT stores one Part 10 file by STOW-RS as jwt; returns the status.
func stowJWT(t *testing.T, s *service.Service, jwt string, dcm []byte) int {
	t.Helper()
	const boundary = "radflow-jwt-e2e"
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
	b.Write(dcm)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	code, _, _ := jwtCall(t, s, "POST", "/dicomweb/studies", jwt, b.Bytes(), `multipart/related; type="application/dicom"; boundary=`+boundary)
	return code
}

// jwtStudyUIDs runs QIDO-RS GET /dicomweb/studies as jwt and returns the
// Study Instance UIDs (0020000D) found; the status must be 200.
func jwtStudyUIDs(t *testing.T, s *service.Service, jwt string) []string {
	t.Helper()
	code, _, body := jwtCall(t, s, "GET", "/dicomweb/studies", jwt, nil, "")
	if code != 200 && code != 204 {
		t.Fatalf("QIDO /studies: HTTP %d %s", code, body)
	}
	var rows []map[string]struct {
		Value []any `json:"Value"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &rows); err != nil {
			t.Fatalf("QIDO /studies: %v: %s", err, body)
		}
	}
	var out []string
	for _, r := range rows {
		if v := r["0020000D"].Value; len(v) == 1 {
			out = append(out, fmt.Sprint(v[0]))
		}
	}
	return out
}

// jwtTrail returns every record of the audit trail in data (verified).
func jwtTrail(t *testing.T, data string) []audit.Record {
	t.Helper()
	waitOutboxEmpty(t, data)
	dir, keyFile := audit.Paths(data)
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	if _, err := audit.Scan(dir, key, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("audit trail does not verify: %v", err)
	}
	return out
}

// waitOutboxEmpty waits until the records of stored instances, staged
// with their rows, have been moved into the trail (the mover runs within
// about 50 ms of each store).
func waitOutboxEmpty(t *testing.T, data string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "radflow.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM audit_outbox`).Scan(&n); err != nil {
			t.Fatalf("audit outbox: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit records still staged after 15 s", n)
		}
	}
}

// jwtLastRec returns the last record of the trail in data matching f.
func jwtLastRec(t *testing.T, data string, f func(audit.Record) bool) audit.Record {
	t.Helper()
	rs := jwtTrail(t, data)
	for i := len(rs) - 1; i >= 0; i-- {
		if f(rs[i]) {
			return rs[i]
		}
	}
	t.Fatalf("no matching audit record among %d", len(rs))
	return audit.Record{}
}

// jwtChest reads the shared NIH chest radiograph, skipping without it.
func jwtChest(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDICOM, jwtChestFile))
	if err != nil {
		t.Skipf("shared DICOM data absent (%v): lay out /work/shared beside the repository", err)
	}
	return b
}

// TestServeJWTFromJWKSURL drives identity-provider JWTs through a running
// service configured as `radflow serve --jwks-url URL --jwt-issuer ISS
// --jwt-audience AUD` over real sockets, the JWKS (an RSA and an EC P-256
// key) served by httptest: a radiologist's RS256 token is refused STOW-RS
// (403, a denied record with the policy decision) while a technologist's
// ES256 token of hospital-a stores the radiograph; the radiologist then
// finds it with QIDO-RS and reads results; a wrong audience and an expired
// token are 401 with WWW-Authenticate and an unauthenticated record; a
// referring physician sees the study only from its own organisation.
func TestServeJWTFromJWKSURL(t *testing.T) {
	chest := jwtChest(t)
	rsaKey, ecKey := newJWTKeys(t)
	set := jwtJWKS(t, rsaKey, ecKey)
	var fetches atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(set)
	}))
	defer idp.Close()
	s, data := jwtService(t, "--jwks-url", idp.URL+"/protocol/openid-connect/certs", "--jwt-issuer", jwtIssuer, "--jwt-audience", jwtAudience)
	if fetches.Load() == 0 {
		t.Fatal("the service started without fetching the JWKS")
	}

	radiologist := signJWT(t, rsaKey, jwtClaims("dr-rad", map[string]any{"roles": []string{"radiologist"}, "organisation": "hospital-a"}))
	tech := signJWT(t, ecKey, jwtClaims("tech-1", map[string]any{"roles": []string{"technologist"}, "organisation": "hospital-a"}))

	// A radiologist may not store: 403, recorded with the decision, nothing stored.
	if code := stowJWT(t, s, radiologist, chest); code != 403 {
		t.Fatalf("radiologist STOW-RS: HTTP %d, want 403", code)
	}
	r := jwtLastRec(t, data, func(r audit.Record) bool { return r.Outcome == audit.OutcomeDenied })
	if r.Action != "instance:store" || r.PolicyDecisionID == "" || r.SubjectID != "dr-rad" || r.SubjectKind != "user" ||
		r.Detail["auth_method"] != "jwt" || r.Detail["reason"] != "policy_denied" || r.Detail["http_status"] != "403" ||
		len(r.Roles) != 1 || r.Roles[0] != "radiologist" || r.Organisation != "hospital-a" {
		t.Errorf("radiologist STOW-RS record: %+v", r)
	}
	if got := jwtStudyUIDs(t, s, radiologist); len(got) != 0 {
		t.Fatalf("after a refused STOW-RS QIDO finds %v", got)
	}

	// A technologist stores: 200 and a per-instance success record.
	if code := stowJWT(t, s, tech, chest); code != 200 {
		t.Fatalf("technologist STOW-RS: HTTP %d, want 200", code)
	}
	r = jwtLastRec(t, data, func(r audit.Record) bool { return r.Detail["operation"] == "stow-instance" })
	if r.Action != "instance:store" || r.Outcome != audit.OutcomeSuccess || r.SubjectID != "tech-1" || r.Detail["auth_method"] != "jwt" ||
		r.Resource.SOPInstanceUID != jwtChestSOP || r.Resource.StudyInstanceUID != jwtChestStudy || r.Organisation != "hospital-a" ||
		r.PolicyDecisionID == "" {
		t.Errorf("technologist STOW-RS instance record: %+v", r)
	}

	// The radiologist reads the study by QIDO-RS and the results API.
	if got := jwtStudyUIDs(t, s, radiologist); len(got) != 1 || got[0] != jwtChestStudy {
		t.Errorf("radiologist QIDO /studies: %v, want [%s]", got, jwtChestStudy)
	}
	code, _, body := jwtCall(t, s, "GET", "/dicomweb/studies/"+jwtChestStudy+"/series", radiologist, nil, "")
	if code != 200 || !strings.Contains(string(body), jwtChestStudy) {
		t.Errorf("radiologist QIDO series: HTTP %d %s", code, body)
	}
	code, _, body = jwtCall(t, s, "GET", "/api/v1/results?instance="+jwtChestSOP, radiologist, nil, "")
	// Without workers the stored radiograph's job stays queued.
	var results []struct {
		SOP    string `json:"sop_instance_uid"`
		Model  string `json:"model"`
		Status string `json:"status"`
	}
	if code != 200 || json.Unmarshal(body, &results) != nil || len(results) != 1 || results[0].SOP != jwtChestSOP ||
		results[0].Model != "chest-xray-pneumonia" || results[0].Status != "queued" {
		t.Errorf("radiologist /api/v1/results: HTTP %d %s", code, body)
	}
	r = jwtLastRec(t, data, func(r audit.Record) bool { return r.Action == "result:read" })
	if r.Outcome != audit.OutcomeSuccess || r.SubjectID != "dr-rad" || r.Resource.SOPInstanceUID != jwtChestSOP {
		t.Errorf("results read record: %+v", r)
	}

	// Wrong audience, expired, wrong issuer, unknown key: 401 + WWW-Authenticate + record.
	stranger, _ := newJWTKeys(t)
	bad := map[string]string{
		"wrong audience": signJWT(t, rsaKey, jwtClaims("dr-rad", map[string]any{"roles": []string{"radiologist"}, "aud": "another-app"})),
		"expired": signJWT(t, ecKey, jwtClaims("dr-rad", map[string]any{"roles": []string{"radiologist"},
			"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})),
		"wrong issuer": signJWT(t, rsaKey, jwtClaims("dr-rad", map[string]any{"roles": []string{"radiologist"}, "iss": "https://evil.test"})),
		"unknown key":  signJWT(t, stranger, jwtClaims("dr-rad", map[string]any{"roles": []string{"radiologist"}})),
	}
	for name, tok := range bad {
		before := len(jwtTrail(t, data))
		code, h, _ := jwtCall(t, s, "GET", "/api/v1/results?instance="+jwtChestSOP, tok, nil, "")
		if code != 401 || h.Get("WWW-Authenticate") != `Bearer realm="radflow", error="invalid_token"` {
			t.Errorf("%s: HTTP %d, WWW-Authenticate %q; want 401 invalid_token", name, code, h.Get("WWW-Authenticate"))
			continue
		}
		rs := jwtTrail(t, data)
		if len(rs) != before+1 {
			t.Errorf("%s: %d new audit records, want 1", name, len(rs)-before)
			continue
		}
		r := rs[len(rs)-1]
		if r.Action != audit.ActionAuthentication || r.Outcome != audit.OutcomeUnauthenticated || r.SubjectKind != audit.KindAnonymous ||
			r.SubjectID != "" || r.Detail["reason"] != "invalid_credentials" || r.Detail["http_status"] != "401" ||
			r.Resource.SOPInstanceUID != jwtChestSOP {
			t.Errorf("%s: record %+v", name, r)
		}
	}

	// Organisation claim: a referring physician sees only its organisation's studies.
	refA := signJWT(t, ecKey, jwtClaims("ref-a", map[string]any{"roles": []string{"referring_physician"}, "organisation": "hospital-a"}))
	refB := signJWT(t, rsaKey, jwtClaims("ref-b", map[string]any{"roles": []string{"referring_physician"}, "organisation": "hospital-b"}))
	series := "/dicomweb/studies/" + jwtChestStudy + "/series"
	if code, _, body := jwtCall(t, s, "GET", series, refA, nil, ""); code != 200 || !strings.Contains(string(body), jwtChestStudy) {
		t.Errorf("referring physician of hospital-a: HTTP %d %s", code, body)
	}
	if code, _, _ := jwtCall(t, s, "GET", series, refB, nil, ""); code != 403 {
		t.Errorf("referring physician of hospital-b: HTTP %d, want 403", code)
	}
	r = jwtLastRec(t, data, func(r audit.Record) bool { return r.Outcome == audit.OutcomeDenied })
	if r.SubjectID != "ref-b" || r.Organisation != "hospital-b" || r.Action != "study:read" || r.Resource.StudyInstanceUID != jwtChestStudy ||
		r.PolicyDecisionID == "" {
		t.Errorf("hospital-b denied record: %+v", r)
	}
	if a, b := jwtStudyUIDs(t, s, refA), jwtStudyUIDs(t, s, refB); len(a) != 1 || len(b) != 0 {
		t.Errorf("scoped QIDO /studies: hospital-a finds %v, hospital-b %v; want 1 and 0", a, b)
	}
}

// TestServeJWTFromJWKSFileNestedRoles: `radflow serve --jwks-file FILE
// --jwt-roles-claim realm_access.roles --jwt-org-claim tenant.org` (the
// Keycloak shape): roles and organisation are read from the nested
// claims, so a radiologist there reads studies while a token carrying the
// role only at the top-level "roles" claim is refused; a technologist
// stores with the nested claims and its study belongs to tenant.org.
func TestServeJWTFromJWKSFileNestedRoles(t *testing.T) {
	chest := jwtChest(t)
	rsaKey, ecKey := newJWTKeys(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwtJWKS(t, rsaKey, ecKey), 0o600); err != nil {
		t.Fatal(err)
	}
	s, data := jwtService(t, "--jwks-file", file, "--jwt-issuer", jwtIssuer, "--jwt-audience", jwtAudience,
		"--jwt-roles-claim", "realm_access.roles", "--jwt-org-claim", "tenant.org")

	nested := func(sub, org string, roles ...string) map[string]any {
		return jwtClaims(sub, map[string]any{"realm_access": map[string]any{"roles": append([]string{"default-roles-radflow"}, roles...)},
			"tenant": map[string]any{"org": org}})
	}
	tech := signJWT(t, rsaKey, nested("tech-n", "hospital-a", "technologist"))
	if code := stowJWT(t, s, tech, chest); code != 200 {
		t.Fatalf("technologist (realm_access.roles) STOW-RS: HTTP %d, want 200", code)
	}
	r := jwtLastRec(t, data, func(r audit.Record) bool { return r.Detail["operation"] == "stow-instance" })
	if r.Outcome != audit.OutcomeSuccess || r.SubjectID != "tech-n" || r.Organisation != "hospital-a" ||
		len(r.Roles) != 1 || r.Roles[0] != "technologist" { // default-roles-radflow is not a role name the trail keeps
		t.Errorf("nested-claims STOW-RS record: %+v", r)
	}

	rad := signJWT(t, ecKey, nested("rad-n", "hospital-a", "radiologist"))
	if got := jwtStudyUIDs(t, s, rad); len(got) != 1 || got[0] != jwtChestStudy {
		t.Errorf("radiologist (realm_access.roles) QIDO /studies: %v", got)
	}
	if code, _, _ := jwtCall(t, s, "GET", "/api/v1/results?instance="+jwtChestSOP, rad, nil, ""); code != 200 {
		t.Errorf("radiologist (realm_access.roles) /api/v1/results: HTTP %d", code)
	}
	flat := signJWT(t, ecKey, jwtClaims("rad-flat", map[string]any{"roles": []string{"radiologist"}}))
	if code, _, _ := jwtCall(t, s, "GET", "/dicomweb/studies/"+jwtChestStudy+"/series", flat, nil, ""); code != 403 {
		t.Errorf("role only in the top-level claim: HTTP %d, want 403 (roles are read from realm_access.roles)", code)
	}
	// tenant.org scopes referring physicians.
	refB := signJWT(t, rsaKey, nested("ref-b", "hospital-b", "referring_physician"))
	refA := signJWT(t, rsaKey, nested("ref-a", "hospital-a", "referring_physician"))
	if a, b := jwtStudyUIDs(t, s, refA), jwtStudyUIDs(t, s, refB); len(a) != 1 || len(b) != 0 {
		t.Errorf("tenant.org scoped QIDO /studies: hospital-a finds %v, hospital-b %v; want 1 and 0", a, b)
	}
}
