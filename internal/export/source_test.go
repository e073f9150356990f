package export

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/store"
)

// TestStoreSourceExport exports through StoreSource over a real SQLite
// store and filesystem blobs, as radflow serve will.
func TestStoreSourceExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := store.NewFS(filepath.Join(dir, "blobs"), store.FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := mrStudy(t)
	put := func(b []byte, src store.Source) *store.Instance {
		in, err := dicom.ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		key := store.InstanceBlobKey(in.SOPInstanceUID(), time.Now())
		info, err := blobs.Put(ctx, key, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		row := &store.Instance{SOPInstanceUID: in.SOPInstanceUID(), SOPClassUID: in.SOPClassUID(), StudyInstanceUID: in.StudyInstanceUID(),
			SeriesInstanceUID: in.SeriesInstanceUID(), TransferSyntaxUID: in.TransferSyntaxUID, PatientName: mrPatientName,
			Source: src, Size: info.Size, SHA256: info.SHA256, BlobKey: key}
		if err := db.InTx(ctx, func(tx *sql.Tx) error { _, err := db.InsertInstanceTx(ctx, tx, row); return err }); err != nil {
			t.Fatal(err)
		}
		return row
	}
	for _, f := range files {
		put(readFile(t, f), store.SourceDIMSE)
	}
	fs := newSource(t)
	srRef := addResultSR(t, fs, files[0])
	put(fs.data[srRef.SOPInstanceUID], store.SourceResult)

	src := StoreSource{Meta: db, Blobs: blobs}
	refs, err := src.Instances(ctx, mrStudyUID)
	if err != nil || len(refs) != 4 {
		t.Fatalf("Instances = %d, %v", len(refs), err)
	}
	results := 0
	for _, r := range refs {
		if r.Size <= 0 || r.TransferSyntaxUID == "" || r.SOPClassUID == "" {
			t.Errorf("ref %+v", r)
		}
		if r.Result {
			results++
		}
	}
	if results != 1 {
		t.Errorf("%d result SRs among the refs, want 1", results)
	}
	if _, err := src.Instances(ctx, "1.2.3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown study: %v", err)
	}
	if _, err := src.Instance(ctx, "1.2.3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := src.Open(ctx, "1.2.3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("open unknown: %v", err)
	}

	g := startGoSCP(t, dimse.Config{})
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(ctx, Request{Destination: "dest", StudyInstanceUID: mrStudyUID, IncludeSR: true})
	if err != nil || res.Sent != 4 {
		t.Fatalf("Export = %v, %+v", err, res)
	}
	for _, f := range files {
		meta, ds := dataSetOf(t, readFile(t, f))
		if r := g.received(t)[meta.MediaStorageSOPInstanceUID]; !bytes.Equal(r.ds, ds) {
			t.Errorf("%s changed in transit", meta.MediaStorageSOPInstanceUID)
		}
	}
}
