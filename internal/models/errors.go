package models

import "errors"

// Sentinel errors; returned wrapped with context, test with errors.Is.
var (
	// ErrConfig: a config.yaml that cannot be used (YAML error, unknown
	// schema_version, name/version disagreeing with the directories, missing
	// keys, bad routing pattern or preprocessing list), or a version
	// directory without config.yaml.
	ErrConfig = errors.New("models: invalid model config")
	// ErrChecksum: a model file whose sha256 (or size) differs from its
	// config, or that cannot be read.
	ErrChecksum = errors.New("models: model file checksum mismatch")
	// ErrNotFound: no model or version of that name.
	ErrNotFound = errors.New("models: model not found")
)
