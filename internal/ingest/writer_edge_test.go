package ingest

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// TestBatchInsertAndBlobFailuresTogether: in one batch, a request whose
// insert fails and another whose blob was not made durable (in every
// order, with the good requests around them): the first pass runs without
// savepoints, fails, is rebuilt with savepoints, then rolled back again for
// the blob and committed once without that request. Only the good
// requests are stored, with their results and jobs; the failed ones
// report their own error.
func TestBatchInsertAndBlobFailuresTogether(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	g, m := newFailing(t, e, e.blobs, Config{})
	var commits atomic.Int64
	g.commitHook = func() error { commits.Add(1); return nil }
	errBlob := errors.New("injected blob failure")
	mk := func(uid string, blobErr error) *pending {
		p := &pending{in: &store.Instance{SOPInstanceUID: uid, SOPClassUID: "1.2", StudyInstanceUID: "3", SeriesInstanceUID: "3.1",
			Modality: "CT", Source: store.SourceDIMSE, Size: 1, SHA256: "00", BlobKey: "k" + uid},
			jobs: []queue.JobArgs{{SOPInstanceUID: uid, Model: "m", Version: "1"}},
			done: make(chan struct{}), synced: make(chan struct{}), blobErr: blobErr}
		close(p.synced)
		return p
	}
	type kind int
	const (
		good kind = iota
		badInsert
		badBlob
	)
	var want []string
	for i, order := range [][]kind{
		{good, badInsert, badBlob, good},
		{badBlob, good, badInsert},
		{badInsert, badBlob},
		{badBlob, badBlob},
		{good, badBlob, badInsert, badBlob, good},
		{badInsert},
	} {
		commits.Store(0)
		var batch []*pending
		var fail string
		for j, k := range order {
			uid := "9." + string(rune('a'+i)) + "." + string(rune('a'+j))
			switch k {
			case good:
				batch = append(batch, mk(uid, nil))
				want = append(want, uid)
			case badInsert:
				fail = uid
				batch = append(batch, mk(uid, nil))
			case badBlob:
				batch = append(batch, mk(uid, errBlob))
			}
		}
		if fail != "" {
			m.failUID.Store(&fail)
		} else {
			m.failUID.Store(nil)
		}
		commitNow(g, batch)
		for j, p := range batch {
			var ok bool
			switch order[j] {
			case good:
				ok = p.err == nil && p.created && p.jobsNew == 1
			case badInsert:
				ok = errors.Is(p.err, errInjected) && !p.created && p.jobsNew == 0
			case badBlob:
				ok = errors.Is(p.err, errBlob) && !p.created && p.jobsNew == 0
			}
			if !ok {
				t.Errorf("batch %d %v, request %d: created %v, jobs %d, err %v", i, order, j, p.created, p.jobsNew, p.err)
			}
		}
		wantCommits := int64(1)
		if !slices.Contains(order, good) && !slices.Contains(order, badInsert) {
			wantCommits = 0 // every request's blob failed: nothing to commit
		}
		if c := commits.Load(); c != wantCommits {
			t.Errorf("batch %d %v: %d commits, want %d", i, order, c, wantCommits)
		}
		slices.Sort(want)
		for _, table := range []string{"instances", "results"} {
			if got := e.uids(t, table); !slices.Equal(got, want) {
				t.Errorf("batch %d: %s %v, want %v", i, table, got, want)
			}
		}
		if n := e.count(t, "river_job"); n != len(want) {
			t.Errorf("batch %d: %d jobs, want %d", i, n, len(want))
		}
	}
}
