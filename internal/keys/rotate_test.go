package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeObjects writes n encrypted objects of distinct sizes under
// <dir>/blobs/a/ and returns their plaintexts by file name.
func writeObjects(t *testing.T, dir string, c *Codec, n int) map[string][]byte {
	t.Helper()
	root := filepath.Join(BlobDir(dir), "a")
	os.MkdirAll(root, 0o750)
	out := map[string][]byte{}
	for i := range n {
		plain := make([]byte, 1000+i*ChunkSize/3)
		rand.Read(plain)
		name := filepath.Join(root, string(rune('a'+i))+".dcm")
		if err := os.WriteFile(name, encode(t, c, plain, 1), 0o640); err != nil {
			t.Fatal(err)
		}
		out[name] = plain
	}
	return out
}

func checkObjects(t *testing.T, c *Codec, objs map[string][]byte) {
	t.Helper()
	for name, plain := range objs {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(c, b)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
	}
}

// TestRotateRewrapsHeadersOnly: after Rotate and Retire, every object
// written before rotation decodes with a keyring that holds only the new
// KEK, the PHI key unwraps under it, and no body byte changed.
func TestRotateRewrapsHeadersOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	oldID := k.Ring.Active()
	objs := writeObjects(t, dir, k.Codec(), 5)
	os.WriteFile(filepath.Join(BlobDir(dir), "a", "plain.dcm"), []byte("not encrypted"), 0o640)
	bodies := map[string][]byte{}
	for name := range objs {
		b, _ := os.ReadFile(name)
		bodies[name] = b[HeaderSize:]
	}
	master, _ := LoadPHIKey(PHIKeyPath(dir), k.Ring, false)

	newID, st, err := Rotate(ctx, dir, KeyringPath(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldID || st.Objects != 5 || st.Rewrapped != 6 || st.Plaintext != 1 || st.ByKEK[newID] != 6 {
		t.Fatalf("rotate stats %+v (new %s)", st, newID)
	}
	for name, body := range bodies {
		b, _ := os.ReadFile(name)
		if !bytes.Equal(b[HeaderSize:], body) {
			t.Fatalf("%s: body rewritten", filepath.Base(name))
		}
		if id, _ := KEKID(b); id != newID {
			t.Fatalf("%s: header names %s", filepath.Base(name), id)
		}
	}
	if err := Retire(ctx, dir, KeyringPath(dir), newID); !errors.Is(err, ErrKeyring) {
		t.Fatalf("retiring the active key: %v", err)
	}
	if err := Retire(ctx, dir, KeyringPath(dir), oldID); err != nil {
		t.Fatal(err)
	}
	ring, _, err := LoadKeyring(LoadOptions{DataDir: dir})
	if err != nil || len(ring.IDs()) != 1 || ring.Active() != newID {
		t.Fatalf("keyring after retire: %v %v", ring.IDs(), err)
	}
	checkObjects(t, NewCodec(ring), objs)
	m2, err := LoadPHIKey(PHIKeyPath(dir), ring, false)
	if err != nil || !bytes.Equal(m2, master) {
		t.Fatalf("PHI key after rotation: %v", err)
	}
	// The old KEK alone no longer opens anything.
	oldOnly, _ := NewKeyring(KEK{ID: oldID, Key: k.Ring.keys[0].Key})
	for name := range objs {
		b, _ := os.ReadFile(name)
		if _, err := decode(NewCodec(oldOnly), b); !errors.Is(err, ErrUnknownKEK) {
			t.Fatalf("old KEK still opens %s: %v", filepath.Base(name), err)
		}
	}
	// Rotating again is idempotent for the already-rewrapped objects.
	if st, err := Rewrap(ctx, dir, ring, nil); err != nil || st.Rewrapped != 0 {
		t.Fatalf("second rewrap: %+v %v", st, err)
	}
}

// TestRecoverTornHeader simulates a crash in the middle of a header
// write: the journal holds the old header, the file a half-new header.
// Recover restores it and the object decodes.
func TestRecoverTornHeader(t *testing.T) {
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	objs := writeObjects(t, dir, k.Codec(), 2)
	var name string
	for n := range objs {
		name = n
		break
	}
	old, _ := os.ReadFile(name)
	ring := k.Ring
	nk := NewKEK()
	ring.Add(nk, true)
	h, _ := parseHeader(old)
	dek, _ := h.unwrap(ring)
	nh := &header{raw: h.raw}
	nh.wrap(nk.ID, nk.Key, dek)
	torn := bytes.Clone(old)
	copy(torn[:100], nh.raw[:100]) // first 100 bytes new, the rest old
	os.WriteFile(name, torn, 0o640)
	rel, _ := filepath.Rel(BlobDir(dir), name)
	rec := journalRecord(filepath.ToSlash(rel), old[:HeaderSize])
	os.WriteFile(JournalPath(dir), append(rec, rec[:50]...), 0o600) // plus a torn tail
	if _, err := decode(NewCodec(ring), torn); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("torn header: %v, want ErrIntegrity", err)
	}
	n, err := Recover(dir, ring)
	if err != nil || n != 1 {
		t.Fatalf("recover: %d %v", n, err)
	}
	if _, err := os.Stat(JournalPath(dir)); !os.IsNotExist(err) {
		t.Fatal("journal left behind")
	}
	checkObjects(t, NewCodec(ring), objs)
	// Rewrap then completes under the new key.
	st, err := Rewrap(context.Background(), dir, ring, nil)
	if err != nil || st.Rewrapped != 3 {
		t.Fatalf("rewrap: %+v %v", st, err)
	}
}

func TestKeyringSources(t *testing.T) {
	dir := t.TempDir()
	r, src, err := LoadKeyring(LoadOptions{DataDir: dir})
	if err != nil || src != KeyringPath(dir) {
		t.Fatal(src, err)
	}
	fi, _ := os.Stat(KeyringPath(dir))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring mode %v, want 0600", fi.Mode().Perm())
	}
	r2, _, err := LoadKeyring(LoadOptions{DataDir: dir})
	if err != nil || r2.Active() != r.Active() {
		t.Fatal("keyring not reloaded", err)
	}
	key := bytes.Repeat([]byte{7}, KeySize)
	env, src, err := LoadKeyring(LoadOptions{Env: base64.StdEncoding.EncodeToString(key), DataDir: dir})
	if err != nil || src != "env" || !strings.HasPrefix(env.Active(), "env-") {
		t.Fatal(env, src, err)
	}
	env2, _, _ := LoadKeyring(LoadOptions{Env: base64.StdEncoding.EncodeToString(key)})
	if env2.Active() != env.Active() {
		t.Error("env key id not stable")
	}
	js, _ := r.MarshalJSON()
	if fromJSON, _, err := LoadKeyring(LoadOptions{Env: string(js)}); err != nil || fromJSON.Active() != r.Active() {
		t.Errorf("env keyring JSON: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "kek.json")
	os.WriteFile(secret, js, 0o400)
	if f, src, err := LoadKeyring(LoadOptions{File: secret}); err != nil || src != secret || f.Active() != r.Active() {
		t.Errorf("secret file: %v", err)
	}
	for name, bad := range map[string]string{
		"short key":      base64.StdEncoding.EncodeToString(key[:16]),
		"not base64":     "!!!",
		"no active":      `{"version":1,"active":"x","keys":[{"id":"y","key":"` + base64.StdEncoding.EncodeToString(key) + `"}]}`,
		"bad id":         `{"version":1,"active":"a b","keys":[{"id":"a b","key":"` + base64.StdEncoding.EncodeToString(key) + `"}]}`,
		"duplicate":      `{"version":1,"active":"a","keys":[{"id":"a","key":"` + base64.StdEncoding.EncodeToString(key) + `"},{"id":"a","key":"` + base64.StdEncoding.EncodeToString(key) + `"}]}`,
		"version":        `{"version":2,"active":"a","keys":[]}`,
		"unknown field":  `{"version":1,"active":"a","keys":[],"extra":1}`,
		"truncated json": `{"version":1,"active":"a","keys":[{"id":"a","key":"QUJD`,
	} {
		_, _, err := LoadKeyring(LoadOptions{Env: bad})
		if !errors.Is(err, ErrKeyring) {
			t.Errorf("%s: %v, want ErrKeyring", name, err)
		}
		if err != nil && strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(key)[:10]) {
			t.Errorf("%s: error message contains key material", name)
		}
	}
	if _, _, err := LoadKeyring(LoadOptions{File: filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("missing secret file accepted")
	}
}

func TestPHICipher(t *testing.T) {
	m := bytes.Repeat([]byte{1}, KeySize)
	p, err := NewPHICipher(m)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Encrypt("patient_name", "Doe^John", "1.2.3")
	b, _ := p.Encrypt("patient_name", "Doe^John", "1.2.3")
	if bytes.Equal(a, b) {
		t.Fatal("encryption is deterministic")
	}
	if len(a) != len("Doe^John")+29 || bytes.Contains(a, []byte("Doe")) {
		t.Fatalf("ciphertext %d bytes", len(a))
	}
	if v, err := p.Decrypt("patient_name", a, "1.2.3"); err != nil || v != "Doe^John" {
		t.Fatal(v, err)
	}
	for name, f := range map[string]func() error{
		"other row":    func() error { _, err := p.Decrypt("patient_name", a, "1.2.4"); return err },
		"other column": func() error { _, err := p.Decrypt("patient_id", a, "1.2.3"); return err },
		"flipped": func() error {
			c := bytes.Clone(a)
			c[20] ^= 1
			_, err := p.Decrypt("patient_name", c, "1.2.3")
			return err
		},
		"short": func() error { _, err := p.Decrypt("patient_name", a[:10], "1.2.3"); return err },
	} {
		if err := f(); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: %v, want ErrIntegrity", name, err)
		}
	}
	x := p.BlindIndex("patient_id", "P1")
	if len(x) != 2*BlindIndexSize || x != p.BlindIndex("patient_id", "P1") || x == p.BlindIndex("accession_number", "P1") || x == p.BlindIndex("patient_id", "P2") {
		t.Fatal("blind index not keyed per field and value", x)
	}
	q, _ := NewPHICipher(bytes.Repeat([]byte{2}, KeySize))
	if q.BlindIndex("patient_id", "P1") == x {
		t.Fatal("blind index does not depend on the key")
	}
	if _, err := q.Decrypt("patient_name", a, "1.2.3"); !errors.Is(err, ErrIntegrity) {
		t.Fatal("other key decrypted")
	}
}

var _ = io.EOF
