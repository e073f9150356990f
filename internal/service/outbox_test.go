package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/store"
)

// Audit records staged with instance rows and not yet moved when the
// process died are moved into the trail when the service starts again,
// before it listens, and the outbox is left empty.
func TestStagedAuditRecordsMovedAtStart(t *testing.T) {
	dir := t.TempDir()
	repo := bundledRepo(t)
	s := startService(t, dir, repo, func(c *Config) { c.Workers = 0 })
	stopService(t, s)

	// What a killed process leaves: staged records in the database.
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	staging, err := audit.Open(audit.Config{Dir: t.TempDir(), Key: make([]byte, audit.KeySize), NoStartRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"staged-1", "staged-2"} {
		b, err := staging.Stage(audit.Record{Time: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), EventID: id, SubjectID: "CT1", SubjectKind: audit.KindAE,
			Action: "instance:store", Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolDIMSE,
			Resource: audit.Resource{Type: "instance", SOPInstanceUID: "1.2.826.0.1.3680043.8.498.7"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.StageAuditTx(ctx, tx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	staging.Close()
	db.Close()

	s = startService(t, dir, repo, func(c *Config) { c.Workers = 0 })
	if rs, err := s.db.StagedAudit(ctx, 10); err != nil || len(rs) != 0 {
		t.Fatalf("outbox after start: %d records, %v", len(rs), err)
	}
	var ids []string
	for _, r := range records(t, s) {
		if r.Action == "instance:store" {
			ids = append(ids, r.EventID)
		}
	}
	if len(ids) != 2 || ids[0] != "staged-1" || ids[1] != "staged-2" {
		t.Fatalf("instance:store records in the trail: %v, want staged-1, staged-2", ids)
	}
}
