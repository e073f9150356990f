package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/radflow/radflow/internal/access"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/store"
)

// auditOutbox moves the audit records that C-STORE and STOW-RS stage in
// their instance's transaction (table audit_outbox, ingest.SourceInfo.
// AuditRecord) into the HMAC-chained audit trail, oldest first, and then
// deletes them. A staged record is durable when its instance's row is
// (the same write-ahead log fsync), so the acknowledgement waits for one
// fsync instead of two; the trail holds the record moments later.
//
// Delivery is at least once: after a crash between the trail's fsync and
// the delete (which commits unsynced, made durable by the next group
// commit), the last records moved appear again, with the same event_id.
// Records left by a crash are moved at the next start, before the
// listeners open. A failed move (the trail failed, a record does not
// decode or validate, or the delete after the append failed) stops the
// mover until restart, so that records
// that may still be written are never queued twice; Err reports it
// (/readyz check "audit").
type auditOutbox struct {
	db    *store.SQLite
	trail *audit.Trail
	log   *slog.Logger

	// every bounds how often the trail is written: records staged
	// meanwhile share one append (one fsync).
	every time.Duration

	mu      sync.Mutex            // serialises drain
	err     atomic.Pointer[error] // sticky: the first failed move
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// outboxBatch is the most records read and appended at once.
const outboxBatch = 512

func newAuditOutbox(db *store.SQLite, trail *audit.Trail, log *slog.Logger) *auditOutbox {
	return &auditOutbox{db: db, trail: trail, log: log, every: 50 * time.Millisecond,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

// kick tells the mover that records were staged (a nil outbox ignores it).
func (o *auditOutbox) kick() {
	if o == nil {
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drain moves every staged record into the trail. errors: the store's,
// the trail's (audit.ErrInvalidRecord for a staged record that does not
// decode or validate: it and those after it stay staged).
func (o *auditOutbox) drain(ctx context.Context) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.err.Load(); err != nil {
		return 0, *err
	}
	stop := func(err error) error {
		err = fmt.Errorf("audit: moving staged records stopped until restart: %w", err)
		o.err.Store(&err)
		return err
	}
	n := 0
	for {
		// ctx bounds the wait for the trail only.
		recs, err := o.db.StagedAudit(context.WithoutCancel(ctx), outboxBatch)
		if err != nil || len(recs) == 0 {
			return n, err
		}
		b := make([][]byte, len(recs))
		for i, r := range recs {
			b[i] = r.Record
		}
		if err := o.trail.AppendStaged(ctx, b); err != nil {
			// Some may still be written: never queue them again in this
			// process (the next start moves what is left).
			return n, stop(err)
		}
		if err := o.db.DeleteStagedAudit(context.WithoutCancel(ctx), recs[len(recs)-1].ID); err != nil {
			// They are in the trail: reading them again would append
			// them again.
			return n, stop(err)
		}
		n += len(recs)
		if len(recs) < outboxBatch {
			return n, nil
		}
	}
}

// run drains when kicked, at most once per every, and once a second in
// case a kick was missed (a record staged by a request that then failed).
func (o *auditOutbox) run() {
	defer close(o.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastErr time.Time
	for {
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-tick.C:
		}
		if _, err := o.drain(context.Background()); err != nil && time.Since(lastErr) > 10*time.Second {
			lastErr = time.Now()
			o.log.Error("audit: staged records not moved to the trail yet (they stay staged)", "error", err.Error())
		}
		select {
		case <-o.stop:
			return
		case <-time.After(o.every):
		}
	}
}

// Err returns the mover's sticky error (nil for a nil outbox). It does
// not wait for a move in progress (/readyz asks while the trail may hang).
func (o *auditOutbox) Err() error {
	if o == nil {
		return nil
	}
	if err := o.err.Load(); err != nil {
		return *err
	}
	return nil
}

// start runs the mover in the background.
func (o *auditOutbox) start() { go o.run() }

// close stops the mover (started by start) and moves what is left
// (nothing is staged once the ingester is closed). It may be called more
// than once; a nil outbox does nothing.
func (o *auditOutbox) close() error {
	if o == nil {
		return nil
	}
	var err error
	o.once.Do(func() {
		close(o.stop)
		<-o.stopped
		// Bounded: a trail that hangs must not hang the shutdown (what is
		// left stays staged and is moved at the next start).
		ctx, cancel := context.WithTimeout(context.Background(), closeDrainTimeout)
		defer cancel()
		_, err = o.drain(ctx)
	})
	return err
}

// closeDrainTimeout bounds the last move at shutdown.
const closeDrainTimeout = 30 * time.Second

// removedRecord is the audit record of an instance ingest removes at
// start because its blob was not intact after an unclean stop
// (ingest.Config.RemovedRecord): never acknowledged, its staged success
// record is followed by this one, staged in the removal's transaction.
func (s *Service) removedRecord(r store.RemovedInstance) ([]byte, error) {
	detail := map[string]string{"operation": "recover-unflushed", "reason": "blob_not_durable_at_unclean_stop"}
	if r.SRFor != "" {
		detail["structured_report_for"] = access.UID(r.SRFor)
	}
	return s.trail.Stage(audit.Record{SubjectKind: audit.KindSystem, SubjectID: "radflow", Action: audit.ActionInstanceRemoved,
		Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolInternal,
		Resource: audit.Resource{Type: "instance", StudyInstanceUID: access.UID(r.StudyInstanceUID),
			SeriesInstanceUID: access.UID(r.SeriesInstanceUID), SOPInstanceUID: access.UID(r.SOPInstanceUID)},
		Detail: detail})
}

// logRecovered logs each instance ingest removed at start.
func (s *Service) logRecovered(removed []store.RemovedInstance) {
	for _, r := range removed {
		args := []any{"sop_instance_uid", r.SOPInstanceUID}
		if r.SRFor != "" {
			args = append(args, "structured_report_for", r.SRFor)
		}
		s.log.Warn("ingest: removed an instance whose blob was lost in an unclean stop before it was acknowledged", args...)
	}
	if len(removed) > 0 && s.outbox != nil {
		s.outbox.kick()
	}
}
