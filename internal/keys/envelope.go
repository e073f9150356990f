package keys

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ErrIntegrity: an encrypted object or field failed authentication: a
// modified, truncated, extended or reordered byte, a torn header, or a key
// that does not match. Decoding never returns unauthenticated plaintext.
var ErrIntegrity = errors.New("keys: integrity check failed")

// ErrNotEncrypted: the object does not start with radflow's envelope
// header (e.g. a blob written before encryption was switched on).
var ErrNotEncrypted = errors.New("keys: object is not encrypted")

// Object layout: a fixed-size header (HeaderSize bytes) followed by the
// body in STREAM chunks (Hoang, Reyhanitabar, Rogaway, Vizár 2015): each
// chunk of ChunkSize plaintext bytes (the last may be shorter, even empty)
// is AES-256-GCM sealed under the object's DEK with nonce
// prefix(7) ‖ counter(4, big endian) ‖ last(1), so chunks cannot be
// reordered, dropped, or the object truncated or extended undetected.
//
// Header (all offsets in bytes):
//
//	0   8  magic "RFLWENC\x00"
//	8   1  version (1)
//	9   1  log2 of the chunk size (16: 64 KiB)
//	10  1  length of the KEK id
//	11  1  reserved (0)
//	12  64 KEK id, zero padded
//	76  12 wrap nonce
//	88  48 DEK (32) sealed with AES-256-GCM under the KEK (+16 tag)
//	136 7  STREAM nonce prefix
//	143 1  reserved (0)
//
// The DEK seal authenticates the whole header (bytes 0..76 and 136..144
// are its additional data), so a header is either exactly as some Wrap
// wrote it or fails with ErrIntegrity. Rewrapping rewrites only bytes
// 10..136 of this fixed-size prefix (see Rewrap).
const (
	HeaderSize = 144
	ChunkSize  = 1 << chunkShift
	chunkShift = 16
	tagSize    = 16
)

var magic = [8]byte{'R', 'F', 'L', 'W', 'E', 'N', 'C', 0}

const (
	offVersion = 8
	offShift   = 9
	offIDLen   = 10
	offID      = 12
	offNonce   = 76
	offWrapped = 88
	offPrefix  = 136
)

// header is a parsed object header.
type header struct {
	raw   [HeaderSize]byte
	kekID string
}

func parseHeader(b []byte) (*header, error) {
	if len(b) < HeaderSize || !bytes.Equal(b[:8], magic[:]) {
		return nil, ErrNotEncrypted
	}
	h := &header{}
	copy(h.raw[:], b)
	if h.raw[offVersion] != 1 || h.raw[offShift] != chunkShift || h.raw[offIDLen] == 0 || h.raw[offIDLen] > maxIDLen {
		return nil, fmt.Errorf("%w: unsupported or damaged header", ErrIntegrity)
	}
	h.kekID = string(h.raw[offID : offID+int(h.raw[offIDLen])])
	return h, nil
}

func (h *header) aad() []byte {
	a := make([]byte, 0, offNonce+8)
	a = append(a, h.raw[:offNonce]...)
	return append(a, h.raw[offPrefix:HeaderSize]...)
}

// wrap seals dek under kek (id) into h, with a fresh wrap nonce.
func (h *header) wrap(id string, kek, dek []byte) error {
	copy(h.raw[:8], magic[:])
	h.raw[offVersion], h.raw[offShift] = 1, chunkShift
	h.raw[offIDLen] = byte(len(id))
	clear(h.raw[offID : offID+maxIDLen])
	copy(h.raw[offID:], id)
	h.kekID = id
	nonce := h.raw[offNonce:offWrapped]
	_, _ = rand.Read(nonce)
	g, err := newGCM(kek)
	if err != nil {
		return err
	}
	g.Seal(h.raw[offWrapped:offWrapped], nonce, dek, h.aad())
	return nil
}

// unwrap opens the DEK with the ring. errors: ErrUnknownKEK, ErrIntegrity.
func (h *header) unwrap(r *Keyring) ([]byte, error) {
	kek, err := r.key(h.kekID)
	if err != nil {
		return nil, err
	}
	g, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	dek, err := g.Open(nil, h.raw[offNonce:offWrapped], h.raw[offWrapped:offPrefix], h.aad())
	if err != nil {
		return nil, fmt.Errorf("%w: object header does not authenticate under KEK %q", ErrIntegrity, h.kekID)
	}
	return dek, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	return cipher.NewGCM(b)
}

// Codec encrypts objects under a fresh DEK wrapped by the keyring's active
// KEK, and decrypts objects wrapped by any KEK in the ring. It implements
// package store's Codec. Safe for concurrent use (the ring must not be
// mutated meanwhile).
type Codec struct {
	ring *Keyring
}

// NewCodec returns the envelope codec over ring.
func NewCodec(ring *Keyring) *Codec { return &Codec{ring: ring} }

// newObject draws a fresh DEK and chunk nonce prefix and wraps the DEK
// under the active KEK: the object's header and its chunk AEAD.
func (c *Codec) newObject() (*header, cipher.AEAD, error) {
	kek, err := c.ring.key(c.ring.active)
	if err != nil {
		return nil, nil, err
	}
	dek := make([]byte, KeySize)
	_, _ = rand.Read(dek)
	h := &header{}
	_, _ = rand.Read(h.raw[offPrefix : offPrefix+7])
	if err := h.wrap(c.ring.active, kek, dek); err != nil {
		return nil, nil, err
	}
	g, err := newGCM(dek)
	if err != nil {
		return nil, nil, err
	}
	return h, g, nil
}

// Encode writes the header to w at once and returns a writer that
// encrypts into w; its Close writes the final chunk (it does not close w).
// Memory: one chunk (64 KiB) per open writer. errors: w's.
func (c *Codec) Encode(w io.Writer) (io.WriteCloser, error) {
	h, g, err := c.newObject()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h.raw[:]); err != nil {
		return nil, err
	}
	bufs := chunkBufs.Get().(*[2][]byte)
	e := &encWriter{w: w, aead: g, bufs: bufs, buf: bufs[0][:0], out: bufs[1][:0]}
	copy(e.prefix[:], h.raw[offPrefix:offPrefix+7])
	return e, nil
}

// EncodedSize is the size of the object that encodes n plaintext bytes
// (store.AppendEncoder).
func (c *Codec) EncodedSize(n int) int { return EncodedSize(n) }

// EncodedSize is the size of the object that encodes n plaintext bytes.
func EncodedSize(n int) int {
	chunks := max(1, (n+ChunkSize-1)/ChunkSize) // an empty object still has its (empty) last chunk
	return HeaderSize + n + chunks*tagSize
}

// AppendEncoded appends to dst the whole object encrypting plaintext, in
// the layout Encode writes (header, then the chunks, the last one flagged),
// and returns the extended slice. For an object already in memory: it
// seals straight into dst (no chunk copies) so the caller can write the
// object with one call; dst with EncodedSize(len(plaintext)) bytes to
// spare is not reallocated.
func (c *Codec) AppendEncoded(dst, plaintext []byte) ([]byte, error) {
	h, g, err := c.newObject()
	if err != nil {
		return nil, err
	}
	if uint64(len(plaintext)) >= uint64(^uint32(0))*ChunkSize {
		return nil, errors.New("keys: object too large for one envelope (2^32 chunks)")
	}
	var prefix [7]byte
	copy(prefix[:], h.raw[offPrefix:offPrefix+7])
	dst = slices.Grow(dst, EncodedSize(len(plaintext)))
	dst = append(dst, h.raw[:]...)
	for counter := uint32(0); ; counter++ {
		n := min(len(plaintext), ChunkSize)
		last := n == len(plaintext)
		dst = g.Seal(dst, streamNonce(prefix, counter, last), plaintext[:n], nil)
		plaintext = plaintext[n:]
		if last {
			return dst, nil
		}
	}
}

type encWriter struct {
	bufs    *[2][]byte // pooled: buf's and out's memory, until Close
	w       io.Writer
	aead    cipher.AEAD
	prefix  [7]byte
	counter uint32
	buf     []byte // plaintext of the chunk being filled
	out     []byte
	closed  bool
	err     error
}

func streamNonce(prefix [7]byte, counter uint32, last bool) []byte {
	var n [12]byte
	copy(n[:7], prefix[:])
	binary.BigEndian.PutUint32(n[7:11], counter)
	if last {
		n[11] = 1
	}
	return n[:]
}

func (e *encWriter) seal(last bool) error {
	if e.counter == ^uint32(0) {
		return errors.New("keys: object too large for one envelope (2^32 chunks)")
	}
	e.out = e.aead.Seal(e.out[:0], streamNonce(e.prefix, e.counter, last), e.buf, nil)
	e.counter++
	e.buf = e.buf[:0]
	_, err := e.w.Write(e.out)
	return err
}

func (e *encWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.closed {
		return 0, errors.New("keys: write after Close")
	}
	n := 0
	for len(p) > 0 {
		// A full chunk is sealed as not-last only once more data arrives,
		// so the last chunk is always sealed with the flag.
		if len(e.buf) == ChunkSize {
			if e.err = e.seal(false); e.err != nil {
				return n, e.err
			}
		}
		k := copy(e.buf[len(e.buf):ChunkSize], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// Close seals the final chunk. It does not close the underlying writer.
func (e *encWriter) Close() error {
	if e.err != nil || e.closed {
		return e.err
	}
	e.closed = true
	e.err = e.seal(true)
	// The chunk buffers go back to the pool (a writer that is never
	// closed leaves them to the garbage collector).
	chunkBufs.Put(e.bufs)
	e.bufs, e.buf, e.out = nil, nil, nil
	return e.err
}

// chunkBufs recycles an encWriter's plaintext and sealed chunk buffers
// (128 KiB a blob, allocated and zeroed per blob before).
var chunkBufs = sync.Pool{New: func() any {
	return &[2][]byte{make([]byte, 0, ChunkSize), make([]byte, 0, ChunkSize+tagSize)}
}}

// Decode reads and authenticates the header and returns a reader of the
// plaintext; each chunk is authenticated before any of its bytes are
// returned, and the end of the object is authenticated before io.EOF.
// errors (from Decode or Read): ErrNotEncrypted, ErrUnknownKEK,
// ErrIntegrity, r's.
func (c *Codec) Decode(r io.Reader) (io.Reader, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrNotEncrypted
		}
		return nil, err
	}
	h, err := parseHeader(hb[:])
	if err != nil {
		return nil, err
	}
	dek, err := h.unwrap(c.ring)
	if err != nil {
		return nil, err
	}
	g, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	d := &decReader{r: bufio.NewReaderSize(r, ChunkSize+tagSize+1), aead: g, in: make([]byte, ChunkSize+tagSize)}
	copy(d.prefix[:], hb[offPrefix:offPrefix+7])
	return d, nil
}

type decReader struct {
	r       *bufio.Reader
	aead    cipher.AEAD
	prefix  [7]byte
	counter uint32
	in      []byte
	plain   []byte // authenticated bytes not yet returned
	done    bool   // the last chunk has been authenticated
	err     error
}

func (d *decReader) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

// next reads and authenticates one chunk.
func (d *decReader) next() error {
	n, err := io.ReadFull(d.r, d.in)
	last := false
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		return err
	default:
		if _, perr := d.r.Peek(1); errors.Is(perr, io.EOF) {
			last = true
		} else if perr != nil {
			return perr
		}
	}
	if n < tagSize {
		return fmt.Errorf("%w: object truncated", ErrIntegrity)
	}
	plain, oerr := d.aead.Open(d.in[:0], streamNonce(d.prefix, d.counter, last), d.in[:n], nil)
	if oerr != nil {
		return fmt.Errorf("%w: chunk %d does not authenticate (modified, truncated or reordered)", ErrIntegrity, d.counter)
	}
	if d.counter == ^uint32(0) {
		return fmt.Errorf("%w: too many chunks", ErrIntegrity)
	}
	d.counter++
	d.plain = plain
	d.done = last
	return nil
}

// KEKID returns the id of the KEK that wraps the object whose first bytes
// are b (at least HeaderSize). errors: ErrNotEncrypted, ErrIntegrity.
func KEKID(b []byte) (string, error) {
	h, err := parseHeader(b)
	if err != nil {
		return "", err
	}
	return h.kekID, nil
}
