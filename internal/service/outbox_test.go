package service

import (
	"context"
	"io"
	"log/slog"
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
	stageRecords(t, db, staging, "staged-1", "staged-2")
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

// A move that gives up (its records may be queued in the trail and still
// written) stops the mover until restart: later drains append nothing
// again, so no record can reach the chain twice; Err (the /readyz
// "audit" check) says why, and the records stay staged for the next
// start.
func TestOutboxNeverQueuesRecordsTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	trailDir := t.TempDir()
	tr, err := audit.Open(audit.Config{Dir: trailDir, Key: make([]byte, audit.KeySize), NoStartRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	stageRecords(t, db, tr, "ev-1", "ev-2", "ev-3")
	if err := tr.Append(ctx, audit.Record{EventID: "direct", SubjectID: "radflow", SubjectKind: audit.KindSystem, Action: "audit:started",
		Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolInternal, Resource: audit.Resource{Type: "system"}}); err != nil {
		t.Fatal(err)
	}
	o := newAuditOutbox(db, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := o.drain(gone); err == nil {
		t.Fatal("drain with an ended context succeeded")
	}
	for range 3 {
		if _, err := o.drain(ctx); err == nil || o.Err() == nil {
			t.Fatalf("drain after a failed move: %v, Err %v", err, o.Err())
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	if _, err := audit.Scan(trailDir, make([]byte, audit.KeySize), func(r audit.Record) error { seen[r.EventID]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen["direct"] != 1 {
		t.Errorf("records in the chain: %v, want only the direct one (nothing moved after the failed move)", seen)
	}
	if rs, _ := db.StagedAudit(ctx, 10); len(rs) != 3 {
		t.Errorf("%d records still staged, want 3 (moved again at the next start)", len(rs))
	}
}

// stageRecords stages one instance:store record per event id in one
// transaction, as ingest does with instance rows.
func stageRecords(t *testing.T, db *store.SQLite, tr *audit.Trail, ids ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		b, err := tr.Stage(audit.Record{Time: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), EventID: id, SubjectID: "CT1", SubjectKind: audit.KindAE,
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
}

// Err (the /readyz "audit" check) answers while a move holds the mover,
// which may wait as long as the trail hangs.
func TestOutboxErrDoesNotWaitForAMove(t *testing.T) {
	o := newAuditOutbox(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.mu.Lock() // a move in progress
	defer o.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- o.Err() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Err = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Err waited for the move in progress")
	}
}
