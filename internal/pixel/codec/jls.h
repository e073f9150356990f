// jls.h: C interface to CharLS (JPEG-LS, ISO 14495-1) for one frame.
#ifndef RADFLOW_JLS_H
#define RADFLOW_JLS_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
	int width, height, comps; // expected frame geometry
	int out_bytes;            // bytes per output sample: 1 or 2
	char msg[200];
} jls_job;

// radflow_jls_decode returns 0, 1 (CharLS error, corrupt data) or
// 2 (header disagrees with the job); msg says why.
int radflow_jls_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, jls_job *job);
#endif
