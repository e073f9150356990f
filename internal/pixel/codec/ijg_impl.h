// ijg_impl.h: the libjpeg decoding loop, compiled once per sample width by
// ijg8.c, ijg12.c and ijg16.c after each includes its own jpeglib.h and
// defines IJG_FN. Not a header for general use.
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include "ijg.h"

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char *msg;
} IJG_FN(err_mgr);

// error_exit: libjpeg's default calls exit(); jump back to the caller instead.
static void IJG_FN(error_exit)(j_common_ptr cinfo) {
	IJG_FN(err_mgr) *e = (IJG_FN(err_mgr) *)cinfo->err;
	char buf[JMSG_LENGTH_MAX];
	(*cinfo->err->format_message)(cinfo, buf);
	snprintf(e->msg, 200, "libjpeg: %s", buf);
	longjmp(e->jb, 1);
}

// emit_message: warnings that mean pixels are missing or invented (data
// truncated, bad Huffman code, lost restart marker) are fatal; the rest
// (extraneous bytes, unknown JFIF version, SOS parameters of a sequential
// scan written as if progressive, as some DICOM encoders do) are ignored.
static void IJG_FN(emit_message)(j_common_ptr cinfo, int level) {
	if (level >= 0) return;
	switch (cinfo->err->msg_code) {
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_JPEG_EOF:
	case JWRN_MUST_RESYNC:
	case JWRN_BOGUS_PROGRESSION:
		IJG_FN(error_exit)(cinfo);
	default:
		return;
	}
}

static void IJG_FN(output_message)(j_common_ptr cinfo) { (void)cinfo; }

static void IJG_FN(init_source)(j_decompress_ptr cinfo) { (void)cinfo; }
static void IJG_FN(term_source)(j_decompress_ptr cinfo) { (void)cinfo; }

static const JOCTET IJG_FN(fake_eoi)[2] = {0xFF, JPEG_EOI};

// fill_input_buffer is only called once the whole codestream is consumed:
// feed an EOI marker, as libjpeg's own sources do. The entropy decoder
// then warns JWRN_HIT_MARKER (fatal above) if it really lacked bits, so a
// codestream that merely omits EOI still decodes. A run of refills means
// the marker parser is stuck on a truncated header: stop.
static boolean IJG_FN(fill_input_buffer)(j_decompress_ptr cinfo) {
	static const int max_refills = 16;
	int *refills = (int *)cinfo->client_data;
	if (++*refills > max_refills) ERREXIT(cinfo, JERR_INPUT_EOF);
	cinfo->src->next_input_byte = IJG_FN(fake_eoi);
	cinfo->src->bytes_in_buffer = 2;
	return TRUE;
}

static void IJG_FN(skip_input_data)(j_decompress_ptr cinfo, long num_bytes) {
	struct jpeg_source_mgr *src = cinfo->src;
	if (num_bytes <= 0) return;
	while ((size_t)num_bytes > src->bytes_in_buffer) {
		num_bytes -= (long)src->bytes_in_buffer;
		(void)IJG_FN(fill_input_buffer)(cinfo);
	}
	src->next_input_byte += num_bytes;
	src->bytes_in_buffer -= (size_t)num_bytes;
}

int IJG_FN(decode)(const uint8_t *data, size_t n, uint8_t *out, size_t out_len, ijg_job *job) {
	struct jpeg_decompress_struct cinfo;
	IJG_FN(err_mgr) jerr;
	struct jpeg_source_mgr src;
	int refills = 0;
	volatile int rc = IJG_OK;
	JSAMPARRAY row = NULL;

	memset(&cinfo, 0, sizeof cinfo);
	job->msg[0] = 0;
	job->rgb = 0;
	job->precision = 0;
	cinfo.err = jpeg_std_error(&jerr.pub);
	jerr.pub.error_exit = IJG_FN(error_exit);
	jerr.pub.emit_message = IJG_FN(emit_message);
	jerr.pub.output_message = IJG_FN(output_message);
	jerr.msg = job->msg;
	if (setjmp(jerr.jb)) {
		jpeg_destroy_decompress(&cinfo);
		return IJG_ERR_LIB;
	}
	jpeg_create_decompress(&cinfo);
	cinfo.client_data = &refills;
	src.init_source = IJG_FN(init_source);
	src.fill_input_buffer = IJG_FN(fill_input_buffer);
	src.skip_input_data = IJG_FN(skip_input_data);
	src.resync_to_restart = jpeg_resync_to_restart;
	src.term_source = IJG_FN(term_source);
	src.next_input_byte = (const JOCTET *)data;
	src.bytes_in_buffer = n;
	cinfo.src = &src;

	jpeg_read_header(&cinfo, TRUE);
	job->precision = cinfo.data_precision;
	if ((int)cinfo.image_width != job->width || (int)cinfo.image_height != job->height ||
	    cinfo.num_components != job->comps) {
		snprintf(job->msg, sizeof job->msg, "codestream is %ux%u with %d components, expected %dx%d with %d",
		         cinfo.image_width, cinfo.image_height, cinfo.num_components, job->width, job->height, job->comps);
		rc = IJG_ERR_MISMATCH;
		goto done;
	}
	if (cinfo.data_precision > 8 * job->out_bytes) {
		snprintf(job->msg, sizeof job->msg, "precision %d does not fit %d-byte samples", cinfo.data_precision,
		         job->out_bytes);
		rc = IJG_ERR_MISMATCH;
		goto done;
	}
	if (cinfo.num_components == 3) {
		if (cinfo.process == JPROC_LOSSLESS) {
			// Lossless: never colour-convert, the samples are the data.
			cinfo.jpeg_color_space = JCS_UNKNOWN;
			cinfo.out_color_space = JCS_UNKNOWN;
		} else if (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB) {
			// libjpeg decides from JFIF / Adobe APP14 / component IDs
			// ('R','G','B' means no transform). With none of those and
			// component IDs other than 1,2,3 it guesses YCbCr; there the
			// data set's Photometric Interpretation RGB decides instead.
			int id0 = cinfo.comp_info[0].component_id, id1 = cinfo.comp_info[1].component_id,
			    id2 = cinfo.comp_info[2].component_id;
			if (job->dicom_rgb && !cinfo.saw_JFIF_marker && !cinfo.saw_Adobe_marker &&
			    !(id0 == 1 && id1 == 2 && id2 == 3))
				cinfo.jpeg_color_space = JCS_RGB;
			cinfo.out_color_space = JCS_RGB;
			job->rgb = 1;
		} else {
			snprintf(job->msg, sizeof job->msg, "unsupported JPEG colour space %d", (int)cinfo.jpeg_color_space);
			rc = IJG_ERR_COLOR;
			goto done;
		}
	} else if (cinfo.num_components == 1) {
		cinfo.out_color_space = JCS_GRAYSCALE;
	} else {
		snprintf(job->msg, sizeof job->msg, "unsupported component count %d", cinfo.num_components);
		rc = IJG_ERR_COLOR;
		goto done;
	}
	cinfo.dct_method = JDCT_ISLOW;
	jpeg_start_decompress(&cinfo);
	if ((int)cinfo.output_width != job->width || (int)cinfo.output_height != job->height ||
	    cinfo.output_components != job->comps) {
		snprintf(job->msg, sizeof job->msg, "decoder output %ux%ux%d, expected %dx%dx%d", cinfo.output_width,
		         cinfo.output_height, cinfo.output_components, job->width, job->height, job->comps);
		rc = IJG_ERR_MISMATCH;
		goto done;
	}
	{
		size_t rowlen = (size_t)job->width * (size_t)job->comps;
		size_t stride = rowlen * (size_t)job->out_bytes;
		if (stride * (size_t)job->height != out_len) {
			snprintf(job->msg, sizeof job->msg, "output buffer %zu bytes, need %zu", out_len,
			         stride * (size_t)job->height);
			rc = IJG_ERR_MISMATCH;
			goto done;
		}
		row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, (JDIMENSION)rowlen, 1);
		while (cinfo.output_scanline < cinfo.output_height) {
			size_t y = cinfo.output_scanline;
			uint8_t *dst = out + y * stride;
			size_t i;
			if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
				snprintf(job->msg, sizeof job->msg, "libjpeg: no scanline %zu", y);
				rc = IJG_ERR_LIB;
				goto done;
			}
			if (job->out_bytes == 1) {
				for (i = 0; i < rowlen; i++) dst[i] = (uint8_t)GETJSAMPLE(row[0][i]);
			} else {
				for (i = 0; i < rowlen; i++) {
					unsigned v = (unsigned)GETJSAMPLE(row[0][i]);
					dst[2 * i] = (uint8_t)v;
					dst[2 * i + 1] = (uint8_t)(v >> 8);
				}
			}
		}
	}
	// No jpeg_finish_decompress: everything needed is read, and a missing
	// EOI or trailing padding must not fail the frame.
done:
	jpeg_destroy_decompress(&cinfo);
	return rc;
}
