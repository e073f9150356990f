// ijg.h: C interface to the three builds of GDCM's IJG libjpeg 6b
// (libgdcmjpeg8/12/16: 8-bit and 12-bit DCT, lossless up to 16 bits).
#ifndef RADFLOW_IJG_H
#define RADFLOW_IJG_H
#include <stddef.h>
#include <stdint.h>

enum {
	IJG_OK = 0,
	IJG_ERR_LIB = 1,      // libjpeg error or corrupt-data warning; msg filled
	IJG_ERR_MISMATCH = 2, // header disagrees with the expected frame; msg filled
	IJG_ERR_COLOR = 3     // colour space we do not handle; msg filled
};

typedef struct {
	// in
	int width, height, comps; // expected frame geometry
	int out_bytes;            // bytes per output sample: 1 or 2
	int dicom_rgb;            // 1: the data set says Photometric Interpretation RGB
	// out
	int rgb;       // 1: output is RGB (converted from YCbCr, or coded as RGB)
	int precision; // data precision in the SOF
	char msg[200];
} ijg_job;

int radflow_ijg8_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, ijg_job *job);
int radflow_ijg12_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, ijg_job *job);
int radflow_ijg16_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, ijg_job *job);
#endif
