package dicomweb

import (
	"context"
	"io"
)

// Ingester stores one DICOM instance. Implemented by the ingest package
// (through an adapter written by radflow serve).
//
// Ingest reads a Part 10 file from r (the body of one multipart part; reads
// may fail with the transport's error, which Ingest returns wrapped) and
// stores it. When src.StudyInstanceUID is non-empty and the instance's Study
// Instance UID differs, Ingest must store nothing and return an error
// wrapping ErrStudyMismatch. On error, the returned Stored may carry the
// SOP Class/Instance UIDs read before the failure (used in the
// FailedSOPSequence); zero values are allowed.
//
// errors (wrap with %w): ErrInvalidInstance, ErrSOPClassMismatch,
// ErrStudyMismatch, ErrOutOfResources, ErrBusy; any other error is reported
// as failure reason 0x0110 for that part.
type Ingester interface {
	Ingest(ctx context.Context, r io.Reader, src Source) (Stored, error)
}

// Source describes where an instance came from.
type Source struct {
	// Protocol is "dicomweb" for STOW-RS.
	Protocol string
	// RemoteAddr is the client address (host:port) as seen by the server.
	RemoteAddr string
	// StudyInstanceUID, when non-empty, is the study the instance must
	// belong to (STOW to /studies/{study}).
	StudyInstanceUID string
	// ContentType is the part's media type as sent, e.g.
	// "application/dicom; transfer-syntax=1.2.840.10008.1.2.1", or "".
	ContentType string
	// RequestID is the HTTP request ID (for logs and audit).
	RequestID string
}

// Stored identifies a stored instance.
type Stored struct {
	SOPClassUID      string
	SOPInstanceUID   string
	StudyInstanceUID string
	// SeriesInstanceUID is optional; when set (with StudyInstanceUID) the
	// handler builds the RetrieveURL itself.
	SeriesInstanceUID string
	// RetrieveURL is optional; when empty the handler builds the WADO-RS
	// instance URL from its base URL and the UIDs.
	RetrieveURL string
}

// Catalog answers queries and opens stored instances. Implemented by the
// store package (through an adapter).
type Catalog interface {
	// SearchStudies returns the studies matching q, ordered stably (e.g.
	// by StudyDate then StudyInstanceUID), skipping q.Offset and returning at
	// most q.Limit rows (Limit 0: no limit).
	SearchStudies(ctx context.Context, q Query) ([]StudyRow, error)
	// SearchSeries returns matching series; study-level keys (PatientID,
	// StudyDate, ...) restrict through the series' study. Same paging.
	SearchSeries(ctx context.Context, q Query) ([]SeriesRow, error)
	// SearchInstances returns matching instances; study- and series-level
	// keys restrict through the parents. Same paging.
	SearchInstances(ctx context.Context, q Query) ([]InstanceRow, error)
	// Instance returns one instance's row. errors: ErrNotFound.
	Instance(ctx context.Context, sopInstanceUID string) (InstanceRow, error)
	// OpenInstance opens the stored Part 10 bytes, exactly as received.
	// errors: ErrNotFound.
	OpenInstance(ctx context.Context, sopInstanceUID string) (io.ReadCloser, error)
}

// Query is a parsed QIDO-RS request. Empty string fields do not constrain.
// String values may contain the wildcards * and ? (PS3.4 C.2.2.2.4) where
// the attribute allows them (PatientID, PatientName, AccessionNumber,
// Modality, ModalitiesInStudy); MatchString implements them.
type Query struct {
	// UID list matching (PS3.4 C.2.2.2.2): any of the listed UIDs matches.
	StudyInstanceUIDs  []string
	SeriesInstanceUIDs []string
	SOPInstanceUIDs    []string

	PatientID string
	// PatientName matches the whole value (case-sensitive, wildcards
	// allowed); with FuzzyMatching, MatchPersonName's case-insensitive
	// per-component prefix matching applies.
	PatientName   string
	FuzzyMatching bool
	// StudyDateFrom/To: inclusive YYYYMMDD bounds (either may be empty, PS3.4
	// C.2.2.2.5 range matching; a single date sets both).
	StudyDateFrom, StudyDateTo string
	AccessionNumber            string
	// ModalitiesInStudy: the study has a series of this modality.
	ModalitiesInStudy string
	// Modality: series modality.
	Modality string
	// SOPClassUID: instance SOP class.
	SOPClassUID string

	// Limit is the maximum number of rows (0: none); Offset rows are skipped.
	Limit, Offset int
}

// StudyRow is one study's QIDO attributes (PS3.18 10.6.3.3.1).
type StudyRow struct {
	StudyInstanceUID       string
	StudyDate              string // YYYYMMDD
	StudyTime              string // HHMMSS.FFFFFF
	StudyID                string
	AccessionNumber        string
	StudyDescription       string
	ReferringPhysicianName string
	PatientID              string
	PatientName            string // PN, DICOM form Family^Given^Middle^Prefix^Suffix
	PatientBirthDate       string
	PatientSex             string
	ModalitiesInStudy      []string
	// Counts of related series / instances; -1 when unknown (omitted).
	NumberOfStudyRelatedSeries    int
	NumberOfStudyRelatedInstances int
}

// SeriesRow is one series' QIDO attributes (PS3.18 10.6.3.3.2). Study holds
// the parent study's attributes (returned for /series queries).
type SeriesRow struct {
	Study                          StudyRow
	SeriesInstanceUID              string
	Modality                       string
	SeriesNumber                   string // IS, as stored
	SeriesDescription              string
	BodyPartExamined               string
	NumberOfSeriesRelatedInstances int // -1 when unknown
}

// InstanceRow is one instance's QIDO attributes (PS3.18 10.6.3.3.3) plus
// what WADO-RS needs. Series holds the parents' attributes.
type InstanceRow struct {
	Series            SeriesRow
	SOPClassUID       string
	SOPInstanceUID    string
	InstanceNumber    string // IS, as stored
	TransferSyntaxUID string // stored transfer syntax, (0008,3002) in QIDO
	Rows, Columns     int    // 0 when not an image
	NumberOfFrames    int    // 0 when not an image
	BitsAllocated     int
	// Size is the stored Part 10 size in bytes (0 when unknown).
	Size int64
}
