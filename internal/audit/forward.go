package audit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives copies of durable records (e.g. SyslogSink). The local
// trail is the record of truth: a sink error never fails a request; the
// Forwarder logs it and retries.
type Sink interface {
	Forward(ctx context.Context, rec Record) error
}

// ForwarderConfig tunes a Forwarder; zero values take the defaults.
type ForwarderConfig struct {
	// QueueSize bounds the records waiting for the sink (default 10000);
	// when full, new records are dropped for this sink and counted.
	QueueSize int
	// MinBackoff and MaxBackoff bound the exponential retry delay
	// (defaults 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one Forward call (default 10 s).
	AttemptTimeout time.Duration
}

// ForwarderStats counts a Forwarder's work.
type ForwarderStats struct {
	Sent     uint64 // records the sink accepted
	Failures uint64 // failed attempts (each retried)
	Dropped  uint64 // records dropped because the queue was full
}

// Forwarder delivers records to one Sink from a bounded queue on its own
// goroutine, in order, retrying each record with exponential backoff
// until the sink accepts it or the forwarder is closed. Failures are
// logged with the record's seq and the error only.
type Forwarder struct {
	sink   Sink
	cfg    ForwarderConfig
	log    *slog.Logger
	ch     chan Record
	mu     sync.Mutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	sent, failures, dropped atomic.Uint64
}

// NewForwarder starts a forwarder for sink; log nil means slog.Default().
func NewForwarder(sink Sink, cfg ForwarderConfig, log *slog.Logger) *Forwarder {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{sink: sink, cfg: cfg, log: log, ch: make(chan Record, cfg.QueueSize), ctx: ctx, cancel: cancel,
		done: make(chan struct{})}
	go f.run()
	return f
}

// Enqueue queues rec without blocking; false when the queue is full or
// the forwarder closed (the record is then counted as dropped).
func (f *Forwarder) Enqueue(rec Record) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		f.dropped.Add(1)
		return false
	}
	select {
	case f.ch <- rec:
		return true
	default:
		f.dropped.Add(1)
		f.log.Warn("audit: forward queue full; record dropped for this sink (it stays in the local trail)", "seq", rec.Seq)
		return false
	}
}

// Stats returns the counters.
func (f *Forwarder) Stats() ForwarderStats {
	return ForwarderStats{Sent: f.sent.Load(), Failures: f.failures.Load(), Dropped: f.dropped.Load()}
}

// Close stops accepting records, keeps delivering the queued ones until
// ctx ends, then stops (abandoning the rest) and closes the sink if it is
// an io.Closer.
func (f *Forwarder) Close(ctx context.Context) {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.ch)
	}
	f.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		<-f.done
	}
	f.cancel()
	if c, ok := f.sink.(io.Closer); ok {
		_ = c.Close()
	}
}

func (f *Forwarder) run() {
	defer close(f.done)
	for rec := range f.ch {
		backoff := f.cfg.MinBackoff
		for {
			if f.ctx.Err() != nil {
				return
			}
			actx, cancel := context.WithTimeout(f.ctx, f.cfg.AttemptTimeout)
			err := f.sink.Forward(actx, rec)
			cancel()
			if err == nil {
				f.sent.Add(1)
				break
			}
			f.failures.Add(1)
			f.log.Warn("audit: forwarding to sink failed; will retry", "seq", rec.Seq, "retry_in", backoff.String(), "error", err.Error())
			select {
			case <-time.After(backoff):
			case <-f.ctx.Done():
				return
			}
			backoff *= 2
			if backoff > f.cfg.MaxBackoff {
				backoff = f.cfg.MaxBackoff
			}
		}
	}
}
