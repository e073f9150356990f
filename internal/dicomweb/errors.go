package dicomweb

import (
	"errors"

	"github.com/radflow/radflow/internal/dicom"
)

// Sentinel errors. An Ingester or Catalog adapter wraps (or maps to) them
// with %w so the handlers can classify failures with errors.Is.
var (
	// ErrInvalidInstance: the part is not a DICOM instance radflow can
	// understand (not DICOM, truncated, missing SOP Instance UID, ...).
	// STOW failure reason 0xC000. dicom.ErrNotDICOM and dicom.ErrMalformed
	// are classified the same way.
	ErrInvalidInstance = errors.New("dicomweb: invalid DICOM instance")
	// ErrSOPClassMismatch: the data set does not match its SOP Class (e.g.
	// the file meta Media Storage SOP Class/Instance UID contradicts the data
	// set). STOW failure reason 0xA900.
	ErrSOPClassMismatch = errors.New("dicomweb: data set does not match SOP class")
	// ErrStudyMismatch: the instance's Study Instance UID differs from the
	// {study} of the STOW target URL. STOW failure reason 0xC122.
	ErrStudyMismatch = errors.New("dicomweb: study instance UID mismatch")
	// ErrOutOfResources: the instance could not be stored for lack of
	// resources (disk full, instance over the size limit). STOW failure
	// reason 0xA700.
	ErrOutOfResources = errors.New("dicomweb: out of resources")
	// ErrBusy: the ingest pipeline is saturated (queue full); the whole STOW
	// request is answered 503 with Retry-After and no further part is read.
	ErrBusy = errors.New("dicomweb: ingest busy")
	// ErrNotFound: a Catalog has no such study/series/instance (404).
	ErrNotFound = errors.New("dicomweb: not found")
)

// STOW-RS Failure Reason (0008,1197) values (PS3.18 10.5.3, PS3.4 B.2.3).
const (
	FailureProcessing       uint16 = 0x0110 // unclassified processing failure
	FailureOutOfResources   uint16 = 0xA700
	FailureSOPClassMismatch uint16 = 0xA900
	FailureCannotUnderstand uint16 = 0xC000
	FailureStudyMismatch    uint16 = 0xC122
)

// FailureReasonOf maps an Ingester error to a STOW Failure Reason.
// Unclassified errors map to FailureProcessing (0x0110).
func FailureReasonOf(err error) uint16 {
	switch {
	case errors.Is(err, ErrStudyMismatch):
		return FailureStudyMismatch
	case errors.Is(err, ErrSOPClassMismatch):
		return FailureSOPClassMismatch
	case errors.Is(err, ErrOutOfResources), errors.Is(err, errPartTooLarge):
		return FailureOutOfResources
	case errors.Is(err, ErrInvalidInstance), errors.Is(err, dicom.ErrNotDICOM), errors.Is(err, dicom.ErrMalformed):
		return FailureCannotUnderstand
	}
	return FailureProcessing
}
