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

// appendXorCodec is xorCodec with the one-call encoder (AppendEncoder).
type appendXorCodec struct{ xorCodec }

func (appendXorCodec) AppendEncoded(dst, p []byte) ([]byte, error) {
	for _, c := range p {
		dst = append(dst, c^0xFF)
	}
	return dst, nil
}

// TestPutNewDurable writes fresh keys with the file and directory fsyncs
// concurrent, from a reader (PutNewDurable) and from memory
// (PutNewDurableBytes), through a streaming codec, a one-call
// (AppendEncoder) codec and none: the bytes read back decoded, are stored
// encoded, BlobInfo describes the plain bytes, nothing else is left in the
// directory, and an existing or invalid key or a cancelled context is
// refused.
func TestPutNewDurable(t *testing.T) {
	puts := map[string]func(b *FS, ctx context.Context, key string, data []byte) (BlobInfo, error){
		"reader": func(b *FS, ctx context.Context, key string, data []byte) (BlobInfo, error) {
			return b.PutNewDurable(ctx, key, bytes.NewReader(data))
		},
		"bytes": func(b *FS, ctx context.Context, key string, data []byte) (BlobInfo, error) {
			return b.PutNewDurableBytes(ctx, key, data)
		},
	}
	codecs := map[string]Codec{"xor": xorCodec{}, "append-xor": appendXorCodec{}, "none": nil}
	for pn, put := range puts {
		for cn, codec := range codecs {
			t.Run(pn+"/"+cn, func(t *testing.T) { testPutNewDurable(t, codec, put) })
		}
	}
}

func testPutNewDurable(t *testing.T, codec Codec, put func(b *FS, ctx context.Context, key string, data []byte) (BlobInfo, error)) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("DICOM pixel bytes "), 30000) // 540,000 bytes
	sum := sha256.Sum256(data)
	at := time.Date(2026, 3, 4, 4, 6, 0, 0, time.UTC)
	key := InstanceBlobKey("1.2.840.1", at)
	info, err := put(b, ctx, key, data)
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
	first := byte('D')
	if codec != nil {
		first ^= 0xFF
	}
	if len(raw) != len(data) || raw[0] != first {
		t.Errorf("stored %d bytes starting %#x, want %d bytes starting %#x", len(raw), raw[0], len(data), first)
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
	if _, err := put(b, ctx, key, data); !errors.Is(err, fs.ErrExist) {
		t.Errorf("put over an existing key: %v, want fs.ErrExist", err)
	}
	if _, err := put(b, ctx, "a/.tmp-1", data); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("put(a/.tmp-1): %v, want ErrInvalidKey", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	other := InstanceBlobKey("1.2.840.2", at)
	if _, err := put(b, cctx, other, data); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(other))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cancelled put left its file: %v", err)
	}
}
