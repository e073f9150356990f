package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/store"
)

// Auto-push errors.
var (
	// ErrQueueFull: the auto-push queue is full; the push is dropped (and
	// logged). The SR stays stored and can be exported by request.
	ErrQueueFull = errors.New("export: auto-push queue full")
	// ErrClosed: the AutoPusher was closed.
	ErrClosed = errors.New("export: auto-pusher closed")
)

// AutoDestinations lists the destinations with auto: [sr].
func (e *Exporter) AutoDestinations() []DestinationInfo {
	var out []DestinationInfo
	for _, n := range e.order {
		if d := e.dests[n]; d.autoSR() {
			out = append(out, d.info())
		}
	}
	return out
}

// PushResult sends the stored result SR srSOPInstanceUID to every
// destination with auto: [sr], one association each, synchronously, and
// returns one Result per destination (in file order). studyInstanceUID
// is checked against the stored SR's. Audit events carry Auto: true.
// errors: ErrNotFound (SR not stored), ErrInvalidRequest (bad UID or
// study mismatch), and the first destination's send error
// (ErrDestinationUnavailable, ErrAudit, ctx's error), after trying all.
func (e *Exporter) PushResult(ctx context.Context, srSOPInstanceUID, studyInstanceUID string) ([]*Result, error) {
	auto := e.AutoDestinations()
	if len(auto) == 0 {
		return nil, nil
	}
	ref, err := e.opts.Source.Instance(ctx, srSOPInstanceUID)
	if err != nil {
		return nil, err
	}
	if studyInstanceUID != "" && ref.StudyInstanceUID != "" && ref.StudyInstanceUID != studyInstanceUID {
		return nil, fmt.Errorf("%w: SR %s belongs to study %s, not %s", ErrInvalidRequest, srSOPInstanceUID, ref.StudyInstanceUID, studyInstanceUID)
	}
	var out []*Result
	var first error
	for _, di := range auto {
		res, err := e.send(ctx, e.dests[di.Name], []Ref{ref}, true)
		if err != nil && first == nil {
			first = err
		}
		if res != nil {
			out = append(out, res)
		}
	}
	return out, first
}

// AutoPushOptions configure NewAutoPusher.
type AutoPushOptions struct {
	// Workers push concurrently (default 1).
	Workers int
	// QueueLength bounds the pushes waiting (default 1000); beyond it
	// OnResult returns ErrQueueFull.
	QueueLength int
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

type push struct{ sop, study string }

// AutoPusher runs PushResult in the background for each result SR
// announced with OnResult. The queue is in memory: pushes still queued
// at Close (after its context ends) or at a crash are lost; each
// instance that was attempted is audited with its outcome.
type AutoPusher struct {
	e       *Exporter
	log     *slog.Logger
	ch      chan push
	mu      sync.Mutex
	queued  map[push]bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	enabled bool
}

// NewAutoPusher starts the workers. With no auto destination it starts
// none and OnResult does nothing.
func NewAutoPusher(e *Exporter, opts AutoPushOptions) *AutoPusher {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.QueueLength <= 0 {
		opts.QueueLength = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &AutoPusher{e: e, log: opts.Logger, ch: make(chan push, opts.QueueLength), queued: map[push]bool{},
		ctx: ctx, cancel: cancel, enabled: len(e.AutoDestinations()) > 0}
	if p.enabled {
		for i := 0; i < opts.Workers; i++ {
			p.wg.Add(1)
			go p.work()
		}
	}
	return p
}

// OnResult queues the push of the stored result SR srSOPInstanceUID of
// study studyInstanceUID to the auto: [sr] destinations and returns at
// once; a push already queued is not queued twice. ctx is not used by the
// push (it outlives the caller's job). errors: ErrQueueFull, ErrClosed.
func (p *AutoPusher) OnResult(_ context.Context, srSOPInstanceUID, studyInstanceUID string) error {
	if !p.enabled {
		return nil
	}
	k := push{srSOPInstanceUID, studyInstanceUID}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.queued[k] {
		return nil
	}
	select {
	case p.ch <- k:
		p.queued[k] = true
		return nil
	default:
		p.log.Warn("export: auto-push queue full; result SR not pushed", "sop_instance_uid", srSOPInstanceUID)
		return ErrQueueFull
	}
}

func (p *AutoPusher) work() {
	defer p.wg.Done()
	for k := range p.ch {
		p.mu.Lock()
		delete(p.queued, k)
		p.mu.Unlock()
		if p.ctx.Err() != nil {
			continue // closing: drop what is left
		}
		if _, err := p.e.PushResult(p.ctx, k.sop, k.study); err != nil {
			p.log.Warn("export: auto-push failed", "sop_instance_uid", k.sop, "error", err.Error())
		}
	}
}

// Close stops accepting pushes and waits for the queued ones until ctx
// ends; then it cancels the running ones and drops the rest.
func (p *AutoPusher) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.ch)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return ctx.Err()
	}
}

// SRIngester is the pipeline's result SR sink (pipeline.SRIngester;
// *ingest.Ingester implements it).
type SRIngester interface {
	Ingest(ctx context.Context, r io.Reader, info ingest.SourceInfo) (ingest.Outcome, error)
}

// AutoPushIngester wraps the SR sink of the inference job handler: after
// Next stores a result SR (Source store.SourceResult, no error) it calls
// Pusher.OnResult. A full queue is logged, not returned: the result and
// its SR are stored whatever happens to the push.
type AutoPushIngester struct {
	Next   SRIngester
	Pusher *AutoPusher
}

// Ingest implements SRIngester.
func (a AutoPushIngester) Ingest(ctx context.Context, r io.Reader, info ingest.SourceInfo) (ingest.Outcome, error) {
	out, err := a.Next.Ingest(ctx, r, info)
	if err == nil && info.Source == store.SourceResult && a.Pusher != nil {
		_ = a.Pusher.OnResult(ctx, out.SOPInstanceUID, out.StudyInstanceUID)
	}
	return out, err
}
