// Package dicom reads DICOM Part 10 files and bare data sets into
// github.com/suyashkumar/dicom Dataset/Element values, using that library's
// tag dictionary, character sets and value types. The byte stream is walked
// here rather than by the library's parser, which allocates from unchecked
// lengths, discards the Basic Offset Table and rejects several known-hard
// inputs (no preamble, implicit-VR file meta, UN sequences, implicit items
// in explicit data sets, stray delimiters, OV/SV/UV, deflated data sets).
//
// It owns: parsing, attribute access, character sets, the unprocessed Pixel
// Data (native bytes or fragments and offset tables), writing Part 10 files
// (write.go) and the result Structured Report (sr.go, docs/sr-template.md),
// UID generation (2.25 UUID UIDs), and the one UID and AE title syntax
// check (valid.go: ValidUID/CheckUID by the whole PS3.5 9.1 rule for what
// radflow writes, ValidReceivedUID/CheckReceivedUID tolerating leading zeros
// for what it receives; ValidAETitle). It does not own: pixel
// decoding (package pixel), networking (dimse, dicomweb). Subpackage
// dicomtest writes synthetic files for tests.
package dicom
