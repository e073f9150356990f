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
