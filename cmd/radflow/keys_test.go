package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
