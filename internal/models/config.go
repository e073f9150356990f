package models

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/radflow/radflow/internal/transform"
)

// SchemaVersion is the config.yaml schema this package reads.
const SchemaVersion = 1

// Config is a model version's config.yaml (models/README.md). Unknown keys
// are ignored, as the schema requires.
type Config struct {
	SchemaVersion int    `yaml:"schema_version"`
	Name          string `yaml:"name"`
	Version       int    `yaml:"version"`
	Task          string `yaml:"task"`
	Description   string `yaml:"description"`
	Model         struct {
		File      string `yaml:"file"`
		Format    string `yaml:"format"`
		Opset     int    `yaml:"opset"`
		SHA256    string `yaml:"sha256"`
		SizeBytes int64  `yaml:"size_bytes"`
	} `yaml:"model"`
	Inputs        []TensorConfig `yaml:"inputs"`
	Outputs       []TensorConfig `yaml:"outputs"`
	Labels        []string       `yaml:"labels"`
	PositiveLabel string         `yaml:"positive_label"`
	Decision      struct {
		// Threshold: positive when probabilities[index(PositiveLabel)] >= Threshold.
		Threshold float64 `yaml:"threshold"`
		Method    string  `yaml:"method"`
	} `yaml:"decision"`
	Preprocessing []map[string]any `yaml:"preprocessing"`
	Routing       Routing          `yaml:"routing"`
}

// TensorConfig is one entry of inputs[] or outputs[]: shape with -1 for the
// dynamic batch axis, e.g. image float32 [-1,1,224,224] NCHW.
type TensorConfig struct {
	Name   string  `yaml:"name"`
	DType  string  `yaml:"dtype"`
	Shape  []int64 `yaml:"shape"`
	Layout string  `yaml:"layout"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// parseConfig decodes and validates config.yaml of dir <name>/<version>.
func parseConfig(data []byte, name string, version int) (*Config, transform.Spec, error) {
	var c Config
	fail := func(format string, a ...any) (*Config, transform.Spec, error) {
		return nil, transform.Spec{}, fmt.Errorf("%w: %s/%d/config.yaml: %s", ErrConfig, name, version, fmt.Sprintf(format, a...))
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return fail("%v", err)
	}
	switch {
	case c.SchemaVersion != SchemaVersion:
		return fail("schema_version %d; this radflow reads %d", c.SchemaVersion, SchemaVersion)
	case !nameRE.MatchString(c.Name) || c.Name != name:
		return fail("name %q must be [a-z0-9-]+ and equal the directory name %q", c.Name, name)
	case c.Version != version:
		return fail("version %d differs from the directory %d", c.Version, version)
	case c.Model.File == "" || strings.ContainsAny(c.Model.File, `/\`) || c.Model.File == "." || c.Model.File == "..":
		return fail("model.file %q must be a file name in the version directory", c.Model.File)
	case c.Model.Format != "onnx":
		return fail("model.format %q; want onnx", c.Model.Format)
	case len(c.Model.SHA256) != 64 || strings.Trim(c.Model.SHA256, "0123456789abcdef") != "":
		return fail("model.sha256 %q: want 64 lower-case hex digits", c.Model.SHA256)
	case len(c.Inputs) != 1:
		return fail("%d inputs; radflow feeds exactly one", len(c.Inputs))
	case len(c.Inputs[0].Shape) != 4 || c.Inputs[0].DType != "float32" || (c.Inputs[0].Layout != "" && c.Inputs[0].Layout != "NCHW"):
		return fail("input %+v: want float32 NCHW [N,C,H,W]", c.Inputs[0])
	case len(c.Outputs) == 0:
		return fail("no outputs")
	case len(c.Labels) == 0:
		return fail("no labels")
	}
	if c.Task != "" && c.Task != "classification" {
		return fail("task %q; want classification", c.Task)
	}
	if c.PositiveLabel != "" && c.PositiveIndex() < 0 {
		return fail("positive_label %q is not one of labels %v", c.PositiveLabel, c.Labels)
	}
	spec, err := transform.ParseSteps(c.Preprocessing)
	if err != nil {
		return fail("preprocessing: %v", err)
	}
	spec.Channels = int(c.Inputs[0].Shape[1])
	if in := c.Inputs[0].Shape; in[2] != int64(spec.Height) || in[3] != int64(spec.Width) {
		return fail("resize to %dx%d (HxW) but the input is %v", spec.Height, spec.Width, in)
	}
	if _, err := transform.New(spec); err != nil {
		return fail("preprocessing: %v", err)
	}
	if err := c.Routing.compile(); err != nil {
		return fail("routing: %v", err)
	}
	return &c, spec, nil
}

// PositiveIndex returns the index of PositiveLabel in Labels, or -1.
func (c *Config) PositiveIndex() int {
	for i, l := range c.Labels {
		if l == c.PositiveLabel {
			return i
		}
	}
	return -1
}

// Finding is one classification result interpreted with the config's
// decision rule.
type Finding struct {
	// Label is PositiveLabel when Positive, else the most probable other
	// label (so the label follows the operating point, not argmax).
	Label string
	// Positive: probabilities[index(PositiveLabel)] >= Decision.Threshold.
	Positive bool
	// Score is the positive label's probability.
	Score float32
	// Threshold is Decision.Threshold, for reports.
	Threshold float64
}

// Interpret applies the decision rule to one output row (probabilities in
// label order, e.g. [P(NORMAL), P(PNEUMONIA)]). Without a positive_label it
// returns the argmax label with Positive false.
// errors: ErrConfig when len(probs) differs from the number of labels.
func (c *Config) Interpret(probs []float32) (Finding, error) {
	if len(probs) != len(c.Labels) {
		return Finding{}, fmt.Errorf("%w: %s@%d: output has %d values for %d labels", ErrConfig, c.Name, c.Version, len(probs), len(c.Labels))
	}
	pos := c.PositiveIndex()
	f := Finding{Threshold: c.Decision.Threshold}
	if pos >= 0 {
		f.Score = probs[pos]
		f.Positive = float64(probs[pos]) >= c.Decision.Threshold
		if f.Positive {
			f.Label = c.PositiveLabel
			return f, nil
		}
	}
	best := -1
	for i, p := range probs {
		if i != pos && (best < 0 || p > probs[best]) {
			best = i
		}
	}
	if best < 0 { // a single label that is the positive one
		best = pos
	}
	f.Label = c.Labels[best]
	return f, nil
}
