package store_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
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
