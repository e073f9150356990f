// Package pixel turns an instance's Pixel Data into typed samples: native
// (little and big endian, 1-bit, odd length), RLE Lossless, and the
// compressed transfer syntaxes through package codec; photometric handling
// (MONOCHROME1/2, RGB planar 0/1, YBR_FULL, YBR_FULL_422, PALETTE COLOR);
// and the modality LUT (PS3.3 C.11.1) and VOI LUT (PS3.3 C.11.2).
//
// It owns: frame extraction (Basic/Extended Offset Tables, fragments),
// masking and sign extension by Bits Stored / Pixel Representation, colour
// conversion, LUTs. It does not own: DICOM parsing (package dicom), model
// preprocessing such as resize and normalisation (package transform), HTTP.
package pixel
