package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/keys"
)

// TestKeysRotateRetire: objects written under the first KEK read back
// after `keys rotate --retire` with a keyring holding only the new KEK,
// and status reports them under it.
func TestKeysRotateRetire(t *testing.T) {
	t.Setenv("RADFLOW_KEK", "")
	dir := t.TempDir()
	k, err := keys.Open(keys.Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	first := k.Ring.Active()
	plain := bytes.Repeat([]byte("pixel data "), 20000)
	blob := filepath.Join(keys.BlobDir(dir), "20260101", "0000", "x.dcm")
	os.MkdirAll(filepath.Dir(blob), 0o750)
	var enc bytes.Buffer
	w, _ := k.Codec().Encode(&enc)
	w.Write(plain)
	w.Close()
	os.WriteFile(blob, enc.Bytes(), 0o640)

	var out, errb bytes.Buffer
	if code := run([]string{"keys", "rotate", "--retire", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("rotate: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "1 objects, 2 headers re-wrapped") || !strings.Contains(out.String(), "retired KEK "+first) {
		t.Fatalf("rotate output: %s", out.String())
	}
	ring, _, err := keys.LoadKeyring(keys.LoadOptions{DataDir: dir})
	if err != nil || len(ring.IDs()) != 1 || ring.Active() == first {
		t.Fatalf("keyring after rotate: %v %v", ring.IDs(), err)
	}
	b, _ := os.ReadFile(blob)
	r, err := keys.NewCodec(ring).Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("object after rotation: %v", err)
	}
	out.Reset()
	if code := run([]string{"keys", "status", "--data", dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), ring.Active()+" (active): 2 objects") {
		t.Fatalf("status %d: %s %s", code, out.String(), errb.String())
	}
	if code := run([]string{"keys", "retire", "--data", dir, ring.Active()}, &out, &errb); code != 1 {
		t.Errorf("retiring the active key: exit %d", code)
	}
	if code := run([]string{"keys", "frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

// TestKeysAudited: rotate --retire, rewrap and a refused retire each leave
// an admin:keys record (OS user, operation, KEK ids, outcome) in
// <data>/admin/audit that verifies and holds no key material; with the
// admin trail unusable rotate changes nothing.
func TestKeysAudited(t *testing.T) {
	t.Setenv("RADFLOW_KEK", "")
	dir := t.TempDir()
	k, err := keys.Open(keys.Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	first := k.Ring.Active()
	before, _ := os.ReadFile(keys.KeyringPath(dir))

	// Unusable admin trail: nothing changes.
	os.WriteFile(filepath.Join(dir, "admin"), nil, 0o600)
	if rc, _, errs := runCLI("keys", "rotate", "--data", dir); rc != 1 || !strings.Contains(errs, "nothing changed") {
		t.Fatalf("rotate without trail: rc %d %s", rc, errs)
	}
	if b, _ := os.ReadFile(keys.KeyringPath(dir)); !bytes.Equal(b, before) {
		t.Fatal("rotate changed the keyring although its audit trail could not be opened")
	}
	os.Remove(filepath.Join(dir, "admin"))

	if rc, _, errs := runCLI("keys", "rotate", "--retire", "--data", dir); rc != 0 {
		t.Fatalf("rotate: rc %d %s", rc, errs)
	}
	ring, _, err := keys.LoadKeyring(keys.LoadOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	second := ring.Active()
	if rc, _, errs := runCLI("keys", "rewrap", "--data", dir); rc != 0 {
		t.Fatalf("rewrap: rc %d %s", rc, errs)
	}
	if rc, _, _ := runCLI("keys", "retire", "--data", dir, second); rc != 1 {
		t.Fatalf("retiring the active key: rc %d", rc)
	}
	if rc, _, _ := runCLI("keys", "retire", "--data", dir, "not-a-kek"); rc != 1 {
		t.Fatalf("retiring an unknown key: rc %d", rc)
	}
	recs, raw := adminRecords(t, dir)
	type want struct {
		op, kek, prev string
		outcome       audit.Outcome
		errKind       string
	}
	wants := []want{
		{"rotate", second, first, audit.OutcomeSuccess, ""},
		{"retire", first, "", audit.OutcomeSuccess, ""},
		{"rewrap", second, "", audit.OutcomeSuccess, ""},
		{"retire", second, "", audit.OutcomeError, "keyring"},
		{"retire", "", "", audit.OutcomeError, "unknown_kek"}, // the argument is not recorded
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d admin records, want %d: %+v", len(recs), len(wants), recs)
	}
	for i, r := range recs {
		w := wants[i]
		if r.Action != "admin:keys" || r.SubjectID != osUser() || r.SubjectKind != audit.KindUser || r.Protocol != audit.ProtocolCLI ||
			r.Outcome != w.outcome || r.Detail["operation"] != w.op || r.Detail["kek_id"] != w.kek ||
			r.Detail["previous_kek_ids"] != w.prev || r.Detail["error_kind"] != w.errKind {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	// No key material: neither KEK (base64 as in the keyring, hex, raw)
	// nor the audit HMAC key.
	after, _ := os.ReadFile(keys.KeyringPath(dir))
	var secrets [][]byte
	for _, f := range [][]byte{before, after} {
		var kr struct {
			Keys []struct{ Key string } `json:"keys"`
		}
		if err := json.Unmarshal(f, &kr); err != nil || len(kr.Keys) == 0 {
			t.Fatalf("keyring: %v", err)
		}
		for _, kk := range kr.Keys {
			b, err := base64.StdEncoding.DecodeString(kk.Key)
			if err != nil || len(b) != 32 {
				t.Fatalf("keyring key: %v", err)
			}
			secrets = append(secrets, []byte(kk.Key), []byte(hex.EncodeToString(b)), b,
				[]byte(base64.RawURLEncoding.EncodeToString(b)))
		}
	}
	hk, _ := os.ReadFile(filepath.Join(dir, "keys", "audit-hmac.key"))
	secrets = append(secrets, bytes.TrimSpace(hk))
	for i, s := range secrets {
		if bytes.Contains(raw, s) || bytes.Contains(raw, s[:12]) {
			t.Fatalf("admin trail holds key material %d", i)
		}
	}
}
