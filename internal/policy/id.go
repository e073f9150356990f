package policy

import (
	"crypto/rand"
	"sync"
)

// idBlock is a buffer of crypto/rand bytes consumed 16 at a time, so that a
// decision ID costs a system call only once every 256 IDs.
type idBlock struct {
	b [4096]byte
	n int // bytes of b already used
}

var idBlocks = sync.Pool{New: func() any { return &idBlock{n: len(idBlock{}.b)} }}

// newDecisionID returns a random (version 4, RFC 9562) UUID in its 36-byte
// lower-case text form, from 122 bits of crypto/rand output.
func newDecisionID() string {
	blk := idBlocks.Get().(*idBlock)
	if blk.n+16 > len(blk.b) {
		rand.Read(blk.b[:]) // never fails (crypto/rand aborts the program instead)
		blk.n = 0
	}
	var u [16]byte
	copy(u[:], blk.b[blk.n:])
	clear(blk.b[blk.n : blk.n+16])
	blk.n += 16
	idBlocks.Put(blk)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	const hexdigits = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexdigits[c>>4], hexdigits[c&0x0f]
		j += 2
	}
	return string(s[:])
}
