package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"github.com/radflow/radflow/internal/audit"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/store"
)

// plainDataDir makes a data directory as radflow wrote it before
// encryption at rest: n Part 10-shaped blobs through store.NewFS without
// a codec, each with an instances row, plus one blob without a row (a
// bare data set). It returns the blob keys and their plaintext bytes.
func plainDataDir(t *testing.T, n int) (string, map[string][]byte) {
	t.Helper()
	t.Setenv("RADFLOW_KEK", "")
	ctx := context.Background()
	dir := t.TempDir()
	fsys, err := store.NewFS(filepath.Join(dir, "blobs"), store.FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs := map[string][]byte{}
	recv := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		uid := fmt.Sprintf("1.2.826.0.1.3680043.10.999.%d", i+1)
		// 128-byte preamble, "DICM", then bytes spanning several 64 KiB
		// chunks (and one blob shorter than a chunk).
		body := append(make([]byte, 128), "DICM"...)
		size := 1000 + i*70000
		for j := range size {
			body = append(body, byte(j*7+i))
		}
		key := store.InstanceBlobKey(uid, recv)
		info, err := fsys.Put(ctx, key, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		in := &store.Instance{SOPInstanceUID: uid, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
			StudyInstanceUID: "1.2.826.0.1.3680043.10.999", SeriesInstanceUID: "1.2.826.0.1.3680043.10.999.0",
			Source: store.SourceSTOW, Size: info.Size, SHA256: info.SHA256, BlobKey: key, ReceivedAt: recv}
		if err := db.InTx(ctx, func(tx *sql.Tx) error { _, err := db.InsertInstanceTx(ctx, tx, in); return err }); err != nil {
			t.Fatal(err)
		}
		blobs[key] = body
	}
	bare := []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I', 4, 0, '1', '.', '2', 0}
	if _, err := fsys.Put(ctx, "20240301/1000/orphan.dcm", bytes.NewReader(bare)); err != nil {
		t.Fatal(err)
	}
	blobs["20240301/1000/orphan.dcm"] = bare
	return dir, blobs
}

// readAllThroughCodec reads every blob through the store with the keys
// codec and compares it with want.
func readAllThroughCodec(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	ring, _, err := keys.LoadKeyring(keys.LoadOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := store.NewFS(filepath.Join(dir, "blobs"), store.FSOptions{Codec: keys.NewCodec(ring)})
	if err != nil {
		t.Fatal(err)
	}
	for key, plain := range want {
		raw, err := os.ReadFile(filepath.Join(dir, "blobs", filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("RFLWENC\x00")) {
			t.Errorf("%s: not encrypted on disk", key)
			continue
		}
		rc, err := fsys.Open(context.Background(), key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: read back %d bytes (%v), want %d identical bytes", key, len(got), err, len(plain))
		}
	}
}

// TestKeysEncryptExisting: plaintext blobs become envelope objects that
// the codec reads back byte for byte; a second run changes nothing.
func TestKeysEncryptExisting(t *testing.T) {
	dir, blobs := plainDataDir(t, 3)
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "4 blobs encrypted (3 checked against their SHA-256, 1 with no instance row), 0 already encrypted, 0 leftover") {
		t.Fatalf("output: %s", out.String())
	}
	readAllThroughCodec(t, dir, blobs)
	before := map[string][]byte{}
	for key := range blobs {
		before[key], _ = os.ReadFile(filepath.Join(dir, "blobs", filepath.FromSlash(key)))
	}
	out.Reset()
	if code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("second run exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "0 blobs encrypted (0 checked against their SHA-256, 0 with no instance row), 4 already encrypted") {
		t.Fatalf("second run output: %s", out.String())
	}
	for key, b := range before {
		if now, _ := os.ReadFile(filepath.Join(dir, "blobs", filepath.FromSlash(key))); !bytes.Equal(now, b) {
			t.Errorf("%s rewritten by the second run", key)
		}
	}
	// Both runs are in the admin trail, with the active KEK and no key material.
	recs, _ := adminRecords(t, dir)
	if len(recs) != 2 {
		t.Fatalf("%d admin records, want 2: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Action != "admin:keys" || r.Outcome != audit.OutcomeSuccess || r.Detail["operation"] != "encrypt-existing" || r.Detail["kek_id"] == "" {
			t.Errorf("admin record %+v", r)
		}
	}
	readAllThroughCodec(t, dir, blobs)
}

// TestKeysEncryptExistingMismatch: a blob whose bytes no longer match
// its row's SHA-256 is reported, left plaintext, and fails the run; the
// others are encrypted.
func TestKeysEncryptExistingMismatch(t *testing.T) {
	dir, blobs := plainDataDir(t, 2)
	var bad string
	for key := range blobs {
		if !strings.Contains(key, "orphan") {
			bad = key
			break
		}
	}
	p := filepath.Join(dir, "blobs", filepath.FromSlash(bad))
	tampered := append([]byte(nil), blobs[bad]...)
	tampered[200] ^= 1
	if err := os.WriteFile(p, tampered, 0o640); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "2 blobs encrypted") || !strings.Contains(out.String(), "SHA-256 mismatch, left unencrypted: "+bad) {
		t.Fatalf("output: %s", out.String())
	}
	if now, _ := os.ReadFile(p); !bytes.Equal(now, tampered) {
		t.Error("mismatched blob was changed")
	}
	delete(blobs, bad)
	readAllThroughCodec(t, dir, blobs)
}

// TestKeysEncryptExistingCrash: a temporary file left by a run that died
// before its rename is removed by the next run, which finishes the job.
func TestKeysEncryptExistingCrash(t *testing.T) {
	dir, blobs := plainDataDir(t, 1)
	leftover := filepath.Join(dir, "blobs", "20240301", "1000", ".tmp-encrypt-123456")
	if err := os.WriteFile(leftover, []byte("RFLWENC\x00 half written"), 0o640); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "2 blobs encrypted") || !strings.Contains(out.String(), "1 leftover temporary files removed") {
		t.Fatalf("output: %s", out.String())
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temporary file still there: %v", err)
	}
	readAllThroughCodec(t, dir, blobs)
}

// TestKeysEncryptExistingRefusesWhileInUse: the audit trail's lock (held
// by radflow serve) or an open database connection in another process
// stops the command before it changes anything.
func TestKeysEncryptExistingRefusesWhileInUse(t *testing.T) {
	dir, blobs := plainDataDir(t, 1)
	assertUntouched := func() {
		t.Helper()
		for key, b := range blobs {
			if now, _ := os.ReadFile(filepath.Join(dir, "blobs", filepath.FromSlash(key))); !bytes.Equal(now, b) {
				t.Errorf("%s changed while the data directory was in use", key)
			}
		}
	}
	os.MkdirAll(filepath.Join(dir, "audit"), 0o700)
	lock, err := os.OpenFile(filepath.Join(dir, "audit", ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb)
	lock.Close()
	if code != 1 || !strings.Contains(errb.String(), "data directory in use") {
		t.Fatalf("with the audit lock held: exit %d: %s", code, errb.String())
	}
	assertUntouched()

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: cannot hold the database open from another process")
	}
	cmd := exec.Command(py, "-c", `import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA journal_mode=WAL"); c.execute("SELECT count(*) FROM instances").fetchall()
print("ready", flush=True); sys.stdin.read()`, filepath.Join(dir, "radflow.db"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("python sqlite3 holder: %q %v", line, err)
	}
	errb.Reset()
	if code := run([]string{"keys", "encrypt-existing", "--data", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "radflow.db is open in another process") {
		t.Fatalf("with the database open elsewhere: exit %d: %s", code, errb.String())
	}
	assertUntouched()
}
