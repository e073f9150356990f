// Package dicom reads DICOM Part 10 files and bare data sets on top of
// github.com/suyashkumar/dicom, working around its known defects and the
// known-hard inputs (no preamble, implicit-VR file meta, UN sequences, stray
// delimiters, ...), and gives typed access to the attributes radflow uses.
//
// It owns: parsing, attribute access, character sets. It does not own:
// pixel decoding (package pixel), networking (dimse, dicomweb).
package dicom
