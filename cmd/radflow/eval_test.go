package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const sharedTrain = "../../../shared/data/chest-xray-pneumonia/train"

// TestEvalMatchesPyTorchOnValidationSplit scores the model's own validation
// split (models/chest-xray-pneumonia/1/split.json) with `radflow eval` and
// compares with tools/train/eval.py (PyTorch weights, Pillow preprocessing)
// on the same files: testdata/eval_validation_pytorch.json. Go's JPEG
// decoder differs from libjpeg by up to a grey level, so a borderline case
// could flip: the confusion matrix may differ by one case per cell, and the
// ROC AUC by 1e-3.
func TestEvalMatchesPyTorchOnValidationSplit(t *testing.T) {
	if _, err := os.Stat(sharedTrain); err != nil {
		t.Skipf("training images not found at %s: %v", sharedTrain, err)
	}
	needORT(t)
	var split struct {
		ValFiles []string `json:"val_files"`
	}
	readJSON(t, "../../models/chest-xray-pneumonia/1/split.json", &split)
	var want struct {
		N         int     `json:"n"`
		Accuracy  float64 `json:"accuracy"`
		ROCAUC    float64 `json:"roc_auc"`
		Confusion struct{ TP, FN, FP, TN int }
	}
	readJSON(t, "testdata/eval_validation_pytorch.json", &want)

	dir := t.TempDir()
	abs, _ := filepath.Abs(sharedTrain)
	for _, f := range split.ValFiles {
		dst := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.Symlink(filepath.Join(abs, f), dst); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"eval", "--model", "chest-xray-pneumonia", "--data", dir, "--json"}, &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	var got evalReport
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got.N != want.N || got.N != len(split.ValFiles) || got.Errors != 0 {
		t.Fatalf("n = %d (errors %d), want %d", got.N, got.Errors, want.N)
	}
	cm := got.ConfusionMatrix // [[TN, FP], [FN, TP]]
	for name, d := range map[string][2]int{"TN": {cm[0][0], want.Confusion.TN}, "FP": {cm[0][1], want.Confusion.FP},
		"FN": {cm[1][0], want.Confusion.FN}, "TP": {cm[1][1], want.Confusion.TP}} {
		if abs := d[0] - d[1]; abs > 1 || abs < -1 {
			t.Errorf("%s = %d, PyTorch %d", name, d[0], d[1])
		}
	}
	if math.Abs(*got.ROCAUC-want.ROCAUC) > 1e-3 || math.Abs(*got.Accuracy-want.Accuracy) > 2.0/float64(want.N) {
		t.Errorf("auc %.5f acc %.5f; PyTorch auc %.5f acc %.5f", *got.ROCAUC, *got.Accuracy, want.ROCAUC, want.Accuracy)
	}
	// The model card's validation figures (accuracy 0.9684, AUC 0.9943).
	if *got.Accuracy < 0.95 || *got.ROCAUC < 0.99 {
		t.Errorf("validation accuracy %.4f, AUC %.4f below the model card's", *got.Accuracy, *got.ROCAUC)
	}
}

func TestEvalRejectsUnknownLabelFolder(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "normal"), 0o755)
	os.MkdirAll(filepath.Join(dir, "COVID"), 0o755)
	var out, errb bytes.Buffer
	if rc := run([]string{"eval", "--model", "chest-xray-pneumonia", "--data", dir}, &out, &errb); rc != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", rc, errb.String())
	}
	if !bytes.Contains(errb.Bytes(), []byte(`folder "COVID" names none of the model's labels`)) {
		t.Errorf("stderr = %s", errb.String())
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
