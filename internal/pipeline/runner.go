package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"
	"time"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/pixel"
	"github.com/radflow/radflow/internal/transform"
)

// ErrNoModel: no model version's routing accepts the instance.
var ErrNoModel = errors.New("pipeline: no model matches")

// Timings are the milliseconds one instance spent in each stage. Decode
// covers parsing and pixel decoding; it is shared by every model an
// instance is routed to.
type Timings struct {
	DecodeMS     float64 `json:"decode"`
	PreprocessMS float64 `json:"preprocess"`
	InferenceMS  float64 `json:"inference"`
}

// Prediction is one model version's result for one image.
type Prediction struct {
	Model   string // model name
	Version int    // model version
	// Label is the decision (models.Config.Interpret): the positive label
	// when its probability is at least the config's threshold, else the most
	// probable other label (argmax when the config names no positive label).
	Label string
	// Score is the positive label's probability (0 without a positive label).
	Score float32
	// Probabilities maps each label to the model's output in [0,1].
	Probabilities map[string]float64
	// Reason is why routing chose the model ("" when it was named).
	Reason  models.Reason
	Timings Timings
}

// Runner turns images into Predictions with the models of a repository. It
// opens one inference session per model version on first use and reuses it;
// it is safe for concurrent use. Close releases the sessions.
type Runner struct {
	repo *models.Repository
	opts inference.Options

	mu       sync.Mutex
	sessions map[string]*loaded
}

type loaded struct {
	once    sync.Once
	session *inference.Session
	pipe    *transform.Pipeline
	err     error
}

// NewRunner returns a Runner over repo; opts configure every session (ORT
// library, execution provider, threads).
func NewRunner(repo *models.Repository, opts inference.Options) *Runner {
	return &Runner{repo: repo, opts: opts, sessions: map[string]*loaded{}}
}

// Repository returns the runner's model repository.
func (r *Runner) Repository() *models.Repository { return r.repo }

// Load returns the session and preprocessing pipeline of v, opening the
// session on first use (the model bytes are checksum-verified then).
// errors: models.ErrChecksum, inference.ErrModelLoad, inference.ErrRuntimeUnavailable, transform.ErrConfig.
func (r *Runner) Load(v *models.Version) (*inference.Session, *transform.Pipeline, error) {
	r.mu.Lock()
	l := r.sessions[v.Ref()]
	if l == nil {
		l = &loaded{}
		r.sessions[v.Ref()] = l
	}
	r.mu.Unlock()
	l.once.Do(func() {
		l.pipe, l.err = v.Pipeline()
		if l.err != nil {
			return
		}
		var onnx []byte
		onnx, l.err = v.ModelBytes()
		if l.err != nil {
			return
		}
		l.session, l.err = inference.OpenBytes(v.Ref(), onnx, r.opts)
	})
	return l.session, l.pipe, l.err
}

// Close releases every session.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, l := range r.sessions {
		if l.session != nil {
			errs = append(errs, l.session.Close())
		}
		delete(r.sessions, k)
	}
	return errors.Join(errs...)
}

// Decoded is an instance and, once a model needs them, its decoded pixels,
// shared by every model the instance is routed to.
type Decoded struct {
	Instance *dicom.Instance
	Image    *pixel.Image // nil until Pixels succeeds
	// DecodeMS is the time spent parsing and decoding pixels so far.
	DecodeMS float64
}

// ParseFile parses the DICOM file at path; pixels are decoded later, only
// when a model is routed to the instance (Pixels).
// errors: dicom.ErrNotDICOM, dicom.ErrMalformed, os errors.
func ParseFile(path string) (*Decoded, error) {
	t0 := time.Now()
	in, err := dicom.ParseFile(path)
	if err != nil {
		return nil, err
	}
	return &Decoded{Instance: in, DecodeMS: ms(time.Since(t0))}, nil
}

// NewDecoded wraps an already parsed instance.
func NewDecoded(in *dicom.Instance) *Decoded { return &Decoded{Instance: in} }

// Pixels decodes the instance's pixel data once and returns it.
// errors: the pixel package's (pixel.ErrNoPixelData, ErrUnsupportedTransferSyntax, ErrTruncated, ...).
func (d *Decoded) Pixels() (*pixel.Image, error) {
	if d.Image != nil {
		return d.Image, nil
	}
	t0 := time.Now()
	img, err := pixel.Decode(d.Instance)
	d.DecodeMS += ms(time.Since(t0))
	if err != nil {
		return nil, err
	}
	d.Image = img
	return img, nil
}

// Route returns the model versions for d: the one named by ref
// ("name" or "name@version") when ref is not empty, else every model whose
// routing accepts the instance (callingAE is the sender's AE title, "" for
// files). errors: models.ErrNotFound, ErrNoModel (names the attributes seen).
func (r *Runner) Route(d *Decoded, ref, callingAE string) ([]models.Match, error) {
	if ref != "" {
		v, err := r.repo.Lookup(ref)
		if err != nil {
			return nil, err
		}
		return []models.Match{{Version: v}}, nil
	}
	a := models.AttributesOf(d.Instance, callingAE)
	ms := r.repo.Select(a)
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: Modality %q, Body Part Examined %q", ErrNoModel, a.Modality, a.BodyPartExamined)
	}
	return ms, nil
}

// PredictDICOM runs model version m on the first frame of d (radiographs
// have one; for multi-frame instances the first frame is used), decoding the
// pixels first if needed.
// errors: the pixel package's, as Load, transform.ErrInput, inference.ErrRun, ctx.Err().
func (r *Runner) PredictDICOM(ctx context.Context, d *Decoded, m models.Match) (Prediction, error) {
	img, err := d.Pixels()
	if err != nil {
		return Prediction{Model: m.Version.Name, Version: m.Version.Version, Reason: m.Reason}, err
	}
	return r.predict(ctx, m, func(p *transform.Pipeline, dst []float32) error {
		return p.FromInstance(d.Instance, img, 0, dst)
	}, d.DecodeMS)
}

// PredictImage runs model version m on an 8-bit raster image (JPEG/PNG).
// errors: as PredictDICOM.
func (r *Runner) PredictImage(ctx context.Context, im image.Image, m models.Match, decodeMS float64) (Prediction, error) {
	return r.predict(ctx, m, func(p *transform.Pipeline, dst []float32) error {
		return p.FromImage(im, dst)
	}, decodeMS)
}

func (r *Runner) predict(ctx context.Context, m models.Match, prep func(*transform.Pipeline, []float32) error, decodeMS float64) (Prediction, error) {
	v := m.Version
	pred := Prediction{Model: v.Name, Version: v.Version, Reason: m.Reason}
	pred.Timings.DecodeMS = decodeMS
	sess, pipe, err := r.Load(v)
	if err != nil {
		return pred, err
	}
	t0 := time.Now()
	input := make([]float32, pipe.SampleLen())
	if err := prep(pipe, input); err != nil {
		return pred, err
	}
	t1 := time.Now()
	out, err := sess.Run(ctx, input, 1)
	if err != nil {
		return pred, err
	}
	t2 := time.Now()
	pred.Timings.PreprocessMS, pred.Timings.InferenceMS = ms(t1.Sub(t0)), ms(t2.Sub(t1))
	f, err := v.Config.Interpret(out[0])
	if err != nil {
		return pred, err
	}
	pred.Label, pred.Score = f.Label, f.Score
	pred.Probabilities = make(map[string]float64, len(out[0]))
	for i, p := range out[0] {
		pred.Probabilities[v.Config.Labels[i]] = float64(p)
	}
	return pred, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
