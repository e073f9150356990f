package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/radflow/radflow/internal/store"
)

// blobStreamer is a BlobStore that writes a fresh key while its bytes
// arrive (*store.FS).
type blobStreamer interface {
	NewBlobWriter(ctx context.Context, key string) (*store.BlobWriter, error)
}

var _ blobStreamer = (*store.FS)(nil)

// Early is an instance stored while its bytes are still arriving (Begin):
// its blob is encoded (and digested) and written to the device piece by piece,
// so that once the last byte is in only the blob's last write, its fsync
// and the commit are left. No lock is held while the bytes arrive (its
// blob key is its own): a sender that stalls mid data set holds up no
// other copy of the instance. IngestEarly takes the SOP Instance UID's
// lock, and answers a copy stored meanwhile as already stored. Not safe
// for concurrent use.
type Early struct {
	g     *Ingester
	info  SourceInfo
	key   string
	at    time.Time
	w     *store.BlobWriter
	ended bool
}

// Begin starts storing the instance info announces (info.SOPInstanceUID
// is required: the C-STORE command's Affected SOP Instance UID) before
// its bytes arrive. The caller then Writes the instance's bytes in order
// (Part 10: preamble and file meta first) and ends with IngestEarly, or
// Abort when the bytes do not all arrive.
//
// Begin returns nil when the instance is better ingested the usual way,
// by Ingest, which then gives the answer: it is already stored (Ingest
// answers it idempotently), it would be refused for backpressure, ingest
// has failed or closed, or the blob store cannot stream. It takes no
// lock and never waits for another ingest.
func (g *Ingester) Begin(ctx context.Context, info SourceInfo) *Early {
	bs, ok := g.cfg.Blobs.(blobStreamer)
	if !ok || info.SOPInstanceUID == "" || g.walErr.Load() != nil {
		return nil
	}
	if info.Source != store.SourceDIMSE && info.Source != store.SourceSTOW {
		return nil
	}
	g.closeMu.RLock()
	closed := g.closed
	g.closeMu.RUnlock()
	if closed {
		return nil
	}
	if exists, err := g.cfg.Metadata.HasInstance(ctx, info.SOPInstanceUID); err != nil || exists {
		return nil
	}
	if err := g.backpressure(ctx, true); err != nil {
		return nil
	}
	at := time.Now().UTC()
	key := store.InstanceBlobKey(info.SOPInstanceUID, at)
	w, err := bs.NewBlobWriter(ctx, key)
	if err != nil {
		return nil
	}
	return &Early{g: g, info: info, key: key, at: at, w: w}
}

// Write passes the next bytes of the instance to its blob; p is not kept.
// An error is sticky and returned again by IngestEarly.
func (e *Early) Write(p []byte) (int, error) {
	if e.ended {
		return 0, ErrClosed
	}
	return e.w.Write(p)
}

// WriteRetained is Write for bytes the caller keeps unchanged until
// IngestEarly or Abort has returned: where the plaintext is hashed (no
// object digest), it is hashed in place, not copied
// (store.BlobWriter.WriteRetained).
func (e *Early) WriteRetained(p []byte) (int, error) {
	if e.ended {
		return 0, ErrClosed
	}
	return e.w.WriteRetained(p)
}

// Abort gives up the early store: the blob is removed. It may be called
// more than once, and after IngestEarly (then it does nothing).
func (e *Early) Abort() {
	if e.ended {
		return
	}
	e.ended = true
	e.w.Abort()
}

// IngestEarly finishes an early store as IngestUnsynced does: b must be
// exactly the bytes written to e (the whole instance, in memory). They are
// parsed and checked against what Begin was told (ErrMismatch when the
// data set's SOP Class or Instance UID differs, with the blob removed).
// Then the SOP Instance UID's lock is taken, the blob's last write is
// made, its fsync runs while the group-commit writer builds its
// transaction, and IngestEarly returns once the outcome is decided;
// durable as for IngestUnsynced. A copy stored since Begin makes this one
// a duplicate (Created=false, its blob removed). e is finished either way.
//
// errors: as IngestUnsynced; a storage error when b is not what was
// written.
func (g *Ingester) IngestEarly(ctx context.Context, e *Early, b []byte) (out Outcome, durable func() error, err error) {
	if e == nil || e.g != g || e.ended {
		if e != nil {
			e.Abort()
		}
		return Outcome{}, nil, fmt.Errorf("ingest: IngestEarly without an instance this Ingester started")
	}
	fail := func(err error) (Outcome, func() error, error) {
		e.Abort()
		return out, nil, err
	}
	if err := g.walErr.Load(); err != nil {
		return fail(*err)
	}
	if int64(len(b)) > g.cfg.MaxInstanceSize {
		return fail(fmt.Errorf("%w: larger than %d bytes", ErrInvalid, g.cfg.MaxInstanceSize))
	}
	in, o, err := g.prepare(b, e.info)
	out = o
	if err != nil {
		return fail(err)
	}
	if in.SOPInstanceUID != e.info.SOPInstanceUID { // a test hook rewrote it
		return fail(fmt.Errorf("%w: SOP Instance UID changed", ErrMismatch))
	}

	// A copy stored since Begin is found by the writer's insert (not
	// created: this blob is removed and the call answered as a duplicate,
	// as for Ingest); an exists query here would cost every instance one
	// more query for a race that is rare.
	unlock := g.locks.lock(in.SOPInstanceUID)
	bi, sync, err := e.w.Close()
	e.ended = true
	if err != nil { // Close left nothing to reference (a pack region is given back, its first block zeroed)
		unlock()
		return out, nil, fmt.Errorf("ingest: storing blob: %w", err)
	}
	if bi.Size != int64(len(b)) {
		// A caller's bug, never the sender's: refuse rather than store
		// bytes that differ from the ones parsed.
		unlock()
		_ = sync()
		g.deleteBlob(bi.Key)
		return out, nil, fmt.Errorf("ingest: storing blob: %d bytes written, the instance has %d", bi.Size, len(b))
	}
	in.BlobKey, in.ReceivedAt = bi.Key, e.at // bi.Key: a pack region's key where the store packs
	in.Size, in.SHA256 = bi.Size, bi.SHA256
	p := &pending{done: make(chan struct{}), settled: make(chan struct{}), synced: make(chan struct{})}
	finish := func() {
		p.blobErr = sync()
		close(p.synced)
	}
	if e.w.SyncFree() { // covered by the log's fdatasync: nothing to wait for
		finish()
	} else {
		go finish()
	}
	return g.submit(in, out, p, unlock, e.info.AuditRecord)
}
