package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func testRing(t testing.TB) *Keyring {
	t.Helper()
	r, err := NewKeyring(NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func encode(t testing.TB, c *Codec, plain []byte, writes int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.Encode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	step := max(1, len(plain)/max(1, writes))
	for p := plain; len(p) > 0; {
		n := min(step, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(c *Codec, enc []byte) ([]byte, error) {
	r, err := c.Decode(bytes.NewReader(enc))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestRoundTripSizes covers empty, sub-chunk, exact chunk multiples and
// odd sizes, written in one call or many; the stored size is the header
// plus one 16-byte tag per chunk more than the plaintext.
func TestRoundTripSizes(t *testing.T) {
	c := NewCodec(testRing(t))
	for _, n := range []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 77} {
		plain := make([]byte, n)
		rand.Read(plain)
		for _, writes := range []int{1, 7} {
			enc := encode(t, c, plain, writes)
			chunks := n/ChunkSize + 1 // a full final chunk is followed by an empty last one
			if n > 0 && n%ChunkSize != 0 {
				chunks = (n + ChunkSize - 1) / ChunkSize
			} else if n > 0 {
				chunks = n / ChunkSize
			}
			if want := HeaderSize + n + chunks*tagSize; len(enc) != want {
				t.Errorf("n=%d: stored %d bytes, want %d", n, len(enc), want)
			}
			got, err := decode(c, enc)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d writes=%d: round trip failed: %v (got %d bytes)", n, writes, err, len(got))
			}
			if bytes.Contains(enc, plain[:min(n, 64)]) && n >= 16 {
				t.Errorf("n=%d: plaintext visible in the stored bytes", n)
			}
		}
	}
}

// TestEveryModifiedByteFails flips each byte of a 2.5-chunk object (a
// sample of body bytes, every header byte) and requires ErrIntegrity (or
// ErrNotEncrypted for the magic), never wrong data.
func TestEveryModifiedByteFails(t *testing.T) {
	c := NewCodec(testRing(t))
	plain := make([]byte, 2*ChunkSize+ChunkSize/2)
	rand.Read(plain)
	enc := encode(t, c, plain, 1)
	positions := []int{}
	for i := 0; i < HeaderSize; i++ {
		positions = append(positions, i)
	}
	for i := HeaderSize; i < len(enc); i += 997 {
		positions = append(positions, i)
	}
	positions = append(positions, len(enc)-1)
	for _, i := range positions {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		got, err := decode(c, bad)
		if err == nil {
			t.Fatalf("byte %d modified: decoded without error (%d bytes, equal=%v)", i, len(got), bytes.Equal(got, plain))
		}
		if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrNotEncrypted) && !errors.Is(err, ErrUnknownKEK) {
			t.Fatalf("byte %d: err %v, want ErrIntegrity", i, err)
		}
	}
}

// TestTruncateReorderExtend: cutting at a chunk boundary, swapping two
// chunks, dropping one, or appending bytes is detected.
func TestTruncateReorderExtend(t *testing.T) {
	c := NewCodec(testRing(t))
	plain := make([]byte, 3*ChunkSize+10)
	rand.Read(plain)
	enc := encode(t, c, plain, 3)
	cs := ChunkSize + tagSize
	chunk := func(i int) []byte { return enc[HeaderSize+i*cs : min(len(enc), HeaderSize+(i+1)*cs)] }
	cases := map[string][]byte{
		"truncated at chunk boundary": enc[:HeaderSize+2*cs],
		"truncated mid chunk":         enc[:HeaderSize+cs+100],
		"header only":                 enc[:HeaderSize],
		"chunks swapped":              concat(enc[:HeaderSize], chunk(1), chunk(0), chunk(2), chunk(3)),
		"chunk dropped":               concat(enc[:HeaderSize], chunk(0), chunk(2), chunk(3)),
		"extended":                    concat(enc, []byte{0}),
		"last chunk duplicated":       concat(enc, chunk(3)),
	}
	for name, b := range cases {
		if _, err := decode(c, b); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: err %v, want ErrIntegrity", name, err)
		}
	}
	// A chunk from another object (another DEK) at the same position fails.
	other := encode(t, c, plain, 1)
	spliced := concat(enc[:HeaderSize], other[HeaderSize:HeaderSize+cs], enc[HeaderSize+cs:])
	if _, err := decode(c, spliced); !errors.Is(err, ErrIntegrity) {
		t.Errorf("spliced chunk: %v", err)
	}
	// Plain bytes are ErrNotEncrypted.
	if _, err := decode(c, []byte("DICM plaintext that is longer than a header ........................................................................................................")); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plaintext: %v", err)
	}
	// Another keyring cannot open it.
	if _, err := decode(NewCodec(testRing(t)), enc); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("other ring: %v", err)
	}
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestDecodeStreams: a 16 MiB object decodes through a reader that never
// holds more than about one chunk (checked via the largest Read result).
func TestDecodeStreams(t *testing.T) {
	c := NewCodec(testRing(t))
	pr, pw := io.Pipe()
	const n = 16 << 20
	go func() {
		w, _ := c.Encode(pw)
		buf := make([]byte, 100_000)
		for i := range buf {
			buf[i] = byte(i)
		}
		for left := n; left > 0; left -= len(buf) {
			w.Write(buf[:min(left, len(buf))])
		}
		w.Close()
		pw.Close()
	}()
	r, err := c.Decode(pr)
	if err != nil {
		t.Fatal(err)
	}
	total, biggest := 0, 0
	buf := make([]byte, 1<<20)
	var sum uint64
	for {
		k, err := r.Read(buf)
		for _, b := range buf[:k] {
			sum += uint64(b)
		}
		total += k
		biggest = max(biggest, k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != n || biggest > ChunkSize {
		t.Fatalf("read %d bytes (largest read %d), want %d in reads ≤ %d", total, biggest, n, ChunkSize)
	}
	// Expected byte sum: pattern i%256 over 100000-byte blocks.
	var want uint64
	for left := n; left > 0; left -= 100_000 {
		for i := 0; i < min(left, 100_000); i++ {
			want += uint64(byte(i))
		}
	}
	if sum != want {
		t.Fatalf("byte sum %d, want %d", sum, want)
	}
}

func BenchmarkEncrypt(b *testing.B) {
	c := NewCodec(testRing(b))
	plain := make([]byte, 512<<10) // a 0.5 MB CT instance
	rand.Read(plain)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		w, _ := c.Encode(io.Discard)
		w.Write(plain)
		w.Close()
	}
}

func BenchmarkDecrypt(b *testing.B) {
	c := NewCodec(testRing(b))
	plain := make([]byte, 512<<10)
	rand.Read(plain)
	enc := encode(b, c, plain, 1)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		r, err := c.Decode(bytes.NewReader(enc))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendEncoded: the one-call encoding of an in-memory object has the
// streaming layout (same size, decodes with Decode, chunk boundaries and
// the last flag where Encode puts them), appends after dst's bytes, and
// seals in place when dst has room.
func TestAppendEncoded(t *testing.T) {
	c := NewCodec(testRing(t))
	for _, n := range []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 77} {
		plain := make([]byte, n)
		rand.Read(plain)
		want := len(encode(t, c, plain, 1))
		if EncodedSize(n) != want {
			t.Errorf("n=%d: EncodedSize %d, Encode wrote %d", n, EncodedSize(n), want)
		}
		dst := make([]byte, 3, 3+EncodedSize(n))
		copy(dst, "abc")
		out, err := c.AppendEncoded(dst, plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 3+want || string(out[:3]) != "abc" || &out[0] != &dst[0] {
			t.Fatalf("n=%d: %d bytes (want %d), prefix %q, reallocated %v", n, len(out), 3+want, out[:3], &out[0] != &dst[0])
		}
		enc := out[3:]
		got, err := decode(c, enc)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: round trip failed: %v (got %d bytes)", n, err, len(got))
		}
		// Cutting the object at any chunk boundary before its end fails:
		// only the final chunk carries the last flag.
		for end := HeaderSize + ChunkSize + tagSize; end < len(enc); end += ChunkSize + tagSize {
			if _, err := decode(c, enc[:end]); !errors.Is(err, ErrIntegrity) {
				t.Errorf("n=%d cut at %d: %v, want ErrIntegrity", n, end, err)
			}
		}
	}
	// Without room it grows dst like append.
	out, err := c.AppendEncoded(nil, []byte("x"))
	if err != nil || len(out) != EncodedSize(1) {
		t.Fatalf("nil dst: %d bytes, %v", len(out), err)
	}
}
