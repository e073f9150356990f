package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
