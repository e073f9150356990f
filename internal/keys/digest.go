package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// DigestPrefix starts every object digest (ObjectDigest.Digest), so that
// a recorded digest says which kind it is: the SHA-256 of a plaintext is
// 64 hex digits alone.
const DigestPrefix = "env1:"

// digestDomain separates object digests from any other SHA-256 input.
const digestDomain = "radflow envelope digest v1\x00"

// ObjectDigest computes the digest of an encrypted object from its bytes
// as stored (header, then the sealed chunks), fed in order through Write:
// SHA-256 over the header's fixed bytes (magic, version, chunk size: bytes
// 0..10) and STREAM nonce prefix (bytes 136..144), then every chunk's
// 16-byte GCM tag. It reads no plaintext and hashes about 16 bytes per
// 64 KiB chunk.
//
// The tags authenticate every byte of the body under the object's own
// DEK, so for an object that decodes without ErrIntegrity, an equal
// digest means the very object that was written: another object (a
// region swapped in, a blob written again) has another DEK and nonce
// prefix, hence other tags. Rewrap (KEK rotation) leaves it unchanged,
// as it rewrites only the header's KEK id and wrapped DEK. Package store
// records it for encrypted blobs instead of the SHA-256 of their
// plaintext, which cost radflow about a sixth of its CPU per received
// instance (see docs/operations.md, Performance).
type ObjectDigest struct {
	h    hash.Hash
	hdr  [HeaderSize]byte
	n    int64 // bytes written
	pos  int   // bytes of the current chunk written
	tail [tagSize]byte
}

// NewObjectDigest returns an empty ObjectDigest.
func NewObjectDigest() *ObjectDigest { return &ObjectDigest{h: sha256.New()} }

// NewObjectDigest implements package store's ObjectDigester.
func (c *Codec) NewObjectDigest() interface {
	Write([]byte) (int, error)
	Digest() string
} {
	return NewObjectDigest()
}

// Write takes the next stored bytes of the object; it never fails.
func (d *ObjectDigest) Write(p []byte) (int, error) {
	n := len(p)
	if d.n < HeaderSize {
		k := copy(d.hdr[d.n:], p)
		d.n += int64(k)
		p = p[k:]
		if d.n == HeaderSize {
			d.h.Write([]byte(digestDomain))
			d.h.Write(d.hdr[:offShift+1])
			d.h.Write(d.hdr[offPrefix:HeaderSize])
		}
	}
	const sealed = ChunkSize + tagSize
	for len(p) > 0 {
		k := min(len(p), sealed-d.pos)
		s := p[:k]
		if len(s) >= tagSize {
			copy(d.tail[:], s[len(s)-tagSize:])
		} else {
			copy(d.tail[:], d.tail[len(s):])
			copy(d.tail[tagSize-len(s):], s)
		}
		d.pos += k
		d.n += int64(k)
		p = p[k:]
		if d.pos == sealed {
			d.h.Write(d.tail[:])
			d.pos = 0
		}
	}
	return n, nil
}

// Digest returns DigestPrefix and the hex digest of the bytes written so
// far, the last chunk ending with them (an object too short to hold a
// header and a tag gets a digest no complete object has).
func (d *ObjectDigest) Digest() string {
	h := d.h // (a Digest after which more is written is then wrong: crypto's hashes all clone)
	if c, ok := d.h.(hash.Cloner); ok {
		if cl, err := c.Clone(); err == nil {
			h = cl
		}
	}
	if d.pos > 0 {
		h.Write(d.tail[:])
		if d.pos < tagSize {
			h.Write([]byte{0}) // no tag fits: never the digest of a complete object
		}
	}
	if d.n < HeaderSize {
		h.Write([]byte{1})
	}
	return DigestPrefix + hex.EncodeToString(h.Sum(nil))
}
