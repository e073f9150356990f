package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
	"github.com/radflow/radflow/internal/transform"
)

// JobStore is what a JobHandler needs from the metadata store
// (*store.SQLite implements it).
type JobStore interface {
	GetInstance(ctx context.Context, sopInstanceUID string) (*store.Instance, error)
	CompleteResult(ctx context.Context, r *store.Result) error
}

// SRIngester stores the result SR (*ingest.Ingester implements it).
type SRIngester interface {
	Ingest(ctx context.Context, r io.Reader, info ingest.SourceInfo) (ingest.Outcome, error)
}

// JobMetrics records stage durations and job failures (*api.Metrics
// implements it; nil records nothing).
type JobMetrics interface {
	ObserveStage(stage string, d time.Duration)
	JobFailed(reason string)
}

// Job failure reasons passed to JobMetrics.JobFailed: a small fixed set.
const (
	FailInstance   = "instance"   // instance row or blob missing
	FailParse      = "parse"      // stored bytes do not parse
	FailModel      = "model"      // model version unknown, or cannot be loaded
	FailDecode     = "decode"     // pixel data cannot be decoded
	FailPreprocess = "preprocess" // the image does not fit the model's preprocessing
	FailInference  = "inference"  // ONNX Runtime refused the input
	FailSR         = "sr"         // the result cannot be written as an SR
	FailRetry      = "retry"      // a transient error; the job is retried
)

// JobHandler is the queue.Handler of inference jobs: it runs one model
// version on one stored instance, stores the result and writes it as a
// DICOM Comprehensive SR stored beside the instance (source "result").
//
// Idempotent: the result row is written with store.CompleteResult (one row
// per instance, model and version) and the SR gets the deterministic SOP
// Instance UID SRInstanceUID(sop, model, version), so a retry after a crash
// finds the SR already stored and creates neither a second result nor a
// second SR.
//
// Errors: bad input (missing instance, unparsable bytes, undecodable
// pixels, an image the preprocessing or the model refuses, an unknown
// model version) is wrapped with queue.Permanent, so the result is marked
// failed with its cause; anything else (database busy, disk full, ORT not
// loadable yet) is returned as is and retried.
type JobHandler struct {
	Runner *Runner         // required
	Store  JobStore        // required
	Blobs  store.BlobStore // required
	SR     SRIngester      // nil: no SR is written
	Metric JobMetrics      // nil: none
	Logger *slog.Logger    // nil: slog.Default(); never receives PHI
	// SoftwareVersion is written to the SR's Software Versions (0018,1020).
	SoftwareVersion string
}

var _ queue.Handler = (*JobHandler)(nil)

// SRInstanceUID is the SOP Instance UID of the SR written for model@version
// on the instance sop: the same inputs always give the same UID (dicom.NameUID).
func SRInstanceUID(sop, model, version string) string {
	return dicom.NameUID("radflow result sr\x00" + sop + "\x00" + model + "\x00" + version)
}

// Handle implements queue.Handler.
func (h *JobHandler) Handle(ctx context.Context, job queue.JobArgs) error {
	err := h.handle(ctx, job)
	if err != nil {
		reason := FailRetry
		var f *failure
		if errors.As(err, &f) {
			reason = f.reason
		}
		if h.Metric != nil {
			h.Metric.JobFailed(reason)
		}
		h.logger().Warn("inference job failed", "model", job.Model, "version", job.Version,
			"sop_instance_uid", job.SOPInstanceUID, "reason", reason, "permanent", errors.Is(err, queue.ErrPermanent), "error", err.Error())
	}
	return err
}

// failure is a permanent error with its metrics reason.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func permanent(reason string, err error) error {
	return queue.Permanent(&failure{reason: reason, err: err})
}

func (h *JobHandler) handle(ctx context.Context, job queue.JobArgs) error {
	t0 := time.Now()
	row, err := h.Store.GetInstance(ctx, job.SOPInstanceUID)
	if errors.Is(err, store.ErrNotFound) {
		return permanent(FailInstance, fmt.Errorf("instance not stored: %w", err))
	}
	if err != nil {
		return err
	}
	v, err := h.Runner.Repository().Get(job.Model, job.Version)
	if err != nil {
		return permanent(FailModel, err)
	}
	rc, err := store.OpenInstance(ctx, h.Blobs, row) // verified against the row's digest at EOF
	if errors.Is(err, store.ErrNotFound) {
		return permanent(FailInstance, fmt.Errorf("instance bytes missing: %w", err))
	}
	if err != nil {
		return err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if errors.Is(err, store.ErrDigestMismatch) {
		return permanent(FailInstance, fmt.Errorf("instance bytes are not the ones stored: %w", err))
	}
	if err != nil {
		return fmt.Errorf("reading instance: %w", err)
	}
	parsed, err := dicom.ParseBytes(b)
	if err != nil {
		return permanent(FailParse, err)
	}
	d := NewDecoded(parsed)
	d.DecodeMS = ms(time.Since(t0))
	if _, err := d.Pixels(); err != nil {
		return permanent(FailDecode, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pred, err := h.Runner.PredictDICOM(ctx, d, models.Match{Version: v})
	if err != nil {
		return classifyPredict(ctx, err)
	}
	h.observe("decode", pred.Timings.DecodeMS)
	h.observe("preprocess", pred.Timings.PreprocessMS)
	h.observe("inference", pred.Timings.InferenceMS)

	res := &store.Result{
		SOPInstanceUID:   job.SOPInstanceUID,
		StudyInstanceUID: row.StudyInstanceUID,
		Model:            job.Model,
		Version:          job.Version,
		Status:           store.StatusDone,
		Label:            pred.Label,
		Probabilities:    pred.Probabilities,
		Timings: map[string]float64{
			"decode":     pred.Timings.DecodeMS,
			"preprocess": pred.Timings.PreprocessMS,
			"inference":  pred.Timings.InferenceMS,
		},
	}
	if h.SR != nil {
		t1 := time.Now()
		uid, err := h.writeSR(ctx, parsed, v, job, pred, time.Since(t0))
		if err != nil {
			return err
		}
		res.SRSOPInstanceUID = uid
		res.Timings["sr"] = ms(time.Since(t1))
		h.observe("sr", res.Timings["sr"])
	}
	if err := h.Store.CompleteResult(ctx, res); err != nil {
		return err
	}
	return nil
}

// writeSR builds the result SR and ingests it; re-ingesting the same
// deterministic SOP Instance UID stores nothing (ingest's idempotence).
func (h *JobHandler) writeSR(ctx context.Context, src *dicom.Instance, v *models.Version, job queue.JobArgs, pred Prediction, elapsed time.Duration) (string, error) {
	cfg := v.Config
	r := dicom.ResultSR{
		ModelName:       job.Model,
		ModelVersion:    job.Version,
		Labels:          cfg.Labels,
		Probabilities:   make([]float64, len(cfg.Labels)),
		Label:           pred.Label,
		PositiveLabel:   cfg.PositiveLabel,
		Threshold:       cfg.Decision.Threshold,
		ProcessingTime:  elapsed,
		SOPInstanceUID:  SRInstanceUID(job.SOPInstanceUID, job.Model, job.Version),
		SoftwareVersion: h.SoftwareVersion,
	}
	for i, l := range cfg.Labels {
		r.Probabilities[i] = pred.Probabilities[l]
	}
	built, err := dicom.BuildResultSR(src, r)
	if err != nil {
		return "", permanent(FailSR, err)
	}
	_, err = h.SR.Ingest(ctx, bytes.NewReader(built.Data), ingest.SourceInfo{Source: store.SourceResult})
	switch {
	case errors.Is(err, ingest.ErrInvalid):
		return "", permanent(FailSR, err)
	case err != nil:
		return "", fmt.Errorf("storing the result SR: %w", err)
	}
	return built.SOPInstanceUID, nil
}

// classifyPredict sorts PredictDICOM's errors into permanent (the input or
// the model version is unusable) and transient ones.
func classifyPredict(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, transform.ErrInput), errors.Is(err, transform.ErrShape), errors.Is(err, transform.ErrConfig):
		return permanent(FailPreprocess, err)
	case errors.Is(err, inference.ErrShape), errors.Is(err, inference.ErrRun):
		return permanent(FailInference, err)
	case errors.Is(err, models.ErrChecksum), errors.Is(err, inference.ErrModelLoad), errors.Is(err, models.ErrConfig):
		return permanent(FailModel, err)
	}
	// ErrRuntimeUnavailable, ErrProviderUnavailable, ErrClosed: the process
	// is misconfigured or shutting down; retrying later may succeed.
	return err
}

func (h *JobHandler) observe(stage string, msv float64) {
	if h.Metric != nil {
		h.Metric.ObserveStage(stage, time.Duration(msv*float64(time.Millisecond)))
	}
}

func (h *JobHandler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
