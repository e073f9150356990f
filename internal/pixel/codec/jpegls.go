package codec

/*
#cgo pkg-config: charls
#include "jls.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// decodeJPEGLS decodes an ISO 14495-1 (JPEG-LS) codestream, lossless or
// near-lossless, through CharLS. Interleave modes none, line and sample
// all come out pixel-interleaved; HP colour transforms are undone by
// CharLS.
func decodeJPEGLS(src []byte, p Params) (Result, error) {
	sof, err := scanSOF(src, true)
	if err != nil {
		return Result{}, err
	}
	if err := p.checkGeometry("JPEG-LS", sof.width, sof.height, sof.ncomp); err != nil {
		return Result{}, err
	}
	// CharLS 2.4 takes seconds to give up on a codestream cut short
	// without a marker at its end; a complete one ends with EOI, perhaps
	// followed by a few pad bytes (0x00, or 0xFF as some writers pad).
	end := len(src)
	for end > 0 && len(src)-end < 8 && (src[end-1] == 0 || src[end-1] == 0xFF) {
		end--
	}
	if end < 2 || src[end-2] != 0xFF || src[end-1] != 0xD9 {
		return Result{}, fmt.Errorf("%w: JPEG-LS codestream does not end with EOI (truncated)", ErrCorrupt)
	}
	src = src[:end]
	out := make([]byte, p.frameBytes())
	job := C.jls_job{
		width:     C.int(p.Columns),
		height:    C.int(p.Rows),
		comps:     C.int(p.SamplesPerPixel),
		out_bytes: C.int(p.bytesPerSample()),
	}
	if rc := C.radflow_jls_decode((*C.uint8_t)(unsafe.Pointer(&src[0])), C.size_t(len(src)),
		(*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &job); rc != 0 {
		return Result{}, fmt.Errorf("%w: %s", ErrCorrupt, C.GoString(&job.msg[0]))
	}
	return Result{Data: out, Photometric: p.Photometric}, nil
}
