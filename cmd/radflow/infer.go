package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/radflow/radflow/internal/pipeline"
)

// inferRecord is one line of `radflow infer --json`: one (file, model
// version) pair, or one file with its error. Timings are milliseconds.
type inferRecord struct {
	Path           string             `json:"path"`
	SOPInstanceUID string             `json:"sop_instance_uid"`
	Model          *string            `json:"model"`
	Version        *int               `json:"version"`
	Label          *string            `json:"label"`
	Probabilities  map[string]float64 `json:"probabilities"`
	TimingsMS      *pipeline.Timings  `json:"timings_ms"`
	Error          *string            `json:"error"`
}

func runInfer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per result and line")
	modelRef := fs.String("model", "", "run only model `NAME[@VERSION]` (default: every model whose routing rules match each instance)")
	var mf modelFlags
	mf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: radflow infer [--model NAME[@VERSION]] [--json] FILE|DIR...\n\nRuns the matching AI models on each DICOM instance (directories are walked\nrecursively) and prints path, SOP Instance UID, model@version, label,\nprobability and milliseconds for decode / preprocess / inference. Files that\nare not DICOM or cannot be decoded are reported and the run continues; the\nexit status is 1 when any file failed. An instance no model's routing rules\naccept is reported as skipped, not failed.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	runner, err := mf.runner()
	if err != nil {
		fmt.Fprintln(stderr, "radflow infer:", err)
		return 1
	}
	defer runner.Close()
	if *modelRef != "" {
		if _, err := runner.Repository().Lookup(*modelRef); err != nil {
			fmt.Fprintln(stderr, "radflow infer:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	paths := expandPaths(fs.Args())
	progress := newProgress(stderr, len(paths))
	var tw *tabwriter.Writer
	enc := json.NewEncoder(stdout)
	if !*asJSON {
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSOP INSTANCE UID\tMODEL\tLABEL\tPROBABILITY\tDECODE ms\tPREPROCESS ms\tINFER ms\tNOTE")
	}
	failed := false
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		for _, rec := range inferFile(ctx, runner, p, *modelRef) {
			if rec.Error != nil && !strings.HasPrefix(*rec.Error, skippedPrefix) {
				failed = true
			}
			if *asJSON {
				_ = enc.Encode(rec)
			} else {
				printInferRow(tw, rec)
			}
		}
		progress.step()
	}
	progress.done()
	if tw != nil {
		tw.Flush()
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "radflow infer: interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}

// skippedPrefix marks an instance that no model's routing accepts: reported,
// not a failure.
const skippedPrefix = "skipped: "

func inferFile(ctx context.Context, r *pipeline.Runner, path, modelRef string) []inferRecord {
	base := inferRecord{Path: path}
	fail := func(err error) []inferRecord {
		base.Error = errPtr(err)
		return []inferRecord{base}
	}
	d, err := pipeline.ParseFile(path)
	if d != nil && d.Instance != nil {
		base.SOPInstanceUID = d.Instance.SOPInstanceUID()
	}
	if err != nil {
		return fail(err)
	}
	matches, err := r.Route(d, modelRef, "")
	if errors.Is(err, pipeline.ErrNoModel) {
		return fail(errors.New(skippedPrefix + err.Error()))
	}
	if err != nil {
		return fail(err)
	}
	var out []inferRecord
	for _, m := range matches {
		rec := base
		name, version := m.Version.Name, m.Version.Version
		rec.Model, rec.Version = &name, &version
		pred, err := r.PredictDICOM(ctx, d, m)
		if err != nil {
			rec.Error = errPtr(err)
		} else {
			rec.Label, rec.Probabilities = &pred.Label, pred.Probabilities
			t := pred.Timings
			rec.TimingsMS = &t
		}
		out = append(out, rec)
	}
	return out
}

func printInferRow(tw *tabwriter.Writer, rec inferRecord) {
	model, label, prob, timing := "-", "-", "-", "-\t-\t-"
	if rec.Model != nil {
		model = fmt.Sprintf("%s@%d", *rec.Model, *rec.Version)
	}
	if rec.Label != nil {
		label = *rec.Label
		prob = fmt.Sprintf("%.4f", rec.Probabilities[*rec.Label])
	}
	if rec.TimingsMS != nil {
		t := rec.TimingsMS
		timing = fmt.Sprintf("%.1f\t%.1f\t%.1f", t.DecodeMS, t.PreprocessMS, t.InferenceMS)
	}
	uid := rec.SOPInstanceUID
	if uid == "" {
		uid = "-"
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rec.Path, uid, model, label, prob, timing, errText(rec.Error))
}
