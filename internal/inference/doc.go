// Package inference runs ONNX models with ONNX Runtime (ORT) through
// github.com/yalue/onnxruntime_go.
//
// It owns: finding and loading the ORT shared library once per process
// (InitRuntime, ResolveLibrary), one reusable ORT session per model version
// (Open, OpenBytes → *Session), session options (threads, spinning,
// execution provider), validating a batch against the model's declared
// input, and running it (Session.Run), concurrency-safe.
//
// It does not own: where models come from or which model an instance gets
// (package models), turning pixels into the input tensor (package transform),
// interpreting the outputs as findings (the pipeline), or queueing requests
// into batches.
//
// ORT library lookup order (ResolveLibrary): an explicit path (a flag) >
// the RADFLOW_ORT_LIB environment variable > the cache path written by
// scripts/fetch-ort.sh,
// ${RADFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/radflow}/onnxruntime-1.30.0/libonnxruntime.so.1.
// onnxruntime_go v1.27.0 needs ORT >= 1.24.
package inference
