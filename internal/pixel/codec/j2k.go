package codec

/*
#cgo pkg-config: libopenjp2
#include "j2k.h"
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"
)

// jp2Signature opens a JP2 file (ISO 15444-1 Annex I): the signature box.
var jp2Signature = []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}

// j2kGeometry finds the SIZ marker segment of a J2K codestream (bare, or
// inside the contiguous codestream box of a JP2 file) and returns the
// image size and component count. It reads only inside src.
func j2kGeometry(src []byte) (jp2 bool, width, height, comps int, err error) {
	cs := src
	if bytes.HasPrefix(src, jp2Signature) {
		jp2 = true
		cs = nil
		for b := src; len(b) >= 8; {
			size := uint64(binary.BigEndian.Uint32(b))
			hdr := uint64(8)
			switch size {
			case 0:
				size = uint64(len(b))
			case 1:
				if len(b) < 16 {
					return jp2, 0, 0, 0, fmt.Errorf("%w: truncated JP2 box", ErrCorrupt)
				}
				size, hdr = binary.BigEndian.Uint64(b[8:]), 16
			}
			if size < hdr || size > uint64(len(b)) {
				return jp2, 0, 0, 0, fmt.Errorf("%w: JP2 box length %d overruns the file", ErrCorrupt, size)
			}
			if string(b[4:8]) == "jp2c" {
				cs = b[hdr:size]
				break
			}
			b = b[size:]
		}
	}
	// SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz.
	if len(cs) < 4+38 || cs[0] != 0xFF || cs[1] != 0x4F || cs[2] != 0xFF || cs[3] != 0x51 {
		return jp2, 0, 0, 0, fmt.Errorf("%w: no JPEG 2000 SOC and SIZ markers", ErrCorrupt)
	}
	s := cs[4:]
	x1, y1 := binary.BigEndian.Uint32(s[4:]), binary.BigEndian.Uint32(s[8:])
	x0, y0 := binary.BigEndian.Uint32(s[12:]), binary.BigEndian.Uint32(s[16:])
	if x1 <= x0 || y1 <= y0 || x1-x0 > 1<<16 || y1-y0 > 1<<16 {
		return jp2, 0, 0, 0, fmt.Errorf("%w: JPEG 2000 image area (%d,%d)-(%d,%d)", ErrCorrupt, x0, y0, x1, y1)
	}
	return jp2, int(x1 - x0), int(y1 - y0), int(binary.BigEndian.Uint16(s[36:])), nil
}

// decodeJPEG2000 decodes an ISO 15444-1 codestream (J2K, or a JP2 file as
// some writers store) through OpenJPEG. A multiple component transform
// (reversible RCT or irreversible ICT) is undone by OpenJPEG, so
// YBR_RCT/YBR_ICT frames come out RGB.
func decodeJ2K(src []byte, p Params) (Result, error) {
	jp2, w, h, nc, err := j2kGeometry(src)
	if err != nil {
		return Result{}, err
	}
	if err := p.checkGeometry("JPEG 2000", w, h, nc); err != nil {
		return Result{}, err
	}
	out := make([]byte, p.frameBytes())
	job := C.j2k_job{
		width:     C.int(p.Columns),
		height:    C.int(p.Rows),
		comps:     C.int(p.SamplesPerPixel),
		out_bytes: C.int(p.bytesPerSample()),
	}
	if jp2 {
		job.jp2 = 1
	}
	if rc := C.radflow_j2k_decode((*C.uint8_t)(unsafe.Pointer(&src[0])), C.size_t(len(src)),
		(*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &job); rc != 0 {
		return Result{}, fmt.Errorf("%w: %s", ErrCorrupt, C.GoString(&job.msg[0]))
	}
	photometric := p.Photometric
	if p.SamplesPerPixel == 3 && (job.mct != 0 || p.Photometric == "YBR_RCT" || p.Photometric == "YBR_ICT") {
		photometric = "RGB"
	}
	return Result{Data: out, Photometric: photometric}, nil
}
