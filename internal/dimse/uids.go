package dimse

import "github.com/radflow/radflow/internal/dicom"

// Implementation identification sent in A-ASSOCIATE user information and
// written to Part 10 file meta: radflow's one identity, defined in package
// dicom so that files written there and by this package name radflow alike.
const (
	ImplementationClassUID    = dicom.ImplementationClassUID
	ImplementationVersionName = dicom.ImplementationVersionName
)

// SOP class and transfer syntax UIDs (PS3.4, PS3.5 Section 10, PS3.6 Annex A).
const (
	VerificationSOPClass = "1.2.840.10008.1.1"
	// StorageSOPClassPrefix: every Storage SOP class in PS3.4 Annex B lies below it.
	StorageSOPClassPrefix = "1.2.840.10008.5.1.4.1.1."

	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

// DefaultTransferSyntaxes is the SCP's default accepted transfer syntax list.
func DefaultTransferSyntaxes() []string {
	return []string{
		ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
		DeflatedExplicitVRLittleEndian, RLELossless,
		JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
		JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000,
	}
}
