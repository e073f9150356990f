// Package codec decodes one frame's compressed codestream (JPEG baseline,
// extended 12-bit, lossless process 14 SV1-7, JPEG-LS lossless and
// near-lossless, JPEG 2000 lossless and lossy) through well-kept C
// libraries (cgo), into native little-endian, pixel-interleaved bytes that
// package pixel then masks and sign-extends like native data.
//
// It owns codestream decoding only: no DICOM attributes beyond the Params
// it is given, no LUTs, no file parsing.
package codec
