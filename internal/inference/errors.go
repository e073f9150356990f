package inference

import "errors"

// Sentinel errors; returned wrapped with context, test with errors.Is.
var (
	// ErrRuntimeUnavailable: the ONNX Runtime shared library was not found or
	// could not be loaded (wrong architecture, version < 1.24). The message
	// names every place looked and how to fetch it (scripts/fetch-ort.sh).
	ErrRuntimeUnavailable = errors.New("inference: ONNX Runtime unavailable")
	// ErrModelLoad: the ONNX model is missing, unreadable, corrupt, or has an
	// input/output radflow cannot feed (not a float32 tensor).
	ErrModelLoad = errors.New("inference: cannot load model")
	// ErrProviderUnavailable: the requested execution provider (cuda,
	// tensorrt) is unknown or not available in the loaded ORT library.
	ErrProviderUnavailable = errors.New("inference: execution provider unavailable")
	// ErrShape: the batch does not match the model's declared input shape.
	ErrShape = errors.New("inference: input shape mismatch")
	// ErrRun: ORT failed while running the model.
	ErrRun = errors.New("inference: run failed")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("inference: session closed")
)
