// jls.c: JPEG-LS decoding through the CharLS 2.x C API.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <charls/charls.h>
#include "jls.h"

static int jls_fail(jls_job *job, charls_jpegls_errc e, const char *what) {
	snprintf(job->msg, sizeof job->msg, "CharLS %s: %s", what, charls_get_error_message(e));
	return 1;
}

int radflow_jls_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, jls_job *job) {
	charls_jpegls_decoder *d = charls_jpegls_decoder_create();
	charls_frame_info fi;
	charls_interleave_mode ilv;
	charls_jpegls_errc e;
	size_t need, samples, in_bytes, i;
	uint8_t *tmp = NULL;
	int rc = 0;

	job->msg[0] = 0;
	if (d == NULL) {
		snprintf(job->msg, sizeof job->msg, "CharLS: cannot create decoder");
		return 1;
	}
	if ((e = charls_jpegls_decoder_set_source_buffer(d, src, n)) != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = jls_fail(job, e, "source");
		goto done;
	}
	if ((e = charls_jpegls_decoder_read_header(d)) != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = jls_fail(job, e, "header");
		goto done;
	}
	if ((e = charls_jpegls_decoder_get_frame_info(d, &fi)) != CHARLS_JPEGLS_ERRC_SUCCESS ||
	    (e = charls_jpegls_decoder_get_interleave_mode(d, &ilv)) != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = jls_fail(job, e, "frame info");
		goto done;
	}
	if ((int)fi.width != job->width || (int)fi.height != job->height || fi.component_count != job->comps) {
		snprintf(job->msg, sizeof job->msg, "JPEG-LS header is %ux%u with %d components, expected %dx%d with %d",
		         fi.width, fi.height, fi.component_count, job->width, job->height, job->comps);
		rc = 2;
		goto done;
	}
	if (fi.bits_per_sample < 2 || fi.bits_per_sample > 8 * job->out_bytes) {
		snprintf(job->msg, sizeof job->msg, "JPEG-LS precision %d does not fit %d-byte samples", fi.bits_per_sample,
		         job->out_bytes);
		rc = 2;
		goto done;
	}
	in_bytes = fi.bits_per_sample <= 8 ? 1 : 2;
	samples = (size_t)fi.width * fi.height * (size_t)fi.component_count;
	if (samples * (size_t)job->out_bytes != out_len) {
		snprintf(job->msg, sizeof job->msg, "output buffer %zu bytes, need %zu", out_len,
		         samples * (size_t)job->out_bytes);
		rc = 2;
		goto done;
	}
	if ((e = charls_jpegls_decoder_get_destination_size(d, 0, &need)) != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = jls_fail(job, e, "size");
		goto done;
	}
	if (need != samples * in_bytes) {
		snprintf(job->msg, sizeof job->msg, "CharLS wants %zu bytes for %zu samples", need, samples);
		rc = 2;
		goto done;
	}
	// CharLS writes native-endian samples of 1 (<= 8 bits) or 2 bytes,
	// planar for interleave mode none and pixel-interleaved for line and
	// sample modes. Decode straight into out when that is the layout
	// wanted, else through a scratch buffer.
	if (in_bytes == (size_t)job->out_bytes && (fi.component_count == 1 || ilv != CHARLS_INTERLEAVE_MODE_NONE)) {
		if ((e = charls_jpegls_decoder_decode_to_buffer(d, out, out_len, 0)) != CHARLS_JPEGLS_ERRC_SUCCESS)
			rc = jls_fail(job, e, "decode");
		goto done;
	}
	tmp = malloc(need);
	if (tmp == NULL) {
		snprintf(job->msg, sizeof job->msg, "out of memory (%zu bytes)", need);
		rc = 1;
		goto done;
	}
	if ((e = charls_jpegls_decoder_decode_to_buffer(d, tmp, need, 0)) != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = jls_fail(job, e, "decode");
		goto done;
	}
	{
		size_t plane = (size_t)fi.width * fi.height, nc = (size_t)fi.component_count;
		int planar = ilv == CHARLS_INTERLEAVE_MODE_NONE && nc > 1;
		for (i = 0; i < samples; i++) {
			// i indexes the output (pixel-interleaved); j the decoded buffer.
			size_t j = planar ? (i % nc) * plane + i / nc : i;
			unsigned v = in_bytes == 1 ? tmp[j] : (unsigned)((uint16_t *)tmp)[j];
			if (job->out_bytes == 1) {
				out[i] = (uint8_t)v;
			} else {
				out[2 * i] = (uint8_t)v;
				out[2 * i + 1] = (uint8_t)(v >> 8);
			}
		}
	}
done:
	free(tmp);
	charls_jpegls_decoder_destroy(d);
	return rc;
}
