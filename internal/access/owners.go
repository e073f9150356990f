package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Owners keeps the organisation that owns each study: the organisation
// of the principal whose store first reached the study (SQLite table
// study_owners, in radflow.db). A study stored by principals without an
// organisation has no owner, and organisation-scoped grants never match
// it. Safe for concurrent use.
type Owners struct {
	write, read *sql.DB
	mu          sync.RWMutex
	known       map[string]string // study → organisation (owned studies only)
}

const ownersSchema = `CREATE TABLE IF NOT EXISTS study_owners (
	study_instance_uid TEXT PRIMARY KEY,
	organisation       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS study_owners_org ON study_owners(organisation)`

// maxKnown bounds the in-memory cache of owners.
const maxKnown = 100000

// NewOwners creates the table when missing. write and read may be the
// same database. errors: the database's.
func NewOwners(ctx context.Context, write, read *sql.DB) (*Owners, error) {
	if _, err := write.ExecContext(ctx, ownersSchema); err != nil {
		return nil, fmt.Errorf("access: creating study_owners: %w", err)
	}
	return &Owners{write: write, read: read, known: map[string]string{}}, nil
}

// StudyOrganisation returns the owner of study ("" when none).
func (o *Owners) StudyOrganisation(ctx context.Context, study string) (string, error) {
	o.mu.RLock()
	org, ok := o.known[study]
	o.mu.RUnlock()
	if ok {
		return org, nil
	}
	err := o.read.QueryRowContext(ctx, `SELECT organisation FROM study_owners WHERE study_instance_uid = ?`, study).Scan(&org)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("access: study owner: %w", err)
	}
	o.remember(study, org)
	return org, nil
}

func (o *Owners) remember(study, org string) {
	o.mu.Lock()
	if len(o.known) >= maxKnown {
		clear(o.known)
	}
	o.known[study] = org
	o.mu.Unlock()
}

// Claim records org as the owner of study unless it has one already.
// An empty org records nothing.
func (o *Owners) Claim(ctx context.Context, study, org string) error {
	if org == "" || study == "" {
		return nil
	}
	o.mu.RLock()
	_, ok := o.known[study]
	o.mu.RUnlock()
	if ok {
		return nil
	}
	if _, err := o.write.ExecContext(ctx, `INSERT OR IGNORE INTO study_owners(study_instance_uid, organisation) VALUES (?, ?)`, study, org); err != nil {
		return fmt.Errorf("access: claiming study owner: %w", err)
	}
	_, err := o.StudyOrganisation(ctx, study)
	return err
}

// StudiesOf returns the studies owned by org.
func (o *Owners) StudiesOf(ctx context.Context, org string) ([]string, error) {
	rows, err := o.read.QueryContext(ctx, `SELECT study_instance_uid FROM study_owners WHERE organisation = ? ORDER BY study_instance_uid`, org)
	if err != nil {
		return nil, fmt.Errorf("access: studies of an organisation: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
