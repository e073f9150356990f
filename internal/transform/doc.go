// Package transform turns decoded pixels into a model's input tensor: the
// preprocessing list of a model's config.yaml, implemented natively.
//
// It owns: the preprocessing operations (each a small function with its
// units documented: MinMax, InvertMonochrome1, LumaU8, LumaRGB, Resize,
// Normalize), parsing a config's preprocessing list into a Spec
// (ParseSteps), and the Pipeline that applies a Spec to a decoded DICOM frame
// (FromDICOM, FromInstance) or to an 8-bit raster image (FromImage), writing
// float32 NCHW into a caller-provided slice so batches need no copies.
//
// It does not own: decoding (packages dicom, pixel), the modality LUT and
// VOI window arithmetic themselves (pixel.ModalityLUT, pixel.VOIWindow),
// running models (package inference), or which model applies (package
// models).
//
// The reference implementation of the chest-xray-pneumonia contract is
// tools/train/preprocess.py; testdata/parity/images.json, written from it,
// holds the two together.
package transform
