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

// StagedAudit returns up to limit staged records, oldest first.
// errors: the driver's.
func (s *SQLite) StagedAudit(ctx context.Context, limit int) ([]StagedRecord, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT id, record FROM audit_outbox ORDER BY id LIMIT ?`, limit)
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
// (once the audit trail holds them durably). errors: the driver's.
func (s *SQLite) DeleteStagedAudit(ctx context.Context, throughID int64) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM audit_outbox WHERE id <= ?`, throughID); err != nil {
		return fmt.Errorf("store: deleting from audit outbox: %w", err)
	}
	return nil
}
