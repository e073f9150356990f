package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func openStore(t testing.TB) (*TokenStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := OpenTokenStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestTokenLifecycle(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }

	tok, info, err := s.Create(ctx, TokenSpec{Name: "pacs-forwarder", Roles: []string{RoleAIService, RoleTechnologist}, Organisation: "hospital-a", ExpiresAt: now.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+43 {
		t.Fatalf("token shape %d chars, prefix %q", len(tok), tok[:3])
	}
	p, err := s.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != info.ID || !strings.HasPrefix(p.ID, "tok_") || p.Kind != KindService || p.AuthMethod != MethodToken ||
		!slices.Equal(p.Roles, []string{RoleAIService, RoleTechnologist}) || p.Organisation != "hospital-a" || !p.Expires.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("principal %+v (info %+v)", p, info)
	}

	// Wrong token: one character changed; malformed; empty.
	last := "A"
	if tok[len(tok)-1] == 'A' {
		last = "B"
	}
	wrong := tok[:len(tok)-1] + last
	wantUnauth(t, errOf(s.Authenticate(ctx, wrong)), "unknown token")
	wantUnauth(t, errOf(s.Authenticate(ctx, "rf_short")), "malformed token")
	wantUnauth(t, errOf(s.Authenticate(ctx, strings.Repeat("x", 40)+" y")), "malformed token")

	// Expiry.
	now = now.Add(24 * time.Hour)
	wantUnauth(t, errOf(s.Authenticate(ctx, tok)), "token expired")
	now = now.Add(-time.Hour)
	if _, err := s.Authenticate(ctx, tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}

	// Revocation.
	if err := s.Revoke(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	wantUnauth(t, errOf(s.Authenticate(ctx, tok)), "token revoked")
	if err := s.Revoke(ctx, "tok_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking an unknown id: %v", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].RevokedAt.IsZero() || list[0].Name != "pacs-forwarder" {
		t.Fatalf("List: %+v %v", list, err)
	}
	if _, _, err := s.Create(ctx, TokenSpec{Name: "no roles"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("token without roles: %v", err)
	}
}

// TestTokensStoredHashed reads the database back (rows and file bytes)
// and finds only the SHA-256 of each token, never the token.
func TestTokensStoredHashed(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	var toks []string
	for range 3 {
		tok, _, err := s.Create(ctx, TokenSpec{Roles: []string{RoleAdmin}})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	seeded := "operator-chosen-secret-0123456789abcdef"
	if _, err := s.Bootstrap(ctx, seeded); err != nil {
		t.Fatal(err)
	}
	toks = append(toks, seeded)
	rows, err := s.db.QueryContext(ctx, `SELECT id, token_sha256, name, roles, organisation FROM auth_tokens`)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[[32]byte]bool{}
	for rows.Next() {
		var id, name, roles, org string
		var h []byte
		if err := rows.Scan(&id, &h, &name, &roles, &org); err != nil {
			t.Fatal(err)
		}
		hashes[[32]byte(h)] = true
		for _, tok := range toks {
			if strings.Contains(id+name+roles+org, tok) {
				t.Fatalf("row %s holds a token in plaintext", id)
			}
		}
	}
	rows.Close()
	for _, tok := range toks {
		if !hashes[sha256.Sum256([]byte(tok))] {
			t.Errorf("no row with the SHA-256 of a token")
		}
	}
	s.Close()
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[3:])) {
				t.Fatalf("%s contains a token in plaintext", filepath.Base(f))
			}
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	t.Run("first start generates one admin token", func(t *testing.T) {
		s, _ := openStore(t)
		tok, err := s.Bootstrap(ctx, "")
		if err != nil || tok == "" {
			t.Fatalf("Bootstrap: %q %v", tok, err)
		}
		p, err := s.Authenticate(ctx, tok)
		if err != nil || !p.HasRole(RoleAdmin) {
			t.Fatalf("bootstrap token: %+v %v", p, err)
		}
		again, err := s.Bootstrap(ctx, "")
		if err != nil || again != "" {
			t.Fatalf("second Bootstrap returned %d chars, %v; want none", len(again), err)
		}
		// Revoking every token does not make a later start mint a new one.
		list, _ := s.List(ctx)
		s.Revoke(ctx, list[0].ID)
		if again, _ := s.Bootstrap(ctx, ""); again != "" {
			t.Fatal("Bootstrap minted a token after all were revoked")
		}
	})
	t.Run("RADFLOW_ADMIN_TOKEN seeds and rotates", func(t *testing.T) {
		s, _ := openStore(t)
		v1 := "seeded-admin-token-aaaaaaaaaaaaaaaaaaaaaaaa"
		if tok, err := s.Bootstrap(ctx, v1+"\n"); err != nil || tok != "" {
			t.Fatalf("Bootstrap with env: %q %v", tok, err)
		}
		p, err := s.Authenticate(ctx, v1)
		if err != nil || p.ID != AdminEnvTokenID || !slices.Equal(p.Roles, []string{RoleAdmin}) {
			t.Fatalf("seeded token: %+v %v", p, err)
		}
		v2 := "seeded-admin-token-bbbbbbbbbbbbbbbbbbbbbbbb"
		if _, err := s.Bootstrap(ctx, v2); err != nil {
			t.Fatal(err)
		}
		wantUnauth(t, errOf(s.Authenticate(ctx, v1)), "unknown token")
		if _, err := s.Authenticate(ctx, v2); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.List(ctx); len(list) != 1 {
			t.Fatalf("%d tokens after rotating the env token, want 1", len(list))
		}
		if _, err := s.Bootstrap(ctx, "short"); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("short env token: %v", err)
		}
	})
}

func BenchmarkTokenAuthenticate(b *testing.B) {
	s, _ := openStore(b)
	ctx := context.Background()
	tok, _, err := s.Create(ctx, TokenSpec{Roles: []string{RoleAIService}})
	if err != nil {
		b.Fatal(err)
	}
	for range 1000 {
		s.Create(ctx, TokenSpec{Roles: []string{RoleAIService}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
