package access

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dicomweb"
)

// failerTrail is a memTrail that also reports a sticky failure.
type failerTrail struct {
	*memTrail
	failed error
}

func (f failerTrail) Err() error { return f.failed }

// TestGuardDefersSTOWOutcome: an allowed STOW-RS is recorded once, after
// the handler, with the outcome it really had — never a success written
// at authorisation for an upload that then broke off.
func TestGuardDefersSTOWOutcome(t *testing.T) {
	f := newFixture(t)
	f.g.DeferOutcomes = true
	tech := f.token(t, "org-a", auth.RoleTechnologist)

	// The fake STOW handler notes the instances and answers status.
	type step struct {
		stored, failed int
		status         int  // 0: write nothing (the handler gave up)
		cancel         bool // the client went away during the handler
	}
	var cur step
	var cancelClient context.CancelFunc
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(f.trail.recs); n != 0 {
			t.Errorf("a record was written before the handler ran: %+v", f.trail.recs[n-1])
		}
		for i := 0; i < cur.stored; i++ {
			f.g.NoteInstance(r.Context(), true)
		}
		for i := 0; i < cur.failed; i++ {
			f.g.NoteInstance(r.Context(), false)
		}
		if cur.cancel {
			cancelClient()
		}
		if cur.status != 0 {
			w.WriteHeader(cur.status)
		}
	})
	srv, err := api.New(api.Config{Guard: f.g, Auditor: f.g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: []api.Route{{Method: "POST", Pattern: "/dicomweb/studies", Action: dicomweb.ActionStore, Handler: handler}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		step    step
		outcome audit.Outcome
		kind    string
		status  string
		stored  string
	}{
		{"all stored", step{stored: 2, status: 200}, audit.OutcomeSuccess, "", "200", "2"},
		{"partly stored", step{stored: 1, failed: 1, status: 202}, audit.OutcomeSuccess, "", "202", "1"},
		{"none stored", step{failed: 2, status: 409}, audit.OutcomeError, "none_stored", "409", "0"},
		{"client went away", step{stored: 1, status: 400, cancel: true}, audit.OutcomeError, "aborted", "400", "1"},
		{"handler gave up", step{stored: 1, failed: 1}, audit.OutcomeError, "incomplete", "200", "1"},
		{"server error", step{status: 500}, audit.OutcomeError, "server_error", "500", "0"},
	}
	for _, c := range cases {
		f.trail.recs = nil
		cur = c.step
		ctx, cancel := context.WithCancel(context.Background())
		cancelClient = cancel
		r := httptest.NewRequestWithContext(ctx, "POST", "/dicomweb/studies", strings.NewReader("x"))
		r.Header.Set("Authorization", "Bearer "+tech)
		r.Header.Set(HeaderPurposeOfUse, "TREAT")
		srv.ServeHTTP(httptest.NewRecorder(), r)
		cancel()
		if len(f.trail.recs) != 1 {
			t.Errorf("%s: %d records, want 1", c.name, len(f.trail.recs))
			continue
		}
		rec := f.trail.recs[0]
		if rec.Action != "instance:store" || rec.Outcome != c.outcome || rec.Detail["error_kind"] != c.kind ||
			rec.Detail["http_status"] != c.status || rec.Detail["instances"] != c.stored || rec.Detail["operation"] != "stow" ||
			rec.PolicyDecisionID == "" || rec.SubjectKind != "service" && rec.SubjectKind != "user" || rec.PurposeOfUse != "TREAT" ||
			rec.Detail["duration_ms"] == "" || rec.Organisation != "org-a" {
			t.Errorf("%s: record %+v", c.name, rec)
		}
	}
	if len(f.g.pending) != 0 {
		t.Errorf("%d outcomes still pending", len(f.g.pending))
	}

	// Refusals are still recorded at once, and a failed trail refuses the
	// upload before anything is stored, as an Append error would.
	f.trail.recs = nil
	if _, err := f.authorize("POST", "/dicomweb/studies", dicomweb.ActionStore, "/dicomweb/studies", f.token(t, "org-a", auth.RoleAuditor), nil); err == nil ||
		len(f.trail.recs) != 1 || f.trail.recs[0].Outcome != audit.OutcomeDenied {
		t.Errorf("auditor STOW: %v, records %+v", err, f.trail.recs)
	}
	f.g.Trail = failerTrail{memTrail: f.trail, failed: audit.ErrFailed}
	if _, err := f.authorize("POST", "/dicomweb/studies", dicomweb.ActionStore, "/dicomweb/studies", tech, nil); err == nil || !strings.Contains(err.Error(), "trail failed") {
		t.Errorf("STOW with a failed trail: %v, want refused", err)
	}
	if len(f.g.pending) != 0 {
		t.Errorf("a refused request left a pending outcome")
	}
}
