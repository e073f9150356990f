package inference

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Provider names an ORT execution provider.
type Provider string

// Execution providers. CPU is always available; CUDA and TensorRT need an ORT
// build that includes them (the library from scripts/fetch-ort.sh does not).
const (
	ProviderCPU      Provider = "cpu"
	ProviderCUDA     Provider = "cuda"
	ProviderTensorRT Provider = "tensorrt"
)

// Options configures a Session. The zero value is valid: CPU, one intra-op
// and one inter-op thread, no thread spinning, first model output.
type Options struct {
	// LibraryPath is the ORT shared library (see ResolveLibrary); "" means
	// $RADFLOW_ORT_LIB, then the fetch-ort.sh cache path.
	LibraryPath string
	// Provider selects the execution provider: "" or "cpu", "cuda",
	// "tensorrt" (TensorRT falls back to CUDA, then CPU, per node).
	Provider Provider
	// DeviceID is the GPU ordinal for cuda/tensorrt.
	DeviceID int
	// IntraOpThreads is the number of threads one operator may use (0 → 1).
	IntraOpThreads int
	// InterOpThreads is the number of threads running independent operators
	// (0 → 1).
	InterOpThreads int
	// Spinning lets ORT's worker threads busy-wait for work (lower latency,
	// burns CPU while idle). Off by default.
	Spinning bool
	// OutputName selects the output returned by Run; "" means the model's
	// first output.
	OutputName string
}

// TensorInfo describes a model input or output: its name and declared shape,
// with -1 for a dynamic (symbolic) dimension.
type TensorInfo struct {
	Name  string
	Shape []int64
}

// Session is one ONNX model loaded into ORT, created once per model version
// and reused. Run is safe for concurrent use (ORT's Run is thread-safe on one
// session); Close waits for running calls.
type Session struct {
	mu     sync.RWMutex // Run holds R, Close holds W
	sess   *ort.DynamicAdvancedSession
	closed bool

	in, out   TensorInfo
	inPer     int   // input elements per sample; 0 when a non-batch dim is dynamic
	outPer    int   // output elements per sample; 0 when a non-batch dim is dynamic
	fixedN    int64 // declared batch size, or -1 when dynamic
	provider  Provider
	threadsIn int
}

// Open loads the ONNX model at path. It initialises the ORT runtime first
// (InitRuntime(opts.LibraryPath)).
// errors: ErrRuntimeUnavailable, ErrModelLoad (missing/corrupt file, or a
// non-float32 or non-tensor input/output), ErrProviderUnavailable.
func Open(path string, opts Options) (*Session, error) {
	if _, err := InitRuntime(opts.LibraryPath); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModelLoad, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrModelLoad, path)
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModelLoad, path, err)
	}
	return newSession(path, ins, outs, opts, func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSession(path, in, out, so)
	})
}

// OpenBytes is Open for a model held in memory (e.g. embedded in the
// binary); name is used in error messages only.
// errors: as Open.
func OpenBytes(name string, onnx []byte, opts Options) (*Session, error) {
	if _, err := InitRuntime(opts.LibraryPath); err != nil {
		return nil, err
	}
	if len(onnx) == 0 {
		return nil, fmt.Errorf("%w: %s: empty model", ErrModelLoad, name)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModelLoad, name, err)
	}
	return newSession(name, ins, outs, opts, func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSessionWithONNXData(onnx, in, out, so)
	})
}

type sessionMaker func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error)

func newSession(name string, ins, outs []ort.InputOutputInfo, opts Options, mk sessionMaker) (*Session, error) {
	if len(ins) != 1 {
		return nil, fmt.Errorf("%w: %s: has %d inputs; radflow feeds exactly one image tensor", ErrModelLoad, name, len(ins))
	}
	if err := checkFloatTensor(ins[0]); err != nil {
		return nil, fmt.Errorf("%w: %s: input %v", ErrModelLoad, name, err)
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("%w: %s: model has no outputs", ErrModelLoad, name)
	}
	oi := 0
	if opts.OutputName != "" {
		oi = -1
		for i, o := range outs {
			if o.Name == opts.OutputName {
				oi = i
			}
		}
		if oi < 0 {
			return nil, fmt.Errorf("%w: %s: no output named %q", ErrModelLoad, name, opts.OutputName)
		}
	}
	if err := checkFloatTensor(outs[oi]); err != nil {
		return nil, fmt.Errorf("%w: %s: output %v", ErrModelLoad, name, err)
	}
	s := &Session{
		in:  TensorInfo{Name: ins[0].Name, Shape: append([]int64(nil), ins[0].Dimensions...)},
		out: TensorInfo{Name: outs[oi].Name, Shape: append([]int64(nil), outs[oi].Dimensions...)},
	}
	if len(s.in.Shape) < 1 || len(s.out.Shape) < 1 {
		return nil, fmt.Errorf("%w: %s: input %v / output %v have no batch dimension", ErrModelLoad, name, s.in.Shape, s.out.Shape)
	}
	s.fixedN = s.in.Shape[0]
	if s.fixedN <= 0 {
		s.fixedN = -1
	}
	s.inPer = perSample(s.in.Shape)
	s.outPer = perSample(s.out.Shape)

	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s.provider = opts.Provider
	if s.provider == "" {
		s.provider = ProviderCPU
	}
	s.sess, err = mk([]string{s.in.Name}, []string{s.out.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModelLoad, name, err)
	}
	return s, nil
}

func checkFloatTensor(io ort.InputOutputInfo) error {
	if io.OrtValueType != ort.ONNXTypeTensor {
		return fmt.Errorf("%q is a %v, not a tensor", io.Name, io.OrtValueType)
	}
	if io.DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("%q has element type %v, not float32", io.Name, io.DataType)
	}
	return nil
}

// perSample is the product of the non-batch dimensions, 0 if any is dynamic.
func perSample(shape []int64) int {
	p := int64(1)
	for _, d := range shape[1:] {
		if d <= 0 {
			return 0
		}
		p *= d
		if p > 1<<31 {
			return 0
		}
	}
	return int(p)
}

func sessionOptions(opts Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("%w: session options: %v", ErrModelLoad, err)
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	intra, inter := opts.IntraOpThreads, opts.InterOpThreads
	if intra <= 0 {
		intra = 1
	}
	if inter <= 0 {
		inter = 1
	}
	spin := "0"
	if opts.Spinning {
		spin = "1"
	}
	for _, set := range []func() error{
		func() error { return so.SetIntraOpNumThreads(intra) },
		func() error { return so.SetInterOpNumThreads(inter) },
		func() error { return so.AddSessionConfigEntry("session.intra_op.allow_spinning", spin) },
		func() error { return so.AddSessionConfigEntry("session.inter_op.allow_spinning", spin) },
	} {
		if err := set(); err != nil {
			return fail(fmt.Errorf("%w: session options: %v", ErrModelLoad, err))
		}
	}
	switch opts.Provider {
	case "", ProviderCPU:
	case ProviderCUDA:
		if err := appendCUDA(so, opts.DeviceID); err != nil {
			return fail(err)
		}
	case ProviderTensorRT:
		trt, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("%w: tensorrt: %v", ErrProviderUnavailable, err))
		}
		defer trt.Destroy()
		if err := trt.Update(map[string]string{"device_id": strconv.Itoa(opts.DeviceID)}); err != nil {
			return fail(fmt.Errorf("%w: tensorrt: %v", ErrProviderUnavailable, err))
		}
		if err := so.AppendExecutionProviderTensorRT(trt); err != nil {
			return fail(fmt.Errorf("%w: tensorrt (needs an ORT build with TensorRT and the TensorRT libraries): %v", ErrProviderUnavailable, err))
		}
		if err := appendCUDA(so, opts.DeviceID); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("%w: unknown provider %q (want cpu, cuda or tensorrt)", ErrProviderUnavailable, opts.Provider))
	}
	return so, nil
}

func appendCUDA(so *ort.SessionOptions, device int) error {
	c, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("%w: cuda: %v", ErrProviderUnavailable, err)
	}
	defer c.Destroy()
	if err := c.Update(map[string]string{"device_id": strconv.Itoa(device)}); err != nil {
		return fmt.Errorf("%w: cuda: %v", ErrProviderUnavailable, err)
	}
	if err := so.AppendExecutionProviderCUDA(c); err != nil {
		return fmt.Errorf("%w: cuda (needs an ORT build with CUDA, e.g. onnxruntime-gpu, and CUDA/cuDNN libraries): %v", ErrProviderUnavailable, err)
	}
	return nil
}

// Input returns the model's input name and declared shape (-1 = dynamic),
// e.g. {"input", [-1 3 224 224]}.
func (s *Session) Input() TensorInfo { return cloneInfo(s.in) }

// Output returns the output Run returns, e.g. {"probs", [-1 2]}.
func (s *Session) Output() TensorInfo { return cloneInfo(s.out) }

// Provider returns the execution provider the session was created with.
func (s *Session) Provider() Provider { return s.provider }

func cloneInfo(t TensorInfo) TensorInfo {
	return TensorInfo{Name: t.Name, Shape: append([]int64(nil), t.Shape...)}
}

// SampleLen returns the number of float32 values one sample of the input
// takes (C*H*W for an NCHW image model), or 0 when a non-batch dimension is
// dynamic.
func (s *Session) SampleLen() int { return s.inPer }

// Run runs a batch of n samples. input holds them back to back in the
// model's layout (NCHW float32 for image models: len(input) must be
// n*SampleLen()); it is read in place, not copied, and must not be modified
// until Run returns. It returns the selected output as n rows of
// Output().Shape[1:] flattened (for a classifier: [n][classes] float32); the
// rows share one backing array.
// Cancelling ctx terminates a running ORT call.
// errors: ErrShape (n < 1, n differs from a fixed batch size, wrong
// len(input), or a dynamic non-batch input dimension), ErrRun, ErrClosed,
// ctx.Err().
func (s *Session) Run(ctx context.Context, input []float32, n int) ([][]float32, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.checkBatch(len(input), n); err != nil {
		return nil, err
	}
	shape := append(ort.Shape{int64(n)}, s.in.Shape[1:]...)
	inT, err := ort.NewTensor(shape, input)
	if err != nil {
		return nil, fmt.Errorf("%w: input tensor %v: %v", ErrRun, shape, err)
	}
	defer inT.Destroy()

	outputs := []ort.Value{nil}
	var flat []float32
	if s.outPer > 0 {
		flat = make([]float32, n*s.outPer)
		outShape := append(ort.Shape{int64(n)}, s.out.Shape[1:]...)
		outT, err := ort.NewTensor(outShape, flat)
		if err != nil {
			return nil, fmt.Errorf("%w: output tensor %v: %v", ErrRun, outShape, err)
		}
		defer outT.Destroy()
		outputs[0] = outT
	}

	var ro *ort.RunOptions
	if ctx.Done() != nil {
		ro, err = ort.NewRunOptions()
		if err != nil {
			return nil, fmt.Errorf("%w: run options: %v", ErrRun, err)
		}
		defer ro.Destroy()
		done := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(done)
			ro.Terminate()
		})
		defer func() {
			if !stop() {
				<-done // Terminate is running or ran; let it finish before Destroy
			}
		}()
	}

	if err := s.sess.RunWithOptions([]ort.Value{inT}, outputs, ro); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("inference: run cancelled: %w", cerr)
		}
		return nil, fmt.Errorf("%w: %v", ErrRun, err)
	}
	per := s.outPer
	if flat == nil { // output with dynamic non-batch dims: ORT allocated it
		got := outputs[0]
		defer got.Destroy()
		t, ok := got.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("%w: output %q is not a float32 tensor", ErrRun, s.out.Name)
		}
		sh := t.GetShape()
		if len(sh) < 1 || sh[0] != int64(n) {
			return nil, fmt.Errorf("%w: output shape %v for batch %d", ErrRun, sh, n)
		}
		flat = append([]float32(nil), t.GetData()...)
		per = len(flat) / n
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*per : (i+1)*per : (i+1)*per]
	}
	return rows, nil
}

func (s *Session) checkBatch(l, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: batch size %d", ErrShape, n)
	}
	if s.fixedN > 0 && int64(n) != s.fixedN {
		return fmt.Errorf("%w: model %q declares batch size %d, got %d", ErrShape, s.in.Name, s.fixedN, n)
	}
	if s.inPer == 0 {
		return fmt.Errorf("%w: model input %q has shape %s with a dynamic non-batch dimension; radflow needs fixed C,H,W", ErrShape, s.in.Name, shapeString(s.in.Shape))
	}
	if l != n*s.inPer {
		return fmt.Errorf("%w: input %q wants %d samples of %s = %d float32 values, got %d", ErrShape, s.in.Name, n, shapeString(s.in.Shape[1:]), n*s.inPer, l)
	}
	return nil
}

func shapeString(sh []int64) string {
	p := make([]string, len(sh))
	for i, d := range sh {
		if d < 0 {
			p[i] = "?"
		} else {
			p[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(p, "x") + "]"
}

// Close releases the ORT session; it waits for running Run calls. Later Runs
// return ErrClosed. Closing twice is a no-op.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.sess.Destroy(); err != nil {
		return errors.Join(ErrRun, err)
	}
	return nil
}
