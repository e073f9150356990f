package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/tlsconfig"
)

func TestHTTPAuthenticator(t *testing.T) {
	testKeys(t)
	js := newJWKSServer(t, jwksJSON(t, rsaKey))
	v, _ := newVerifier(t, JWTConfig{JWKSURL: js.URL})
	s, _ := openStore(t)
	tok, info, err := s.Create(context.Background(), TokenSpec{Roles: []string{RoleAIService}})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tlsconfig.GenerateDev(t.TempDir(), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := NewPeerMapper(PeerConfig{Certificates: map[string]Identity{"radflow-dev-client": {Roles: []string{RoleAIService}, Organisation: "lab"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := &HTTPAuthenticator{JWT: v, Tokens: s, Certs: pm}
	jwtTok := sign(t, rsaKey, claims(nil))

	req := func(h ...string) *http.Request {
		r := httptest.NewRequest("GET", "/dicomweb/studies", nil)
		for _, v := range h {
			r.Header.Add("Authorization", v)
		}
		return r
	}
	p, err := a.Authenticate(req("Bearer " + jwtTok))
	if err != nil || p.AuthMethod != MethodJWT || p.ID != "user-42" {
		t.Fatalf("JWT: %+v %v", p, err)
	}
	p, err = a.Authenticate(req("bearer  " + tok))
	if err != nil || p.AuthMethod != MethodToken || p.ID != info.ID {
		t.Fatalf("API token: %+v %v", p, err)
	}
	for _, tc := range []struct {
		name   string
		r      *http.Request
		reason string
	}{
		{"no header", req(), "missing credentials"},
		{"basic", req("Basic dXNlcjpwdw=="), "unsupported authorization scheme"},
		{"empty bearer", req("Bearer "), "unsupported authorization scheme"},
		{"two headers", req("Bearer "+tok, "Bearer "+jwtTok), "more than one"},
		{"wrong token", req("Bearer rf_" + strings.Repeat("A", 43)), "unknown token"},
		{"bad jwt", req("Bearer " + jwtTok[:len(jwtTok)-4] + "AAAA"), "invalid signature"},
		{"query token ignored", httptest.NewRequest("GET", "/x?access_token="+url.QueryEscape(tok), nil), "missing credentials"},
	} {
		_, err := a.Authenticate(tc.r)
		wantUnauth(t, err, tc.reason)
		if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), jwtTok[:30]) {
			t.Errorf("%s: error contains the credential", tc.name)
		}
	}
	if c := Challenge(errOf(a.Authenticate(req()))); c != `Bearer realm="radflow"` {
		t.Errorf("challenge without credentials: %s", c)
	}
	if c := Challenge(errOf(a.Authenticate(req("Bearer rf_" + strings.Repeat("A", 43))))); !strings.Contains(c, `error="invalid_token"`) {
		t.Errorf("challenge for a bad token: %s", c)
	}

	// Mutual TLS on HTTPS: the verified client certificate authenticates.
	leaf := loadLeaf(t, dev.ClientCert)
	r := req()
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	p, err = a.Authenticate(r)
	if err != nil || p.AuthMethod != MethodTLS || p.ID != "radflow-dev-client" || p.Kind != KindService || p.Organisation != "lab" {
		t.Fatalf("client certificate: %+v %v", p, err)
	}
	// Unverified peer certificates are not used.
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	wantUnauth(t, errOf(a.Authenticate(r)), "missing credentials")

	// Mechanisms not configured.
	wantUnauth(t, errOf((&HTTPAuthenticator{Tokens: s}).Authenticate(req("Bearer "+jwtTok))), "JWT authentication is not configured")
	wantUnauth(t, errOf((&HTTPAuthenticator{JWT: v}).Authenticate(req("Bearer "+tok))), "API tokens are not configured")
}

func loadLeaf(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPeerMapper(t *testing.T) {
	dev, err := tlsconfig.GenerateDev(t.TempDir(), tlsconfig.DevOptions{ClientCN: "ct-scanner-1"})
	if err != nil {
		t.Fatal(err)
	}
	cert := loadLeaf(t, dev.ClientCert)
	cfg := PeerConfig{
		Certificates: map[string]Identity{"ct-scanner-1": {ID: "ct1", Roles: []string{RoleTechnologist}, Organisation: "hospital-a", AETitles: []string{"CT1"}}},
		AETitles:     map[string]Identity{"PACS": {Roles: []string{RoleAIService}, Organisation: "hospital-b"}},
	}
	m, err := NewPeerMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.AssociationPrincipal("CT1", cert)
	if err != nil || p.ID != "ct1" || p.Kind != KindAE || p.AuthMethod != MethodTLS || p.AETitle != "CT1" || p.Organisation != "hospital-a" || !slices.Equal(p.Roles, []string{RoleTechnologist}) {
		t.Fatalf("certificate identity: %+v %v", p, err)
	}
	wantUnauth(t, errOf(m.AssociationPrincipal("PACS", cert)), "calling AE title not allowed")
	p, err = m.AssociationPrincipal("PACS ", nil)
	if err != nil || p.ID != "PACS" || p.AuthMethod != MethodAE || p.Organisation != "hospital-b" {
		t.Fatalf("AE identity: %+v %v", p, err)
	}
	wantUnauth(t, errOf(m.AssociationPrincipal("UNKNOWN", nil)), "unknown calling AE title")

	other, _ := tlsconfig.GenerateDev(t.TempDir(), tlsconfig.DevOptions{ClientCN: "someone-else"})
	wantUnauth(t, errOf(m.AssociationPrincipal("CT1", loadLeaf(t, other.ClientCert))), "not mapped")

	cfg.DefaultAE = &Identity{Roles: []string{RoleTechnologist}}
	cfg.RequireCertificate = false
	m, _ = NewPeerMapper(cfg)
	if p, err := m.AssociationPrincipal("US3", nil); err != nil || p.ID != "US3" || p.AETitle != "US3" || !p.HasRole(RoleTechnologist) {
		t.Fatalf("default AE: %+v %v", p, err)
	}
	cfg.RequireCertificate = true
	m, _ = NewPeerMapper(cfg)
	wantUnauth(t, errOf(m.AssociationPrincipal("PACS", nil)), "client certificate required")

	// Map by SAN (the server certificate's DNS name).
	m, _ = NewPeerMapper(PeerConfig{Certificates: map[string]Identity{"localhost": {Roles: []string{RoleAdmin}}}})
	if p, err := m.CertificatePrincipal(loadLeaf(t, dev.ServerCert)); err != nil || p.ID != "localhost" {
		t.Fatalf("SAN mapping: %+v %v", p, err)
	}

	for name, bad := range map[string]PeerConfig{
		"no roles":     {AETitles: map[string]Identity{"CT1": {}}},
		"long AE":      {AETitles: map[string]Identity{"ABCDEFGHIJKLMNOPQ": {Roles: []string{"x"}}}},
		"cert bad AE":  {Certificates: map[string]Identity{"c": {Roles: []string{"x"}, AETitles: []string{"A\\B"}}}},
		"default bare": {DefaultAE: &Identity{}},
	} {
		if _, err := NewPeerMapper(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// TestDIMSEMutualTLSIdentity runs the DIMSE SCP with mutual TLS, refuses
// associations whose certificate or AE title maps to no identity, and
// hands the handler the mapped Principal.
func TestDIMSEMutualTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	dev, err := tlsconfig.GenerateDev(dir, tlsconfig.DevOptions{ClientCN: "ct-scanner-1"})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: dev.ServerCert, KeyFile: dev.ServerKey, ClientCAFile: dev.CACert, ClientAuth: tlsconfig.ClientAuthRequire})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := NewPeerMapper(PeerConfig{Certificates: map[string]Identity{"ct-scanner-1": {Roles: []string{RoleTechnologist}, Organisation: "hospital-a", AETitles: []string{"CT1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Principal
	handler := dimse.StoreHandlerFunc(func(ctx context.Context, req *dimse.StoreRequest) (uint16, error) {
		p, err := pm.AssociationPrincipal(req.CallingAETitle, req.PeerCertificate)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		return dimse.StatusSuccess, nil
	})
	srv, err := dimse.NewServer(dimse.Config{
		TLSConfig: srvTLS, TempDir: dir, AssociationTimeout: 3 * time.Second,
		AcceptAssociation: func(ai dimse.AssociationInfo) error {
			_, err := pm.AssociationPrincipal(ai.CallingAETitle, ai.PeerCertificate)
			return err
		},
	}, handler)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := l.Addr().String()
	ctx := context.Background()
	pcs := []dimse.PresentationContext{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}
	withCert, _ := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: dev.CACert, CertFile: dev.ClientCert, KeyFile: dev.ClientKey})
	noCert, _ := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: dev.CACert})

	if cl, err := dimse.Dial(ctx, addr, dimse.ClientConfig{CallingAETitle: "CT1", TLSConfig: noCert, AssociationTimeout: 3 * time.Second}, pcs); err == nil {
		cl.Abort()
		t.Fatal("association without a client certificate accepted")
	}
	var rj *dimse.RejectError
	if _, err := dimse.Dial(ctx, addr, dimse.ClientConfig{CallingAETitle: "MR9", TLSConfig: withCert}, pcs); !errors.As(err, &rj) || rj.Reason != 3 {
		t.Fatalf("certificate speaking as another AE: %v, want rejection reason 3", err)
	}
	cl, err := dimse.Dial(ctx, addr, dimse.ClientConfig{CallingAETitle: "CT1", TLSConfig: withCert}, pcs)
	if err != nil {
		t.Fatal(err)
	}
	ds := bytes.Repeat([]byte{1, 2, 3, 4}, 256)
	if st, err := cl.Store(ctx, pcs[0].AbstractSyntax, "1.2.826.0.1.3680043.8.498.7", dimse.ExplicitVRLittleEndian, bytes.NewReader(ds), int64(len(ds))); err != nil || st != dimse.StatusSuccess {
		t.Fatalf("C-STORE: 0x%04X %v", st, err)
	}
	cl.Release(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ID != "ct-scanner-1" || got[0].AuthMethod != MethodTLS || got[0].AETitle != "CT1" || got[0].Organisation != "hospital-a" || !got[0].HasRole(RoleTechnologist) {
		t.Fatalf("principals %+v", got)
	}
}
