package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// chestConfig is a config.yaml as tools/train/export.py writes it, for a
// model file with the given sha256 and size.
func chestConfig(name string, version int, sha string, size int) string {
	return strings.NewReplacer("NAME", name, "VERSION", strconv.Itoa(version), "SHA", sha, "SIZE", strconv.Itoa(size)).Replace(`# radflow model config, schema_version 1 (schema: models/README.md).
schema_version: 1
name: NAME
version: VERSION
task: classification
description: "NORMAL vs PNEUMONIA on frontal chest radiographs (research use only)"
model:
  file: model.onnx
  format: onnx
  opset: 13
  sha256: SHA
  size_bytes: SIZE
inputs:
  - name: image
    dtype: float32
    shape: [-1, 1, 224, 224]   # -1 = dynamic batch axis "N"
    layout: NCHW
outputs:
  - name: probabilities
    dtype: float32
    shape: [-1, 2]
labels: [NORMAL, PNEUMONIA]
positive_label: PNEUMONIA
decision:
  threshold: 0.615
  method: youden_j_pooled_shifts
preprocessing:
  - {op: modality_lut}
  - {op: voi, window: instance, fallback: minmax}
  - {op: invert_monochrome1}
  - {op: grayscale, method: bt601}
  - {op: resize, height: 224, width: 224, method: bilinear_antialias}
  - {op: normalize, mean: 0.5, std: 0.25}
  - {op: layout, format: NCHW}
routing:
  modalities: [CR, DX, DR]
  body_parts: [CHEST, THORAX]
  missing_body_part: match_descriptions_then_modality
  description_tags: [StudyDescription, SeriesDescription]
  description_patterns: ["(?i)\\b(chest|thorax|thoracic|lungs?|cxr)\\b"]
future_key: ignored
`)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testRepo is a repository with chest-xray-pneumonia versions 1 and 2 and a
// stray file and directory that Load must ignore.
func testRepo() fstest.MapFS {
	m1, m2 := []byte("onnx bytes v1"), []byte("onnx bytes, version 2")
	return fstest.MapFS{
		"README.md":                             {Data: []byte("# models")},
		"chest-xray-pneumonia/1/model.onnx":     {Data: m1},
		"chest-xray-pneumonia/1/config.yaml":    {Data: []byte(chestConfig("chest-xray-pneumonia", 1, sha(m1), len(m1)))},
		"chest-xray-pneumonia/1/MODEL_CARD.md":  {Data: []byte("# card v1")},
		"chest-xray-pneumonia/2/model.onnx":     {Data: m2},
		"chest-xray-pneumonia/2/config.yaml":    {Data: []byte(chestConfig("chest-xray-pneumonia", 2, sha(m2), len(m2)))},
		"chest-xray-pneumonia/notes/readme.txt": {Data: []byte("not a version")},
		"Not_A_Model/1/config.yaml":             {Data: []byte("junk")},
	}
}

func TestLoadAndGet(t *testing.T) {
	r, err := Load(testRepo())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Names(), ","); got != "chest-xray-pneumonia" {
		t.Errorf("Names = %q", got)
	}
	latest, err := r.Get("chest-xray-pneumonia", "")
	if err != nil || latest.Version != 2 || latest.Ref() != "chest-xray-pneumonia@2" {
		t.Fatalf("Get latest = %v, %v", latest, err)
	}
	v1, err := r.Lookup("chest-xray-pneumonia@1")
	if err != nil || v1.Version != 1 {
		t.Fatalf("Lookup @1 = %v, %v", v1, err)
	}
	if c := v1.Config; c.Decision.Threshold != 0.615 || c.PositiveIndex() != 1 || c.Inputs[0].Shape[1] != 1 || c.Outputs[0].Name != "probabilities" {
		t.Errorf("config v1 = %+v", c)
	}
	if s := v1.Spec; s.Height != 224 || s.Width != 224 || s.Channels != 1 || s.Mean[0] != 0.5 || s.Std[0] != 0.25 || !s.VOI || !s.InvertMonochrome1 {
		t.Errorf("spec v1 = %+v", s)
	}
	if p, err := v1.Pipeline(); err != nil || p.SampleLen() != 224*224 {
		t.Errorf("Pipeline: %v (%v)", err, p)
	}
	if b, err := v1.ModelBytes(); err != nil || string(b) != "onnx bytes v1" {
		t.Errorf("ModelBytes = %q, %v", b, err)
	}
	if card, err := v1.Card(); err != nil || card != "# card v1" {
		t.Errorf("Card = %q, %v", card, err)
	}
	if card, err := latest.Card(); err != nil || card != "" {
		t.Errorf("missing card = %q, %v", card, err)
	}
	if v1.ModelPath() != "" {
		t.Errorf("ModelPath of an fs.FS model = %q, want \"\"", v1.ModelPath())
	}
	for _, ref := range []string{"chest-xray-pneumonia@3", "brain@1", "chest-xray-pneumonia@x"} {
		if _, err := r.Lookup(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want ErrNotFound", ref, err)
		}
	}
}

func TestChecksumMismatch(t *testing.T) {
	fsys := testRepo()
	fsys["chest-xray-pneumonia/2/model.onnx"] = &fstest.MapFile{Data: []byte("onnx bytes, version 2 tampered")}
	_, err := Load(fsys)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "chest-xray-pneumonia@2") {
		t.Errorf("tampered model: %v, want ErrChecksum naming the version", err)
	}
	// Same sha256 but wrong size_bytes.
	fsys = testRepo()
	m := []byte("onnx bytes v1")
	fsys["chest-xray-pneumonia/1/config.yaml"] = &fstest.MapFile{Data: []byte(chestConfig("chest-xray-pneumonia", 1, sha(m), len(m)+1))}
	if _, err := Load(fsys); !errors.Is(err, ErrChecksum) {
		t.Errorf("wrong size_bytes: %v, want ErrChecksum", err)
	}
	// Missing model file.
	fsys = testRepo()
	delete(fsys, "chest-xray-pneumonia/1/model.onnx")
	if _, err := Load(fsys); !errors.Is(err, ErrChecksum) {
		t.Errorf("missing model file: %v, want ErrChecksum", err)
	}
}

func TestConfigErrors(t *testing.T) {
	m := []byte("onnx bytes v1")
	good := chestConfig("chest-xray-pneumonia", 1, sha(m), len(m))
	for name, tc := range map[string]struct{ from, to, want string }{
		"schema":         {"schema_version: 1", "schema_version: 2", "schema_version 2"},
		"name":           {"name: chest-xray-pneumonia", "name: chest", "name"},
		"version":        {"version: 1\n", "version: 3\n", "version 3"},
		"yaml":           {"labels: [NORMAL, PNEUMONIA]", "labels: [NORMAL", "config.yaml"},
		"positive label": {"positive_label: PNEUMONIA", "positive_label: COVID", "positive_label"},
		"pattern":        {`"(?i)\\b(chest|thorax|thoracic|lungs?|cxr)\\b"`, `"(?i)(chest"`, "description_patterns"},
		"missing policy": {"match_descriptions_then_modality", "guess", "missing_body_part"},
		"preprocessing":  {"std: 0.25", "std: 0", "std"},
		"size vs input":  {"height: 224, width: 224", "height: 256, width: 224", "resize"},
		"sha format":     {"sha256: " + sha(m), "sha256: XYZ", "sha256"},
		"path in file":   {"file: model.onnx", "file: ../model.onnx", "model.file"},
		"no modalities":  {"modalities: [CR, DX, DR]", "modalities: []", "modalities"},
	} {
		if !strings.Contains(good, tc.from) {
			t.Fatalf("%s: %q not in the config", name, tc.from)
		}
		fsys := testRepo()
		delete(fsys, "chest-xray-pneumonia/2/config.yaml")
		fsys["chest-xray-pneumonia/1/config.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(good, tc.from, tc.to, 1))}
		_, err := Load(fsys)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", name, err, tc.want)
		}
	}
	fsys := testRepo()
	delete(fsys, "chest-xray-pneumonia/2/config.yaml")
	if _, err := Load(fsys); !errors.Is(err, ErrConfig) {
		t.Errorf("version without config.yaml: %v, want ErrConfig", err)
	}
}

func TestSelectRouting(t *testing.T) {
	r, err := Load(testRepo())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a    Attributes
		want Reason // "" = no match
	}{
		{"CR chest", Attributes{Modality: "CR", BodyPartExamined: "CHEST"}, ReasonBodyPart},
		{"DX thorax, lower case, padded", Attributes{Modality: "dx ", BodyPartExamined: " thorax"}, ReasonBodyPart},
		{"DX no body part, description CHEST PA", Attributes{Modality: "DX", SeriesDescription: "CHEST PA"}, ReasonDescription},
		{"CR no body part, study description Thorax", Attributes{Modality: "CR", StudyDescription: "Thorax 2 views"}, ReasonDescription},
		{"CR only modality", Attributes{Modality: "CR"}, ReasonModalityOnly},
		{"CR, description not chest-like", Attributes{Modality: "CR", SeriesDescription: "CHESTNUT"}, ReasonModalityOnly},
		{"CR hand", Attributes{Modality: "CR", BodyPartExamined: "HAND"}, ""},
		{"CT head", Attributes{Modality: "CT", BodyPartExamined: "HEAD"}, ""},
		{"CT chest: wrong modality", Attributes{Modality: "CT", BodyPartExamined: "CHEST"}, ""},
		{"MR", Attributes{Modality: "MR", SeriesDescription: "T1 chest"}, ""},
		{"nothing", Attributes{}, ""},
	} {
		got := r.Select(tc.a)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: routed to %s (%s), want no match", tc.name, got[0].Version.Ref(), got[0].Reason)
		case tc.want != "" && (len(got) != 1 || got[0].Reason != tc.want || got[0].Version.Version != 2):
			t.Errorf("%s: got %+v, want chest-xray-pneumonia@2 with reason %s", tc.name, got, tc.want)
		}
	}
}

func TestRoutingPolicies(t *testing.T) {
	base := Routing{Modalities: []string{"CR"}, BodyParts: []string{"CHEST"}, DescriptionPatterns: []string{"(?i)chest"}}
	noBP := Attributes{Modality: "CR", StudyDescription: "CHEST AP"}
	noBPnoDesc := Attributes{Modality: "CR"}
	for policy, want := range map[string][2]Reason{ // [with description, without]
		"":                                   {"", ""},
		MissingReject:                        {"", ""},
		MissingAccept:                        {ReasonModalityOnly, ReasonModalityOnly},
		MissingMatchDescriptions:             {ReasonDescription, ""},
		MissingMatchDescriptionsThenModality: {ReasonDescription, ReasonModalityOnly},
	} {
		r := base
		r.MissingBodyPart = policy
		if err := r.compile(); err != nil {
			t.Fatal(err)
		}
		for i, a := range []Attributes{noBP, noBPnoDesc} {
			got, _ := r.Match(a)
			if got != want[i] {
				t.Errorf("policy %q, %+v: %q, want %q", policy, a, got, want[i])
			}
		}
	}
	// Extensions: SOP Class and calling AE title restrict when set.
	r := base
	r.SOPClassUIDs = []string{"1.2.840.10008.5.1.4.1.1.1"}
	r.CallingAETitles = []string{"CR_ROOM_1"}
	if err := r.compile(); err != nil {
		t.Fatal(err)
	}
	a := Attributes{Modality: "CR", BodyPartExamined: "CHEST", SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", CallingAETitle: "CR_ROOM_1 "}
	if _, ok := r.Match(a); !ok {
		t.Errorf("%+v: no match", a)
	}
	a.CallingAETitle = "cr_room_1"
	if _, ok := r.Match(a); ok {
		t.Errorf("AE titles are case-sensitive: %+v matched", a)
	}
	a.CallingAETitle, a.SOPClassUID = "CR_ROOM_1", "1.2.840.10008.5.1.4.1.1.1.1"
	if _, ok := r.Match(a); ok {
		t.Errorf("other SOP class %+v matched", a)
	}
}

// The real bundled config, when tools/train has written it.
func TestRealChestConfig(t *testing.T) {
	root := filepath.Join("..", "..", "models")
	if _, err := os.Stat(filepath.Join(root, "chest-xray-pneumonia", "1", "config.yaml")); err != nil {
		t.Skip("models/chest-xray-pneumonia/1/config.yaml not written yet (make train)")
	}
	r, err := LoadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Get("chest-xray-pneumonia", "1")
	if err != nil {
		t.Fatal(err)
	}
	c := v.Config
	if c.Inputs[0].Name != "image" || c.Outputs[0].Name != "probabilities" || strings.Join(c.Labels, ",") != "NORMAL,PNEUMONIA" ||
		c.PositiveIndex() != 1 || !(c.Decision.Threshold > 0 && c.Decision.Threshold < 1) {
		t.Errorf("config = %+v", c)
	}
	if v.Spec.Height != 224 || v.Spec.Channels != 1 || len(v.Spec.Ignored) != 0 {
		t.Errorf("spec = %+v", v.Spec)
	}
	if p := v.ModelPath(); !filepath.IsAbs(p) {
		t.Errorf("ModelPath = %q, want absolute", p)
	}
	got := r.Select(Attributes{Modality: "DX", SeriesDescription: "CHEST PA"})
	if len(got) != 1 || got[0].Reason != ReasonDescription {
		t.Errorf("DX CHEST PA routed to %+v", got)
	}
}

// The embedded repository must load, and must carry the reference model
// once tools/train has written it (the embed patterns in models/embed.go).
func TestBundled(t *testing.T) {
	r, err := Bundled()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "models", "chest-xray-pneumonia", "1", "model.onnx")); err != nil {
		t.Skip("reference model not written yet; bundled repository has", r.Names())
	}
	v, err := r.Get("chest-xray-pneumonia", "")
	if err != nil {
		t.Fatalf("bundled reference model: %v", err)
	}
	if b, err := v.ModelBytes(); err != nil || len(b) < 1000 {
		t.Errorf("bundled model bytes: %d, %v", len(b), err)
	}
	if card, err := v.Card(); err != nil || !strings.Contains(card, "Research use only") {
		t.Errorf("bundled MODEL_CARD.md: %v (%d bytes)", err, len(card))
	}
}

func TestInterpret(t *testing.T) {
	r, err := Load(testRepo())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := r.Get("chest-xray-pneumonia", "")
	c := v.Config // threshold 0.615, positive PNEUMONIA
	for _, tc := range []struct {
		probs []float32
		label string
		pos   bool
	}{
		{[]float32{0.1, 0.9}, "PNEUMONIA", true},
		{[]float32{0.385, 0.615}, "PNEUMONIA", true}, // threshold inclusive
		{[]float32{0.4, 0.6}, "NORMAL", false},       // argmax would say PNEUMONIA
		{[]float32{0.9, 0.1}, "NORMAL", false},
	} {
		f, err := c.Interpret(tc.probs)
		if err != nil || f.Label != tc.label || f.Positive != tc.pos || f.Score != tc.probs[1] || f.Threshold != 0.615 {
			t.Errorf("Interpret(%v) = %+v, %v; want %s positive=%v", tc.probs, f, err, tc.label, tc.pos)
		}
	}
	if _, err := c.Interpret([]float32{1}); !errors.Is(err, ErrConfig) {
		t.Errorf("1 value for 2 labels: %v, want ErrConfig", err)
	}
}
