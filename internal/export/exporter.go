package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"syscall"
	"time"

	"github.com/radflow/radflow/internal/deid"
	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dimse"
)

// Errors of Export (request level; per-instance problems are Outcomes).
var (
	// ErrUnknownDestination: no destination with that name (HTTP 404).
	ErrUnknownDestination = errors.New("export: unknown destination")
	// ErrNotFound: the study has no stored instance, or a SOP Instance
	// UID is not stored (HTTP 404). Source implementations return it
	// (wrapped) too.
	ErrNotFound = errors.New("export: not found")
	// ErrInvalidRequest: neither or both of a study and SOP instances,
	// a malformed UID, too many instances (HTTP 400).
	ErrInvalidRequest = errors.New("export: invalid request")
	// ErrForbidden: Options.Authorize refused the export (HTTP 403);
	// Authorize should wrap it.
	ErrForbidden = errors.New("export: forbidden")
	// ErrDestinationUnavailable: no association could be established (or
	// kept) within the retry budget; the instances not sent are in
	// Result.Outcomes with ReasonNetwork (HTTP 502).
	ErrDestinationUnavailable = errors.New("export: destination unavailable")
	// ErrAudit: the Auditor failed; nothing more is sent for the request
	// (HTTP 500). Outcomes already recorded stay in Result.
	ErrAudit = errors.New("export: audit record failed")
)

// Outcome statuses.
const (
	StatusSent    = "sent"     // DIMSE status 0000
	StatusWarning = "warning"  // DIMSE status Bxxx (stored, with coercion or similar)
	StatusFailed  = "failed"   // the destination answered a failure status
	StatusNotSent = "not_sent" // see Reason
)

// Outcome reasons (why an instance was not sent, or failed).
const (
	ReasonDIMSEStatus         = "dimse_status"         // failure status from the destination
	ReasonPresentationContext = "presentation_context" // SOP class / transfer syntax not accepted (no transcoding)
	ReasonDeid                = "deid"                 // de-identification failed: not sent to the external destination
	ReasonRead                = "read"                 // the stored instance cannot be read or parsed
	ReasonNetwork             = "network"              // no association within the retry budget
	ReasonAudit               = "audit"                // the audit trail failed earlier in the request
	ReasonCanceled            = "canceled"             // the request's context ended
)

// Ref is one stored instance as the Source lists it.
type Ref struct {
	SOPInstanceUID   string
	SOPClassUID      string // "" = read from the file meta
	StudyInstanceUID string
	// TransferSyntaxUID of the stored file ("" = read from the file meta).
	TransferSyntaxUID string
	// Size of the Part 10 file in bytes, as Open returns it; 0 = unknown
	// (the file is then read into memory, up to Options.MaxInstanceBytes).
	Size int64
	// Result marks a radflow result SR (sent for a study only with
	// Request.IncludeSR).
	Result bool
}

// Source is the archive as the exporter reads it (StoreSource adapts
// package store).
type Source interface {
	// Instances lists a study's stored instances (result SRs included,
	// Result set). errors: ErrNotFound (wrapped) when the study has none.
	Instances(ctx context.Context, studyInstanceUID string) ([]Ref, error)
	// Instance returns one instance's Ref. errors: ErrNotFound (wrapped).
	Instance(ctx context.Context, sopInstanceUID string) (Ref, error)
	// Open returns the instance's Part 10 bytes (preamble, DICM, file
	// meta, data set). errors: ErrNotFound (wrapped).
	Open(ctx context.Context, sopInstanceUID string) (io.ReadCloser, error)
}

// AuditEvent is one instance's export, sent or not. StudyInstanceUID and
// SOPInstanceUID are the local (original) UIDs — the local audit trail
// needs them to account for what left; SentStudyInstanceUID and
// SentSOPInstanceUID are the UIDs the destination received (the
// de-identified ones for an external destination, "" when nothing was
// sent). It carries no patient name, ID or other PHI.
type AuditEvent struct {
	Destination          string
	AETitle              string
	External             bool
	Auto                 bool // an auto-push (AutoPusher), not a request
	StudyInstanceUID     string
	SOPInstanceUID       string
	SOPClassUID          string
	SentStudyInstanceUID string
	SentSOPInstanceUID   string
	Status               string // StatusSent, StatusWarning, StatusFailed, StatusNotSent
	Reason               string
	DIMSEStatus          string // 4 hex digits, "" when none
}

// Auditor records exports (the integrator adapts the audit trail; the
// requesting principal is in ctx). An error stops the request: ErrAudit.
type Auditor interface {
	Exported(ctx context.Context, ev AuditEvent) error
}

// Options configure New.
type Options struct {
	// Source reads the stored instances (required).
	Source Source
	// Auditor is called once per instance; nil: none.
	Auditor Auditor
	// Authorize, when set, is asked before anything is read or sent, with
	// the destination and the distinct Study Instance UIDs exported; an
	// error wrapping ErrForbidden answers 403, another error 500. Not
	// called for auto-pushes.
	Authorize func(ctx context.Context, dest DestinationInfo, studyInstanceUIDs []string) error
	// Logger (default slog.Default()); receives UIDs, destination names
	// and statuses, never PHI.
	Logger *slog.Logger
	// MaxInstanceBytes bounds an instance held in memory (de-identification,
	// unknown size); larger ones are reported with ReasonRead (default 1 GiB).
	MaxInstanceBytes int64
	// MaxInstances bounds the instances of one request (default 10000).
	MaxInstances int
}

// Request is one export: a whole study (StudyInstanceUID) or a list of
// instances (SOPInstanceUIDs), exactly one of them. For a study, result
// SRs are included only with IncludeSR; listed instances are all sent.
type Request struct {
	Destination      string
	StudyInstanceUID string
	SOPInstanceUIDs  []string
	IncludeSR        bool
}

// Outcome is one instance's result. DIMSEStatus is the destination's
// C-STORE status as 4 hex digits ("0000", "B000", "A700"...; "" when
// none was received). Error is a short reason without PHI.
type Outcome struct {
	SOPInstanceUID       string   `json:"sop_instance_uid"`
	SOPClassUID          string   `json:"sop_class_uid,omitempty"`
	StudyInstanceUID     string   `json:"study_instance_uid,omitempty"`
	SentSOPInstanceUID   string   `json:"sent_sop_instance_uid,omitempty"`
	SentStudyInstanceUID string   `json:"sent_study_instance_uid,omitempty"`
	TransferSyntaxUID    string   `json:"transfer_syntax_uid,omitempty"`
	Status               string   `json:"status"`
	Reason               string   `json:"reason,omitempty"`
	DIMSEStatus          string   `json:"dimse_status,omitempty"`
	Error                string   `json:"error,omitempty"`
	Attempts             int      `json:"attempts"`
	Warnings             []string `json:"warnings,omitempty"`
}

// Result is an export's outcome: one Outcome per instance, in the order
// selected; Sent counts sent + warning, Failed the rest; Associations is
// how many associations were opened.
type Result struct {
	Destination  string    `json:"destination"`
	External     bool      `json:"external"`
	Sent         int       `json:"sent"`
	Failed       int       `json:"failed"`
	Associations int       `json:"associations"`
	Outcomes     []Outcome `json:"outcomes"`
}

// Exporter sends instances to the configured destinations. Safe for
// concurrent use.
type Exporter struct {
	dests map[string]*Destination
	order []string
	opts  Options
	log   *slog.Logger
}

// New returns an Exporter for cfg (validated by LoadConfig/ParseConfig or
// cfg.Validate). errors: ErrConfig (nil Source, unvalidated config).
func New(cfg *Config, opts Options) (*Exporter, error) {
	if opts.Source == nil {
		return nil, fmt.Errorf("%w: Options.Source is required", ErrConfig)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxInstanceBytes <= 0 {
		opts.MaxInstanceBytes = 1 << 30
	}
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = 10000
	}
	e := &Exporter{dests: map[string]*Destination{}, opts: opts, log: opts.Logger}
	for i := range cfg.Destinations {
		d := cfg.Destinations[i]
		if d.Retry.Attempts == 0 || d.Timeout == 0 || (d.External && len(d.deidOpts.ProjectSecret) == 0) {
			return nil, fmt.Errorf("%w: destination %q not validated (use LoadConfig or Config.Validate)", ErrConfig, d.Name)
		}
		e.dests[d.Name] = &d
		e.order = append(e.order, d.Name)
	}
	return e, nil
}

// Destinations lists the destinations in file order (no secrets).
func (e *Exporter) Destinations() []DestinationInfo {
	out := make([]DestinationInfo, 0, len(e.order))
	for _, n := range e.order {
		out = append(out, e.dests[n].info())
	}
	return out
}

// Export sends the request's instances to its destination over one
// association (re-dialled after transient failures) and returns one
// Outcome per instance. errors (Result is nil for the first four):
// ErrUnknownDestination, ErrInvalidRequest, ErrNotFound, ErrForbidden,
// Source errors; with a Result: ErrDestinationUnavailable, ErrAudit,
// ctx's error.
func (e *Exporter) Export(ctx context.Context, req Request) (*Result, error) {
	d, ok := e.dests[req.Destination]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDestination, req.Destination)
	}
	refs, err := e.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	if e.opts.Authorize != nil {
		if err := e.opts.Authorize(ctx, d.info(), studies(refs)); err != nil {
			return nil, err
		}
	}
	return e.send(ctx, d, refs, false)
}

func studies(refs []Ref) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r.StudyInstanceUID] {
			seen[r.StudyInstanceUID] = true
			out = append(out, r.StudyInstanceUID)
		}
	}
	sort.Strings(out)
	return out
}

// resolve validates req and lists the instances it selects.
func (e *Exporter) resolve(ctx context.Context, req Request) ([]Ref, error) {
	switch {
	case req.StudyInstanceUID == "" && len(req.SOPInstanceUIDs) == 0:
		return nil, fmt.Errorf("%w: give a Study Instance UID or SOP Instance UIDs", ErrInvalidRequest)
	case req.StudyInstanceUID != "" && len(req.SOPInstanceUIDs) > 0:
		return nil, fmt.Errorf("%w: give a Study Instance UID or SOP Instance UIDs, not both", ErrInvalidRequest)
	case len(req.SOPInstanceUIDs) > e.opts.MaxInstances:
		return nil, fmt.Errorf("%w: %d SOP Instance UIDs, at most %d", ErrInvalidRequest, len(req.SOPInstanceUIDs), e.opts.MaxInstances)
	}
	if req.StudyInstanceUID != "" {
		if !dicom.ValidReceivedUID(req.StudyInstanceUID) {
			return nil, fmt.Errorf("%w: Study Instance UID %q", ErrInvalidRequest, req.StudyInstanceUID)
		}
		all, err := e.opts.Source.Instances(ctx, req.StudyInstanceUID)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("%w: study %s", ErrNotFound, req.StudyInstanceUID)
		}
		if len(all) > e.opts.MaxInstances {
			return nil, fmt.Errorf("%w: study has %d instances, at most %d per export", ErrInvalidRequest, len(all), e.opts.MaxInstances)
		}
		refs := all[:0:0]
		for _, r := range all {
			if !r.Result || req.IncludeSR {
				refs = append(refs, r)
			}
		}
		return refs, nil
	}
	seen := map[string]bool{}
	var refs []Ref
	for _, uid := range req.SOPInstanceUIDs {
		if !dicom.ValidReceivedUID(uid) {
			return nil, fmt.Errorf("%w: SOP Instance UID %q", ErrInvalidRequest, uid)
		}
		if seen[uid] {
			continue
		}
		seen[uid] = true
		r, err := e.opts.Source.Instance(ctx, uid)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

// plan is one instance being exported.
type plan struct {
	ref    Ref
	sendTS string // transfer syntax proposed for it
	out    *Outcome
	done   bool
}

// sendTransferSyntax is the transfer syntax an instance is sent in: the
// stored one, or for an external destination the one deid writes
// (Explicit VR Little Endian for native encodings, else unchanged).
func sendTransferSyntax(d *Destination, ts string) string {
	if !d.External {
		return ts
	}
	switch ts {
	case dimse.ImplicitVRLittleEndian, dimse.ExplicitVRLittleEndian, dimse.ExplicitVRBigEndian, dimse.DeflatedExplicitVRLittleEndian:
		return dimse.ExplicitVRLittleEndian
	}
	return ts
}

// send runs the association loop for refs.
func (e *Exporter) send(ctx context.Context, d *Destination, refs []Ref, auto bool) (*Result, error) {
	start := time.Now()
	res := &Result{Destination: d.Name, External: d.External, Outcomes: make([]Outcome, len(refs))}
	plans := make([]*plan, len(refs))
	var keys *deid.Keys
	if d.External {
		keys = deid.NewKeys(d.deidOpts.ProjectSecret)
	}
	for i, r := range refs {
		res.Outcomes[i] = Outcome{SOPInstanceUID: r.SOPInstanceUID, SOPClassUID: r.SOPClassUID, StudyInstanceUID: r.StudyInstanceUID}
		plans[i] = &plan{ref: r, out: &res.Outcomes[i]}
	}
	var auditErr error
	finish := func(p *plan, status, reason, msg string) {
		p.done = true
		p.out.Status, p.out.Reason, p.out.Error = status, reason, msg
		if auditErr != nil || e.opts.Auditor == nil {
			return
		}
		ev := AuditEvent{Destination: d.Name, AETitle: d.AETitle, External: d.External, Auto: auto,
			StudyInstanceUID: p.ref.StudyInstanceUID, SOPInstanceUID: p.ref.SOPInstanceUID, SOPClassUID: p.out.SOPClassUID,
			SentStudyInstanceUID: p.out.SentStudyInstanceUID, SentSOPInstanceUID: p.out.SentSOPInstanceUID,
			Status: status, Reason: reason, DIMSEStatus: p.out.DIMSEStatus}
		if err := e.opts.Auditor.Exported(ctx, ev); err != nil {
			auditErr = fmt.Errorf("%w: %v", ErrAudit, err)
		}
	}

	// Fill in SOP class and transfer syntax where the Source left them out.
	for _, p := range plans {
		if p.ref.SOPClassUID == "" || p.ref.TransferSyntaxUID == "" {
			if err := e.probe(ctx, p); err != nil {
				finish(p, StatusNotSent, ReasonRead, err.Error())
				continue
			}
		}
		p.sendTS = sendTransferSyntax(d, p.ref.TransferSyntaxUID)
	}
	var ctxs []dimse.PresentationContext
	seen := map[[2]string]bool{}
	for _, p := range plans {
		k := [2]string{p.ref.SOPClassUID, p.sendTS}
		if p.done || seen[k] {
			continue
		}
		seen[k] = true
		ctxs = append(ctxs, dimse.PresentationContext{AbstractSyntax: k[0], TransferSyntaxes: []string{k[1]}})
	}
	if len(ctxs) > 128 {
		return nil, fmt.Errorf("%w: %d distinct (SOP class, transfer syntax) pairs, at most 128 per association", ErrInvalidRequest, len(ctxs))
	}

	// failures counts associations lost to transient errors (dial or
	// mid-transfer); an association closed because a stored instance was
	// cut short is re-opened at once without counting.
	var lastErr error
	failures, backoffs := 0, 0
	for failures < d.Retry.Attempts && auditErr == nil && ctx.Err() == nil {
		pending := 0
		for _, p := range plans {
			if !p.done {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if failures > backoffs {
			backoffs = failures
			wait := backoff(d.Retry, failures)
			e.log.Warn("export: retrying", "destination", d.Name, "attempt", failures+1, "wait_ms", wait.Milliseconds(), "error", lastErr.Error())
			if err := sleep(ctx, wait); err != nil {
				break
			}
		}
		cl, err := dimse.Dial(ctx, d.Address, dimse.ClientConfig{
			CallingAETitle: d.CallingAETitle, CalledAETitle: d.AETitle, MaxPDULength: d.MaxPDU,
			AssociationTimeout: d.Timeout, ResponseTimeout: d.ResponseTimeout, TLSConfig: cloneTLS(d.tlsConfig),
		}, ctxs)
		if err != nil {
			lastErr = err
			failures++
			if ctx.Err() != nil || !transient(err) {
				break
			}
			continue
		}
		res.Associations++
		var lost error // transport failure: the pending instances wait for the next association
		cut := false   // a data set was cut short: the association is unusable
		for _, p := range plans {
			if p.done {
				continue
			}
			if ctx.Err() != nil || auditErr != nil {
				break
			}
			p.out.Attempts++
			r := e.sendOne(ctx, cl, d, keys, p)
			if r.transportErr != nil {
				lost = r.transportErr
				break
			}
			finish(p, r.status, r.reason, r.msg)
			if r.broken {
				cut = true
				break
			}
		}
		switch {
		case lost != nil:
			cl.Abort()
			lastErr = lost
			failures++
			if !transient(lost) {
				failures = d.Retry.Attempts
			}
		case cut:
			cl.Abort()
		default:
			if err := cl.Release(ctx); err != nil {
				e.log.Warn("export: release failed", "destination", d.Name, "error", err.Error())
			}
		}
	}

	var err error
	for _, p := range plans {
		if p.done {
			continue
		}
		switch {
		case auditErr != nil:
			finish(p, StatusNotSent, ReasonAudit, "not sent: the audit trail failed")
		case ctx.Err() != nil:
			finish(p, StatusNotSent, ReasonCanceled, context.Cause(ctx).Error())
		default:
			msg := "no association"
			if lastErr != nil {
				msg = lastErr.Error()
			}
			finish(p, StatusNotSent, ReasonNetwork, msg)
			err = fmt.Errorf("%w: %s (%s) after %d attempts: %w", ErrDestinationUnavailable, d.Name, d.Address, failures, lastErr)
		}
	}
	for _, o := range res.Outcomes {
		if o.Status == StatusSent || o.Status == StatusWarning {
			res.Sent++
		} else {
			res.Failed++
		}
	}
	switch {
	case auditErr != nil:
		err = auditErr
	case ctx.Err() != nil:
		err = ctx.Err()
	}
	e.log.Info("export", "destination", d.Name, "external", d.External, "auto", auto, "instances", len(refs),
		"sent", res.Sent, "failed", res.Failed, "associations", res.Associations, "duration_ms", time.Since(start).Milliseconds())
	return res, err
}

func cloneTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	return c.Clone()
}

// backoff is the wait before retry n (1-based): Backoff·2^(n-1), at most
// MaxBackoff, with ±10% jitter.
func backoff(r Retry, n int) time.Duration {
	w := r.Backoff
	for i := 1; i < n && w < r.MaxBackoff; i++ {
		w *= 2
	}
	if w > r.MaxBackoff {
		w = r.MaxBackoff
	}
	j := time.Duration(rand.Int64N(int64(w)/5+1)) - w/10
	return w + j
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transient reports whether err is worth another association: network
// failures, timeouts, A-ABORT, protocol errors, A-ASSOCIATE-RJ transient.
// Certificate problems and permanent rejections are not.
func transient(err error) bool {
	var rj *dimse.RejectError
	if errors.As(err, &rj) {
		return rj.Result == 2
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &rh) || errors.As(err, &ae) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, dimse.ErrAborted) || errors.Is(err, dimse.ErrProtocol) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
