// Package dcmtktest runs dcmtk's storescp as a real DICOM destination for
// tests (export and service end-to-end tests): start it on a free port,
// wait until it listens, read the Part 10 files it wrote.
//
// It owns: the storescp process, its port and output directory. It does
// not own: parsing what storescp wrote (callers use package dimse or
// dicom) or any other dcmtk tool. Import it only from _test.go files; it
// imports nothing from radflow, so any package's tests may use it.
package dcmtktest
