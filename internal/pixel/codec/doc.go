// Package codec decodes one frame's compressed codestream into native
// little-endian, pixel-interleaved samples that package pixel then masks
// to Bits Stored and sign-extends like native data.
//
// Transfer syntaxes (see Supported):
//   - JPEG baseline .50 (8-bit), extended .51 (12-bit), spectral selection
//     .53 and progressive .55 (8/12-bit; retired, but the library decodes
//     them), lossless process 14 .57 (selection values 1-7) and SV1 .70
//     (2..16 bits, modulo-2^16 reconstruction per T.81 H.2.1);
//   - JPEG-LS lossless .80 and near-lossless .81, interleave modes 0/1/2;
//   - JPEG 2000 lossless .90 and lossy .91, raw J2K codestream or JP2 file.
//
// Everything else, and arithmetic-coded or hierarchical JPEG, is
// ErrUnsupported.
//
// It owns codestream decoding only: no DICOM parsing, no fragment or
// offset-table handling, no masking, sign extension, LUTs or colour
// conversion beyond what the codestream itself signals.
//
// # Libraries (cgo) and why
//
// JPEG (ISO 10918-1): the three IJG libjpeg 6b builds shipped by GDCM
// (libgdcmjpeg8, libgdcmjpeg12, libgdcmjpeg16, with the Cornell lossless
// patches) through their C API: 8-bit DCT and lossless up to 8 bits, 12-bit
// DCT, lossless 9..16 bits. Debian 12's libjpeg62-turbo 2.1.5 has neither
// 12-bit nor lossless; a pure-Go lossless decoder would still leave 12-bit
// DCT unsolved; GDCM's C++ JPEGCodec would add a C++ shim and GDCM's own
// colour policy. The C API gives one code path (ijg_impl.h compiled three
// times) with our own error manager: error_exit longjmps back instead of
// calling exit(), and warnings that mean missing or invented pixels
// (premature end of data, bad Huffman code, lost restart marker) are
// errors. The input is a memory source that never reads past src; a
// missing EOI is tolerated.
//
// Colour for DCT JPEG: libjpeg's rule (JFIF → YCbCr, Adobe APP14 transform,
// component IDs 1,2,3 → YCbCr, 'R','G','B' → RGB); with none of those and
// other IDs, the data set's Photometric RGB means "coded as RGB, do not
// convert" (B25b). YCbCr output is converted to RGB and Result.Photometric
// is "RGB". Lossless JPEG is never colour-converted.
//
// JPEG-LS (ISO 14495-1): CharLS 2.4 C API (charls_jpegls_decoder_*).
// A codestream that does not end with EOI (after up to 7 pad bytes) is
// rejected before CharLS sees it: CharLS 2.4 spends seconds on
// codestreams cut short without a marker.
//
// JPEG 2000 (ISO 15444-1): OpenJPEG 2.5 from a memory stream, strict mode
// (truncation is an error). Component values are written as two's
// complement in BitsAllocated bytes whatever the codestream's precision
// and sign flag, so the DICOM attributes win (B17). A multiple component
// transform is undone by OpenJPEG: YBR_RCT/YBR_ICT come out "RGB".
// OpenJPEG decodes on one thread unless OPJ_NUM_THREADS is set (a number
// or ALL_CPUS) in the environment.
//
// Safety: the codestream header (SOF, SOF55, SIZ) is parsed in Go and
// checked against Params before any allocation; the libraries' headers are
// checked again before decoding; frames over 2 GiB are refused.
//
// Build dependencies (Debian 12): libgdcm-dev (headers
// /usr/include/gdcm-3.0/gdcmjpeg and libgdcmjpeg8/12/16), libcharls-dev,
// libopenjp2-7-dev, pkg-config; at run time libgdcm3.0, libcharls2,
// libopenjp2-7.
package codec
