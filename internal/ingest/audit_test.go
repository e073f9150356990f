package ingest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// An instance's audit record (SourceInfo.AuditRecord) is staged in the
// transaction of its row, through IngestUnsynced and IngestEarly: one
// outbox row per instance stored, holding exactly what AuditRecord
// returned for the parsed instance; none for an instance already stored;
// an AuditRecord error stores nothing.
func TestAuditRecordStagedWithTheRow(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	calls := 0
	record := func(in *store.Instance) ([]byte, error) {
		calls++
		return []byte(`{"sop":"` + in.SOPInstanceUID + `","study":"` + in.StudyInstanceUID + `"}`), nil
	}
	staged := func() []store.StagedRecord {
		t.Helper()
		rs, err := e.db.StagedAudit(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	// An AuditRecord that fails: nothing stored, nothing staged.
	boom := errors.New("boom")
	info := dimse
	info.AuditRecord = func(*store.Instance) ([]byte, error) { return nil, boom }
	if _, err := e.g.Ingest(ctx, bytes.NewReader(b), info); !errors.Is(err, boom) {
		t.Fatalf("failing AuditRecord: %v", err)
	}
	if n, f := e.count(t, "instances"), e.blobFiles(t); n != 0 || len(f) != 0 || len(staged()) != 0 {
		t.Fatalf("failing AuditRecord left %d rows, %d staged records, blobs %v", n, len(staged()), f)
	}

	info.AuditRecord = record
	out, durable, err := e.g.IngestUnsynced(ctx, bytes.NewReader(b), info)
	if err != nil {
		t.Fatal(err)
	}
	if err := durable(); err != nil {
		t.Fatal(err)
	}
	want := `{"sop":"` + ctUID + `","study":"` + ctStudyUID + `"}`
	if rs := staged(); !out.Created || !out.AuditStaged || len(rs) != 1 || string(rs[0].Record) != want {
		t.Fatalf("outcome %+v, staged %+v", out, rs)
	}

	// Stored already: created false, nothing staged (the caller records it).
	out, durable, err = e.g.IngestUnsynced(ctx, bytes.NewReader(b), info)
	if err == nil {
		err = durable()
	}
	if err != nil || out.Created || out.AuditStaged || len(staged()) != 1 || calls != 1 {
		t.Fatalf("duplicate: %+v %v, %d staged, %d calls", out, err, len(staged()), calls)
	}

	// The early path, another instance.
	b2 := bytes.ReplaceAll(b, []byte(ctUID), []byte(ctUID[:len(ctUID)-1]+"7"))
	uid2 := ctUID[:len(ctUID)-1] + "7"
	info2 := SourceInfo{CallingAE: "CT_SCANNER", Source: store.SourceDIMSE, SOPInstanceUID: uid2, AuditRecord: record}
	early := e.g.Begin(ctx, info2)
	if early == nil {
		t.Fatal("Begin returned nil")
	}
	writeInPieces(t, early, b2)
	out, durable, err = e.g.IngestEarly(ctx, early, b2)
	if err == nil {
		err = durable()
	}
	rs := staged()
	if err != nil || !out.AuditStaged || len(rs) != 2 || rs[1].ID <= rs[0].ID || !bytes.Contains(rs[1].Record, []byte(uid2)) {
		t.Fatalf("early: %+v %v, staged %+v", out, err, rs)
	}
	if err := e.db.DeleteStagedAudit(ctx, rs[0].ID); err != nil {
		t.Fatal(err)
	}
	if rs := staged(); len(rs) != 1 || !bytes.Contains(rs[0].Record, []byte(uid2)) {
		t.Fatalf("after deleting the first: %+v", rs)
	}
}
