package pixel

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one RLE Lossless frame (PS3.5 Annex G) into
// little-endian, pixel-interleaved samples of Bits Allocated width, reusing
// dst's storage. Segments are byte planes: for each sample, most
// significant byte first (G.2). errors: ErrCodec, ErrInconsistent.
func decodeRLE(in *Info, src []byte, dst []byte) ([]byte, error) {
	if in.BitsAllocated%8 != 0 || in.BitsAllocated > 32 {
		return nil, fmt.Errorf("%w: RLE with Bits Allocated %d", ErrInconsistent, in.BitsAllocated)
	}
	bytesPer := in.BitsAllocated / 8
	spp := in.SamplesPerPixel
	pixels := in.Rows * in.Columns
	nseg := spp * bytesPer
	if len(src) < 64 {
		return nil, fmt.Errorf("%w: RLE header needs 64 bytes, has %d", ErrCodec, len(src))
	}
	got := int(binary.LittleEndian.Uint32(src))
	if got != nseg {
		return nil, fmt.Errorf("%w: RLE header has %d segments, expected %d (%d samples x %d bytes)", ErrCodec, got, nseg, spp, bytesPer)
	}
	size := pixels * nseg
	// A PackBits run expands 2 bytes to at most 128: reject before allocating.
	if int64(size) > int64(len(src))*64+64*int64(nseg) {
		return nil, fmt.Errorf("%w: RLE frame of %d bytes cannot expand to %d", ErrCodec, len(src), size)
	}
	if cap(dst) < size {
		dst = make([]byte, size)
	}
	dst = dst[:size]
	for s := 0; s < nseg; s++ {
		start := int(binary.LittleEndian.Uint32(src[4+4*s:]))
		end := len(src)
		if s+1 < nseg {
			end = int(binary.LittleEndian.Uint32(src[8+4*s:]))
		}
		if start < 64 || start > end || end > len(src) {
			return nil, fmt.Errorf("%w: RLE segment %d offsets [%d,%d) outside %d bytes", ErrCodec, s, start, end, len(src))
		}
		sample, byteIdx := s/bytesPer, s%bytesPer
		// Little-endian output: MSB (segment byte 0) goes to the highest address.
		off := sample*bytesPer + (bytesPer - 1 - byteIdx)
		if err := unpackBitsSegment(src[start:end], dst[off:], nseg, pixels); err != nil {
			return nil, fmt.Errorf("segment %d: %w", s, err)
		}
	}
	return dst, nil
}

// unpackBitsSegment decodes one PackBits segment into out[0], out[stride],
// ... (n values). errors: ErrCodec when the segment is short.
func unpackBitsSegment(seg []byte, out []byte, stride, n int) error {
	o, i := 0, 0
	for o < n && i < len(seg) {
		c := int8(seg[i])
		i++
		switch {
		case c >= 0:
			k := int(c) + 1
			if i+k > len(seg) {
				k = len(seg) - i
			}
			for j := 0; j < k && o < n; j++ {
				out[o*stride] = seg[i+j]
				o++
			}
			i += k
		case c != -128:
			if i >= len(seg) {
				break
			}
			v := seg[i]
			i++
			for j := 0; j < 1-int(c) && o < n; j++ {
				out[o*stride] = v
				o++
			}
		}
	}
	if o < n {
		return fmt.Errorf("%w: RLE segment decodes to %d bytes, needs %d", ErrCodec, o, n)
	}
	return nil
}
