package keys

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestEncryptExistingDamagedLeftAlone: a file that starts with the
// envelope magic (a truncated object, even one shorter than the magic) is
// reported as damaged and never encrypted a second time; a plaintext file
// next to it is encrypted and decodes to its bytes.
func TestEncryptExistingDamagedLeftAlone(t *testing.T) {
	dir := t.TempDir()
	ring, err := NewKeyring(NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(BlobDir(dir), "20240101", "0000")
	os.MkdirAll(d, 0o750)
	trunc := append(append([]byte(nil), magic[:]...), 1, 16, 3)
	os.WriteFile(filepath.Join(d, "a.dcm"), trunc, 0o640)
	os.WriteFile(filepath.Join(d, "b.dcm"), []byte("RFLW"), 0o640)
	plain := append(make([]byte, 128), "DICM plaintext"...)
	os.WriteFile(filepath.Join(d, "c.dcm"), plain, 0o640)
	st, err := EncryptExisting(context.Background(), dir, ring, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Encrypted != 1 || st.Unverified != 1 || len(st.Damaged) != 2 || st.Damaged[0] != "20240101/0000/a.dcm" {
		t.Fatalf("stats %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "a.dcm")); !bytes.Equal(b, trunc) {
		t.Error("damaged object rewritten")
	}
	b, _ := os.ReadFile(filepath.Join(d, "c.dcm"))
	r, err := NewCodec(ring).Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decoded %q %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(d, "c.dcm")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}
