// Package bundledmodels embeds radflow's bundled model repository (this
// directory, Triton layout <name>/<version>/) into the binary, so radflow
// runs the reference model with no model directory configured. Only what
// serving needs is embedded: config.yaml, model.onnx and MODEL_CARD.md of
// each version (not model.pt, metrics.json or split.json).
//
// Load it with internal/models.Load(bundledmodels.FS) (or models.Bundled).
package bundledmodels

import "embed"

// FS holds README.md and <name>/<version>/{config.yaml,model.onnx,MODEL_CARD.md}.
//
//go:embed README.md */*/config.yaml */*/model.onnx */*/MODEL_CARD.md
var FS embed.FS
