package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/store"
)

// With the real envelope codec (keys.Codec), blobs streamed and written
// from memory land in packs, read back exactly, and keys.Inventory (what
// key rotation and retirement count) finds exactly the blobs written: an
// aborted writer's region is not counted, a deleted one no longer is.
func TestPacksWithEnvelopeCodec(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	ring, err := keys.NewKeyring(keys.NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.NewFS(filepath.Join(data, "blobs"), store.FSOptions{Codec: keys.NewCodec(ring)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	payload := func(n, seed int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*31 + seed)
		}
		return p
	}
	var infos []store.BlobInfo
	var want [][]byte
	for i, n := range []int{0, 1, 65536, 530946, 1<<20 + 3} {
		p := payload(n, i)
		key := store.InstanceBlobKey("1.2.3", time.Now())
		var info store.BlobInfo
		var sync func() error
		if i%2 == 0 {
			info, sync, err = b.PutNewBytes(ctx, key, p)
		} else {
			w, werr := b.NewBlobWriter(ctx, key)
			if werr != nil {
				t.Fatal(werr)
			}
			for rest := p; len(rest) > 0; rest = rest[min(len(rest), 16372):] {
				w.Write(rest[:min(len(rest), 16372)])
			}
			info, sync, err = w.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := sync(); err != nil {
			t.Fatal(err)
		}
		infos, want = append(infos, info), append(want, p)
	}
	// A writer that gives up after 2 MiB (written to the pack already).
	w, err := b.NewBlobWriter(ctx, store.InstanceBlobKey("1.2.4", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload(2<<20, 9))
	w.Abort()

	for i, info := range infos {
		rc, err := b.Open(ctx, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("%s: read back %d bytes (%v), want %d", info.Key, len(got), err, len(want[i]))
		}
	}
	st, err := keys.Inventory(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if st.Objects != len(infos) || st.Plaintext != 0 || st.ByKEK[ring.Active()] != len(infos) {
		t.Errorf("inventory: %d objects (%d plaintext, %v), want %d", st.Objects, st.Plaintext, st.ByKEK, len(infos))
	}
	if err := b.Delete(ctx, infos[3].Key); err != nil {
		t.Fatal(err)
	}
	if st, err := keys.Inventory(ctx, data); err != nil || st.Objects != len(infos)-1 {
		t.Errorf("inventory after a delete: %d objects (%v), want %d", st.Objects, err, len(infos)-1)
	}
}

var _ store.ObjectDigester = (*keys.Codec)(nil)

// packRegion splits a pack key ("packs/00000001.pack@off+n").
func packRegion(t *testing.T, key string) (name string, off, n int64) {
	t.Helper()
	rest, ok := strings.CutPrefix(key, "packs/")
	name, region, ok2 := strings.Cut(rest, "@")
	o, l, ok3 := strings.Cut(region, "+")
	off, err1 := strconv.ParseInt(o, 10, 64)
	n, err2 := strconv.ParseInt(l, 10, 64)
	if !ok || !ok2 || !ok3 || err1 != nil || err2 != nil {
		t.Fatalf("not a pack key: %q", key)
	}
	return name, off, n
}

// With the envelope codec every write path (streamed, from memory, from a
// reader) records the object digest, which DigestBlob recomputes from the
// stored bytes; a region swapped for another blob's still decodes but
// no longer matches. Without a codec the digest is the plaintext's
// SHA-256, as before.
func TestObjectDigestRecorded(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	ring, err := keys.NewKeyring(keys.NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(data, "blobs")
	b, err := store.NewFS(root, store.FSOptions{Codec: keys.NewCodec(ring)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	plain := make([]byte, 530638)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	sum := sha256.Sum256(plain)
	var infos []store.BlobInfo
	for i := 0; i < 4; i++ {
		key := store.InstanceBlobKey("1.2.3", time.Now())
		var info store.BlobInfo
		var sync func() error
		switch i {
		case 0, 1:
			w, werr := b.NewBlobWriter(ctx, key)
			if werr != nil {
				t.Fatal(werr)
			}
			w.WriteRetained(plain[:1000])
			w.Write(plain[1000:])
			info, sync, err = w.Close()
		case 2:
			info, sync, err = b.PutNewBytes(ctx, key, plain)
		case 3:
			sync = func() error { return nil }
			info, err = b.Put(ctx, key, bytes.NewReader(plain))
		}
		if err == nil {
			err = sync()
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(info.SHA256, keys.DigestPrefix) || len(info.SHA256) != len(keys.DigestPrefix)+64 || info.Size != int64(len(plain)) {
			t.Fatalf("write %d: recorded %q, %d bytes", i, info.SHA256, info.Size)
		}
		n, digest, err := b.DigestBlob(ctx, info.Key, info.SHA256)
		if err != nil || n != int64(len(plain)) || digest != info.SHA256 {
			t.Fatalf("write %d: read back %d bytes, digest %q (%v), recorded %q", i, n, digest, err, info.SHA256)
		}
		// Asked for the plaintext's SHA-256 (a row from before), it is that.
		if _, d, err := b.DigestBlob(ctx, info.Key, hex.EncodeToString(sum[:])); err != nil || d != hex.EncodeToString(sum[:]) {
			t.Fatalf("write %d: plaintext SHA-256 %q (%v)", i, d, err)
		}
		infos = append(infos, info)
	}
	if infos[0].SHA256 == infos[1].SHA256 {
		t.Fatal("two objects of the same plaintext have the same digest")
	}
	// Swap: blob 1's stored bytes over blob 0's region (same size).
	name0, off0, n0 := packRegion(t, infos[0].Key)
	name1, off1, n1 := packRegion(t, infos[1].Key)
	if n0 != n1 {
		t.Fatalf("regions of %d and %d bytes", n0, n1)
	}
	region := make([]byte, n1)
	f1, err := os.Open(filepath.Join(root, "packs", name1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f1.ReadAt(region, off1)
	f1.Close()
	if err != nil {
		t.Fatal(err)
	}
	f0, err := os.OpenFile(filepath.Join(root, "packs", name0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f0.WriteAt(region, off0)
	f0.Close()
	if err != nil {
		t.Fatal(err)
	}
	n, digest, err := b.DigestBlob(ctx, infos[0].Key, infos[0].SHA256)
	if err != nil || n != int64(len(plain)) || digest != infos[1].SHA256 || digest == infos[0].SHA256 {
		t.Fatalf("swapped region: %d bytes, digest %q (%v); recorded %q, the other's %q", n, digest, err, infos[0].SHA256, infos[1].SHA256)
	}
	// Open decodes the other blob's bytes; OpenVerified (store.OpenInstance)
	// refuses them at EOF, and still reads the intact ones.
	readAll := func(in *store.Instance) ([]byte, error) {
		rc, err := store.OpenInstance(ctx, b, in)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if _, err := readAll(&store.Instance{BlobKey: infos[0].Key, SHA256: infos[0].SHA256}); !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("verified read of the swapped region: %v, want ErrDigestMismatch", err)
	}
	for i := 1; i < len(infos); i++ {
		for _, want := range []string{infos[i].SHA256, hex.EncodeToString(sum[:]), ""} {
			if got, err := readAll(&store.Instance{BlobKey: infos[i].Key, SHA256: want}); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("verified read of blob %d against %q: %d bytes, %v", i, want, len(got), err)
			}
		}
		if _, err := readAll(&store.Instance{BlobKey: infos[i].Key, SHA256: strings.Repeat("0", 64)}); !errors.Is(err, store.ErrDigestMismatch) {
			t.Fatalf("blob %d against a wrong plaintext SHA-256: %v", i, err)
		}
	}
	// A flipped body byte fails authentication.
	f0, _ = os.OpenFile(filepath.Join(root, "packs", name0), os.O_WRONLY, 0)
	f0.WriteAt([]byte{region[5000] ^ 0x40}, off0+5000)
	f0.Close()
	if _, _, err := b.DigestBlob(ctx, infos[0].Key, infos[0].SHA256); !errors.Is(err, keys.ErrIntegrity) {
		t.Fatalf("modified body: %v, want ErrIntegrity", err)
	}

	// No codec: the plaintext's SHA-256.
	plainFS, err := store.NewFS(filepath.Join(data, "plain"), store.FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := plainFS.NewBlobWriter(ctx, store.InstanceBlobKey("1.2.5", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	info, sync, err := w.Close()
	if err == nil {
		err = sync()
	}
	if err != nil || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("without a codec: recorded %q (%v), want the SHA-256", info.SHA256, err)
	}
	if n, d, err := plainFS.DigestBlob(ctx, info.Key, info.SHA256); err != nil || n != int64(len(plain)) || d != info.SHA256 {
		t.Fatalf("without a codec: read back %d bytes, %q (%v)", n, d, err)
	}
}
