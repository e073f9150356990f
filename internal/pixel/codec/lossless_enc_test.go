package codec

// A minimal JPEG lossless (ITU-T T.81 process 14, Annex H) encoder used
// only to synthesize test codestreams: any selection value 1-7, precision
// 2-16, 1 or 3 interleaved components, point transform 0. It is written
// from the standard independently of the decoder under test.

type bitWriter struct {
	buf   []byte
	acc   uint32
	nbits uint
}

func (w *bitWriter) put(code uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (code>>uint(i))&1
		w.nbits++
		if w.nbits == 8 {
			b := byte(w.acc)
			w.buf = append(w.buf, b)
			if b == 0xFF {
				w.buf = append(w.buf, 0x00) // byte stuffing (F.1.2.3)
			}
			w.acc, w.nbits = 0, 0
		}
	}
}

func (w *bitWriter) flush() {
	for w.nbits != 0 {
		w.put(1, 1) // pad with 1-bits
	}
}

// predict is the prediction of H.1.2.1 for the sample at (x, y), given
// the reconstructed samples of the same component.
func predict(sv, p, x, y, width int, s func(x, y int) int) int {
	switch {
	case x == 0 && y == 0:
		return 1 << (p - 1)
	case y == 0:
		return s(x-1, y)
	case x == 0:
		return s(x, y-1)
	}
	ra, rb, rc := s(x-1, y), s(x, y-1), s(x-1, y-1)
	switch sv {
	case 1:
		return ra
	case 2:
		return rb
	case 3:
		return rc
	case 4:
		return ra + rb - rc
	case 5:
		return ra + ((rb - rc) >> 1)
	case 6:
		return rb + ((ra - rc) >> 1)
	default:
		return (ra + rb) >> 1
	}
}

// encodeLossless returns a JPEG lossless codestream of the samples
// (pixel-interleaved, comps per pixel) with precision p and selection
// value sv. Differences are taken modulo 2^16 (H.2.1).
func encodeLossless(samples []int, width, height, comps, p, sv int) []byte {
	out := []byte{0xFF, 0xD8}
	// SOF3
	out = append(out, 0xFF, 0xC3, 0, byte(8+3*comps), byte(p),
		byte(height>>8), byte(height), byte(width>>8), byte(width), byte(comps))
	for c := 0; c < comps; c++ {
		out = append(out, byte(c+1), 0x11, 0)
	}
	// DHT: DC table 0, the 17 categories 0..16 each with a 5-bit code.
	out = append(out, 0xFF, 0xC4, 0, byte(2+1+16+17), 0x00)
	for l := 1; l <= 16; l++ {
		if l == 5 {
			out = append(out, 17)
		} else {
			out = append(out, 0)
		}
	}
	for s := 0; s <= 16; s++ {
		out = append(out, byte(s))
	}
	// SOS: Ss = selection value, Se = 0, Ah/Al = 0.
	out = append(out, 0xFF, 0xDA, 0, byte(6+2*comps), byte(comps))
	for c := 0; c < comps; c++ {
		out = append(out, byte(c+1), 0x00)
	}
	out = append(out, byte(sv), 0, 0)

	w := &bitWriter{buf: out}
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			for c := 0; c < comps; c++ {
				s := func(x, y int) int { return samples[(y*width+x)*comps+c] }
				pred := predict(sv, p, x, y, width, s)
				diff := (s(x, y) - pred) & 0xFFFF
				if diff >= 0x8000 {
					diff -= 0x10000
				}
				mag := diff
				if mag < 0 {
					mag = -mag
				}
				ssss := 0
				for mag>>ssss != 0 {
					ssss++
				}
				w.put(uint32(ssss), 5) // code for category ssss is ssss itself
				if ssss == 16 {
					continue // diff 32768: no additional bits (H.1.2.2)
				}
				if diff < 0 {
					diff += 1<<ssss - 1
				}
				w.put(uint32(diff)&(1<<ssss-1), uint(ssss))
			}
		}
	}
	w.flush()
	return append(w.buf, 0xFF, 0xD9)
}
