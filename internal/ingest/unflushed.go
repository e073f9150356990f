package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/store"
)

// Blob syncs covered by the log's.
//
// Without this, a C-STORE's acknowledgement waits for two device cache
// flushes in turn: the blob's fdatasync before the COMMIT (so that no
// durable row ever points to a blob that is not), then the write-ahead
// log's fdatasync after it. With the blob written by O_DIRECT into space
// that needs no metadata change (store.FS.CoverSyncs), the log's flush
// also makes the blob durable, so the first flush can go: the COMMIT
// follows the blob's write at once, and the acknowledgement still waits
// for the log's fdatasync. On the development VM: C-STORE over four
// associations 289 → 340 instances/s (medians of 5 interleaved pairs) and
// radflow's CPU 2.73 → 2.40 ms per instance (docs/operations.md).
//
// What that gives up is the order: a device with a write cache may write
// the log's frames to the disk before the blob's bytes, so a power loss
// just before the log's flush returns can leave a committed row whose
// blob is not on the disk. Such an instance was never acknowledged (its
// acknowledgement waits for that flush), and the sender's retry would be
// answered "already stored". So each new instance is listed in
// blob_unflushed in its row's transaction, tagged with its batch; once
// the syncer's fdatasync for a batch has returned, a later transaction
// deletes its rows. At start, before anything new is ingested, the blob
// of every instance still listed is read back and checked; one that is
// not intact is removed with its results, jobs and any Structured Report
// made from it, its audit record staged in the same transaction
// (Config.RemovedRecord), and the retry stores it again.

// syncCoverer is a BlobStore whose blob syncs may leave the device's
// cache flush to a later fdatasync of another file, and which can check a
// blob against the digest a write recorded, of either kind (*store.FS;
// see store.BlobInfo.SHA256).
type syncCoverer interface {
	CoverSyncs(file string) bool
	DigestBlob(ctx context.Context, key, like string) (int64, string, error)
}

// unflushedMeta is a Metadata with blob_unflushed (*store.SQLite), whose
// database file's write-ahead log SyncWAL fdatasyncs.
type unflushedMeta interface {
	Path() string
	GetInstance(ctx context.Context, uid string) (*store.Instance, error)
	MarkUnflushedTx(ctx context.Context, tx *sql.Tx, batch int64, sopInstanceUID string) error
	ClearUnflushedTx(ctx context.Context, tx *sql.Tx, upto int64) error
	Unflushed(ctx context.Context) ([]string, error)
	RemoveInstancesTx(ctx context.Context, tx *sql.Tx, uids []string) ([]store.RemovedInstance, error)
}

// jobRemover is a Jobs that can delete an instance's jobs (*queue.Queue).
type jobRemover interface {
	DeleteInstanceJobsTx(ctx context.Context, tx *sql.Tx, uids []string) (int, error)
}

// coverBlobSyncs lets the log's fdatasync cover the fresh blobs' where
// Config.CoverBlobSyncs asks for it and the stores allow it (see above).
func (g *Ingester) coverBlobSyncs() {
	bc, ok1 := g.cfg.Blobs.(syncCoverer)
	um, ok2 := g.cfg.Metadata.(unflushedMeta)
	_, ok3 := g.cfg.Metadata.(walSyncer)
	_, ok4 := g.cfg.Jobs.(jobRemover)
	if !g.cfg.CoverBlobSyncs || !ok1 || !ok2 || !ok3 || !ok4 {
		return
	}
	g.covered = bc.CoverSyncs(um.Path())
}

// Recovered returns the instances New removed because their blobs were
// not intact after an unclean stop (see above): never acknowledged, to be
// recorded in the audit trail.
func (g *Ingester) Recovered() []store.RemovedInstance { return g.recovered }

// recoverUnflushed checks the blob of every instance listed in
// blob_unflushed (see above) and removes the instances whose blob is not
// intact, with their jobs, in one transaction that also empties the list.
// errors: a blob that cannot be read for another reason than its content
// (a missing key-encryption key, an I/O error): nothing is removed then,
// and radflow does not start.
func (g *Ingester) recoverUnflushed() error {
	um, ok := g.cfg.Metadata.(unflushedMeta)
	if !ok || !g.cfg.CoverBlobSyncs {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	uids, err := um.Unflushed(ctx)
	if err != nil || len(uids) == 0 {
		return err
	}
	var bad []string
	for _, uid := range uids {
		in, err := um.GetInstance(ctx, uid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ingest: checking the blobs of the last instances before an unclean stop: %w", err)
		}
		intact, err := g.blobIntact(ctx, in)
		if err != nil {
			return fmt.Errorf("ingest: checking the blob of an instance committed just before an unclean stop: %w", err)
		}
		if !intact {
			bad = append(bad, uid)
		}
	}
	jr, _ := g.cfg.Jobs.(jobRemover)
	tx, err := g.cfg.Metadata.BeginTx(ctx)
	if err != nil {
		return fmt.Errorf("ingest: begin: %w", err)
	}
	defer tx.Rollback()
	removed, err := um.RemoveInstancesTx(ctx, tx, bad)
	if err == nil && g.cfg.RemovedRecord != nil {
		as, ok := g.cfg.Metadata.(auditStager)
		for _, r := range removed {
			if !ok {
				err = errors.New("the metadata store cannot stage audit records")
				break
			}
			var rec []byte
			if rec, err = g.cfg.RemovedRecord(r); err == nil {
				err = as.StageAuditTx(ctx, tx, rec)
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil && jr != nil && len(removed) > 0 {
		gone := make([]string, len(removed))
		for i, r := range removed {
			gone[i] = r.SOPInstanceUID
		}
		_, err = jr.DeleteInstanceJobsTx(ctx, tx, gone)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("ingest: removing instances whose blobs were lost: %w", err)
	}
	g.recovered = removed
	g.log.Info("ingest: checked the blobs of the last instances before the previous stop", "checked", len(uids), "removed", len(removed))
	return nil
}

// blobIntact reads in's blob back: false when its content is not what
// was received (the codec's authentication fails, it is not encoded at
// all, as a region still holding the zero fill, it is short, or its size
// or digest differ from the row's); an error for anything else, and when
// the blob store cannot check it (only a syncCoverer's blobs are listed).
func (g *Ingester) blobIntact(ctx context.Context, in *store.Instance) (bool, error) {
	bc, ok := g.cfg.Blobs.(syncCoverer)
	if !ok {
		return false, fmt.Errorf("ingest: instance %s: the blob store cannot check its blob", in.SOPInstanceUID)
	}
	n, digest, err := bc.DigestBlob(ctx, in.BlobKey, in.SHA256)
	if err == nil {
		return n == in.Size && digest == in.SHA256, nil
	}
	if errors.Is(err, keys.ErrIntegrity) || errors.Is(err, keys.ErrNotEncrypted) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return false, nil
	}
	return false, err
}

// clearFlushed deletes from blob_unflushed, once the writer and the syncer
// have stopped (Close), every batch whose log fdatasync returned: after a
// clean stop the next start has nothing to check. A failure is logged
// only (the next start checks those blobs).
func (g *Ingester) clearFlushed() {
	if !g.covered || g.walErr.Load() != nil || g.flushed.Load() <= g.cleared {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := g.cfg.Metadata.BeginTx(ctx)
	if err == nil {
		if err = g.cfg.Metadata.(unflushedMeta).ClearUnflushedTx(ctx, tx, g.flushed.Load()); err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		g.log.Warn("ingest: blob_unflushed not cleared at shutdown; the next start checks those blobs", "err", err.Error())
		return
	}
	g.cleared = g.flushed.Load()
}
