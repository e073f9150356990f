package transform

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/radflow/radflow/internal/pixel"
)

// Op names of a config's preprocessing list, in the only order they may
// appear (each at most once).
const (
	OpModalityLUT       = "modality_lut"       // DICOM: stored values -> modality units (pixel.ModalityLUT)
	OpVOI               = "voi"                // DICOM: modality units -> [0,1] (window or min-max)
	OpInvertMonochrome1 = "invert_monochrome1" // DICOM MONOCHROME1: v -> 1 - v
	OpGrayscale         = "grayscale"          // colour -> BT.601 luma
	OpResize            = "resize"             // antialiased bilinear (Pillow), required
	OpNormalize         = "normalize"          // (v - mean) / std
	OpLayout            = "layout"             // NCHW float32 (the only layout)
)

var opOrder = []string{OpModalityLUT, OpVOI, OpInvertMonochrome1, OpGrayscale, OpResize, OpNormalize, OpLayout}

// opKeys lists the keys each op takes besides "op".
var opKeys = map[string][]string{
	OpVOI:       {"window", "fallback", "center", "width", "function"},
	OpGrayscale: {"method"},
	OpResize:    {"height", "width", "method"},
	OpNormalize: {"mean", "std"},
	OpLayout:    {"format"},
}

// Spec is a parsed preprocessing list: which steps run and their
// parameters. The zero value of an optional step means "not in the list".
type Spec struct {
	ModalityLUT bool // apply the instance's modality LUT (else stored values)
	VOI         bool // map to [0,1]: instance window, else Window, else MinMax
	// InstanceWindow: use the instance's first Window Center/Width when it
	// has one (voi window: instance, the default); false = window: config.
	InstanceWindow bool
	// Window is the config's window (voi center/width), used when the
	// instance has none or InstanceWindow is false; nil = min-max fallback.
	Window            *pixel.VOIWindow
	InvertMonochrome1 bool
	Grayscale         bool // BT.601 luma of colour input (always done for 1-channel models)
	Height, Width     int  // resize target, pixels
	// Mean and Std (normalize): one value for all channels or one per
	// channel; empty = no normalisation.
	Mean, Std []float32
	// Channels of the model input, 1 or 3 (grey replicated to 3). Not in the
	// preprocessing list: set it from the model's input shape [N,C,H,W].
	Channels int
	// Ignored lists the step keys ParseSteps did not know, as
	// "step 5 (normalize): sdt". models/README.md says loaders ignore unknown
	// keys; callers should log these, since a misspelt optional key (e.g.
	// voi "centre") silently changes behaviour.
	Ignored []string
}

// ParseSteps parses a config's preprocessing list, each step a mapping as
// YAML or JSON decoding yields (map[string]any), e.g.
//
//	{op: modality_lut}
//	{op: voi, window: instance, fallback: minmax}      # optional center, width
//	{op: invert_monochrome1}
//	{op: grayscale, method: bt601}
//	{op: resize, height: 224, width: 224, method: bilinear_antialias}
//	{op: normalize, mean: 0.5, std: 0.25}              # or lists, one per channel
//	{op: layout, format: NCHW}
//
// Steps must follow that order; resize is required. Channels is left 1.
// Unknown keys are ignored (models/README.md) and listed in Spec.Ignored.
// errors: ErrConfig naming the step and key.
func ParseSteps(steps []map[string]any) (Spec, error) {
	s := Spec{Channels: 1}
	last := -1
	for i, m := range steps {
		op, _ := m["op"].(string)
		pos := indexOf(opOrder, op)
		if pos < 0 {
			return Spec{}, fmt.Errorf("%w: step %d: unknown op %q (want one of %s)", ErrConfig, i, op, strings.Join(opOrder, ", "))
		}
		if pos <= last {
			return Spec{}, fmt.Errorf("%w: step %d: %s out of order or repeated (order: %s)", ErrConfig, i, op, strings.Join(opOrder, " > "))
		}
		last = pos
		st := stepReader{m: m, op: op, i: i}
		s.Ignored = append(s.Ignored, unknownKeys(m, opKeys[op], fmt.Sprintf("step %d (%s): ", i, op))...)
		switch op {
		case OpModalityLUT:
			s.ModalityLUT = true
		case OpVOI:
			s.VOI = true
			w := st.str("window", "instance")
			switch w {
			case "instance":
				s.InstanceWindow = true
			case "config":
			default:
				st.fail("window %q: want instance or config", w)
			}
			if f := st.str("fallback", "minmax"); f != "minmax" {
				st.fail("fallback %q: want minmax", f)
			}
			c, hasC := st.num("center")
			wd, hasW := st.num("width")
			switch {
			case hasC && hasW:
				if !(wd >= 1) {
					st.fail("width %v: must be >= 1", wd)
				}
				s.Window = &pixel.VOIWindow{Center: c, Width: wd, Function: strings.ToUpper(st.str("function", "LINEAR"))}
			case hasC || hasW:
				st.fail("center and width go together")
			case w == "config":
				st.fail("window: config needs center and width")
			}
		case OpInvertMonochrome1:
			s.InvertMonochrome1 = true
		case OpGrayscale:
			s.Grayscale = true
			if m := st.str("method", "bt601"); m != "bt601" {
				st.fail("method %q: want bt601", m)
			}
		case OpResize:
			h, _ := st.num("height")
			w, _ := st.num("width")
			if h < 1 || w < 1 || h > 8192 || w > 8192 || h != math.Trunc(h) || w != math.Trunc(w) {
				st.fail("height %v, width %v: want integers in [1, 8192]", h, w)
			}
			s.Height, s.Width = int(h), int(w)
			if m := st.str("method", "bilinear_antialias"); m != "bilinear_antialias" {
				st.fail("method %q: want bilinear_antialias", m)
			}
		case OpNormalize:
			s.Mean, s.Std = st.nums("mean"), st.nums("std")
			if len(s.Mean) == 0 || len(s.Std) == 0 || len(s.Mean) != len(s.Std) {
				st.fail("mean %v and std %v: want the same number (>= 1) of values", s.Mean, s.Std)
			}
			for _, v := range s.Std {
				if v == 0 || math.IsNaN(float64(v)) {
					st.fail("std %v: must be non-zero", s.Std)
				}
			}
		case OpLayout:
			if f := st.str("format", "NCHW"); f != "NCHW" {
				st.fail("format %q: want NCHW", f)
			}
		}
		if st.err != nil {
			return Spec{}, st.err
		}
	}
	if s.Height == 0 {
		return Spec{}, fmt.Errorf("%w: no %s step; the output size is unknown", ErrConfig, OpResize)
	}
	if s.InvertMonochrome1 && !s.VOI {
		return Spec{}, fmt.Errorf("%w: %s needs %s first (it inverts [0,1] display values)", ErrConfig, OpInvertMonochrome1, OpVOI)
	}
	return s, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// stepReader reads typed keys of one step, keeping the first error.
type stepReader struct {
	m   map[string]any
	op  string
	i   int
	err error
}

func (r *stepReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: step %d (%s): %s", ErrConfig, r.i, r.op, fmt.Sprintf(format, a...))
	}
}

func (r *stepReader) str(key, def string) string {
	v, ok := r.m[key]
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.fail("%s: want a string, got %T", key, v)
	}
	return s
}

func (r *stepReader) num(key string) (float64, bool) {
	v, ok := r.m[key]
	if !ok {
		return 0, false
	}
	f, ok := toFloat(v)
	if !ok {
		r.fail("%s: want a number, got %T", key, v)
	}
	return f, ok
}

func (r *stepReader) nums(key string) []float32 {
	v, ok := r.m[key]
	if !ok {
		return nil
	}
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	out := make([]float32, 0, len(list))
	for _, e := range list {
		f, ok := toFloat(e)
		if !ok {
			r.fail("%s: want numbers, got %T", key, e)
			return nil
		}
		out = append(out, float32(f))
	}
	return out
}

// unknownKeys returns prefix+key, sorted, for the keys of m other than "op"
// and allowed.
func unknownKeys(m map[string]any, allowed []string, prefix string) []string {
	var bad []string
	for k := range m {
		if k != "op" && indexOf(allowed, k) < 0 {
			bad = append(bad, prefix+k)
		}
	}
	sort.Strings(bad)
	return bad
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}
