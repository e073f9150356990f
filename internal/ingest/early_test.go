package ingest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// writeInPieces writes b to e in PDV-sized pieces, as package dimse does.
func writeInPieces(t *testing.T, e *Early, b []byte) {
	t.Helper()
	for len(b) > 0 {
		k := min(16372, len(b))
		if _, err := e.Write(b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
}

// An instance stored while it arrives (Begin, Write, IngestEarly) ends up
// exactly as one given to Ingest: its row with the SHA-256 of the bytes,
// the blob byte for byte, one queued result and job per model version;
// the same UID again is not started early (Ingest answers it idempotently).
func TestIngestEarlyStoresLikeIngest(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	info := SourceInfo{CallingAE: "CT_SCANNER", Source: store.SourceDIMSE, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: ctUID}
	early := e.g.Begin(ctx, info)
	if early == nil {
		t.Fatal("Begin of a new instance returned nil")
	}
	writeInPieces(t, early, b)
	out, durable, err := e.g.IngestEarly(ctx, early, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := durable(); err != nil {
		t.Fatal(err)
	}
	if !out.Created || out.Jobs != 2 || out.SOPInstanceUID != ctUID || out.StudyInstanceUID != ctStudyUID {
		t.Fatalf("outcome %+v", out)
	}
	in, err := e.db.GetInstance(ctx, ctUID)
	if err != nil {
		t.Fatal(err)
	}
	if in.SHA256 != ctSHA256 || in.Size != int64(len(b)) || in.CallingAE != "CT_SCANNER" || in.Modality != "CT" {
		t.Errorf("row: sha %s size %d ae %q modality %q", in.SHA256, in.Size, in.CallingAE, in.Modality)
	}
	if stored := e.blob(t, in.BlobKey); !bytes.Equal(stored, b) {
		t.Errorf("stored blob (%d bytes) differs from the instance (%d)", len(stored), len(b))
	}
	if n := e.count(t, "river_job"); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
	if e.g.Begin(ctx, info) != nil {
		t.Error("Begin of a stored instance did not return nil")
	}
	if out, err := e.g.Ingest(ctx, bytes.NewReader(b), info); err != nil || out.Created {
		t.Errorf("ingest again: %+v %v", out, err)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blob files %v, want 1", f)
	}
}

// An early store that fails leaves nothing and frees its UID: a data set
// whose SOP Instance UID differs from the command's (ErrMismatch), bytes
// that do not parse (ErrInvalid), bytes other than the ones written, and
// an Abort (the association ended mid-transfer). The instance can then be
// stored.
func TestIngestEarlyFailuresLeaveNothing(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	info := SourceInfo{Source: store.SourceDIMSE, SOPInstanceUID: ctUID}

	other := info
	other.SOPInstanceUID = "1.2.3.4"
	early := e.g.Begin(ctx, other)
	writeInPieces(t, early, b)
	if _, _, err := e.g.IngestEarly(ctx, early, b); !errors.Is(err, ErrMismatch) {
		t.Errorf("mismatched UID: %v, want ErrMismatch", err)
	}

	early = e.g.Begin(ctx, info)
	junk := bytes.Repeat([]byte("not dicom "), 100)
	writeInPieces(t, early, junk)
	if _, _, err := e.g.IngestEarly(ctx, early, junk); !errors.Is(err, ErrInvalid) {
		t.Errorf("junk: %v, want ErrInvalid", err)
	}

	early = e.g.Begin(ctx, info)
	writeInPieces(t, early, b[:len(b)-10])
	if _, _, err := e.g.IngestEarly(ctx, early, b); err == nil {
		t.Error("bytes other than the ones written were stored")
	}

	early = e.g.Begin(ctx, info)
	writeInPieces(t, early, b[:100000])
	early.Abort()
	early.Abort()
	if _, _, err := e.g.IngestEarly(ctx, early, b); err == nil {
		t.Error("IngestEarly after Abort succeeded")
	}

	if n := e.count(t, "instances"); n != 0 {
		t.Errorf("%d instance rows after failures", n)
	}
	if f := e.blobFiles(t); len(f) != 0 {
		t.Errorf("blob files left: %v", f)
	}
	// The UID is free again (a lock still held would hang here).
	done := make(chan error, 1)
	go func() {
		early := e.g.Begin(ctx, info)
		if early == nil {
			done <- errors.New("Begin returned nil")
			return
		}
		for p := b; len(p) > 0; p = p[min(len(p), 65536):] {
			early.Write(p[:min(len(p), 65536)])
		}
		_, durable, err := e.g.IngestEarly(ctx, early, b)
		if err == nil {
			err = durable()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the UID stayed locked after a failed early store")
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d instance rows, want 1", n)
	}
}

// A copy of the instance that arrives while another is still being
// received early is not held up by it (a sender that stalls mid data set
// must not block the retry of a modality): it is stored at once, and the
// early one is then answered as already stored, its blob removed. Of two
// early copies, exactly one is stored.
func TestIngestEarlyDoesNotHoldTheUIDWhileReceiving(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	info := SourceInfo{Source: store.SourceDIMSE, SOPInstanceUID: ctUID}
	stalled := e.g.Begin(ctx, info)
	writeInPieces(t, stalled, b[:100000]) // and then nothing, for now

	done := make(chan Outcome, 1)
	go func() {
		out, err := e.g.Ingest(ctx, bytes.NewReader(b), info)
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	select {
	case out := <-done:
		if !out.Created {
			t.Fatalf("the retry: %+v, want created", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled early store held up another copy of the instance")
	}

	writeInPieces(t, stalled, b[100000:])
	out, durable, err := e.g.IngestEarly(ctx, stalled, b)
	if err != nil || out.Created || out.SOPInstanceUID != ctUID {
		t.Fatalf("the stalled copy: %+v %v, want answered as already stored", out, err)
	}
	if err := durable(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blob files %v, want 1", f)
	}

	// Two early copies of a new instance, finished concurrently.
	e = newEnv(t, t.TempDir(), queue.Config{}, Config{})
	var copies [2]*Early
	for i := range copies {
		if copies[i] = e.g.Begin(ctx, info); copies[i] == nil {
			t.Fatal("Begin declined a new instance")
		}
		writeInPieces(t, copies[i], b)
	}
	outs := make(chan Outcome, 2)
	for _, c := range copies {
		go func() {
			out, durable, err := e.g.IngestEarly(ctx, c, b)
			if err == nil {
				err = durable()
			}
			if err != nil {
				t.Error(err)
			}
			outs <- out
		}()
	}
	if o1, o2 := <-outs, <-outs; o1.Created == o2.Created {
		t.Errorf("created %v and %v, want exactly one", o1.Created, o2.Created)
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if n := e.count(t, "river_job"); n != 2 {
		t.Errorf("%d jobs, want 2 (one per model version)", n)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blob files %v, want 1", f)
	}
}

// Begin declines (nil) what Ingest must answer itself: backpressure, a
// closed Ingester, a request without a SOP Instance UID.
func TestBeginDeclines(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{MinFreeBytes: 1 << 62})
	ctx := context.Background()
	if e.g.Begin(ctx, SourceInfo{Source: store.SourceDIMSE, SOPInstanceUID: ctUID}) != nil {
		t.Error("Begin under the disk watermark did not decline")
	}
	e = newEnv(t, t.TempDir(), queue.Config{}, Config{})
	if e.g.Begin(ctx, SourceInfo{Source: store.SourceDIMSE}) != nil {
		t.Error("Begin without a SOP Instance UID did not decline")
	}
	e.g.Close()
	if e.g.Begin(ctx, SourceInfo{Source: store.SourceDIMSE, SOPInstanceUID: ctUID}) != nil {
		t.Error("Begin after Close did not decline")
	}
	if f := e.blobFiles(t); len(f) != 0 {
		t.Errorf("blob files left: %v", f)
	}
}
