package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
)

func TestTokensCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	if rc := runTokens([]string{"create", "--data", data, "--role", "ai_service", "--role", "technologist", "--org", "hospital-a", "--name", "forwarder", "--expires", "24h"}, &out, &errb); rc != 0 {
		t.Fatalf("create: rc %d\n%s", rc, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, auth.TokenPrefix) {
		t.Fatalf("create printed %d chars, want an rf_ token", len(tok))
	}
	ctx := context.Background()
	check := func() (auth.Principal, error) {
		s, err := auth.OpenTokenStore(ctx, filepath.Join(data, "auth.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Authenticate(ctx, tok)
	}
	p, err := check()
	if err != nil || !p.HasRole("ai_service") || !p.HasRole("technologist") || p.Organisation != "hospital-a" || p.Expires.IsZero() {
		t.Fatalf("created token: %+v %v", p, err)
	}
	out.Reset()
	if rc := runTokens([]string{"list", "--data", data}, &out, &errb); rc != 0 {
		t.Fatal("list failed")
	}
	if !strings.Contains(out.String(), p.ID) || !strings.Contains(out.String(), "forwarder") || strings.Contains(out.String(), tok) {
		t.Fatalf("list output:\n%s", out.String())
	}
	out.Reset()
	if rc := runTokens([]string{"revoke", "--data", data, p.ID}, &out, &errb); rc != 0 {
		t.Fatalf("revoke: %s", errb.String())
	}
	if _, err := check(); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("after revoke: %v", err)
	}
	if rc := runTokens([]string{"revoke", "--data", data, "tok_missing"}, &out, &errb); rc != 1 {
		t.Fatalf("revoke unknown: rc %d", rc)
	}
	if rc := runTokens([]string{"create", "--data", data, "--role", "superuser"}, &out, &errb); rc != 2 {
		t.Fatalf("unknown role: rc %d", rc)
	}
	if rc := runTokens([]string{"create", "--data", data}, &out, &errb); rc != 2 {
		t.Fatalf("no role: rc %d", rc)
	}
	if rc := runTokens([]string{"frobnicate"}, &out, &errb); rc != 2 {
		t.Fatalf("unknown subcommand: rc %d", rc)
	}
	if fi, err := os.Stat(filepath.Join(data, "auth.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth.db mode: %v %v", fi.Mode().Perm(), err)
	}
}

// adminRecords returns the records of data's admin trail other than
// audit:started, after checking that the whole trail verifies, and the
// trail's raw bytes.
func adminRecords(t *testing.T, data string) ([]audit.Record, []byte) {
	t.Helper()
	_, keyFile := audit.Paths(data)
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	if _, err := audit.Scan(adminAuditDir(data), key, func(r audit.Record) error {
		if r.Action != audit.ActionAuditStarted {
			recs = append(recs, r)
		}
		return nil
	}); err != nil {
		t.Fatalf("admin trail: %v", err)
	}
	var raw []byte
	segs, _ := filepath.Glob(filepath.Join(adminAuditDir(data), "audit-*.jsonl"))
	for _, s := range segs {
		b, _ := os.ReadFile(s)
		raw = append(raw, b...)
	}
	return recs, raw
}

// TestTokensAudited: create and revoke each leave one verifiable
// admin:tokens record (OS user, operation, token id, roles, outcome) in
// <data>/admin/audit that holds no part of the token; audit verify reports
// the admin trail next to the main one.
func TestTokensAudited(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	rc, out, errs := runCLI("tokens", "create", "--data", data, "--role", "ai_service", "--role", "technologist", "--org", "hospital-a")
	if rc != 0 {
		t.Fatalf("create: rc %d %s", rc, errs)
	}
	tok := strings.TrimSpace(out)
	rc, out, errs = runCLI("tokens", "list", "--data", data)
	id := regexp.MustCompile(`tok_[0-9a-f]{16}`).FindString(out)
	if rc != 0 || id == "" {
		t.Fatalf("list: rc %d %q %s", rc, out, errs)
	}
	if rc, _, errs := runCLI("tokens", "revoke", "--data", data, id); rc != 0 {
		t.Fatalf("revoke: rc %d %s", rc, errs)
	}
	// Revoking by the token itself is refused without echoing it, and
	// without a record (it names no token id).
	if rc, out, errs := runCLI("tokens", "revoke", "--data", data, tok); rc != 2 || strings.Contains(out+errs, tok) {
		t.Fatalf("revoke by token: rc %d out %q err %q", rc, out, errs)
	}
	if rc, _, _ := runCLI("tokens", "revoke", "--data", data, "tok_missing"); rc != 1 {
		t.Fatalf("revoke unknown: rc %d", rc)
	}
	recs, raw := adminRecords(t, data)
	if len(recs) != 3 {
		t.Fatalf("%d admin records, want 3 (create, revoke, failed revoke): %+v", len(recs), recs)
	}
	want := []struct {
		op, id  string
		outcome audit.Outcome
		errKind string
	}{{"create", id, audit.OutcomeSuccess, ""}, {"revoke", id, audit.OutcomeSuccess, ""}, {"revoke", "tok_missing", audit.OutcomeError, "not_found"}}
	for i, r := range recs {
		w := want[i]
		if r.Action != "admin:tokens" || r.SubjectID != osUser() || r.SubjectKind != audit.KindUser || r.Protocol != audit.ProtocolCLI ||
			r.Resource.Type != "system" || r.Outcome != w.outcome || r.Detail["operation"] != w.op || r.Detail["token_id"] != w.id ||
			r.Detail["error_kind"] != w.errKind {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	if recs[0].Detail["granted_roles"] != "ai_service,technologist" {
		t.Errorf("create roles: %q", recs[0].Detail["granted_roles"])
	}
	secret := strings.TrimPrefix(tok, auth.TokenPrefix)
	if len(secret) != 43 || bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(secret[:16])) {
		t.Fatal("the admin trail holds the token")
	}
	// verify: the main trail has no key-created records here (serve never
	// ran), so check the admin trail alone, then next to a main trail.
	rc, out, errs = runCLI("audit", "verify", "--data", data, "--trail", "admin")
	if rc != 0 || !regexp.MustCompile(`^ok: 6 records, last hash [0-9a-f]{64} \(seq 6, 1 segment files\)\n$`).MatchString(out) {
		t.Fatalf("verify --trail admin: rc %d out %q err %q", rc, out, errs)
	}
	// export reads the admin trail with --trail admin: the create record
	// as a User Security Attributes Changed AuditEvent.
	rc, out, errs = runCLI("audit", "export", "--data", data, "--trail", "admin", "--format", "fhir")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); rc != 0 || len(lines) != 6 || !strings.Contains(lines[1], "110137") ||
		!strings.Contains(lines[1], "token_id="+id) || strings.Contains(out, secret[:16]) {
		t.Fatalf("export --trail admin: rc %d err %q out %q", rc, errs, out)
	}
	main := auditData(t, 2)
	if rc, _, errs := runCLI("tokens", "create", "--data", main, "--role", "auditor"); rc != 0 {
		t.Fatalf("create: %s", errs)
	}
	rc, out, _ = runCLI("audit", "verify", "--data", main)
	if rc != 0 || !regexp.MustCompile(`^ok: 2 records, .*\nadmin trail .*admin/audit: ok: 2 records, last hash [0-9a-f]{64} \(seq 2, 1 segment files\)\n$`).MatchString(out) {
		t.Fatalf("verify: rc %d out %q", rc, out)
	}
	// An edited admin record fails verify (exit 1) though the main trail is fine.
	seg := filepath.Join(adminAuditDir(main), "audit-000001.jsonl")
	b, _ := os.ReadFile(seg)
	os.WriteFile(seg, bytes.Replace(b, []byte(`"auditor"`), []byte(`"admin__"`), 1), 0o600)
	rc, out, _ = runCLI("audit", "verify", "--data", main)
	if rc != 1 || !strings.HasPrefix(out, "ok: 2 records") || !strings.Contains(out, "admin/audit: FAILED after 1 good records: audit: modified at audit-000001.jsonl:2") {
		t.Fatalf("verify edited admin trail: rc %d out %q", rc, out)
	}
	if rc, _, _ := runCLI("audit", "verify", "--data", main, "--trail", "nope"); rc != 2 {
		t.Fatalf("--trail nope: rc %d", rc)
	}
}

// TestTokensCreateAuditFails: when the admin trail cannot be opened (its
// directory is a file) create fails and no token exists; when the record
// cannot be written after the token was made, create fails, prints no
// token and leaves it revoked.
func TestTokensCreateAuditFails(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(data, 0o700)
	if err := os.WriteFile(filepath.Join(data, "admin"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, out, errs := runCLI("tokens", "create", "--data", data, "--role", "admin")
	if rc != 1 || out != "" || !strings.Contains(errs, "nothing changed") {
		t.Fatalf("unwritable trail: rc %d out %q err %q", rc, out, errs)
	}
	list := func() []auth.TokenInfo {
		s, err := auth.OpenTokenStore(ctx, filepath.Join(data, "auth.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		l, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := list(); len(l) != 0 {
		t.Fatalf("tokens after a failed create: %+v", l)
	}
	os.Remove(filepath.Join(data, "admin"))
	adminAuditFault = errors.New("injected: disk full")
	t.Cleanup(func() { adminAuditFault = nil })
	rc, out, errs = runCLI("tokens", "create", "--data", data, "--role", "admin")
	if rc != 1 || out != "" || !strings.Contains(errs, "revoked again") {
		t.Fatalf("failing record: rc %d out %q err %q", rc, out, errs)
	}
	if l := list(); len(l) != 1 || l[0].RevokedAt.IsZero() {
		t.Fatalf("tokens after a failed record: %+v", l)
	}
}
