// Package models is radflow's model repository, in Triton's layout:
//
//	<repository>/<name>/<version>/config.yaml     (schema: models/README.md)
//	<repository>/<name>/<version>/model.onnx      (sha256 in config.yaml)
//	<repository>/<name>/<version>/MODEL_CARD.md
//
// It owns: loading a repository from a directory (LoadDir) or an fs.FS such
// as the bundled models embedded in the binary (Load, Bundled), parsing and
// validating config.yaml, verifying model files against their sha256
// (ErrChecksum), keeping every version and looking one up (Get; version ""
// = the latest), and routing an instance to models by its attributes
// (Select; rules in routing.go).
//
// It does not own: running models (package inference), preprocessing
// (package transform; this package only parses the config's list into a
// transform.Spec), or reading DICOM beyond the routing attributes.
package models
