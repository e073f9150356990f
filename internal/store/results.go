package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

const resultColumns = `id, sop_instance_uid, study_instance_uid, model, version, status, label,
	probabilities, error, sr_sop_instance_uid, timings, attempts, created_at, updated_at`

// QueueResultTx implements ResultStore.
func (s *SQLite) QueueResultTx(ctx context.Context, tx *sql.Tx, k ResultKey, study string) error {
	now := formatTime(time.Now())
	_, err := tx.StmtContext(ctx, s.stmts.queueResult).ExecContext(ctx, k.SOPInstanceUID, study, k.Model, k.Version, now, now)
	if err != nil {
		return fmt.Errorf("store: queueing result: %w", err)
	}
	return nil
}

// queueResultSQL inserts a queued result unless the (instance, model
// version) has one (prepared once: hotStmts).
const queueResultSQL = `INSERT INTO results (sop_instance_uid, study_instance_uid, model, version,
	status, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?)
	ON CONFLICT (sop_instance_uid, model, version) DO NOTHING`

// MarkRunning implements ResultStore.
func (s *SQLite) MarkRunning(ctx context.Context, k ResultKey) error {
	res, err := s.write.ExecContext(ctx, `UPDATE results SET status = 'running', attempts = attempts + 1,
		updated_at = ? WHERE sop_instance_uid = ? AND model = ? AND version = ? AND status <> 'done'`,
		formatTime(time.Now()), k.SOPInstanceUID, k.Model, k.Version)
	return s.checkUpdated(ctx, res, err, k)
}

// RecordError implements ResultStore.
func (s *SQLite) RecordError(ctx context.Context, k ResultKey, msg string, final bool) error {
	status := StatusQueued
	if final {
		status = StatusFailed
	}
	res, err := s.write.ExecContext(ctx, `UPDATE results SET status = ?, error = ?, updated_at = ?
		WHERE sop_instance_uid = ? AND model = ? AND version = ? AND status <> 'done'`,
		string(status), msg, formatTime(time.Now()), k.SOPInstanceUID, k.Model, k.Version)
	return s.checkUpdated(ctx, res, err, k)
}

// checkUpdated turns "no row updated" into ErrNotFound when the row is
// missing (rather than done).
func (s *SQLite) checkUpdated(ctx context.Context, res sql.Result, err error, k ResultKey) error {
	if err != nil {
		return fmt.Errorf("store: updating result: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	if _, err := s.GetResult(ctx, k); err != nil {
		return err
	}
	return nil
}

// CompleteResult implements ResultStore.
func (s *SQLite) CompleteResult(ctx context.Context, r *Result) error {
	probs, err := json.Marshal(nonNil(r.Probabilities))
	if err != nil {
		return fmt.Errorf("store: probabilities: %w", err)
	}
	timings, err := json.Marshal(nonNil(r.Timings))
	if err != nil {
		return fmt.Errorf("store: timings: %w", err)
	}
	now := formatTime(time.Now())
	_, err = s.write.ExecContext(ctx, `INSERT INTO results (sop_instance_uid, study_instance_uid, model, version,
		status, label, probabilities, error, sr_sop_instance_uid, timings, created_at, updated_at)
		VALUES (?, COALESCE(NULLIF(?, ''), (SELECT study_instance_uid FROM instances WHERE sop_instance_uid = ?), ''),
		?, ?, 'done', ?, ?, '', ?, ?, ?, ?)
		ON CONFLICT (sop_instance_uid, model, version) DO UPDATE SET status = 'done',
		label = excluded.label, probabilities = excluded.probabilities, error = '',
		sr_sop_instance_uid = excluded.sr_sop_instance_uid, timings = excluded.timings,
		updated_at = excluded.updated_at`,
		r.SOPInstanceUID, r.StudyInstanceUID, r.SOPInstanceUID, r.Model, r.Version, r.Label, string(probs),
		r.SRSOPInstanceUID, string(timings), now, now)
	if err != nil {
		return fmt.Errorf("store: completing result: %w", err)
	}
	return nil
}

// GetResult implements ResultStore.
func (s *SQLite) GetResult(ctx context.Context, k ResultKey) (*Result, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+resultColumns+` FROM results
		WHERE sop_instance_uid = ? AND model = ? AND version = ?`, k.SOPInstanceUID, k.Model, k.Version)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	out, err := scanResults(rows)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return &out[0], nil
}

// ListResults implements ResultStore.
func (s *SQLite) ListResults(ctx context.Context, sopInstanceUID, studyInstanceUID string) ([]Result, error) {
	var w where
	if sopInstanceUID == "" && studyInstanceUID == "" {
		return nil, fmt.Errorf("%w: results need a SOP Instance UID or a Study Instance UID", ErrInvalidQuery)
	}
	if sopInstanceUID != "" {
		w.add("sop_instance_uid = ?", sopInstanceUID)
	}
	if studyInstanceUID != "" {
		w.add("study_instance_uid = ?", studyInstanceUID)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+resultColumns+` FROM results`+w.sql()+` ORDER BY id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return scanResults(rows)
}

func scanResults(rows *sql.Rows) ([]Result, error) {
	defer rows.Close()
	var out []Result
	for rows.Next() {
		var r Result
		var status, probs, timings, created, updated string
		if err := rows.Scan(&r.ID, &r.SOPInstanceUID, &r.StudyInstanceUID, &r.Model, &r.Version, &status, &r.Label,
			&probs, &r.Error, &r.SRSOPInstanceUID, &timings, &r.Attempts, &created, &updated); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		r.Status = ResultStatus(status)
		if err := json.Unmarshal([]byte(probs), &r.Probabilities); err != nil {
			return nil, fmt.Errorf("store: result %d probabilities: %w", r.ID, err)
		}
		if err := json.Unmarshal([]byte(timings), &r.Timings); err != nil {
			return nil, fmt.Errorf("store: result %d timings: %w", r.ID, err)
		}
		var err error
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if r.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

func nonNil(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}
