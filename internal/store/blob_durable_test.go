package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPutNewDurable writes fresh keys through the codec seam with the file
// and directory fsyncs concurrent: the bytes read back decoded, are stored
// encoded, BlobInfo describes the plain bytes, nothing else is left in the
// directory, and an existing or invalid key is refused.
func TestPutNewDurable(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{Codec: xorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("DICOM pixel bytes "), 30000) // 540,000 bytes
	sum := sha256.Sum256(data)
	at := time.Date(2026, 3, 4, 4, 6, 0, 0, time.UTC)
	key := InstanceBlobKey("1.2.840.1", at)
	info, err := b.PutNewDurable(ctx, key, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("info %+v, want size %d sha256 %x", info, len(data), sum)
	}
	raw, err := os.ReadFile(filepath.Join(b.Root(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(data) || raw[0] != 'D'^0xFF {
		t.Errorf("stored %d bytes starting %#x, want %d encoded bytes starting %#x", len(raw), raw[0], len(data), 'D'^0xFF)
	}
	rc, err := b.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes differing from the %d written", len(got), len(data))
	}
	if ents, _ := os.ReadDir(filepath.Join(b.Root(), "20260304", "0406")); len(ents) != 1 {
		t.Errorf("directory has %d entries, want 1", len(ents))
	}
	if _, err := b.PutNewDurable(ctx, key, bytes.NewReader(data)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("PutNewDurable over an existing key: %v, want fs.ErrExist", err)
	}
	if _, err := b.PutNewDurable(ctx, "a/.tmp-1", bytes.NewReader(data)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("PutNewDurable(a/.tmp-1): %v, want ErrInvalidKey", err)
	}
}
