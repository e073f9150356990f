package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// encEnv is a data directory as radflow serve has it: SQLite, encrypted
// blobs in pack files, the queue; open starts an Ingester on it.
type encEnv struct {
	dir   string
	ring  *keys.Keyring
	db    *store.SQLite
	blobs *store.FS
	q     *queue.Queue
}

func newEncEnv(t *testing.T) *encEnv {
	t.Helper()
	ring, err := keys.NewKeyring(keys.NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	return &encEnv{dir: t.TempDir(), ring: ring}
}

// open opens the stores (with ring) and an Ingester with cfg; everything
// is closed at the end of the test, or by the returned function.
func (e *encEnv) open(t *testing.T, ring *keys.Keyring, cfg Config) (*Ingester, func(), error) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(e.dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := store.NewFS(filepath.Join(e.dir, "blobs"), store.FSOptions{Codec: keys.NewCodec(ring)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(ctx, db.WriteDB(), queue.Config{ReadDB: db.ReadDB()})
	if err != nil {
		t.Fatal(err)
	}
	e.db, e.blobs, e.q = db, blobs, q
	cfg.Metadata, cfg.Blobs, cfg.Jobs = db, blobs, q
	cfg.Router = RouterFunc(func(in *store.Instance) []ModelRef {
		return []ModelRef{{"lung", "1.0.0"}, {"lung", "1.1.0"}}
	})
	g, err := New(cfg)
	closed := false
	closeAll := func() {
		if closed {
			return
		}
		closed = true
		if g != nil {
			g.Close()
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		q.Stop(sctx)
		cancel()
		blobs.Close()
		db.Close()
	}
	t.Cleanup(closeAll)
	return g, closeAll, err
}

func (e *encEnv) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.ReadDB().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fillsPacks reports whether packs under dir are zero-filled ahead (the
// file system is ext4 or XFS) and blob syncs are covered (ext4 only).
func fillsPacks(t *testing.T, dir string) bool {
	t.Helper()
	ring, err := keys.NewKeyring(keys.NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	probe, err := store.NewFS(filepath.Join(dir, "probe"), store.FSOptions{Codec: keys.NewCodec(ring)})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	f := filepath.Join(dir, "probe", "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return probe.CoverSyncs(f)
}

// ingestCT stores the CT slice under uid, streamed as a C-STORE
// (Begin, WriteRetained, IngestEarly) or from memory (Ingest), and waits
// until it is durable.
func ingestCT(t *testing.T, g *Ingester, ct []byte, uid string, streamed bool) {
	t.Helper()
	ctx := context.Background()
	var out Outcome
	var err error
	if streamed {
		g.uidHook = nil
		if uid != ctUID {
			t.Fatalf("a streamed instance keeps the file's UID %s", ctUID)
		}
		info := SourceInfo{CallingAE: "CT_SCANNER", Source: store.SourceDIMSE, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: uid}
		e := g.Begin(ctx, info)
		if e == nil {
			t.Fatal("Begin refused a fresh instance")
		}
		if _, err := e.WriteRetained(ct); err != nil {
			t.Fatal(err)
		}
		var durable func() error
		if out, durable, err = g.IngestEarly(ctx, e, ct); err == nil {
			err = durable()
		}
	} else {
		g.uidHook = func(in *store.Instance) { in.SOPInstanceUID = uid }
		out, err = g.Ingest(ctx, bytes.NewReader(ct), dimse)
	}
	if err != nil || !out.Created || out.SOPInstanceUID != uid || out.Jobs != 2 {
		t.Fatalf("%s: %+v, %v", uid, out, err)
	}
}

// With CoverBlobSyncs and encrypted blobs in packs on the database's file
// system, blobs get no fdatasync of their own (store.FS.CoverSyncs) and
// each new instance is listed in blob_unflushed until the log's fdatasync
// of its batch has returned (a later transaction deletes it): after
// instances acknowledged one at a time only the last is listed. Without
// CoverBlobSyncs nothing is covered or listed. Close empties the list.
// Either way an acknowledged
// instance reads back exactly, streamed and from memory.
func TestBlobSyncsCoveredByTheLog(t *testing.T) {
	ct := ctBytes(t)
	for _, cover := range []bool{true, false} {
		e := newEncEnv(t)
		if !fillsPacks(t, e.dir) {
			t.Skip("the test directory's file system is not ext4: blob syncs are covered only there")
		}
		g, _, err := e.open(t, e.ring, Config{CoverBlobSyncs: cover})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.blobs.SyncsCovered(); got != cover {
			t.Errorf("CoverBlobSyncs %v: syncs covered %v", cover, got)
		}
		uids := []string{ctUID, "2.25.7101", "2.25.7102"}
		for i, uid := range uids {
			ingestCT(t, g, ct, uid, i == 0)
		}
		want := 0
		if cover {
			want = 1
		}
		if n := e.count(t, `SELECT count(*) FROM blob_unflushed`); n != want {
			t.Errorf("cover %v: %d instances listed in blob_unflushed, want %d", cover, n, want)
		}
		if cover && e.count(t, `SELECT count(*) FROM blob_unflushed WHERE sop_instance_uid = ?`, uids[2]) != 1 {
			t.Error("the last instance is not the one listed")
		}
		defer func() { // a clean stop leaves nothing to check
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if n := e.count(t, `SELECT count(*) FROM blob_unflushed`); n != 0 {
				t.Errorf("cover %v: %d instances listed after Close, want 0", cover, n)
			}
		}()
		for _, uid := range uids {
			in, err := e.db.GetInstance(context.Background(), uid)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := e.blobs.Open(context.Background(), in.BlobKey)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, ct) {
				t.Errorf("cover %v, %s: read back %d bytes, equal %v", cover, uid, len(got), bytes.Equal(got, ct))
			}
			// Encrypted: the row records the object digest, not the
			// plaintext's SHA-256, and the blob read back matches it.
			n, digest, err := e.blobs.DigestBlob(context.Background(), in.BlobKey, in.SHA256)
			if err != nil || n != int64(len(ct)) || digest != in.SHA256 || !strings.HasPrefix(in.SHA256, keys.DigestPrefix) || len(in.SHA256) != len(keys.DigestPrefix)+64 {
				t.Errorf("cover %v, %s: recorded digest %q, read back %d bytes with digest %q, %v", cover, uid, in.SHA256, n, digest, err)
			}
		}
	}
}

var packKeyRE = regexp.MustCompile(`^packs/([0-9]{8}\.pack)@([0-9]+)\+([0-9]+)$`)

// loseBlob overwrites 4 KiB at at of uid's pack region with zeros, as a
// power loss leaves a region whose bytes never left the device's cache
// (the zero fill is what is on the disk).
func loseBlob(t *testing.T, e *encEnv, uid string, at int64) {
	t.Helper()
	in, err := e.db.GetInstance(context.Background(), uid)
	if err != nil {
		t.Fatal(err)
	}
	m := packKeyRE.FindStringSubmatch(in.BlobKey)
	if m == nil {
		t.Fatalf("blob key %q is not a pack region", in.BlobKey)
	}
	off, _ := strconv.ParseInt(m[2], 10, 64)
	f, err := os.OpenFile(filepath.Join(e.dir, "blobs", "packs", m[1]), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), off+at); err != nil {
		t.Fatal(err)
	}
}

// After an unclean stop, New checks the blob of every instance still in
// blob_unflushed: an instance whose blob is not intact (it was never
// acknowledged) is removed with its results and jobs and reported by
// Recovered; intact ones stay; the list is emptied; the sender's retry
// stores the removed instance again. A blob that cannot be checked for
// another reason (here: its key-encryption key is not in the keyring)
// stops New and removes nothing.
func TestRecoverUnflushedAfterPowerLoss(t *testing.T) {
	ct := ctBytes(t)
	e := newEncEnv(t)
	if !fillsPacks(t, e.dir) {
		t.Skip("the test directory's file system is not ext4: blob syncs are covered only there")
	}
	g, closeAll, err := e.open(t, e.ring, Config{CoverBlobSyncs: true})
	if err != nil {
		t.Fatal(err)
	}
	uids := []string{"2.25.7201", "2.25.7202", "2.25.7203", "2.25.7204"}
	for _, uid := range uids {
		ingestCT(t, g, ct, uid, false)
	}
	// The power loss: the log's frames of all four reached the disk, the
	// second blob's first bytes (its header: not encrypted any more) and
	// the last blob's bytes from 256 KiB (a chunk that fails its
	// authentication) did not, and the list still held all four.
	ctx := context.Background()
	loseBlob(t, e, uids[1], 0)
	loseBlob(t, e, uids[3], 256<<10)
	closeAll() // a clean stop empties the list: fill it again as the crash left it
	db, err := store.OpenSQLite(ctx, filepath.Join(e.dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteDB().ExecContext(ctx, `INSERT INTO blob_unflushed (batch, sop_instance_uid) VALUES (1, ?), (2, ?), (3, ?), (4, ?)`,
		uids[0], uids[1], uids[2], uids[3]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Another keyring: no blob can be checked, so nothing is removed.
	other, err := keys.NewKeyring(keys.NewKEK())
	if err != nil {
		t.Fatal(err)
	}
	if _, closeAll, err := e.open(t, other, Config{CoverBlobSyncs: true}); err == nil || !errors.Is(err, keys.ErrUnknownKEK) {
		t.Errorf("New with blobs it cannot decrypt: %v, want an error wrapping keys.ErrUnknownKEK", err)
	} else {
		closeAll()
	}

	g, _, err = e.open(t, e.ring, Config{CoverBlobSyncs: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := slices.SortedFunc(slices.Values(g.Recovered()), func(a, b store.RemovedInstance) int {
		return strings.Compare(a.SOPInstanceUID, b.SOPInstanceUID)
	})
	if len(rec) != 2 || rec[0].SOPInstanceUID != uids[1] || rec[1].SOPInstanceUID != uids[3] || rec[0].StudyInstanceUID != ctStudyUID {
		t.Fatalf("recovered %+v, want %s and %s", rec, uids[1], uids[3])
	}
	for i, uid := range uids {
		exists, err := e.db.HasInstance(ctx, uid)
		results := e.count(t, `SELECT count(*) FROM results WHERE sop_instance_uid = ?`, uid)
		jobs := e.count(t, `SELECT count(*) FROM river_job WHERE json_extract(args, '$.sop_instance_uid') = ?`, uid)
		want := i == 0 || i == 2
		if err != nil || exists != want || (results == 2) != want || (jobs == 2) != want || (results == 0) == want || (jobs == 0) == want {
			t.Errorf("%s: exists %v (%v), %d results, %d jobs; want it kept: %v", uid, exists, err, results, jobs, want)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM blob_unflushed`); n != 0 {
		t.Errorf("%d instances still listed after the check", n)
	}
	ingestCT(t, g, ct, uids[1], false) // the sender's retry
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE json_extract(args, '$.sop_instance_uid') = ?`, uids[1]); n != 2 {
		t.Errorf("the retry has %d jobs, want 2", n)
	}
}
