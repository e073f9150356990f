package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestParsePackKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		name string
		off  int64
		n    int64
		ok   bool
	}{
		{"packs/00000001.pack@0+0", "00000001.pack", 0, 0, true},
		{"packs/00000042.pack@1048576+516240", "00000042.pack", 1048576, 516240, true},
		{"packs/00000001.pack@4097+10", "", 0, 0, false},  // not aligned
		{"packs/00000001.pack@04096+10", "", 0, 0, false}, // leading zero
		{"packs/0000001.pack@0+10", "", 0, 0, false},      // 7 digits
		{"packs/00000001.pack@0", "", 0, 0, false},        // no length
		{"packs/00000001.pack@-4096+1", "", 0, 0, false},  // negative
		{"packs/../00000001.pack@0+1", "", 0, 0, false},   // traversal
		{"20260101/0000/x.dcm", "", 0, 0, false},          // a file key
		{"packs/00000001.pack@0+99999999999999999999", "", 0, 0, false},
	} {
		name, off, n, ok := parsePackKey(tc.key)
		if ok != tc.ok || name != tc.name || off != tc.off || n != tc.n {
			t.Errorf("parsePackKey(%q) = %q %d %d %v, want %q %d %d %v", tc.key, name, off, n, ok, tc.name, tc.off, tc.n, tc.ok)
		}
	}
	if got := packKey(7, 8192, 123); got != "packs/00000007.pack@8192+123" {
		t.Errorf("packKey = %q", got)
	}
}

// packData returns n bytes that differ for every seed.
func packData(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + seed*7 + i>>9)
	}
	return b
}

// putPacked stores data as a fresh blob, streamed (NewBlobWriter, in
// pieces of piece bytes) or from memory (PutNewBytes, piece 0), and
// returns its info once durable.
func putPacked(ctx context.Context, t *testing.T, b *FS, data []byte, piece int) BlobInfo {
	t.Helper()
	key := InstanceBlobKey("1.2.3", time.Now())
	var info BlobInfo
	var sync func() error
	var err error
	if piece == 0 {
		info, sync, err = b.PutNewBytes(ctx, key, data)
	} else {
		var w *BlobWriter
		if w, err = b.NewBlobWriter(ctx, key); err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			k := min(piece, len(rest))
			if _, err := w.Write(rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		info, sync, err = w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.Size != int64(len(data)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("info %+v for %d bytes", info, len(data))
	}
	return info
}

// Fresh blobs in a store with an AppendEncoder codec land in pack
// regions: aligned, not overlapping, each read back exactly, on a file
// system that takes O_DIRECT and on tmpfs; Stat gives the stored length;
// Delete frees the region's blocks.
func TestPackBlobs(t *testing.T) {
	ctx := context.Background()
	for _, dir := range blobTestDirs(t) {
		b, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
		if err != nil {
			t.Fatal(err)
		}
		if b.packs == nil {
			t.Fatal("no packs with an AppendEncoder codec")
		}
		type stored struct {
			info BlobInfo
			data []byte
		}
		var all []stored
		for i, n := range []int{0, 1, 4095, 4096, 4097, blobBlockSize + 1, 530946, writeBatch*blobBlockSize + 5} {
			for _, piece := range []int{0, 16372, 1 << 20} {
				data := packData(n, i*10+piece%7)
				info := putPacked(ctx, t, b, data, piece)
				if _, _, _, ok := parsePackKey(info.Key); !ok {
					t.Fatalf("n=%d piece=%d: key %q is not a pack key", n, piece, info.Key)
				}
				all = append(all, stored{info, data})
			}
		}
		// Regions: aligned starts, no overlaps within a pack.
		type region struct{ off, end int64 }
		byPack := map[string][]region{}
		for _, s := range all {
			name, off, n, _ := parsePackKey(s.info.Key)
			if n != int64(len(s.data)) { // appendXorCodec keeps the length
				t.Errorf("%s: stored length %d, want %d", s.info.Key, n, len(s.data))
			}
			byPack[name] = append(byPack[name], region{off, off + alignUp(n)})
		}
		for name, rs := range byPack {
			sort.Slice(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
			for i := 1; i < len(rs); i++ {
				if rs[i].off < rs[i-1].end {
					t.Errorf("%s: region %v overlaps %v", name, rs[i], rs[i-1])
				}
			}
		}
		for _, s := range all {
			if got := readBlob(ctx, t, b, s.info.Key); !bytes.Equal(got, s.data) {
				t.Fatalf("%s: read back %d bytes, differs from the %d written", s.info.Key, len(got), len(s.data))
			}
			st, err := b.Stat(ctx, s.info.Key)
			if err != nil || st.Size != int64(len(s.data)) {
				t.Errorf("Stat(%s) = %+v, %v", s.info.Key, st, err)
			}
		}

		// Delete punches the region out: its blocks are freed and it no
		// longer reads back.
		big := all[len(all)-1]
		name, _, _, _ := parsePackKey(big.info.Key)
		packPath := filepath.Join(dir, packsDir, name)
		waitFilled(t, b) // the zero fill changes what is allocated
		before := allocated(t, packPath)
		if err := b.Delete(ctx, big.info.Key); err != nil {
			t.Fatal(err)
		}
		// (Less one block: splitting the pack's extent around the hole can
		// take an extent-tree block, which i_blocks counts.)
		if after := allocated(t, packPath); before-after < alignUp(int64(len(big.data)))-directAlign {
			t.Errorf("delete freed %d bytes of the pack, want at least %d", before-after, alignUp(int64(len(big.data)))-directAlign)
		}
		if got := readBlob(ctx, t, b, big.info.Key); bytes.Equal(got, big.data) {
			t.Error("a deleted region still reads back")
		}
		if err := b.Delete(ctx, "packs/99999999.pack@0+10"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete in a missing pack: %v, want ErrNotFound", err)
		}
		if _, err := b.Open(ctx, "packs/99999999.pack@0+10"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open in a missing pack: %v, want ErrNotFound", err)
		}
		// Pack keys are not paths: Put refuses them.
		if _, err := b.Put(ctx, "packs/00000001.pack", bytes.NewReader([]byte("x"))); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put under packs/: %v, want ErrInvalidKey", err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFilled waits until no pack of b is queued for or under the zero fill.
func waitFilled(t *testing.T, b *FS) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.packs.mu.Lock()
		filling := false
		for p := range b.packs.all {
			filling = filling || p.filling
		}
		b.packs.mu.Unlock()
		if !filling {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the zero fill did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allocated returns the bytes of disk a file occupies.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// An aborted writer's region is handed out again; Close cuts every pack
// back to its last region; a reopened store reads the old blobs and
// starts a new pack; orphan removal leaves packs alone.
func TestPackAbortCloseReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	b.packs.fill = false // one pack, always idle: offsets are predictable
	first := putPacked(ctx, t, b, packData(5000, 1), 1000)
	if first.Key != "packs/00000001.pack@0+5000" {
		t.Fatalf("first key %q", first.Key)
	}
	w, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.3", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(packData(3*blobBlockSize*writeBatch, 2)); err != nil { // written to the pack already
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	head := make([]byte, directAlign)
	f, err := os.Open(filepath.Join(dir, packsDir, "00000001.pack"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(head, 8192)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, make([]byte, directAlign)) {
		t.Error("an aborted region's first block was not zeroed")
	}
	second := putPacked(ctx, t, b, packData(7000, 3), 0)
	if second.Key != "packs/00000001.pack@8192+7000" {
		t.Fatalf("after an abort the next blob is at %q, want the aborted region's start 8192", second.Key)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, packsDir, "00000001.pack"))
	if err != nil || fi.Size() != 8192+alignUp(7000) {
		t.Fatalf("pack after Close: %v (%v), want %d bytes", fi, err, 8192+alignUp(7000))
	}
	if _, _, err := b.PutNewBytes(ctx, InstanceBlobKey("1.2.4", time.Now()), []byte("x")); err == nil {
		t.Error("PutNewBytes after Close succeeded")
	}

	b2, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	for i, s := range []BlobInfo{first, second} {
		want := [][]byte{packData(5000, 1), packData(7000, 3)}[i]
		if got := readBlob(ctx, t, b2, s.Key); !bytes.Equal(got, want) {
			t.Errorf("%s after reopening: differs", s.Key)
		}
	}
	third := putPacked(ctx, t, b2, packData(100, 4), 0)
	if third.Key != "packs/00000002.pack@0+100" {
		t.Errorf("after reopening the next blob is at %q, want a new pack", third.Key)
	}
	n, err := b2.RemoveOrphans(ctx, -time.Hour, func(context.Context, string) (bool, error) { return false, nil })
	if err != nil || n != 0 {
		t.Errorf("RemoveOrphans removed %d (%v), want 0: packs are not orphan files", n, err)
	}
	if got := readBlob(ctx, t, b2, third.Key); !bytes.Equal(got, packData(100, 4)) {
		t.Error("third blob lost")
	}
}

// Ahead of the writers, a pack is zero-filled and synced (on ext4 and
// XFS), so blobs written later overwrite allocated blocks.
func TestPackZeroFill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.packs.fill {
		t.Skip("the test directory's file system is not ext4 or XFS: no zero fill")
	}
	info := putPacked(ctx, t, b, packData(530946, 1), 0)
	end := alignUp(530946)
	// From the pack's creation the filler keeps at least packLow filled
	// after its end, packFill at a time.
	var want int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.packs.mu.Lock()
		var ready, tail int64
		filling := false
		for p := range b.packs.all {
			ready, tail, filling = p.ready, p.tail, p.filling
		}
		b.packs.mu.Unlock()
		if !filling && ready-tail >= packLow {
			if tail != end || ready-tail >= packLow+packFill {
				t.Fatalf("filled to %d with the end at %d, want the end at %d and less than %d filled after it", ready, tail, end, packLow+packFill)
			}
			want = ready
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the filler did not fill %d bytes after the end (at %d, end %d)", packLow, ready, tail)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pp := filepath.Join(dir, packsDir, "00000001.pack")
	fi, _ := os.Stat(pp)
	if fi.Size() != want || allocated(t, pp) < want {
		t.Errorf("pack is %d bytes, %d allocated, want %d both", fi.Size(), allocated(t, pp), want)
	}
	next := putPacked(ctx, t, b, packData(4097, 2), 1<<20)
	if next.Key != fmt.Sprintf("packs/00000001.pack@%d+4097", end) {
		t.Errorf("next blob at %q", next.Key)
	}
	for _, k := range []string{info.Key, next.Key} {
		if _, err := b.Open(ctx, k); err != nil {
			t.Error(err)
		}
	}
}

// Concurrent writers, streamed and from memory: every blob reads back,
// no two regions overlap (run with -race).
func TestPackConcurrent(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var mu sync.Mutex
	got := map[string][]byte{}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 12; i++ {
				data := packData(1000+(g*7919+i*104729)%300000, g*100+i)
				piece := []int{0, 65536, 0, 1 << 20}[(g+i)%4]
				info := putPacked(ctx, t, b, data, piece)
				mu.Lock()
				got[info.Key] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 72 {
		t.Fatalf("%d distinct keys, want 72", len(got))
	}
	type region struct {
		name     string
		off, end int64
	}
	var rs []region
	for k, data := range got {
		if r := readBlob(ctx, t, b, k); !bytes.Equal(r, data) {
			t.Fatalf("%s: read back differs", k)
		}
		name, off, n, _ := parsePackKey(k)
		rs = append(rs, region{name, off, off + alignUp(n)})
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].name != rs[j].name {
			return rs[i].name < rs[j].name
		}
		return rs[i].off < rs[j].off
	})
	for i := 1; i < len(rs); i++ {
		if rs[i].name == rs[i-1].name && rs[i].off < rs[i-1].end {
			t.Fatalf("regions overlap: %v %v", rs[i-1], rs[i])
		}
	}
}

// Two processes sharing a blob root (radflow serve and radflow worker)
// each write packs of their own: a pack number taken since the scan is
// skipped, and every blob of both reads back from either.
func TestPackSharedRoot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ia := putPacked(ctx, t, a, packData(9000, 1), 0)
	ib := putPacked(ctx, t, b, packData(9000, 2), 4096)
	if ia.Key != "packs/00000001.pack@0+9000" || ib.Key != "packs/00000002.pack@0+9000" {
		t.Fatalf("keys %q and %q, want packs 1 and 2", ia.Key, ib.Key)
	}
	for _, fs := range []*FS{a, b} {
		if !bytes.Equal(readBlob(ctx, t, fs, ia.Key), packData(9000, 1)) || !bytes.Equal(readBlob(ctx, t, fs, ib.Key), packData(9000, 2)) {
			t.Error("a blob does not read back from both stores")
		}
	}
}

// A failed fdatasync fails the blob and every later one in that pack (its
// writes can no longer be trusted to be durable) and seals it: the next
// blob goes to a new pack.
func TestPackSyncFailureSeals(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	first := putPacked(ctx, t, b, packData(5000, 1), 0)
	eio := func(*os.File) error { return syscall.EIO }
	packSyncHook.Store(&eio)
	_, sync, err := b.PutNewBytes(ctx, InstanceBlobKey("1.2.3", time.Now()), packData(5000, 2))
	if err != nil {
		packSyncHook.Store(nil)
		t.Fatal(err)
	}
	err = sync()
	packSyncHook.Store(nil)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync with a failing fdatasync: %v, want EIO", err)
	}
	next := putPacked(ctx, t, b, packData(5000, 3), 4096)
	if name, _, _, _ := parsePackKey(next.Key); name == "00000001.pack" {
		t.Errorf("after a failed fdatasync the next blob went to the same pack: %q", next.Key)
	}
	for _, s := range []struct {
		key  string
		seed int
	}{{first.Key, 1}, {next.Key, 3}} {
		if !bytes.Equal(readBlob(ctx, t, b, s.key), packData(5000, s.seed)) {
			t.Errorf("%s does not read back", s.key)
		}
	}
}

// SweepPacks leaves packs a live process holds (flock) or that changed
// recently; in a dead pack (its writer gone without Close, as after a
// crash) it punches out what no row references, cuts off the zero fill
// after the last referenced region, and removes a pack nothing
// references. The keys come from SQLite's blob_key index.
func TestSweepPacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	var infos []BlobInfo
	for i := 0; i < 3; i++ {
		infos = append(infos, putPacked(ctx, t, a, packData(20000+i, i), []int{0, 4096, 0}[i]))
	}
	a2 := mustFS(t, dir) // a second store in this process: its own pack 2
	lone := putPacked(ctx, t, a2, packData(100, 9), 0)
	if name, _, _, _ := parsePackKey(lone.Key); name != "00000002.pack" {
		t.Fatalf("second store's blob %q", lone.Key)
	}
	waitFilled(t, a)
	waitFilled(t, a2)

	db := openTest(t)
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		for i, k := range []string{infos[0].Key, infos[2].Key, "20260101/0000/x.dcm"} { // infos[1] never committed
			in := Instance{SOPInstanceUID: fmt.Sprintf("9.%d", i), StudyInstanceUID: "9", SeriesInstanceUID: "9.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
				Source: SourceSTOW, Size: 1, SHA256: "00", BlobKey: k}
			if _, err := db.InsertInstanceTx(ctx, tx, &in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := db.BlobKeysWithPrefix(ctx, "packs/00000001.pack@"); err != nil || len(ks) != 2 || ks[0] != infos[0].Key || ks[1] != infos[2].Key {
		t.Fatalf("BlobKeysWithPrefix = %q, %v; want %q and %q", ks, err, infos[0].Key, infos[2].Key)
	}

	sweeper := mustFS(t, dir)
	// Live (flock held by a and a2): nothing changes.
	if n, err := sweeper.SweepPacks(ctx, -time.Hour, db.BlobKeysWithPrefix); err != nil || n != 0 {
		t.Fatalf("sweep of live packs changed %d (%v)", n, err)
	}
	// "Crash" both writers: their files close without Close's cut-back.
	for _, f := range []*FS{a, a2} {
		f.packs.mu.Lock()
		for p := range f.packs.all {
			p.file.Close()
		}
		f.packs.mu.Unlock()
	}
	pack1 := filepath.Join(dir, packsDir, "00000001.pack")
	before, _ := os.Stat(pack1)
	// Recently modified: left for now.
	if n, err := sweeper.SweepPacks(ctx, time.Hour, db.BlobKeysWithPrefix); err != nil || n != 0 {
		t.Fatalf("sweep of fresh packs changed %d (%v)", n, err)
	}
	n, err := sweeper.SweepPacks(ctx, -time.Hour, db.BlobKeysWithPrefix)
	if err != nil || n != 2 {
		t.Fatalf("sweep of dead packs changed %d (%v), want 2", n, err)
	}
	swept, _ := os.Stat(pack1)
	if n, err := sweeper.SweepPacks(ctx, -time.Hour, db.BlobKeysWithPrefix); err != nil || n != 0 {
		t.Errorf("a second sweep changed %d packs (%v), want 0", n, err)
	}
	if again, _ := os.Stat(pack1); !again.ModTime().Equal(swept.ModTime()) {
		t.Errorf("a second sweep touched the pack: mtime %v, then %v", swept.ModTime(), again.ModTime())
	}
	_, off2, n2, _ := parsePackKey(infos[2].Key)
	after, err := os.Stat(pack1)
	if err != nil || after.Size() != off2+alignUp(n2) || before.Size() <= after.Size() {
		t.Errorf("pack 1: %d bytes before, %d after (%v), want cut to %d", before.Size(), after.Size(), err, off2+alignUp(n2))
	}
	if _, err := os.Stat(filepath.Join(dir, packsDir, "00000002.pack")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreferenced pack 2 still there: %v", err)
	}
	_, off1, n1, _ := parsePackKey(infos[1].Key)
	raw := make([]byte, alignUp(n1))
	f, _ := os.Open(pack1)
	f.ReadAt(raw, off1)
	f.Close()
	if !bytes.Equal(raw, make([]byte, len(raw))) {
		t.Error("the uncommitted region was not punched out")
	}
	for _, i := range []int{0, 2} {
		if !bytes.Equal(readBlob(ctx, t, sweeper, infos[i].Key), packData(20000+i, i)) {
			t.Errorf("%s lost by the sweep", infos[i].Key)
		}
	}
}

func mustFS(t *testing.T, dir string) *FS {
	t.Helper()
	f, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A pack is locked from the moment its name exists: another open file of
// it cannot take the flock (SweepPacks in another process would).
func TestPackLockedFromCreation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustFS(t, dir)
	putPacked(ctx, t, b, packData(100, 1), 0)
	f, err := os.Open(filepath.Join(dir, packsDir, "00000001.pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tryLockFile(f); err == nil || lockUnsupported(err) {
		t.Errorf("flock of a live pack from another open file: %v, want EWOULDBLOCK", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, packsDir)); len(ents) != 1 {
		t.Errorf("packs directory holds %d entries, want the pack alone (no temporary file)", len(ents))
	}
}

// A pack sealed by a failed fdatasync while a streaming writer holds it
// does not go back to the idle packs when that writer lets go: the next
// blob goes to a new pack and succeeds.
func TestPackSealedWhileHandedOut(t *testing.T) {
	ctx := context.Background()
	b := mustFS(t, t.TempDir())
	b.packs.fill = false
	_, rsync, err := b.PutNewBytes(ctx, InstanceBlobKey("1.2.1", time.Now()), packData(5000, 1)) // reserves in pack 1, gives it back
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.2", time.Now())) // takes pack 1
	if err != nil {
		t.Fatal(err)
	}
	if w.pack.id != 1 {
		t.Fatalf("writer took pack %d, want 1", w.pack.id)
	}
	eio := func(*os.File) error { return syscall.EIO }
	packSyncHook.Store(&eio)
	err = rsync()
	packSyncHook.Store(nil)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("failing sync: %v", err)
	}
	w.Write(packData(3000, 2))
	_, wsync, err := w.Close() // lets go of the pack
	b.packs.mu.Lock()
	for _, p := range b.packs.idle {
		if p.sealed {
			t.Errorf("sealed pack %d is idle", p.id)
		}
	}
	b.packs.mu.Unlock()
	if err == nil {
		if err = wsync(); err == nil {
			t.Error("a blob in a pack whose fdatasync failed was reported durable")
		}
	}
	next := putPacked(ctx, t, b, packData(700, 3), 0)
	if name, _, _, _ := parsePackKey(next.Key); name == "00000001.pack" {
		t.Errorf("next blob went to the sealed pack: %q", next.Key)
	}
}

// A failed fdatasync in the zero filler is sticky for the blobs written
// to that pack before it: Linux reports a write-back error once per open
// file, so the filler may have consumed theirs.
func TestPackFillSyncErrorIsSticky(t *testing.T) {
	ctx := context.Background()
	b := mustFS(t, t.TempDir())
	if !b.packs.fill {
		t.Skip("the test directory's file system is not ext4 or XFS: no zero fill")
	}
	putPacked(ctx, t, b, packData(100, 1), 0)
	waitFilled(t, b)
	w, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.2", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(packData(9<<20, 2)); err != nil { // past the fill's low-water mark
		t.Fatal(err)
	}
	eio := func(*os.File) error { return syscall.EIO }
	packSyncHook.Store(&eio)
	_, sync, err := w.Close() // releases the pack: the filler runs and fails
	if err != nil {
		packSyncHook.Store(nil)
		t.Fatal(err)
	}
	waitFilled(t, b)
	packSyncHook.Store(nil)
	if err := sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("sync after the filler's fdatasync failed: %v, want the sticky EIO", err)
	}
}

// Close while a writer holds a pack: the writer finishes, and once it lets
// go the pack is cut back to its last region too.
func TestPackCloseWithWriterActive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewFS(dir, FSOptions{Codec: appendXorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	first := putPacked(ctx, t, b, packData(3000, 1), 0)
	waitFilled(t, b)
	w, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.2", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(packData(200000, 2))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	info, sync, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	_, off, n, _ := parsePackKey(info.Key)
	fi, err := os.Stat(filepath.Join(dir, packsDir, "00000001.pack"))
	if err != nil || fi.Size() != off+alignUp(n) {
		t.Errorf("pack after Close and the last writer: %v (%v), want %d bytes", fi, err, off+alignUp(n))
	}
	for k, want := range map[string][]byte{first.Key: packData(3000, 1), info.Key: packData(200000, 2)} {
		if !bytes.Equal(readBlob(ctx, t, b, k), want) {
			t.Errorf("%s does not read back after Close", k)
		}
	}
}

// With CoverSyncs, a pack blob whose bytes went with O_DIRECT into the
// zero-filled, fdatasynced space gets no fdatasync of its own (streamed
// or from memory): the caller's fdatasync of a file on the same device
// flushes them. Without it each such sync fdatasyncs the pack; a blob
// written past the zero fill is fdatasynced either way; a file on
// another device, or none, does not cover.
func TestPackCoverSyncs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustFS(t, dir)
	if !b.packs.fill || fsType(dir) != "ext4" {
		t.Skip("the test directory's file system is not ext4: blob syncs are covered only there")
	}
	putPacked(ctx, t, b, packData(4096, 1), 0) // creates the pack; the filler fills ahead
	waitFilled(t, b)
	// No more filling from here (its fdatasyncs would be counted, and
	// the end of the fill must stay where it is).
	b.packs.mu.Lock()
	var ready int64
	for p := range b.packs.all {
		p.noFill, ready = true, p.ready
	}
	b.packs.mu.Unlock()
	if ready < packLow {
		t.Fatalf("zero fill ends at %d, want at least %d", ready, packLow)
	}
	var syncs atomic.Int64
	count := func(f *os.File) error { syncs.Add(1); return fdatasync(f) }
	packSyncHook.Store(&count)
	defer packSyncHook.Store(nil)

	// Not covered yet: one fdatasync per blob.
	putPacked(ctx, t, b, packData(530946, 2), 1<<16)
	putPacked(ctx, t, b, packData(530946, 3), 0)
	if n := syncs.Load(); n != 2 {
		t.Errorf("%d fdatasyncs for two blobs without CoverSyncs, want 2", n)
	}
	if b.CoverSyncs(filepath.Join(dir, "absent.db")) || b.SyncsCovered() {
		t.Error("a file that does not exist covers the syncs")
	}
	if shm, err := os.CreateTemp("/dev/shm", "radflow-cover-"); err == nil {
		shm.Close()
		defer os.Remove(shm.Name())
		if b.CoverSyncs(shm.Name()) {
			t.Error("a file on /dev/shm covers the syncs of blobs on the test directory's device")
		}
	}
	db := filepath.Join(dir, "radflow.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !b.CoverSyncs(db) || !b.SyncsCovered() {
		t.Fatal("a file in the same directory does not cover the syncs")
	}
	syncs.Store(0)
	infos := []BlobInfo{
		putPacked(ctx, t, b, packData(530946, 4), 1<<16),
		putPacked(ctx, t, b, packData(530946, 5), 0),
		putPacked(ctx, t, b, packData(1, 6), 1),
	}
	if n := syncs.Load(); n != 0 {
		t.Errorf("%d fdatasyncs for three blobs inside the zero fill with CoverSyncs, want 0", n)
	}
	for i, info := range infos {
		if got := readBlob(ctx, t, b, info.Key); !bytes.Equal(got, packData(int(info.Size), 4+i)) {
			t.Errorf("blob %d: read back differs", i)
		}
	}
	// Inside the fill a streamed blob's sync is free: ingest runs it in line.
	cw, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.3.8", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	cw.Write(packData(530946, 8))
	if _, csync, err := cw.Close(); err != nil || !cw.SyncFree() || csync() != nil {
		t.Fatalf("covered writer: SyncFree %v, Close %v", cw.SyncFree(), err)
	}

	// Past the zero fill (more than it has ahead): the writer must sync.
	b.packs.mu.Lock()
	var ahead int64
	for p := range b.packs.all {
		ahead = p.ready - p.tail
	}
	b.packs.mu.Unlock()
	w, err := b.NewBlobWriter(ctx, InstanceBlobKey("1.2.3.9", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	big := packData(int(ahead)+3<<20, 7)
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if !w.cover || !w.mustSync {
		t.Errorf("writer past the zero fill: cover %v mustSync %v, want both", w.cover, w.mustSync)
	}
	info, sync, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if w.SyncFree() {
		t.Error("a writer past the zero fill reports a free sync")
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() == 0 {
		t.Error("no fdatasync for a blob written past the zero fill")
	}
	if got := readBlob(ctx, t, b, info.Key); !bytes.Equal(got, big) {
		t.Error("the blob past the zero fill reads back differently")
	}
}

// A region reserved before the zero fill began (PutNewBytes reserves at
// once and writes later) lies below the space the fill covered: its
// write changes the file's block map, so its sync fdatasyncs even with
// CoverSyncs.
func TestPackCoverSyncsRegionBelowTheFill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustFS(t, dir)
	if !b.packs.fill || fsType(dir) != "ext4" {
		t.Skip("the test directory's file system is not ext4: blob syncs are covered only there")
	}
	db := filepath.Join(dir, "radflow.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !b.CoverSyncs(db) {
		t.Fatal("a file in the same directory does not cover the syncs")
	}
	var syncs atomic.Int64
	count := func(f *os.File) error { syncs.Add(1); return fdatasync(f) }
	packSyncHook.Store(&count)
	defer packSyncHook.Store(nil)
	data := packData(530946, 9)
	// A new pack: the region is reserved (at 0) before the filler starts,
	// so the fill begins after it; the write comes once the fill is done.
	info, sync, err := b.PutNewBytes(ctx, InstanceBlobKey("1.2.3", time.Now()), data)
	if err != nil {
		t.Fatal(err)
	}
	waitFilled(t, b)
	b.packs.mu.Lock()
	var lo, ready int64
	for p := range b.packs.all {
		lo, ready = p.fillLo, p.ready
	}
	b.packs.mu.Unlock()
	_, off, _, _ := parsePackKey(info.Key)
	if off >= lo || ready < packLow {
		t.Fatalf("region at %d, fill from %d to %d: want the region below the fill", off, lo, ready)
	}
	before := syncs.Load()
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() == before {
		t.Error("a blob written below the zero fill got no fdatasync of its own")
	}
	if got := readBlob(ctx, t, b, info.Key); !bytes.Equal(got, data) {
		t.Error("the blob reads back differently")
	}
}

// Packs on a file system that takes aligned O_DIRECT writes as such
// report it (statx STATX_DIOALIGN); a file on tmpfs, which has no direct
// I/O, does not: its writes could never be covered.
func TestDirectAligned(t *testing.T) {
	b := mustFS(t, t.TempDir())
	if !b.packs.fill {
		t.Skip("the test directory's file system is not ext4 or XFS")
	}
	f, err := os.CreateTemp(t.TempDir(), "dio")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !directAligned(f) {
		t.Error("a file on the test directory's ext4/XFS does not take aligned O_DIRECT writes")
	}
	shm, err := os.CreateTemp("/dev/shm", "radflow-dio-")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.Remove(shm.Name())
	defer shm.Close()
	if directAligned(shm) {
		t.Error("a file on tmpfs is taken for one with direct I/O")
	}
}
