package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A blob written piece by piece as it arrives (BlobWriter) has exactly its
// bytes, whatever the sizes of the pieces and of the whole (around the
// alignment and the 64 KiB block, a 0.5 MB CT slice, and sizes written
// 1 MiB at a time while they arrive), written with Write (copied for the
// hash), WriteRetained (hashed in place) or both in turn, with a
// streaming codec and none, on a file system that takes O_DIRECT and on
// tmpfs, which refuses it; Close reports the plain size and SHA-256.
func TestBlobWriterSizes(t *testing.T) {
	ctx := context.Background()
	for _, dir := range blobTestDirs(t) {
		for _, codec := range []Codec{nil, xorCodec{}} {
			b, err := NewFS(filepath.Join(dir, fmt.Sprintf("%T", codec)), FSOptions{Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range []int{0, 1, 4095, 4097, blobBlockSize - 1, blobBlockSize, blobBlockSize + 1, 530946,
				writeBatch * blobBlockSize, 3*writeBatch*blobBlockSize + 17} { // written while arriving, then by Close
				for pi, piece := range []int{1000, 16372, 65536, 1 << 20} {
					mode := (i + pi) % 3 // 0 Write, 1 WriteRetained, 2 both in turn
					if n > 5000 && piece == 1000 {
						continue
					}
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(j*7 + i + piece)
					}
					key := InstanceBlobKey(fmt.Sprintf("1.2.3.%d.%d", i, piece), time.Now())
					w, err := b.NewBlobWriter(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					for j, rest := 0, data; len(rest) > 0; j++ {
						k := min(piece, len(rest))
						write := w.Write
						if mode == 1 || mode == 2 && j%2 == 1 {
							write = w.WriteRetained
						}
						if _, err := write(rest[:k]); err != nil {
							t.Fatal(err)
						}
						rest = rest[k:]
					}
					info, sync, err := w.Close()
					if err != nil {
						t.Fatal(err)
					}
					if err := sync(); err != nil {
						t.Fatal(err)
					}
					sum := sha256.Sum256(data)
					if info.Size != int64(n) || info.SHA256 != hex.EncodeToString(sum[:]) || info.Key != key {
						t.Fatalf("n=%d piece=%d mode %d: info %+v", n, piece, mode, info)
					}
					fi, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(key)))
					if err != nil || fi.Size() != int64(n) { // xorCodec keeps the length
						t.Fatalf("n=%d piece=%d: file %v (%v)", n, piece, fi, err)
					}
					if got := readBlob(ctx, t, b, key); !bytes.Equal(got, data) {
						t.Fatalf("n=%d piece=%d codec %T: read back %d bytes, differs", n, piece, codec, len(got))
					}
				}
			}
		}
	}
}

// Abort leaves no file, before or after bytes were written; an existing
// key is refused; a failed write is sticky and Close reports it and
// leaves nothing.
func TestBlobWriterAbortAndErrors(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 300000} {
		key := InstanceBlobKey("1.2.3.4", time.Now())
		w, err := b.NewBlobWriter(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		w.Abort()
		if _, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(key))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("n=%d: after Abort the file is there (%v)", n, err)
		}
	}

	key := InstanceBlobKey("1.2.3.5", time.Now())
	if _, err := b.PutNewDurableBytes(ctx, key, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewBlobWriter(ctx, key); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing key: %v, want fs.ErrExist", err)
	}
	if _, err := b.NewBlobWriter(ctx, "../x"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("invalid key: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.NewBlobWriter(cctx, InstanceBlobKey("1.2.3.6", time.Now())); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}

	// A write the device refuses: the file is closed under the writer.
	key = InstanceBlobKey("1.2.3.7", time.Now())
	w, err := b.NewBlobWriter(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w.file.Close()
	if _, err := w.Write(make([]byte, 3*blobBlockSize)); err != nil {
		t.Fatal(err) // queued: the failure shows at Close
	}
	if _, _, err := w.Close(); err == nil {
		t.Fatal("Close after a failed write succeeded")
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Fatal("Write after a failed Close succeeded")
	}
	w.Abort()
	if _, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(key))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a failed Close the file is there (%v)", err)
	}
}
