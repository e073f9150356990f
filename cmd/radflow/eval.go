package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/radflow/radflow/internal/evaluation"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/pipeline"
	"github.com/radflow/radflow/internal/transform"
)

// evalBatch is how many images one ONNX Runtime call scores.
const evalBatch = 32

// evalReport is `radflow eval --json`. Ratios whose denominator is zero
// (e.g. specificity without negatives) are null.
type evalReport struct {
	Model           string    `json:"model"`
	Version         int       `json:"version"`
	PositiveLabel   string    `json:"positive_label"`
	Threshold       float64   `json:"threshold"`
	N               int       `json:"n"`
	Accuracy        *float64  `json:"accuracy"`
	Sensitivity     *float64  `json:"sensitivity"`
	Specificity     *float64  `json:"specificity"`
	Precision       *float64  `json:"precision"`
	F1              *float64  `json:"f1"`
	ROCAUC          *float64  `json:"roc_auc"`
	ConfusionMatrix [2][2]int `json:"confusion_matrix"`
	Errors          int       `json:"errors"`
}

func runEval(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelRef := fs.String("model", "", "model `NAME[@VERSION]` to score (required)")
	dataDir := fs.String("data", "", "`DIR` with one folder per label, named like the model's labels (case-insensitive), holding JPEG, PNG or DICOM files (required)")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	var mf modelFlags
	mf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: radflow eval --model NAME[@VERSION] --data DIR [--json]\n\nScores a binary classifier on labelled images with the same preprocessing and\nONNX Runtime path as `radflow infer`: n, accuracy, sensitivity and specificity\n(for the model's positive label), precision, F1, ROC AUC and the confusion\nmatrix at the model's decision threshold. Unreadable files are reported on\nstderr and left out; the exit status is then 1.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *modelRef == "" || *dataDir == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	runner, err := mf.runner()
	if err != nil {
		fmt.Fprintln(stderr, "radflow eval:", err)
		return 1
	}
	defer runner.Close()
	v, err := runner.Repository().Lookup(*modelRef)
	if err != nil {
		fmt.Fprintln(stderr, "radflow eval:", err)
		return 2
	}
	pos := v.Config.PositiveIndex()
	if pos < 0 || len(v.Config.Labels) != 2 {
		fmt.Fprintf(stderr, "radflow eval: %s is not a binary classifier with a positive_label\n", v.Ref())
		return 2
	}
	files, err := labelledFiles(*dataDir, v.Config.Labels, pos)
	if err != nil {
		fmt.Fprintln(stderr, "radflow eval:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cases, nerr, err := scoreFiles(ctx, runner, v, files, pos, newProgress(stderr, len(files)), stderr)
	if err != nil {
		fmt.Fprintln(stderr, "radflow eval:", err)
		return 1
	}
	m, err := evaluation.Score(cases, v.Config.Decision.Threshold)
	if err != nil {
		fmt.Fprintln(stderr, "radflow eval:", err)
		return 1
	}
	rep := evalReport{
		Model: v.Name, Version: v.Version, PositiveLabel: v.Config.PositiveLabel, Threshold: v.Config.Decision.Threshold,
		N: m.N, Accuracy: num(m.Accuracy), Sensitivity: num(m.Sensitivity), Specificity: num(m.Specificity),
		Precision: num(m.Precision), F1: num(m.F1), ROCAUC: num(m.ROCAUC), ConfusionMatrix: m.ConfusionMatrix, Errors: nerr,
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(rep)
	} else {
		printEval(stdout, rep, v.Config.Labels, pos)
	}
	if nerr > 0 {
		return 1
	}
	return 0
}

type labelledFile struct {
	path     string
	positive bool
}

// labelledFiles lists DIR/<label>/** for each of the model's labels
// (folder names matched case-insensitively); pos is the positive label's index. Folders that name no label are
// an error, so that a typo cannot silently drop a class.
func labelledFiles(dir string, labels []string, pos int) ([]labelledFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []labelledFile
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		li := -1
		for i, l := range labels {
			if strings.EqualFold(e.Name(), l) {
				li = i
			}
		}
		if li < 0 {
			return nil, fmt.Errorf("folder %q names none of the model's labels %v", e.Name(), labels)
		}
		for _, p := range expandPaths([]string{filepath.Join(dir, e.Name())}) {
			out = append(out, labelledFile{path: p, positive: li == pos})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no labelled files under %s (want one folder per label: %v)", dir, labels)
	}
	return out, nil
}

// scoreFiles preprocesses files in batches of evalBatch and runs each batch
// through the model version's session in one call.
func scoreFiles(ctx context.Context, r *pipeline.Runner, v *models.Version, files []labelledFile, pos int, prog *progress, stderr io.Writer) ([]evaluation.Case, int, error) {
	sess, pipe, err := r.Load(v)
	if err != nil {
		return nil, 0, err
	}
	per := pipe.SampleLen()
	batch := make([]float32, evalBatch*per)
	var cases []evaluation.Case
	var pending []labelledFile
	nerr := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		out, err := sess.Run(ctx, batch[:len(pending)*per], len(pending))
		if err != nil {
			return err
		}
		for i, f := range pending {
			cases = append(cases, evaluation.Case{Positive: f.positive, Score: float64(out[i][pos])})
		}
		pending = pending[:0]
		return nil
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, nerr, err
		}
		dst := batch[len(pending)*per : (len(pending)+1)*per]
		if err := preprocessFile(pipe, f.path, dst); err != nil {
			nerr++
			fmt.Fprintf(stderr, "radflow eval: %s: %v\n", f.path, err)
		} else {
			pending = append(pending, f)
		}
		if len(pending) == evalBatch {
			if err := flush(); err != nil {
				return nil, nerr, err
			}
		}
		prog.step()
	}
	if err := flush(); err != nil {
		return nil, nerr, err
	}
	prog.done()
	return cases, nerr, nil
}

// preprocessFile fills dst from a JPEG/PNG (by content) or a DICOM file.
func preprocessFile(pipe *transform.Pipeline, path string, dst []float32) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	im, imgErr := transform.DecodeImage(f)
	f.Close()
	if imgErr == nil {
		return pipe.FromImage(im, dst)
	}
	d, err := pipeline.ParseFile(path)
	if err != nil {
		return errors.Join(imgErr, err)
	}
	img, err := d.Pixels()
	if err != nil {
		return err
	}
	return pipe.FromInstance(d.Instance, img, 0, dst)
}

func num(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func printEval(w io.Writer, r evalReport, labels []string, pos int) {
	f := func(v *float64) string {
		if v == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", *v)
	}
	fmt.Fprintf(w, "model        %s@%d (positive label %s, threshold %.4g)\n", r.Model, r.Version, r.PositiveLabel, r.Threshold)
	fmt.Fprintf(w, "n            %d\n", r.N)
	fmt.Fprintf(w, "accuracy     %s\nsensitivity  %s\nspecificity  %s\nprecision    %s\nf1           %s\nroc_auc      %s\n",
		f(r.Accuracy), f(r.Sensitivity), f(r.Specificity), f(r.Precision), f(r.F1), f(r.ROCAUC))
	neg := labels[1-pos]
	cm := r.ConfusionMatrix
	fmt.Fprintf(w, "confusion matrix (rows: truth, columns: prediction)\n")
	fmt.Fprintf(w, "  %-12s %10s %10s\n", "", neg, labels[pos])
	fmt.Fprintf(w, "  %-12s %10d %10d\n", neg, cm[0][0], cm[0][1])
	fmt.Fprintf(w, "  %-12s %10d %10d\n", labels[pos], cm[1][0], cm[1][1])
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors       %d files could not be read (see stderr)\n", r.Errors)
	}
}
