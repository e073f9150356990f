package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

func objectDigest(enc []byte, step int) string {
	d := NewObjectDigest()
	for p := enc; len(p) > 0; {
		n := min(step, len(p))
		d.Write(p[:n])
		p = p[n:]
	}
	return d.Digest()
}

// wantDigest is the object digest computed from the layout directly:
// SHA-256(domain ‖ header[0:10] ‖ header[136:144] ‖ each chunk's tag).
func wantDigest(t *testing.T, enc []byte, plainLen int) string {
	t.Helper()
	h := sha256.New()
	h.Write([]byte("radflow envelope digest v1\x00"))
	h.Write(enc[:10])
	h.Write(enc[136:144])
	body := enc[HeaderSize:]
	chunks := 0
	for len(body) > 0 {
		n := min(len(body), ChunkSize+tagSize)
		h.Write(body[n-tagSize : n])
		body = body[n:]
		chunks++
	}
	if want := max(1, (plainLen+ChunkSize-1)/ChunkSize); chunks != want {
		t.Fatalf("plaintext of %d bytes: %d chunks, want %d", plainLen, chunks, want)
	}
	return DigestPrefix + hex.EncodeToString(h.Sum(nil))
}

// TestObjectDigest: the digest is the SHA-256 of the header's fixed bytes
// and the chunk tags, the same however the stored bytes are fed, for
// objects from Encode and AppendEncoded; it differs for another object of
// the same plaintext and for a changed tag or a dropped chunk.
func TestObjectDigest(t *testing.T) {
	c := NewCodec(testRing(t))
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 77, 530638} {
		plain := make([]byte, n)
		rand.Read(plain)
		enc := encode(t, c, plain, 5)
		want := wantDigest(t, enc, n)
		if !strings.HasPrefix(want, "env1:") || len(want) != 5+64 {
			t.Fatalf("digest %q", want)
		}
		for _, step := range []int{1, 7, tagSize, 4096, ChunkSize + tagSize, len(enc) + 1} {
			if n > ChunkSize && step == 1 {
				continue
			}
			if got := objectDigest(enc, step); got != want {
				t.Fatalf("n=%d fed %d bytes at a time: %s, want %s", n, step, got, want)
			}
		}
		app, err := c.AppendEncoded(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		if got := objectDigest(app, 4096); got != wantDigest(t, app, n) || got == want {
			t.Fatalf("n=%d: AppendEncoded's object: digest %s (Encode's %s)", n, got, want)
		}
		// A changed tag byte changes the digest (a changed body byte
		// fails authentication instead: TestEveryModifiedByteFails).
		bad := append([]byte(nil), enc...)
		bad[len(bad)-1] ^= 1
		if objectDigest(bad, 4096) == want {
			t.Fatalf("n=%d: digest unchanged by a modified tag", n)
		}
		if n > ChunkSize {
			if objectDigest(enc[:HeaderSize+ChunkSize+tagSize], 4096) == want {
				t.Fatalf("n=%d: digest unchanged with only the first chunk", n)
			}
		}
	}
}

// TestObjectDigestSurvivesRewrap: rotating the KEK rewrites headers, not
// the digest.
func TestObjectDigestSurvivesRewrap(t *testing.T) {
	dir := t.TempDir()
	k, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	objs := writeObjects(t, dir, k.Codec(), 3)
	before := map[string]string{}
	for name := range objs {
		b, _ := os.ReadFile(name)
		before[name] = objectDigest(b, 4096)
	}
	if _, st, err := Rotate(context.Background(), dir, KeyringPath(dir), nil); err != nil || st.Rewrapped == 0 {
		t.Fatalf("rotate: %+v %v", st, err)
	}
	for name, want := range before {
		b, _ := os.ReadFile(name)
		if got := objectDigest(b, 4096); got != want {
			t.Fatalf("digest changed by the rewrap: %s, was %s", got, want)
		}
	}
}
