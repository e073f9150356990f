package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/radflow/radflow/policies"
)

// Query is the rule the engine evaluates. It must produce
// {"allow": bool, "break_glass": bool, "reasons": [string]}.
const Query = "data.radflow.authz.decision"

// Errors. Decide wraps ErrInvalidInput, ErrEvaluation, ErrUndefined and
// ErrMalformedDecision (always with a deny decision); New and Reload wrap
// ErrNoPolicy, ErrCompile and ErrPolicyCheck.
var (
	ErrInvalidInput      = errors.New("policy: invalid input")
	ErrEvaluation        = errors.New("policy: evaluation failed")
	ErrUndefined         = errors.New("policy: decision undefined")
	ErrMalformedDecision = errors.New("policy: malformed decision")
	ErrNoPolicy          = errors.New("policy: no policy files")
	ErrCompile           = errors.New("policy: policy does not compile")
	ErrPolicyCheck       = errors.New("policy: policy failed its load check")
)

// Policy directory limits: files beyond them are refused, not truncated.
const (
	MaxPolicyFiles     = 256
	MaxPolicyFileBytes = 1 << 20
)

// Config configures New. The zero value uses the embedded default policy.
type Config struct {
	// Dir, when set, is a directory whose *.rego files (except *_test.rego)
	// are the policy, replacing the embedded default; it is watched for
	// changes. Empty: the embedded policies/*.rego.
	Dir string
	// PollInterval between checks of Dir for changed files; 0 means 2 s,
	// negative disables polling (Reload still works).
	PollInterval time.Duration
	// Logger for reload outcomes (file names and compiler messages only).
	// Nil: slog.Default().
	Logger *slog.Logger
	// Now fills RequestContext.Time when it is empty. Nil: time.Now.
	Now func() time.Time
	// Evaluator: EvaluatorWasm runs the policy compiled to WebAssembly
	// (wasm.go) and refuses a policy that cannot be; EvaluatorTopdown runs
	// OPA's Rego interpreter; "" (the default) uses Wasm when the policy
	// compiles to a module that needs no host builtins, else topdown
	// (logged). Both decide identically; Wasm is about 3× faster.
	Evaluator string
}

// Config.Evaluator values.
const (
	EvaluatorWasm    = "wasm"
	EvaluatorTopdown = "topdown"
)

// Decision is the engine's answer for one Input.
type Decision struct {
	// Allow is true only when the policy produced a well-formed allow.
	Allow bool `json:"allow"`
	// ID is a random UUID (RFC 4122 v4) naming this decision in the audit
	// trail.
	ID string `json:"id"`
	// BreakGlass is true when the access was granted by break-glass only;
	// the audit record must flag it for review.
	BreakGlass bool `json:"break_glass"`
	// Reasons explain the decision (roles, actions, purpose codes; no
	// identifiers). Never empty.
	Reasons []string `json:"reasons"`
	// Policy is the digest of the policy files that decided (hex SHA-256
	// prefix), for the audit trail.
	Policy string `json:"policy"`
}

// Engine evaluates the prepared policy query. It is safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[compiled]

	reloadMu   sync.Mutex // serialises reloads
	failedHash string     // digest of the last sources that failed to load
	lastErr    atomic.Pointer[error]

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type compiled struct {
	pq     rego.PreparedEvalQuery
	wasm   *wasmPolicy // nil: topdown evaluates
	digest string
}

// Evaluator names the evaluator of the policy in force: EvaluatorWasm or
// EvaluatorTopdown.
func (e *Engine) Evaluator() string {
	if e.cur.Load().wasm != nil {
		return EvaluatorWasm
	}
	return EvaluatorTopdown
}

type source struct {
	name string
	text string
}

// New compiles the policy (embedded default, or cfg.Dir) and, for a Dir,
// starts watching it. errors: ErrNoPolicy (Dir holds no .rego), ErrCompile,
// ErrPolicyCheck, or the error reading Dir. Close stops the watcher.
func New(cfg Config) (*Engine, error) {
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	srcs, digest, err := e.sources()
	if err != nil {
		return nil, err
	}
	switch cfg.Evaluator {
	case "", EvaluatorWasm, EvaluatorTopdown:
	default:
		return nil, fmt.Errorf("policy: unknown evaluator %q (want %q or %q)", cfg.Evaluator, EvaluatorWasm, EvaluatorTopdown)
	}
	c, err := e.compile(context.Background(), srcs, digest)
	if err != nil {
		return nil, err
	}
	e.cur.Store(c)
	if cfg.Dir != "" && cfg.PollInterval > 0 {
		go e.watch()
	} else {
		close(e.done)
	}
	return e, nil
}

// Close stops watching the policy directory. Decide keeps working with the
// policy in force. Close is idempotent and returns nil.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() { close(e.stop) })
	<-e.done
	return nil
}

// PolicyDigest is the digest of the policy in force (Decision.Policy).
func (e *Engine) PolicyDigest() string { return e.cur.Load().digest }

// LastReloadError is the error of the most recent reload attempt, nil when
// it succeeded or there was none. While it is non-nil the previous policy is
// in force.
func (e *Engine) LastReloadError() error {
	if p := e.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Reload re-reads the policy sources and, when they changed, compiles and
// swaps them in. On failure the policy in force is kept and the error is
// returned and kept for LastReloadError. With the embedded policy it is a
// no-op.
func (e *Engine) Reload(ctx context.Context) error {
	return e.reload(ctx, true)
}

func (e *Engine) watch() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			_ = e.reload(context.Background(), false)
		}
	}
}

// reload: force retries sources that failed before; the poller does not, so
// a broken file is logged once, not every interval.
func (e *Engine) reload(ctx context.Context, force bool) error {
	if e.cfg.Dir == "" {
		return nil
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	srcs, digest, err := e.sources()
	if err != nil {
		// Unreadable directory: report it once per distinct error.
		key := "read:" + err.Error()
		if !force && key == e.failedHash {
			return e.LastReloadError()
		}
		e.failedHash = key
	}
	if err == nil && digest == e.cur.Load().digest {
		e.lastErr.Store(nil)
		e.failedHash = ""
		return nil
	}
	if err == nil && !force && digest == e.failedHash {
		return e.LastReloadError()
	}
	if err == nil {
		var c *compiled
		if c, err = e.compile(ctx, srcs, digest); err == nil {
			old := e.cur.Swap(c)
			if old.wasm != nil {
				old.wasm.close() // idle instances; busy ones are collected after use
			}
			e.lastErr.Store(nil)
			e.failedHash = ""
			e.log.Info("policy: reloaded", "dir", e.cfg.Dir, "files", len(srcs), "policy", digest, "previous", old.digest, "evaluator", e.Evaluator())
			return nil
		}
		e.failedHash = digest
	}
	e.lastErr.Store(&err)
	e.log.Error("policy: reload failed, previous policy kept", "dir", e.cfg.Dir, "policy", e.cur.Load().digest, "error", err.Error())
	return err
}

// sources reads the policy modules, sorted by name, and their digest.
func (e *Engine) sources() ([]source, string, error) {
	var (
		fsys fs.FS
		name string
	)
	if e.cfg.Dir == "" {
		fsys, name = policies.FS, "embedded policies"
	} else {
		fsys, name = os.DirFS(e.cfg.Dir), e.cfg.Dir
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, "", fmt.Errorf("policy: reading %s: %w", name, err)
	}
	var srcs []source
	for _, ent := range ents {
		n := ent.Name()
		if !strings.HasSuffix(n, ".rego") || strings.HasSuffix(n, "_test.rego") || strings.HasPrefix(n, ".") || !ent.Type().IsRegular() {
			continue
		}
		if len(srcs) == MaxPolicyFiles {
			return nil, "", fmt.Errorf("%w: %s has more than %d .rego files", ErrNoPolicy, name, MaxPolicyFiles)
		}
		f, err := fsys.Open(n)
		if err != nil {
			return nil, "", fmt.Errorf("policy: reading %s: %w", path.Join(name, n), err)
		}
		b, err := io.ReadAll(io.LimitReader(f, MaxPolicyFileBytes+1))
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("policy: reading %s: %w", path.Join(name, n), err)
		}
		if len(b) > MaxPolicyFileBytes {
			return nil, "", fmt.Errorf("%w: %s is over %d bytes", ErrCompile, path.Join(name, n), MaxPolicyFileBytes)
		}
		srcs = append(srcs, source{name: n, text: string(b)})
	}
	if len(srcs) == 0 {
		return nil, "", fmt.Errorf("%w in %s", ErrNoPolicy, name)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].name < srcs[j].name })
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "%s\x00%d\x00%s", s.name, len(s.text), s.text)
	}
	return srcs, hex.EncodeToString(h.Sum(nil))[:16], nil
}

// probe is the load check's input: an anonymous health probe, which every
// policy must answer with a well-formed decision.
var probe = Input{Subject: Subject{Kind: "anonymous", Roles: []string{}}, Action: "health:read",
	Resource: Resource{Type: "system"}, Context: RequestContext{Time: "2000-01-01T00:00:00Z"}}

// compile prepares the topdown query (always: it is the reference and the
// compiler's checks) and, unless cfg.Evaluator is topdown, the Wasm module.
func (e *Engine) compile(ctx context.Context, srcs []source, digest string) (*compiled, error) {
	opts := []func(*rego.Rego){rego.Query(Query), rego.SetRegoVersion(ast.RegoV1)}
	for _, s := range srcs {
		opts = append(opts, rego.Module(s.name, s.text))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}
	c := &compiled{pq: pq, digest: digest}
	// A policy that compiles but never defines the decision (wrong package,
	// renamed rule) would deny everything; refuse it at load time instead.
	want, err := c.eval(ctx, probe)
	if err != nil {
		return nil, fmt.Errorf("%w: anonymous health:read: %w", ErrPolicyCheck, err)
	}
	if e.cfg.Evaluator == EvaluatorTopdown {
		return c, nil
	}
	w, err := compileWasm(ctx, srcs)
	if err == nil {
		c.wasm = w
		got, err2 := c.eval(ctx, probe)
		if err2 != nil || got.Allow != want.Allow || got.BreakGlass != want.BreakGlass || !slices.Equal(got.Reasons, want.Reasons) {
			w.close()
			c.wasm = nil
			err = fmt.Errorf("%w: wasm and topdown disagree on anonymous health:read (%v)", ErrPolicyCheck, err2)
		}
	}
	if err != nil {
		if e.cfg.Evaluator == EvaluatorWasm {
			return nil, err
		}
		e.log.Warn("policy: evaluating with topdown, not wasm", "policy", digest, "reason", err.Error())
	}
	return c, nil
}

// Decide evaluates the policy for in. It always returns a Decision with an
// ID and at least one reason; Allow is true only for a well-formed allow from
// the policy. A deny by the policy has a nil error. errors (with Allow
// false): ErrInvalidInput (limits, action syntax, context.time not RFC
// 3339), ErrEvaluation (includes ctx cancellation), ErrUndefined,
// ErrMalformedDecision.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	c := e.cur.Load()
	if err := in.validate(); err != nil {
		return Decision{ID: newDecisionID(), Policy: c.digest, Reasons: []string{strings.TrimPrefix(err.Error(), "policy: ")}}, err
	}
	if in.Context.Time == "" {
		var buf [len(time.RFC3339Nano) + 8]byte
		in.Context.Time = string(e.cfg.Now().UTC().AppendFormat(buf[:0], time.RFC3339Nano))
	}
	d, err := c.eval(ctx, in)
	d.ID = newDecisionID()
	d.Policy = c.digest
	return d, err
}

func (c *compiled) eval(ctx context.Context, in Input) (Decision, error) {
	if c.wasm != nil {
		return c.wasm.eval(ctx, in)
	}
	// OPA only notices cancellation at its checkpoints, which a small
	// policy may never reach: a request already given up is not authorised.
	if err := ctx.Err(); err != nil {
		return deny("policy evaluation failed; denied by default"), fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	// Cancellation through context.AfterFunc rather than the goroutine per
	// evaluation that OPA starts when it is not given a Cancel.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rs, err := c.pq.Eval(ctx, rego.EvalParsedInput(in.value()), noMetrics, asTerm, rego.EvalExternalCancel(cancel))
	stop()
	if err != nil {
		return deny("policy evaluation failed; denied by default"), fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return deny("policy decision undefined; denied by default"), fmt.Errorf("%w: %s", ErrUndefined, Query)
	}
	if len(rs) > 1 || len(rs[0].Expressions) > 1 {
		return deny("policy decision malformed; denied by default"), fmt.Errorf("%w: %d results", ErrMalformedDecision, len(rs))
	}
	d, err := parseDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return deny("policy decision malformed; denied by default"), err
	}
	return d, nil
}

// Per-evaluation options: no metrics collection, and the result left as an
// OPA term (parseDecision reads it) instead of converted to Go maps. OPA's
// other defaults already suit: rule indexing and early exit on, no tracing,
// no instrumentation, no print hook, no inter-query builtin cache (the
// policy calls no builtin that would use one).
var (
	noMetrics = rego.EvalMetrics(metrics.NoOp())
	asTerm    = rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil })
)

func deny(reason string) Decision { return Decision{Reasons: []string{reason}} }

var kAllow, kReasons = ast.StringTerm("allow"), ast.StringTerm("reasons")

// parseDecision accepts exactly {"allow": bool, "break_glass": bool,
// "reasons": [string, ...]} (reasons non-empty; break_glass only with
// allow). Extra keys are ignored. v is the *ast.Term handed back by
// asTerm, or a Go value from a policy evaluated without it.
func parseDecision(v any) (Decision, error) {
	t, ok := v.(*ast.Term)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %T, want an object", ErrMalformedDecision, v)
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %s, want an object", ErrMalformedDecision, ast.ValueName(t.Value))
	}
	var d Decision
	b, err := boolField(obj, kAllow)
	if err != nil {
		return Decision{}, err
	}
	d.Allow = b
	if d.BreakGlass, err = boolField(obj, kBreakGlass); err != nil {
		return Decision{}, err
	}
	var rs *ast.Array
	if r := obj.Get(kReasons); r != nil {
		rs, _ = r.Value.(*ast.Array)
	}
	if rs == nil || rs.Len() == 0 {
		return Decision{}, fmt.Errorf("%w: reasons is not a non-empty array", ErrMalformedDecision)
	}
	d.Reasons = make([]string, rs.Len())
	for i := range rs.Len() {
		s, ok := rs.Elem(i).Value.(ast.String)
		if !ok {
			return Decision{}, fmt.Errorf("%w: reasons[%d] is %s, want string", ErrMalformedDecision, i, ast.ValueName(rs.Elem(i).Value))
		}
		d.Reasons[i] = string(s)
	}
	if d.BreakGlass && !d.Allow {
		return Decision{}, fmt.Errorf("%w: break_glass without allow", ErrMalformedDecision)
	}
	return d, nil
}

func boolField(obj ast.Object, k *ast.Term) (bool, error) {
	v := obj.Get(k)
	if v == nil {
		return false, fmt.Errorf("%w: %s is missing", ErrMalformedDecision, k.Value)
	}
	b, ok := v.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %s is %s, want boolean", ErrMalformedDecision, k.Value, ast.ValueName(v.Value))
	}
	return bool(b), nil
}
