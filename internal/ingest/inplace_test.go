package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// uidNumber is the n of a "prefix.n" UID given by distinct.
func uidNumber(uid string) int {
	n, _ := strconv.Atoi(uid[strings.LastIndexByte(uid, '.')+1:])
	return n
}

// setFailingMetadata fails InsertInstanceTx (after inserting the row) for
// the UIDs fail picks.
type setFailingMetadata struct {
	*store.SQLite
	fail func(uid string) bool
}

func (m *setFailingMetadata) InsertInstanceTx(ctx context.Context, tx *sql.Tx, in *store.Instance) (bool, error) {
	created, err := m.SQLite.InsertInstanceTx(ctx, tx, in)
	if err == nil && m.fail(in.SOPInstanceUID) {
		return false, errInjected
	}
	return created, err
}

// blockedBlobs is a *store.FS whose PutNewBytes, for the UIDs failCreate
// picks, writes under a directory that cannot be created (a regular file
// is in the way), so that the sync's create fails; for the UIDs failSync
// picks, the sync runs and then reports failure (as a failed fsync would).
type blockedBlobs struct {
	*store.FS
	byHash     sync.Map // hex sha256 of the UID → UID
	failCreate func(uid string) bool
	failSync   func(uid string) bool
}

var errSyncInjected = errors.New("injected fsync failure")

func (b *blockedBlobs) uidOf(key string) string {
	h, _, _ := strings.Cut(filepath.Base(key), "-")
	v, _ := b.byHash.Load(h)
	s, _ := v.(string)
	return s
}

func (b *blockedBlobs) PutNewBytes(ctx context.Context, key string, data []byte) (store.BlobInfo, func() error, error) {
	uid := b.uidOf(key)
	k := key
	if b.failCreate(uid) {
		k = "blocker/" + key
	}
	info, sync, err := b.FS.PutNewBytes(ctx, k, data)
	if err != nil {
		return info, nil, err
	}
	info.Key = key
	if b.failSync(uid) {
		return info, func() error {
			if err := sync(); err != nil {
				return err
			}
			os.Remove(filepath.Join(b.Root(), filepath.FromSlash(k)))
			return errSyncInjected
		}, nil
	}
	return info, sync, nil
}

// TestIngestInPlaceBufferReuseWithFailures: six senders ingest 48 CT
// instances from *bytes.Buffer (read in place, as the DIMSE handler's
// Part10Bytes), each sender reusing one byte slice that it overwrites as
// soon as Ingest returns — as the DIMSE server recycles its spool buffer.
// Some inserts fail (after inserting their row), some blob creates fail
// (directory blocked), some blob syncs fail. Every stored instance must
// have its row, results and jobs and a blob whose bytes are the CT's
// exactly (nothing read from the caller's slice after Ingest returned,
// nothing of a pooled encode buffer reused while a sync wrote it); every
// failed one has no row and no blob; nothing else is left under the blob
// root.
func TestIngestInPlaceBufferReuseWithFailures(t *testing.T) {
	ct := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	if err := os.WriteFile(filepath.Join(e.blobs.Root(), "blocker"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	const prefix = "2.25.8080"
	failInsert := func(uid string) bool { return uid != "" && uidNumber(uid)%5 == 0 }
	failCreate := func(uid string) bool { return uid != "" && uidNumber(uid)%7 == 0 }
	failSync := func(uid string) bool { return uid != "" && uidNumber(uid)%11 == 0 }
	blobs := &blockedBlobs{FS: e.blobs, failCreate: failCreate, failSync: failSync}
	m := &setFailingMetadata{SQLite: e.db, fail: failInsert}
	g, err := New(Config{Metadata: m, Blobs: blobs, Jobs: e.q, Router: e.g.cfg.Router, MaxBatch: 8, BatchLinger: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	hook := distinct(prefix)
	g.uidHook = func(in *store.Instance) {
		hook(in)
		h := sha256.Sum256([]byte(in.SOPInstanceUID))
		blobs.byHash.Store(hex.EncodeToString(h[:]), in.SOPInstanceUID)
	}

	type result struct {
		out  Outcome
		err  error
		sent []byte // what was ingested: the CT with its last pixel bytes marked
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for s := range 6 {
		wg.Go(func() {
			mine := make([]byte, len(ct))
			for i := range 8 {
				copy(mine, ct)
				mine[len(mine)-2], mine[len(mine)-1] = byte(s), byte(i)
				sent := append([]byte(nil), mine...)
				out, err := g.Ingest(context.Background(), bytes.NewBuffer(mine), dimse)
				// The caller owns its bytes again: overwrite them at once.
				for i := range mine {
					mine[i] = 0xEE
				}
				mu.Lock()
				results = append(results, result{out, err, sent})
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	ctx := context.Background()
	stored := 0
	for _, r := range results {
		uid := r.out.SOPInstanceUID
		var want error
		switch {
		case failCreate(uid):
			want = nil // any storage error; checked below
		case failSync(uid):
			want = errSyncInjected
		case failInsert(uid):
			want = errInjected
		}
		shouldFail := failCreate(uid) || failSync(uid) || failInsert(uid)
		has, err := e.db.HasInstance(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if !shouldFail {
			if r.err != nil || !r.out.Created || r.out.Jobs != 2 || !has {
				t.Errorf("%s: %+v %v, row %v; want stored", uid, r.out, r.err, has)
				continue
			}
			stored++
			in, err := e.db.GetInstance(ctx, uid)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := e.blobs.Open(ctx, in.BlobKey)
			if err != nil {
				t.Fatalf("%s: blob: %v", uid, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			sum := sha256.Sum256(r.sent)
			if err != nil || !bytes.Equal(got, r.sent) || in.SHA256 != hex.EncodeToString(sum[:]) || in.Size != int64(len(r.sent)) {
				t.Errorf("%s: blob of %d bytes (sha256 %s), equal to what was sent: %v; %v", uid, len(got), in.SHA256, bytes.Equal(got, r.sent), err)
			}
			continue
		}
		if r.err == nil || r.out.Created || has {
			t.Errorf("%s: %+v %v, row %v; want failed", uid, r.out, r.err, has)
		}
		if want != nil && !errors.Is(r.err, want) {
			t.Errorf("%s: %v, want %v", uid, r.err, want)
		}
		if failCreate(uid) && !strings.Contains(r.err.Error(), "storing blob") {
			t.Errorf("%s: %v, want a blob storage error", uid, r.err)
		}
	}
	if len(results) != 48 {
		t.Fatalf("%d results", len(results))
	}
	wantStored := 0
	for n := 1; n <= 48; n++ {
		if n%5 != 0 && n%7 != 0 && n%11 != 0 {
			wantStored++
		}
	}
	if stored != wantStored || e.count(t, "instances") != wantStored {
		t.Errorf("stored %d, %d rows; want %d", stored, e.count(t, "instances"), wantStored)
	}
	if n := e.count(t, "river_job"); n != 2*wantStored {
		t.Errorf("%d jobs, want %d", n, 2*wantStored)
	}
	if n := e.count(t, "results"); n != 2*wantStored {
		t.Errorf("%d results, want %d", n, 2*wantStored)
	}
	files := e.blobFiles(t)
	var blobsLeft []string
	for _, f := range files {
		if filepath.Base(f) != "blocker" {
			blobsLeft = append(blobsLeft, f)
		}
	}
	if len(blobsLeft) != wantStored {
		t.Errorf("%d blob files, want %d", len(blobsLeft), wantStored)
	}
}

// TestSyncNeverCalled: PutNewBytes whose sync is never called (an
// Ingester that gave up) leaves nothing on disk, and later blobs (which
// may get other pooled encode buffers) are written intact.
func TestSyncNeverCalled(t *testing.T) {
	ct := ctBytes(t)
	dir := t.TempDir()
	fs, err := store.NewFS(dir, store.FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		key := fmt.Sprintf("a/%d.dcm", i)
		b := append([]byte(nil), ct...)
		b[len(b)-1] = byte(i)
		_, sync, err := fs.PutNewBytes(ctx, key, b)
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j] = 0xEE // b is not read after PutNewBytes returns
		}
		if i%2 == 0 {
			continue // sync abandoned
		}
		if err := sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		key := fmt.Sprintf("a/%d.dcm", i)
		got, err := os.ReadFile(filepath.Join(dir, "a", fmt.Sprintf("%d.dcm", i)))
		if i%2 == 0 {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: abandoned sync left a file: %v", key, err)
			}
			continue
		}
		want := append([]byte(nil), ct...)
		want[len(want)-1] = byte(i)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, equal %v, %v", key, len(got), bytes.Equal(got, want), err)
		}
	}
}
