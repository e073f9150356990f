// j2k.h: C interface to OpenJPEG (JPEG 2000, ISO 15444-1) for one frame.
#ifndef RADFLOW_J2K_H
#define RADFLOW_J2K_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
	int width, height, comps; // expected frame geometry
	int out_bytes;            // bytes per output sample: 1 or 2
	int jp2;                  // 1: JP2 file format, 0: raw J2K codestream
	// out
	int mct;       // 1: a multiple component transform was undone
	int precision; // precision of component 0
	int sgnd;      // signedness of component 0
	char msg[256];
} j2k_job;

// radflow_j2k_decode returns 0, 1 (OpenJPEG error, corrupt data) or
// 2 (header disagrees with the job); msg says why.
int radflow_j2k_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, j2k_job *job);
#endif
