package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/store"
)

func openStore(t *testing.T) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addInstance stores an instance row, its queued result and its job in one
// transaction, as package ingest does.
func addInstance(t *testing.T, s *store.SQLite, q *Queue, uid string, jobs ...JobArgs) int {
	t.Helper()
	ctx := context.Background()
	var n int
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.InsertInstanceTx(ctx, tx, &store.Instance{SOPInstanceUID: uid, SOPClassUID: "1.2", StudyInstanceUID: "9",
			SeriesInstanceUID: "9.1", Source: store.SourceSTOW, Size: 1, SHA256: "00", BlobKey: "k"}); err != nil {
			return err
		}
		for _, j := range jobs {
			if err := s.QueueResultTx(ctx, tx, j.ResultKey(), "9"); err != nil {
				return err
			}
		}
		var err error
		n, err = q.EnqueueTx(ctx, tx, jobs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startWorkers starts a working Queue on s; it is stopped (and a failed
// stop reported) before s closes.
func startWorkers(t *testing.T, s *store.SQLite, cfg Config) *Queue {
	t.Helper()
	ctx := context.Background()
	q, err := New(ctx, s.WriteDB(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := q.Stop(sctx); err != nil {
			t.Error(err)
		}
	})
	return q
}

func countJobs(t *testing.T, s *store.SQLite) int {
	t.Helper()
	var n int
	if err := s.ReadDB().QueryRow(`SELECT count(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnqueueTxUniqueAndRolledBackTogether(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	q, err := New(ctx, s.WriteDB(), Config{ReadDB: s.ReadDB()})
	if err != nil {
		t.Fatal(err)
	}
	job := JobArgs{SOPInstanceUID: "1.2.3", Model: "chest", Version: "1.0.0"}

	// Rolled back: neither the instance nor the job exists.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.InsertInstanceTx(ctx, tx, &store.Instance{SOPInstanceUID: "1.2.3", SOPClassUID: "1.2", StudyInstanceUID: "9",
			SeriesInstanceUID: "9.1", Source: store.SourceSTOW, Size: 1, SHA256: "00", BlobKey: "k"}); err != nil {
			return err
		}
		if n, err := q.EnqueueTx(ctx, tx, []JobArgs{job}); err != nil || n != 1 {
			t.Errorf("enqueue in tx: %d %v", n, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if n := countJobs(t, s); n != 0 {
		t.Errorf("%d jobs after rollback, want 0", n)
	}
	if ok, _ := s.HasInstance(ctx, "1.2.3"); ok {
		t.Error("instance after rollback")
	}

	if n := addInstance(t, s, q, "1.2.3", job, JobArgs{SOPInstanceUID: "1.2.3", Model: "chest", Version: "2.0.0"}); n != 2 {
		t.Errorf("inserted %d jobs, want 2", n)
	}
	// Same args again: no second job.
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		n, err := q.EnqueueTx(ctx, tx, []JobArgs{job})
		if n != 0 {
			t.Errorf("duplicate enqueue inserted %d", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countJobs(t, s); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
	var args string
	if err := s.ReadDB().QueryRow(`SELECT json(args) FROM river_job WHERE kind = ? ORDER BY id LIMIT 1`, Kind).Scan(&args); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(args, `"sop_instance_uid":"1.2.3"`) || !strings.Contains(args, `"model":"chest"`) || !strings.Contains(args, `"version":"1.0.0"`) {
		t.Errorf("job args %s", args)
	}
	if d, err := q.Depth(ctx); err != nil || d != 2 {
		t.Errorf("depth %d %v, want 2", d, err)
	}
}

// waitResult polls until the result reaches status or the deadline.
func waitResult(t *testing.T, s *store.SQLite, k store.ResultKey, status store.ResultStatus) *store.Result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := s.GetResult(context.Background(), k)
		if err == nil && r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("result %v: %+v %v, want status %s", k, r, err, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobState(t *testing.T, s *store.SQLite, uid string) string {
	t.Helper()
	var st string
	if err := s.ReadDB().QueryRow(`SELECT state FROM river_job WHERE json_extract(args, '$.sop_instance_uid') = ?`, uid).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestWorkerEndToEnd(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var runs atomic.Int32
	var flaky atomic.Int32
	h := HandlerFunc(func(ctx context.Context, job JobArgs) error {
		runs.Add(1)
		switch job.SOPInstanceUID {
		case "1.1": // succeeds
		case "1.2": // bad input: permanent
			return Permanent(errors.New("unsupported photometric interpretation"))
		case "1.3": // completes, then "crashes" before the job is marked done: runs twice
			if flaky.Add(1) == 1 {
				if err := s.CompleteResult(ctx, &store.Result{SOPInstanceUID: job.SOPInstanceUID, Model: job.Model, Version: job.Version, Label: "first"}); err != nil {
					return err
				}
				return errors.New("connection reset")
			}
		case "1.4":
			panic("boom")
		}
		return s.CompleteResult(ctx, &store.Result{SOPInstanceUID: job.SOPInstanceUID, Model: job.Model, Version: job.Version,
			Label: "normal", Probabilities: map[string]float64{"normal": 0.9, "pneumonia": 0.1}})
	})
	q := startWorkers(t, s, Config{Workers: 2, Handler: h, Recorder: s, ReadDB: s.ReadDB(), MaxAttempts: 2,
		RetryBackoff: func(int) time.Duration { return 10 * time.Millisecond }, PollInterval: 50 * time.Millisecond})
	for _, uid := range []string{"1.1", "1.2", "1.3", "1.4"} {
		addInstance(t, s, q, uid, JobArgs{SOPInstanceUID: uid, Model: "chest", Version: "1"})
	}
	key := func(uid string) store.ResultKey {
		return store.ResultKey{SOPInstanceUID: uid, Model: "chest", Version: "1"}
	}

	// Wait for River to finish every job (1.3 is done after its first attempt
	// already, but runs again).
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := []string{jobState(t, s, "1.1"), jobState(t, s, "1.2"), jobState(t, s, "1.3"), jobState(t, s, "1.4")}
		want := []string{"completed", "cancelled", "completed", "discarded"}
		if strings.Join(got, ",") == strings.Join(want, ",") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job states %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := waitResult(t, s, key("1.1"), store.StatusDone)
	if r.Label != "normal" || r.Probabilities["normal"] != 0.9 || r.Attempts != 1 {
		t.Errorf("1.1: %+v", r)
	}
	r = waitResult(t, s, key("1.2"), store.StatusFailed)
	if !strings.Contains(r.Error, "unsupported photometric interpretation") || r.Attempts != 1 {
		t.Errorf("1.2: %+v", r)
	}
	r = waitResult(t, s, key("1.3"), store.StatusDone)
	// The second run replaced the first's result (Label "first"); attempts
	// are counted only while the result is not done.
	if r.Label != "normal" || r.Attempts != 1 {
		t.Errorf("1.3: %+v", r)
	}
	r = waitResult(t, s, key("1.4"), store.StatusFailed)
	if !strings.Contains(r.Error, "handler panic: boom") || r.Attempts != 2 {
		t.Errorf("1.4: %+v", r)
	}
	list, err := s.ListResults(ctx, "", "9")
	if err != nil || len(list) != 4 {
		t.Errorf("%d results, want exactly 4 (one per instance/model/version): %v", len(list), err)
	}
	if n := runs.Load(); n != 6 {
		t.Errorf("handler ran %d times, want 6 (1+1+2+2)", n)
	}
	if d, err := q.Depth(ctx); err != nil || d != 0 {
		t.Errorf("depth %d %v, want 0", d, err)
	}
}

func TestConfigErrors(t *testing.T) {
	s := openStore(t)
	if _, err := New(context.Background(), s.WriteDB(), Config{Workers: 1}); err == nil {
		t.Error("workers without a handler accepted")
	}
	if _, err := New(context.Background(), s.WriteDB(), Config{Workers: -1}); err == nil {
		t.Error("negative workers accepted")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

// A separate worker "process": its own pools on the same database file
// (as radflow worker opens it) works the jobs an insert-only queue
// enqueued, and the result is visible to the inserting side.
func TestSeparateWorkerProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "radflow.db")
	serve, err := store.OpenSQLite(ctx, path, store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()
	ins, err := New(ctx, serve.WriteDB(), Config{ReadDB: serve.ReadDB()})
	if err != nil {
		t.Fatal(err)
	}

	wdb, err := store.OpenSQLite(ctx, path, store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	var runs atomic.Int32
	h := HandlerFunc(func(ctx context.Context, job JobArgs) error {
		runs.Add(1)
		return wdb.CompleteResult(ctx, &store.Result{SOPInstanceUID: job.SOPInstanceUID, Model: job.Model, Version: job.Version, Label: "remote"})
	})
	wq, err := New(ctx, wdb.WriteDB(), Config{Workers: 2, Handler: h, Recorder: wdb, ReadDB: wdb.ReadDB(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := wq.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		wq.Stop(sctx)
	}()
	for i := range 20 {
		uid := fmt.Sprintf("5.%d", i)
		if n := addInstance(t, serve, ins, uid, JobArgs{SOPInstanceUID: uid, Model: "chest", Version: "1"}); n != 1 {
			t.Fatalf("enqueued %d", n)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := serve.ListResults(ctx, "", "9")
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range list {
			if r.Status == store.StatusDone && r.Label == "remote" {
				done++
			}
		}
		if done == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 results done", done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := runs.Load(); n != 20 {
		t.Errorf("handler ran %d times, want 20", n)
	}
}

// A job left "running" by a process of this host that was killed (kill -9,
// crash) is worked again as soon as a worker starts, while jobs whose
// process is alive, or of another host, are left to their owner and to
// River's rescuer.
func TestStartRescuesJobsOfDeadProcesses(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	ins, err := New(ctx, s.WriteDB(), Config{Workers: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"2.1", "2.2", "2.3"} {
		addInstance(t, s, ins, uid, JobArgs{SOPInstanceUID: uid, Model: "chest", Version: "1"})
	}
	// A process that has exited: its PID no longer exists.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	host, _ := os.Hostname()
	host = strings.ReplaceAll(host, ":", "_")
	owners := map[string]string{
		"2.1": fmt.Sprintf("radflow:%s:%d:1", host, cmd.Process.Pid), // dead: rescued
		"2.2": fmt.Sprintf("radflow:%s:1:1", host),                   // PID 1 is alive: left running
		"2.3": fmt.Sprintf("radflow:other-host:%d:1", cmd.Process.Pid),
	}
	for uid, by := range owners {
		if _, err := s.WriteDB().Exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = ?, attempted_by = jsonb(?)
			WHERE json_extract(args, '$.sop_instance_uid') = ?`, time.Now().UTC().Format(time.RFC3339Nano), `["`+by+`"]`, uid); err != nil {
			t.Fatal(err)
		}
	}
	var runs atomic.Int32
	h := HandlerFunc(func(ctx context.Context, job JobArgs) error {
		runs.Add(1)
		return s.CompleteResult(ctx, &store.Result{SOPInstanceUID: job.SOPInstanceUID, Model: job.Model, Version: job.Version, Label: "normal"})
	})
	q := startWorkers(t, s, Config{Workers: 1, Handler: h, Recorder: s, PollInterval: 20 * time.Millisecond})
	r := waitResult(t, s, store.ResultKey{SOPInstanceUID: "2.1", Model: "chest", Version: "1"}, store.StatusDone)
	if r.Label != "normal" {
		t.Errorf("2.1: %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for jobState(t, s, "2.1") != "completed" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := []string{jobState(t, s, "2.1"), jobState(t, s, "2.2"), jobState(t, s, "2.3")}; strings.Join(got, ",") != "completed,running,running" {
		t.Errorf("job states %v, want completed,running,running", got)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if n, err := q.RescueOrphans(ctx); err != nil || n != 0 {
		t.Errorf("second RescueOrphans: %d, %v; want 0", n, err)
	}
}

// Removing an instance that was never acknowledged (package ingest after
// a power loss) takes its jobs, its results and its Structured Report
// with it and leaves the other instances alone; the sender's retry then
// stores and enqueues it again.
func TestDeleteInstanceJobsWithTheInstance(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	q, err := New(ctx, s.WriteDB(), Config{ReadDB: s.ReadDB()})
	if err != nil {
		t.Fatal(err)
	}
	lost := []JobArgs{{SOPInstanceUID: "1.2.3", Model: "chest", Version: "1.0.0"}, {SOPInstanceUID: "1.2.3", Model: "chest", Version: "2.0.0"}}
	kept := JobArgs{SOPInstanceUID: "1.2.4", Model: "chest", Version: "1.0.0"}
	addInstance(t, s, q, "1.2.3", lost...)
	addInstance(t, s, q, "1.2.4", kept)
	addInstance(t, s, q, "1.2.3.99") // the SR of lost[0]'s result
	if err := s.CompleteResult(ctx, &store.Result{SOPInstanceUID: "1.2.3", Model: "chest", Version: "1.0.0", Label: "PNEUMONIA",
		Probabilities: map[string]float64{"PNEUMONIA": 0.9}, SRSOPInstanceUID: "1.2.3.99"}); err != nil {
		t.Fatal(err)
	}
	var removed []store.RemovedInstance
	var deleted int
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if removed, err = s.RemoveInstancesTx(ctx, tx, []string{"1.2.3", "1.9.9"}); err != nil {
			return err
		}
		deleted, err = q.DeleteInstanceJobsTx(ctx, tx, []string{"1.2.3"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.RemovedInstance{{SOPInstanceUID: "1.2.3", StudyInstanceUID: "9", SeriesInstanceUID: "9.1"},
		{SOPInstanceUID: "1.2.3.99", StudyInstanceUID: "9", SeriesInstanceUID: "9.1", SRFor: "1.2.3"}}
	if fmt.Sprint(removed) != fmt.Sprint(want) || deleted != 2 {
		t.Errorf("removed %+v and %d jobs, want %+v and 2", removed, deleted, want)
	}
	for uid, exists := range map[string]bool{"1.2.3": false, "1.2.3.99": false, "1.2.4": true} {
		if ok, err := s.HasInstance(ctx, uid); err != nil || ok != exists {
			t.Errorf("instance %s exists %v (%v), want %v", uid, ok, err, exists)
		}
	}
	if n := countJobs(t, s); n != 1 || jobState(t, s, "1.2.4") != "available" {
		t.Errorf("%d jobs left, want only 1.2.4's", n)
	}
	if _, err := s.GetResult(ctx, lost[0].ResultKey()); err == nil {
		t.Error("the removed instance's result is still there")
	}
	if n := addInstance(t, s, q, "1.2.3", lost...); n != 2 {
		t.Errorf("the retry enqueued %d jobs, want 2", n)
	}
}
