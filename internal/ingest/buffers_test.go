package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/radflow/radflow/internal/queue"
)

func TestGetBufferIsEmptyWithRoom(t *testing.T) {
	b := GetBuffer(1000)
	if b.Len() != 0 || b.Cap() < 1000 {
		t.Fatalf("len %d cap %d", b.Len(), b.Cap())
	}
	b.WriteString("left over")
	PutBuffer(b)
	PutBuffer(nil) // no-op
	for range 4 {
		c := GetBuffer(10)
		if c.Len() != 0 {
			t.Fatalf("reused buffer holds %q", c.String())
		}
		PutBuffer(c)
	}
}

// Instances read from a plain reader go through reused buffers: each
// stored blob and its SHA-256 must be exactly its own instance's bytes,
// also when a shorter instance follows a longer one in the same buffer.
func TestIngestFromReadersReusesBuffersWithoutMixingInstances(t *testing.T) {
	ct := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	e.g.uidHook = distinct("2.25.77")
	ctx := context.Background()
	longer := append(append([]byte(nil), ct...), 0, 0) // 2 more bytes of pixel data padding
	flipped := append([]byte(nil), ct...)
	flipped[len(flipped)-1] ^= 0xff // other pixel values, same length
	inputs := [][]byte{longer, ct, flipped, ct}
	for i, in := range inputs {
		// io.MultiReader hides the type: not a *bytes.Buffer, so Ingest reads it.
		out, err := e.g.Ingest(ctx, io.MultiReader(bytes.NewReader(in)), dimse)
		if err != nil || !out.Created {
			t.Fatalf("instance %d: %+v %v", i, out, err)
		}
		row, err := e.db.GetInstance(ctx, out.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(in)
		if row.SHA256 != hex.EncodeToString(sum[:]) || row.Size != int64(len(in)) {
			t.Errorf("instance %d: row sha256 %s size %d, want %x %d", i, row.SHA256, row.Size, sum, len(in))
		}
		rc, err := e.blobs.Open(ctx, row.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("instance %d: blob differs from its input (%d bytes, want %d; %v)", i, len(got), len(in), err)
		}
	}
}
