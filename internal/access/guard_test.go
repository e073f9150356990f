package access

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/policy"
)

// memTrail is an Appender that keeps records (or fails).
type memTrail struct {
	mu   sync.Mutex
	recs []audit.Record
	err  error
}

func (m *memTrail) Append(_ context.Context, r audit.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.recs = append(m.recs, r)
	return nil
}

type fixture struct {
	g      *Guard
	trail  *memTrail
	tokens *auth.TokenStore
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ts, err := auth.OpenTokenStore(context.Background(), filepath.Join(tb.TempDir(), "auth.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ts.Close() })
	eng, err := policy.New(policy.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	tr := &memTrail{}
	return &fixture{g: &Guard{Authn: &auth.HTTPAuthenticator{Tokens: ts}, Policy: eng, Trail: tr}, trail: tr, tokens: ts}
}

func (f *fixture) token(tb testing.TB, org string, roles ...string) string {
	tb.Helper()
	tok, _, err := f.tokens.Create(context.Background(), auth.TokenSpec{Roles: roles, Organisation: org})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// authorize routes a request through a ServeMux (so Pattern and path
// values are set) and returns what the guard answered.
func (f *fixture) authorize(method, pattern, action, url, token string, hdr map[string]string) (api.Principal, error) {
	var p api.Principal
	var err error
	mux := http.NewServeMux()
	mux.HandleFunc(method+" "+pattern, func(w http.ResponseWriter, r *http.Request) { p, err = f.g.Authorize(r, action, r.URL.Path) })
	r := httptest.NewRequest(method, url, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	mux.ServeHTTP(httptest.NewRecorder(), r)
	return p, err
}

func TestGuardDecisionsAndRecords(t *testing.T) {
	f := newFixture(t)
	rad := f.token(t, "org-a", auth.RoleRadiologist, "default-roles-radflow")
	const pat, study = "/dicomweb/studies/{study}/series", "1.2.840.1.2"

	p, err := f.authorize("GET", pat, dicomweb.ActionSearch, "/dicomweb/studies/"+study+"/series", rad, nil)
	if err != nil || p.DecisionID == "" || p.Organisation != "org-a" || p.AuthMethod != "token" {
		t.Fatalf("radiologist: %+v %v", p, err)
	}
	r := f.trail.recs[len(f.trail.recs)-1]
	if r.Outcome != audit.OutcomeSuccess || r.Resource.StudyInstanceUID != study || r.PolicyDecisionID != p.DecisionID ||
		len(r.Roles) != 1 || r.Detail["operation"] != "qido" {
		t.Errorf("record: %+v", r)
	}
	// Not a UID in the path: no UID in the record, the handler answers 400.
	if _, err := f.authorize("GET", pat, dicomweb.ActionSearch, "/dicomweb/studies/..%2f..%2fetc/series", rad, nil); err != nil {
		t.Errorf("non-UID study: %v", err)
	}
	if r := f.trail.recs[len(f.trail.recs)-1]; r.Resource.StudyInstanceUID != "" {
		t.Errorf("non-UID recorded: %+v", r)
	}
	// Models are not PHI: allowed for the radiologist, not recorded.
	n := len(f.trail.recs)
	if _, err := f.authorize("GET", "/api/v1/models", api.ActionModelsRead, "/api/v1/models", rad, nil); err != nil || len(f.trail.recs) != n {
		t.Errorf("models: %v, %d new records", err, len(f.trail.recs)-n)
	}
	// Liveness: anonymous, no record.
	if p, err := f.authorize("GET", "/healthz", api.ActionHealth, "/healthz", "", nil); err != nil || !p.Anonymous || len(f.trail.recs) != n {
		t.Errorf("healthz: %+v %v", p, err)
	}
	// Unmapped action: refused.
	if _, err := f.authorize("GET", "/x", "export.bogus", "/x", rad, nil); err == nil || errors.Is(err, api.ErrForbidden) {
		t.Errorf("unmapped action: %v", err)
	}
	// 401 with challenge.
	_, err = f.authorize("GET", pat, dicomweb.ActionSearch, "/dicomweb/studies/"+study+"/series", "rf_bogusbogusbogusbogusbogusbogusbogusbogusbogus", nil)
	var ch api.Challenger
	if !errors.Is(err, api.ErrUnauthenticated) || !errors.As(err, &ch) || ch.WWWAuthenticate() != `Bearer realm="radflow", error="invalid_token"` {
		t.Errorf("bad token: %v", err)
	}
	// A failing trail fails the request (not as 401/403).
	f.trail.err = audit.ErrClosed
	if _, err := f.authorize("GET", pat, dicomweb.ActionSearch, "/dicomweb/studies/"+study+"/series", rad, nil); err == nil ||
		errors.Is(err, api.ErrForbidden) || errors.Is(err, api.ErrUnauthenticated) || !errors.Is(err, audit.ErrClosed) {
		t.Errorf("failing trail: %v", err)
	}
}

// BenchmarkGuard measures one Authorize: API token lookup (SQLite),
// policy decision (OPA), and, for PHI actions, the audit record. The
// audit sub-benchmarks append to a real trail (write + fsync, group
// commit), in the benchmark's temporary directory.
func BenchmarkGuard(b *testing.B) {
	f := newFixture(b)
	rad := f.token(b, "org-a", auth.RoleRadiologist)
	key := make([]byte, audit.KeySize)
	trail, err := audit.Open(audit.Config{Dir: filepath.Join(b.TempDir(), "audit"), Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer trail.Close()
	mux := http.NewServeMux()
	var g *Guard
	mux.HandleFunc("GET /dicomweb/studies/{study}/series", func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.Authorize(r, dicomweb.ActionSearch, r.URL.Path); err != nil {
			b.Fatal(err)
		}
	})
	mux.HandleFunc("GET /api/v1/models", func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.Authorize(r, api.ActionModelsRead, r.URL.Path); err != nil {
			b.Fatal(err)
		}
	})
	run := func(b *testing.B, url string, parallel bool) {
		req := httptest.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+rad)
		b.ReportAllocs()
		if !parallel {
			for b.Loop() {
				mux.ServeHTTP(httptest.NewRecorder(), req)
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mux.ServeHTTP(httptest.NewRecorder(), req.Clone(context.Background()))
			}
		})
	}
	b.Run("authn", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/api/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+rad)
		for b.Loop() {
			if _, err := f.g.Authn.Authenticate(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authn+policy/model:read", func(b *testing.B) {
		g = f.g
		run(b, "/api/v1/models", false)
	})
	b.Run("authn+policy+memaudit/study:read", func(b *testing.B) {
		g = f.g
		run(b, "/dicomweb/studies/1.2.840.1.2/series", false)
	})
	b.Run("authn+policy+trail/study:read", func(b *testing.B) {
		g = &Guard{Authn: f.g.Authn, Policy: f.g.Policy, Trail: trail}
		run(b, "/dicomweb/studies/1.2.840.1.2/series", false)
	})
	b.Run("authn+policy+trail/study:read/parallel8", func(b *testing.B) {
		g = &Guard{Authn: f.g.Authn, Policy: f.g.Policy, Trail: trail}
		b.SetParallelism(8)
		run(b, "/dicomweb/studies/1.2.840.1.2/series", true)
	})
}
