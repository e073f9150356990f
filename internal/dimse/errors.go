package dimse

import (
	"errors"
	"fmt"
)

var (
	// ErrProtocol: the peer sent a malformed or unexpected PDU or command; the
	// association is aborted (A-ABORT, source service-provider).
	ErrProtocol = errors.New("dimse: protocol error")
	// ErrAborted: the association was aborted (by the peer's A-ABORT, a
	// timeout, context cancellation or server shutdown).
	ErrAborted = errors.New("dimse: association aborted")
	// ErrAssociationRejected: the peer answered A-ASSOCIATE-RJ; the error is a *RejectError.
	ErrAssociationRejected = errors.New("dimse: association rejected")
	// ErrNoPresentationContext: no accepted presentation context matches the
	// SOP class and transfer syntax of what is to be sent (radflow does not transcode).
	ErrNoPresentationContext = errors.New("dimse: no accepted presentation context")
	// ErrNotPart10: the file is not a DICOM Part 10 file with a readable file meta group.
	ErrNotPart10 = errors.New("dimse: not a DICOM Part 10 file")
	// ErrInvalidArgument: a caller-supplied value is unusable (bad config, UID, AE title...).
	ErrInvalidArgument = errors.New("dimse: invalid argument")
	// ErrServerClosed: Serve was called after Shutdown, or returns after it.
	ErrServerClosed = errors.New("dimse: server closed")
	// ErrReleased: the association has been released and can no longer be used.
	ErrReleased = errors.New("dimse: association released")

	// Handler errors mapped to C-STORE statuses (PS3.4 B.2.3).

	// ErrOutOfResources → 0xA700 Refused: Out of Resources (e.g. disk full).
	ErrOutOfResources = errors.New("dimse: out of resources")
	// ErrDataSetMismatch → 0xA900 Error: Data Set does not match SOP Class.
	ErrDataSetMismatch = errors.New("dimse: data set does not match SOP class")
	// ErrCannotUnderstand → 0xC000 Error: Cannot understand.
	ErrCannotUnderstand = errors.New("dimse: cannot understand")
	// ErrNotAuthorized → 0x0124 Refused: Not authorized (PS3.7 C.4.2: the
	// peer may not perform the operation).
	ErrNotAuthorized = errors.New("dimse: refused: not authorized")
)

// DIMSE status codes used by this package (PS3.7 Annex C, PS3.4 B.2.3).
const (
	StatusSuccess               uint16 = 0x0000
	StatusProcessingFailure     uint16 = 0x0110
	StatusSOPClassNotSupported  uint16 = 0x0122
	StatusNotAuthorized         uint16 = 0x0124
	StatusUnrecognizedOperation uint16 = 0x0211
	StatusOutOfResources        uint16 = 0xA700
	StatusDataSetMismatch       uint16 = 0xA900
	StatusCannotUnderstand      uint16 = 0xC000
)

// statusForError maps a Store handler error to a C-STORE status.
func statusForError(err error) uint16 {
	switch {
	case errors.Is(err, ErrOutOfResources):
		return StatusOutOfResources
	case errors.Is(err, ErrDataSetMismatch):
		return StatusDataSetMismatch
	case errors.Is(err, ErrCannotUnderstand):
		return StatusCannotUnderstand
	case errors.Is(err, ErrNotAuthorized):
		return StatusNotAuthorized
	}
	return StatusProcessingFailure
}

// RejectError is an A-ASSOCIATE-RJ received from the peer (PS3.8 Table 9-21).
// It wraps ErrAssociationRejected.
type RejectError struct {
	Result, Source, Reason byte
}

func (e *RejectError) Error() string {
	kind := "permanent"
	if e.Result == rjTransient {
		kind = "transient"
	}
	return fmt.Sprintf("dimse: association rejected (%s): %s", kind, rejectReasonText(e.Source, e.Reason))
}

func (e *RejectError) Unwrap() error { return ErrAssociationRejected }

func rejectReasonText(source, reason byte) string {
	switch {
	case source == rjSourceUser && reason == rjReasonAppContextNotSupported:
		return "application context name not supported"
	case source == rjSourceUser && reason == rjReasonCallingAENotRecognized:
		return "calling AE title not recognized"
	case source == rjSourceUser && reason == rjReasonCalledAENotRecognized:
		return "called AE title not recognized"
	case source == rjSourceProviderACSE && reason == rjReasonProtocolVersion:
		return "protocol version not supported"
	case source == rjSourceProviderPres && reason == 1:
		return "temporary congestion"
	case source == rjSourceProviderPres && reason == rjReasonLocalLimitExceeded:
		return "local limit exceeded"
	}
	return fmt.Sprintf("source %d reason %d", source, reason)
}

// AbortError is an A-ABORT received from the peer; it wraps ErrAborted.
type AbortError struct{ Source, Reason byte }

func (e *AbortError) Error() string {
	return fmt.Sprintf("dimse: association aborted by peer (source %d, reason %d)", e.Source, e.Reason)
}

func (e *AbortError) Unwrap() error { return ErrAborted }

// StatusError is a non-success DIMSE status in a response (C-ECHO).
type StatusError struct{ Status uint16 }

func (e *StatusError) Error() string { return fmt.Sprintf("dimse: status 0x%04X", e.Status) }
