package keys_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

const (
	phiName = "Testperson^Encryption"
	phiID   = "PHI-123456789"
	phiAcc  = "ACC-555000111"
)

// phiInstance writes a copy of the shared 0.5 MB CT with the test
// patient's name, ID and accession number (dcmodify, DCMTK).
func phiInstance(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "dicom", "cornerstoneWADOImageLoader", "CTImage.dcm")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("shared test data absent (../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm): %v", err)
	}
	if _, err := exec.LookPath("dcmodify"); err != nil {
		t.Skip("dcmodify (DCMTK) not installed")
	}
	dst := filepath.Join(t.TempDir(), "phi.dcm")
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dcmodify", "-nb", "-i", "(0010,0010)="+phiName, "-i", "(0010,0020)="+phiID,
		"-i", "(0008,0050)="+phiAcc, "-i", "(0010,0030)=19700203", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmodify: %v: %s", err, out)
	}
	return dst
}

// phiVariants: the values and their case, separator and UTF-16 variants.
func phiVariants() [][]byte {
	var out [][]byte
	for _, v := range []string{phiName, "Testperson Encryption", "Testperson", "Encryption", phiID, "123456789", phiAcc, "555000111", "19700203"} {
		for _, c := range []string{v, strings.ToUpper(v), strings.ToLower(v)} {
			out = append(out, []byte(c))
			var u []byte
			for _, r := range utf16.Encode([]rune(c)) {
				u = append(u, byte(r), byte(r>>8))
			}
			out = append(out, u)
		}
	}
	return out
}

// TestNoPlaintextPHIOnDisk ingests an instance with a known patient
// through package ingest with encryption on (blob Codec and PHI columns),
// checks QIDO and WADO-style reads return the values, then scans every
// file under the data directory (blobs, SQLite db/wal/shm, keys) for the
// name, ID, accession number and birth date in any case, with ^ or space,
// in UTF-8 and UTF-16LE: none may appear.
func TestNoPlaintextPHIOnDisk(t *testing.T) {
	path := phiInstance(t)
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k, err := keys.Open(keys.Options{DataDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), store.SQLiteOptions{PHI: k.PHI(), PHIFuzzyIndex: store.FuzzyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := store.NewFS(filepath.Join(dir, "blobs"), store.FSOptions{Codec: k.Codec()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(ctx, db.WriteDB(), queue.Config{ReadDB: db.ReadDB()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ingest.New(ingest.Config{Metadata: db, Blobs: blobs, Jobs: q,
		Router: ingest.RouterFunc(func(*store.Instance) []ingest.ModelRef { return []ingest.ModelRef{{Model: "lung", Version: "1.0.0"}} })})
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.IngestFile(ctx, path, ingest.SourceInfo{CallingAE: "CT_SCANNER", Source: store.SourceDIMSE})
	if err != nil || !out.Created {
		t.Fatalf("ingest: %+v %v", out, err)
	}
	g.Close()
	st, err := db.SearchStudies(ctx, store.Query{PatientID: phiID})
	if err != nil || len(st) != 1 || st[0].PatientName != phiName || st[0].AccessionNumber != phiAcc {
		t.Fatalf("QIDO by Patient ID: %+v %v", st, err)
	}
	if st, err := db.SearchStudies(ctx, store.Query{PatientName: "testperson encr", FuzzyMatching: true}); err != nil || len(st) != 1 {
		t.Fatalf("QIDO fuzzy name: %+v %v", st, err)
	}
	in, err := db.GetInstance(ctx, out.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blobs.Open(ctx, in.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(rc)
	rc.Close()
	orig, _ := os.ReadFile(path)
	if err != nil || !bytes.Equal(plain, orig) {
		t.Fatalf("blob read back: %v (equal %v)", err, bytes.Equal(plain, orig))
	}
	if !bytes.Contains(plain, []byte(phiName)) {
		t.Fatal("the test instance does not carry the name: the scan below would prove nothing")
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	q.Stop(sctx)
	cancel()
	// Scan while the database is still open (WAL and shm present), then
	// after closing.
	scan := func(when string) int {
		files := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for _, v := range phiVariants() {
				if bytes.Contains(b, v) {
					t.Errorf("%s: %s contains %q", when, strings.TrimPrefix(p, dir), v)
				}
			}
			return nil
		})
		return files
	}
	if n := scan("open"); n < 5 {
		t.Errorf("scanned only %d files", n)
	}
	db.Close()
	scan("closed")
}
