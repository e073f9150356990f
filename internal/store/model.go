package store

import (
	"errors"
	"time"
)

// ErrNotFound: no row (instance, result) or blob with that key.
var ErrNotFound = errors.New("store: not found")

// ErrInvalidQuery: a query parameter is malformed (e.g. a StudyDate that is
// not YYYYMMDD or a YYYYMMDD-YYYYMMDD range, a negative limit).
var ErrInvalidQuery = errors.New("store: invalid query")

// ErrInvalidKey: a blob key is empty, absolute, or climbs out of the store
// ("..", backslashes, NUL).
var ErrInvalidKey = errors.New("store: invalid blob key")

// ErrStorageFull: free space on the volume holding the data is below the
// configured watermark.
var ErrStorageFull = errors.New("store: storage full")

// Source says how an instance entered radflow.
type Source string

const (
	SourceDIMSE Source = "dimse" // DICOM C-STORE
	SourceSTOW  Source = "stow"  // DICOMweb STOW-RS
	// SourceResult: a Structured Report radflow wrote for one of its results.
	SourceResult Source = "result"
)

// Instance is one stored SOP instance: the attributes QIDO-RS matches and
// returns, where it came from, and where its bytes are. String attributes
// are the DICOM values as parsed (trimmed, first value); an absent
// attribute is "". SeriesNumber and InstanceNumber are nil when absent.
type Instance struct {
	SOPInstanceUID    string // (0008,0018), primary key
	SOPClassUID       string // (0008,0016)
	StudyInstanceUID  string // (0020,000D)
	SeriesInstanceUID string // (0020,000E)
	TransferSyntaxUID string // (0002,0010) of the stored file
	PatientID         string // (0010,0020)
	PatientName       string // (0010,0010), PN with ^ component separators
	PatientBirthDate  string // (0010,0030), YYYYMMDD; stored, not matched
	StudyDate         string // (0008,0020), YYYYMMDD
	StudyTime         string // (0008,0030), HHMMSS.FFFFFF
	AccessionNumber   string // (0008,0050)
	StudyDescription  string // (0008,1030)
	SeriesDescription string // (0008,103E)
	Modality          string // (0008,0060)
	BodyPartExamined  string // (0018,0015)
	SeriesNumber      *int   // (0020,0011)
	InstanceNumber    *int   // (0020,0013)

	CallingAE  string    // calling AE title for DIMSE; "" for STOW-RS
	Source     Source    // dimse | stow | result
	Size       int64     // bytes of the stored Part 10 file
	SHA256     string    // the blob's digest (BlobInfo.SHA256): an object digest "env1:…" when encrypted, else the hex SHA-256 of its bytes
	BlobKey    string    // key in the BlobStore
	ReceivedAt time.Time // UTC, microsecond precision
}

// Study is one QIDO-RS study row: the study-level attributes of its
// instances (taken from any one of them; they are expected to agree) and
// the aggregates over all its instances.
type Study struct {
	StudyInstanceUID  string
	PatientID         string
	PatientName       string
	StudyDate         string
	StudyTime         string
	AccessionNumber   string
	StudyDescription  string
	ModalitiesInStudy []string // distinct, sorted, empty values left out
	NumberOfSeries    int      // Number of Study Related Series (0020,1206)
	NumberOfInstances int      // Number of Study Related Instances (0020,1208)
}

// Series is one QIDO-RS series row, with its study's attributes.
type Series struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	Modality          string
	SeriesDescription string
	SeriesNumber      *int
	BodyPartExamined  string
	PatientID         string
	PatientName       string
	StudyDate         string
	StudyTime         string
	AccessionNumber   string
	StudyDescription  string
	NumberOfInstances int // Number of Series Related Instances (0020,1209)
}

// Query holds QIDO-RS matching keys; a zero field does not constrain.
// Every key is matched against the instances table, so a study matches when
// any of its instances matches the study-level keys.
type Query struct {
	// UID list matching: a row matches when its UID is one of these.
	StudyInstanceUID  []string
	SeriesInstanceUID []string
	SOPInstanceUID    []string

	// PatientID and AccessionNumber: single value matching, case sensitive;
	// "*" and "?" are wildcards (PS3.4 C.2.2.2.4).
	PatientID       string
	AccessionNumber string

	// PatientName: exact (single value, with "*" "?" wildcards) unless
	// FuzzyMatching, where each space- or ^-separated word of the query must
	// be a case-insensitive prefix of some component of the name ("joh doe"
	// matches "Doe^John"); fuzzy matching is a superset of exact matching.
	PatientName   string
	FuzzyMatching bool

	// StudyDate: "YYYYMMDD", "YYYYMMDD-YYYYMMDD", "YYYYMMDD-" or "-YYYYMMDD",
	// inclusive (PS3.4 C.2.2.2.5). errors: ErrInvalidQuery.
	StudyDate string

	// ModalitiesInStudy (studies): the study has an instance with one of
	// these modalities. Modality (series, instances): the row's modality is
	// one of these.
	ModalitiesInStudy []string
	Modality          []string

	// Limit: at most this many rows (0: no limit). Offset: rows skipped.
	Limit  int
	Offset int
}

// ResultStatus is the state of one (instance, model, version) inference.
type ResultStatus string

const (
	StatusQueued  ResultStatus = "queued"  // job enqueued, or waiting for a retry
	StatusRunning ResultStatus = "running" // a worker is on it
	StatusDone    ResultStatus = "done"    // finished; Label/Probabilities set
	StatusFailed  ResultStatus = "failed"  // permanently failed; Error set
)

// Result is the outcome of one model version on one instance; there is at
// most one per (SOPInstanceUID, Model, Version).
type Result struct {
	ID               int64
	SOPInstanceUID   string
	StudyInstanceUID string
	Model            string
	Version          string
	Status           ResultStatus
	Label            string
	// Probabilities maps class label to probability in [0,1].
	Probabilities map[string]float64
	// Error is the last error (for queued: the error of the attempt that
	// will be retried; for failed: the final one). No PHI.
	Error            string
	SRSOPInstanceUID string // SOP Instance UID of the Structured Report written, if any
	// Timings maps a stage name ("decode", "preprocess", "infer", ...) to
	// its duration in milliseconds.
	Timings   map[string]float64
	Attempts  int // worker attempts recorded so far
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ResultKey names one result.
type ResultKey struct {
	SOPInstanceUID string
	Model          string
	Version        string
}
