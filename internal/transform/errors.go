package transform

import "errors"

// Sentinel errors; returned wrapped with context, test with errors.Is.
var (
	// ErrConfig: a preprocessing list that cannot be built (unknown op,
	// unknown or ill-typed key, ops out of the canonical order, missing
	// resize, std 0, ...).
	ErrConfig = errors.New("transform: invalid preprocessing config")
	// ErrInput: a source image the pipeline cannot use (empty, sample count
	// or photometric interpretation it does not handle, frame index out of
	// range, slice shorter than its declared size).
	ErrInput = errors.New("transform: unusable input image")
	// ErrShape: the destination slice does not have Pipeline.SampleLen()
	// values.
	ErrShape = errors.New("transform: destination size mismatch")
)
