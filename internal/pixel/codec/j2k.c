// j2k.c: JPEG 2000 decoding through OpenJPEG 2.5 from a memory stream.
#include <stdio.h>
#include <string.h>
#include <openjpeg.h>
#include "j2k.h"

typedef struct {
	const uint8_t *data;
	size_t len, pos;
} memsrc;

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user) {
	memsrc *m = user;
	size_t left = m->len - m->pos;
	if (left == 0) return (OPJ_SIZE_T)-1;
	if (n > left) n = left;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user) {
	memsrc *m = user;
	if (n < 0) {
		if ((size_t)(-n) > m->pos) return -1;
	} else if ((size_t)n > m->len - m->pos) {
		n = (OPJ_OFF_T)(m->len - m->pos);
	}
	m->pos = (size_t)((OPJ_OFF_T)m->pos + n);
	return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *user) {
	memsrc *m = user;
	if (n < 0 || (size_t)n > m->len) return OPJ_FALSE;
	m->pos = (size_t)n;
	return OPJ_TRUE;
}

static void on_error(const char *msg, void *user) {
	j2k_job *job = user;
	if (job->msg[0] == 0) {
		snprintf(job->msg, sizeof job->msg, "OpenJPEG: %s", msg);
		size_t l = strlen(job->msg);
		if (l > 0 && job->msg[l - 1] == '\n') job->msg[l - 1] = 0;
	}
}

static void on_quiet(const char *msg, void *user) {
	(void)msg;
	(void)user;
}

int radflow_j2k_decode(const uint8_t *src, size_t n, uint8_t *out, size_t out_len, j2k_job *job) {
	memsrc m = {src, n, 0};
	opj_dparameters_t params;
	opj_codec_t *codec = NULL;
	opj_stream_t *stream = NULL;
	opj_image_t *img = NULL;
	int rc = 0, c;
	size_t npix, i;

	job->msg[0] = 0;
	job->mct = 0;
	codec = opj_create_decompress(job->jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	stream = opj_stream_create(64 * 1024, OPJ_TRUE);
	if (codec == NULL || stream == NULL) {
		snprintf(job->msg, sizeof job->msg, "OpenJPEG: cannot create decoder");
		rc = 1;
		goto done;
	}
	opj_set_error_handler(codec, on_error, job);
	opj_set_warning_handler(codec, on_quiet, job);
	opj_set_info_handler(codec, on_quiet, job);
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(codec, &params)) {
		rc = 1;
		goto done;
	}
	// Strict mode: a truncated codestream is an error, not a blurrier image.
	opj_decoder_set_strict_mode(codec, OPJ_TRUE);
	opj_stream_set_user_data(stream, &m, NULL);
	opj_stream_set_user_data_length(stream, (OPJ_UINT64)n);
	opj_stream_set_read_function(stream, mem_read);
	opj_stream_set_skip_function(stream, mem_skip);
	opj_stream_set_seek_function(stream, mem_seek);

	if (!opj_read_header(stream, codec, &img) || img == NULL) {
		if (job->msg[0] == 0) snprintf(job->msg, sizeof job->msg, "OpenJPEG: cannot read header");
		rc = 1;
		goto done;
	}
	if ((int)(img->x1 - img->x0) != job->width || (int)(img->y1 - img->y0) != job->height ||
	    (int)img->numcomps != job->comps) {
		snprintf(job->msg, sizeof job->msg, "JPEG 2000 header is %ux%u with %u components, expected %dx%d with %d",
		         img->x1 - img->x0, img->y1 - img->y0, img->numcomps, job->width, job->height, job->comps);
		rc = 2;
		goto done;
	}
	for (c = 0; c < (int)img->numcomps; c++) {
		opj_image_comp_t *k = &img->comps[c];
		if (k->dx != 1 || k->dy != 1) {
			snprintf(job->msg, sizeof job->msg, "component %d is subsampled %ux%u", c, k->dx, k->dy);
			rc = 2;
			goto done;
		}
		if (k->prec < 1 || (int)k->prec > 8 * job->out_bytes) {
			snprintf(job->msg, sizeof job->msg, "component %d precision %u does not fit %d-byte samples", c, k->prec,
			         job->out_bytes);
			rc = 2;
			goto done;
		}
	}
	job->precision = (int)img->comps[0].prec;
	job->sgnd = (int)img->comps[0].sgnd;
	{
		opj_codestream_info_v2_t *info = opj_get_cstr_info(codec);
		if (info != NULL) {
			job->mct = info->m_default_tile_info.mct != 0;
			opj_destroy_cstr_info(&info);
		}
	}
	if (!opj_decode(codec, stream, img) || !opj_end_decompress(codec, stream)) {
		if (job->msg[0] == 0) snprintf(job->msg, sizeof job->msg, "OpenJPEG: decoding failed");
		rc = 1;
		goto done;
	}
	npix = (size_t)job->width * (size_t)job->height;
	if (npix * (size_t)job->comps * (size_t)job->out_bytes != out_len) {
		snprintf(job->msg, sizeof job->msg, "output buffer %zu bytes, need %zu", out_len,
		         npix * (size_t)job->comps * (size_t)job->out_bytes);
		rc = 2;
		goto done;
	}
	for (c = 0; c < (int)img->numcomps; c++) {
		opj_image_comp_t *k = &img->comps[c];
		const OPJ_INT32 *d = k->data;
		size_t nc = (size_t)job->comps;
		if (d == NULL || k->w != (OPJ_UINT32)job->width || k->h != (OPJ_UINT32)job->height) {
			snprintf(job->msg, sizeof job->msg, "component %d decoded as %ux%u", c, k->w, k->h);
			rc = 1;
			goto done;
		}
		// Two's complement in the output width: package pixel applies
		// Bits Stored and Pixel Representation, which win over prec/sgnd.
		if (job->out_bytes == 1) {
			for (i = 0; i < npix; i++) out[i * nc + (size_t)c] = (uint8_t)d[i];
		} else {
			for (i = 0; i < npix; i++) {
				uint8_t *o = out + 2 * (i * nc + (size_t)c);
				uint32_t v = (uint32_t)d[i];
				o[0] = (uint8_t)v;
				o[1] = (uint8_t)(v >> 8);
			}
		}
	}
done:
	if (img != NULL) opj_image_destroy(img);
	if (stream != NULL) opj_stream_destroy(stream);
	if (codec != NULL) opj_destroy_codec(codec);
	return rc;
}
