package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

// appendXorCodec is xorCodec with the one-call encoder (AppendEncoder).
type appendXorCodec struct{ xorCodec }

func (appendXorCodec) EncodedSize(n int) int { return n }

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
	b, err := NewFS(t.TempDir(), FSOptions{Codec: codec, NoPacks: true}) // one file per blob: pack_test.go tests packs
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
	if got := readBlob(ctx, t, b, key); !bytes.Equal(got, data) {
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

func TestAlignedBuffer(t *testing.T) {
	var bp []byte
	for _, n := range []int{0, 1, 4095, 4096, 4097, 530946} {
		b := alignedBuffer(&bp, n)
		if len(b) != 0 || cap(b) < (n+directAlign-1)&^(directAlign-1) {
			t.Fatalf("n=%d: len %d cap %d", n, len(b), cap(b))
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%directAlign != 0 {
			t.Fatalf("n=%d: buffer at %#x, not %d-aligned", n, p, directAlign)
		}
	}
	// A large enough buffer is reused.
	b1 := alignedBuffer(&bp, 1000)
	b2 := alignedBuffer(&bp, 2000)
	if unsafe.SliceData(b1) != unsafe.SliceData(b2) {
		t.Error("buffer not reused")
	}
}

// Blobs written from memory (O_DIRECT where the file system takes it,
// padded to the alignment and cut back) have exactly their bytes, for
// sizes around the alignment, with and without a codec.
func TestPutNewBytesSizes(t *testing.T) {
	ctx := context.Background()
	for _, dir := range blobTestDirs(t) {
		for _, codec := range []Codec{nil, appendXorCodec{}} {
			testPutNewBytesSizes(ctx, t, filepath.Join(dir, fmt.Sprintf("%T", codec)), codec)
		}
	}
}

func testPutNewBytesSizes(ctx context.Context, t *testing.T, dir string, codec Codec) {
	b, err := NewFS(dir, FSOptions{Codec: codec, NoPacks: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 17, 530946} {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		key := InstanceBlobKey(fmt.Sprintf("1.2.3.%d", i), time.Now())
		info, sync, err := b.PutNewBytes(ctx, key, data)
		if err != nil {
			t.Fatal(err)
		}
		if err := sync(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(key)))
		if err != nil || fi.Size() != int64(n) || info.Size != int64(n) {
			t.Fatalf("n=%d: file %v (%v), info size %d", n, fi, err, info.Size)
		}
		if !bytes.Equal(readBlob(ctx, t, b, key), data) {
			t.Fatalf("n=%d (codec %T): read back differs", n, codec)
		}
	}
}

// blobTestDirs returns a temporary directory on the test's file system and,
// where /dev/shm exists, one on tmpfs, which refuses O_DIRECT: blobs there
// are written through the page cache.
func blobTestDirs(t *testing.T) []string {
	dirs := []string{t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "radflow-store-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	return dirs
}

// readBlob returns the decoded bytes of key.
func readBlob(ctx context.Context, t *testing.T, b *FS, key string) []byte {
	t.Helper()
	rc, err := b.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A direct write the device refuses (here: a buffer that is not aligned,
// which O_DIRECT answers with EINVAL) falls back to the page cache and
// still leaves exactly the bytes.
func TestWriteOutFallsBackFromRefusedDirectWrite(t *testing.T) {
	var bp []byte
	buf := alignedBuffer(&bp, 3*directAlign)[:3*directAlign]
	out := buf[1 : 1+5000 : len(buf)] // misaligned start, room for the padding
	for i := range out {
		out[i] = byte(i % 251)
	}
	want := bytes.Clone(out)
	for _, direct := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "blob")
		file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeOut(file, out, direct); err != nil {
			t.Fatalf("direct=%v: %v", direct, err)
		}
		file.Close()
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("direct=%v: %d bytes (%v), want the %d written", direct, len(got), err, len(want))
		}
	}
}
