package ingest

import (
	"bytes"
	"sync"
)

// maxPooledBuffer: buffers that grew larger are left to the garbage
// collector rather than kept for reuse (a few huge instances must not pin
// their memory for the life of the process).
const maxPooledBuffer = 64 << 20

var buffers sync.Pool

// GetBuffer returns an empty buffer with room for at least size bytes,
// reused from earlier instances when one is free. Receiving each 0.5 MB
// instance into a fresh buffer cost a zeroed allocation (and its growth
// copies for a reader of unknown length) and about a tenth of the CPU in
// garbage collection under C-STORE and STOW-RS load. Give it back with
// PutBuffer once nothing refers to its bytes.
func GetBuffer(size int) *bytes.Buffer {
	b, _ := buffers.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Grow(size)
	return b
}

// PutBuffer makes b available to GetBuffer. The caller must not use b, or
// any slice of its bytes, afterwards.
func PutBuffer(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	buffers.Put(b)
}
