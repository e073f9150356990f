package store

import (
	"context"
	"database/sql"
	"fmt"
)

// StagedRecord is one audit record waiting in the outbox (table
// audit_outbox, migration 0005): its row id (increasing in the order
// records were staged) and the record's JSON.
type StagedRecord struct {
	ID     int64
	Record []byte
}

// stageAuditSQL is prepared once (hotStmts): one row per stored instance.
const stageAuditSQL = `INSERT INTO audit_outbox (record) VALUES (?)`

// StageAuditTx inserts an audit record's JSON into the outbox in tx, so
// that it commits (and becomes durable) with the rows it records.
// errors: the driver's.
func (s *SQLite) StageAuditTx(ctx context.Context, tx *sql.Tx, record []byte) error {
	if _, err := tx.StmtContext(ctx, s.stmts.stageAudit).ExecContext(ctx, string(record)); err != nil {
		return fmt.Errorf("store: staging audit record: %w", err)
	}
	return nil
}

// StagedAudit returns up to limit staged records, oldest first, from a
// read connection (committed rows). errors: the driver's.
func (s *SQLite) StagedAudit(ctx context.Context, limit int) ([]StagedRecord, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, record FROM audit_outbox ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading audit outbox: %w", err)
	}
	defer rows.Close()
	var out []StagedRecord
	for rows.Next() {
		var r StagedRecord
		var rec string
		if err := rows.Scan(&r.ID, &rec); err != nil {
			return nil, fmt.Errorf("store: reading audit outbox: %w", err)
		}
		r.Record = []byte(rec)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading audit outbox: %w", err)
	}
	return out, nil
}

// DeleteStagedAudit removes the staged records with ids up to throughID
// (once the audit trail holds them durably). It commits without waiting
// for the write-ahead log's fsync (BeginUnsyncedTx): the next synced
// commit makes the delete durable, and a crash before it only makes the
// records be moved again (at least once; the mover's contract). So the
// delete never holds the one write connection through a device flush.
// errors: the driver's.
func (s *SQLite) DeleteStagedAudit(ctx context.Context, throughID int64) (err error) {
	tx, done, err := s.BeginUnsyncedTx(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_outbox WHERE id <= ?`, throughID); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("store: deleting from audit outbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: deleting from audit outbox: %w", err)
	}
	return nil
}
