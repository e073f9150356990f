package store

import (
	"context"
	"database/sql"
	"fmt"
)

// markUnflushedSQL is prepared once (hotStmts): one row per new instance
// while the blob store's syncs are covered (migration 0006).
const markUnflushedSQL = `INSERT INTO blob_unflushed (batch, sop_instance_uid) VALUES (?, ?)`

// clearUnflushedSQL is prepared once too: one per batch.
const clearUnflushedSQL = `DELETE FROM blob_unflushed WHERE batch <= ?`

// MarkUnflushedTx lists a new instance in blob_unflushed in tx (its row's
// transaction), as one of the writer's batch: its blob becomes durable
// only with the write-ahead log's fdatasync after the COMMIT
// (FS.CoverSyncs). errors: the driver's.
func (s *SQLite) MarkUnflushedTx(ctx context.Context, tx *sql.Tx, batch int64, sopInstanceUID string) error {
	if _, err := tx.StmtContext(ctx, s.stmts.markUnflushed).ExecContext(ctx, batch, sopInstanceUID); err != nil {
		return fmt.Errorf("store: listing an unflushed blob: %w", err)
	}
	return nil
}

// ClearUnflushedTx deletes the instances of batches up to upto from
// blob_unflushed in tx: their log fdatasync has returned, so their blobs
// are durable. errors: the driver's.
func (s *SQLite) ClearUnflushedTx(ctx context.Context, tx *sql.Tx, upto int64) error {
	if _, err := tx.StmtContext(ctx, s.stmts.clearUnflushed).ExecContext(ctx, upto); err != nil {
		return fmt.Errorf("store: clearing unflushed blobs: %w", err)
	}
	return nil
}

// Unflushed returns the SOP Instance UIDs listed in blob_unflushed, in
// the order they were listed (left by the previous run: read before any
// new ingest). errors: the driver's.
func (s *SQLite) Unflushed(ctx context.Context) ([]string, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT sop_instance_uid FROM blob_unflushed GROUP BY sop_instance_uid ORDER BY min(id)`)
	if err != nil {
		return nil, fmt.Errorf("store: reading unflushed blobs: %w", err)
	}
	defer rows.Close()
	var uids []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: reading unflushed blobs: %w", err)
		}
		uids = append(uids, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading unflushed blobs: %w", err)
	}
	return uids, nil
}

// RemovedInstance is an instance RemoveInstancesTx removed: its UIDs, for
// the audit record.
type RemovedInstance struct {
	SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID string
	// SRFor is, for a result's Structured Report removed with the
	// instance it was made from, that instance's SOP Instance UID.
	SRFor string
}

// RemoveInstancesTx deletes, in tx, the instance rows of uids together
// with their results, the Structured Reports recorded in those results
// (instances too) and every blob_unflushed row. Their blobs are left to
// the orphan sweep (FS.SweepPacks punches out unreferenced regions).
// Only for instances that were never acknowledged (package ingest, after
// a power loss): radflow has no other deletion. It returns what it
// removed. errors: the driver's.
func (s *SQLite) RemoveInstancesTx(ctx context.Context, tx *sql.Tx, uids []string) ([]RemovedInstance, error) {
	fail := func(err error) ([]RemovedInstance, error) {
		return nil, fmt.Errorf("store: removing instances: %w", err)
	}
	var removed []RemovedInstance
	remove := func(uid, srFor string) error {
		r := RemovedInstance{SOPInstanceUID: uid, SRFor: srFor}
		err := tx.QueryRowContext(ctx, `SELECT study_instance_uid, series_instance_uid FROM instances WHERE sop_instance_uid = ?`, uid).
			Scan(&r.StudyInstanceUID, &r.SeriesInstanceUID)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM results WHERE sop_instance_uid = ?`, uid); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM instances WHERE sop_instance_uid = ?`, uid); err != nil {
			return err
		}
		removed = append(removed, r)
		return nil
	}
	for _, uid := range uids {
		rows, err := tx.QueryContext(ctx, `SELECT sr_sop_instance_uid FROM results WHERE sop_instance_uid = ? AND sr_sop_instance_uid != ''`, uid)
		if err != nil {
			return fail(err)
		}
		var srs []string
		for rows.Next() {
			var sr string
			if err := rows.Scan(&sr); err != nil {
				rows.Close()
				return fail(err)
			}
			srs = append(srs, sr)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
		if err := remove(uid, ""); err != nil {
			return fail(err)
		}
		for _, sr := range srs {
			if err := remove(sr, uid); err != nil {
				return fail(err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM blob_unflushed`); err != nil {
		return fail(err)
	}
	return removed, nil
}
