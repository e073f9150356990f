package codec

/*
#cgo LDFLAGS: -lgdcmjpeg8 -lgdcmjpeg12 -lgdcmjpeg16
#include "ijg.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// sofInfo is the frame header (T.81 B.2.2) of a JPEG codestream.
type sofInfo struct {
	marker               byte // 0xC0..0xCF, the SOFn marker
	precision            int
	height, width, ncomp int
}

// scanSOF walks the marker segments of a JPEG (or JPEG-LS) codestream up
// to the first SOFn (or SOF55 when ls) and returns its frame header. It
// reads only inside src.
func scanSOF(src []byte, ls bool) (sofInfo, error) {
	if len(src) < 4 || src[0] != 0xFF || src[1] != 0xD8 {
		return sofInfo{}, fmt.Errorf("%w: no SOI marker", ErrCorrupt)
	}
	i := 2
	for {
		// Skip to the next 0xFF, then past fill bytes.
		for i < len(src) && src[i] != 0xFF {
			i++
		}
		for i < len(src) && src[i] == 0xFF {
			i++
		}
		if i >= len(src) {
			return sofInfo{}, fmt.Errorf("%w: no frame header (SOF) before the end", ErrCorrupt)
		}
		m := src[i]
		i++
		switch {
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // TEM, RSTn: no length
			continue
		case m == 0xD9 || m == 0xDA:
			return sofInfo{}, fmt.Errorf("%w: marker 0x%02X before any frame header", ErrCorrupt, m)
		}
		if i+2 > len(src) {
			return sofInfo{}, fmt.Errorf("%w: truncated marker segment 0x%02X", ErrCorrupt, m)
		}
		n := int(src[i])<<8 | int(src[i+1])
		if n < 2 || i+n > len(src) {
			return sofInfo{}, fmt.Errorf("%w: marker 0x%02X length %d overruns the codestream", ErrCorrupt, m, n)
		}
		isSOF := m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC
		if ls {
			isSOF = m == 0xF7
		}
		if isSOF {
			if n < 8 {
				return sofInfo{}, fmt.Errorf("%w: SOF length %d", ErrCorrupt, n)
			}
			s := src[i+2:]
			return sofInfo{
				marker:    m,
				precision: int(s[0]),
				height:    int(s[1])<<8 | int(s[2]),
				width:     int(s[3])<<8 | int(s[4]),
				ncomp:     int(s[5]),
			}, nil
		}
		i += n
	}
}

// decodeJPEG decodes ISO 10918-1 codestreams (DCT sequential and
// progressive, lossless process 14) through GDCM's IJG libjpeg builds:
// libgdcmjpeg8 for 8-bit DCT and lossless up to 8 bits, libgdcmjpeg12 for
// 12-bit DCT, libgdcmjpeg16 for lossless of 9..16 bits.
func decodeJPEG(src []byte, p Params) (Result, error) {
	sof, err := scanSOF(src, false)
	if err != nil {
		return Result{}, err
	}
	switch sof.marker {
	case 0xC0, 0xC1, 0xC2, 0xC3:
	default:
		return Result{}, fmt.Errorf("%w: JPEG coding process with SOF marker 0x%02X (arithmetic or hierarchical)",
			ErrUnsupported, sof.marker)
	}
	if err := p.checkGeometry("JPEG", sof.width, sof.height, sof.ncomp); err != nil {
		return Result{}, err
	}
	if sof.precision > p.BitsAllocated {
		return Result{}, fmt.Errorf("%w: JPEG precision %d exceeds bits allocated %d", ErrCorrupt, sof.precision, p.BitsAllocated)
	}
	lossless := sof.marker == 0xC3
	var fn func(*C.uint8_t, C.size_t, *C.uint8_t, C.size_t, *C.ijg_job) C.int
	switch {
	case lossless && sof.precision >= 2 && sof.precision <= 8:
		fn = func(a *C.uint8_t, b C.size_t, c *C.uint8_t, d C.size_t, e *C.ijg_job) C.int {
			return C.radflow_ijg8_decode(a, b, c, d, e)
		}
	case lossless && sof.precision > 8 && sof.precision <= 16:
		fn = func(a *C.uint8_t, b C.size_t, c *C.uint8_t, d C.size_t, e *C.ijg_job) C.int {
			return C.radflow_ijg16_decode(a, b, c, d, e)
		}
	case !lossless && sof.precision == 8:
		fn = func(a *C.uint8_t, b C.size_t, c *C.uint8_t, d C.size_t, e *C.ijg_job) C.int {
			return C.radflow_ijg8_decode(a, b, c, d, e)
		}
	case !lossless && sof.precision == 12:
		fn = func(a *C.uint8_t, b C.size_t, c *C.uint8_t, d C.size_t, e *C.ijg_job) C.int {
			return C.radflow_ijg12_decode(a, b, c, d, e)
		}
	default:
		return Result{}, fmt.Errorf("%w: JPEG precision %d with SOF marker 0x%02X", ErrCorrupt, sof.precision, sof.marker)
	}

	out := make([]byte, p.frameBytes())
	job := C.ijg_job{
		width:     C.int(p.Columns),
		height:    C.int(p.Rows),
		comps:     C.int(p.SamplesPerPixel),
		out_bytes: C.int(p.bytesPerSample()),
	}
	if p.Photometric == "RGB" {
		job.dicom_rgb = 1
	}
	rc := fn((*C.uint8_t)(unsafe.Pointer(&src[0])), C.size_t(len(src)),
		(*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &job)
	switch rc {
	case C.IJG_OK:
	case C.IJG_ERR_COLOR:
		return Result{}, fmt.Errorf("%w: %s", ErrUnsupported, C.GoString(&job.msg[0]))
	default:
		return Result{}, fmt.Errorf("%w: %s", ErrCorrupt, C.GoString(&job.msg[0]))
	}
	photometric := p.Photometric
	if job.rgb != 0 {
		photometric = "RGB"
	}
	return Result{Data: out, Photometric: photometric}, nil
}
