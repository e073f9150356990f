package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/keys"
)

// testOpts is what openTest (and the reopen test) use: plaintext by
// default; TestEncryptedPHISuite re-runs the store tests with a PHI cipher.
var testOpts SQLiteOptions

func testSQLiteOptions() SQLiteOptions { return testOpts }

func testCipher(t testing.TB, seed byte) *keys.PHICipher {
	t.Helper()
	p, err := keys.NewPHICipher(bytes.Repeat([]byte{seed}, keys.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEncryptedPHISuite runs the QIDO, round-trip and reopen tests with
// the PHI columns encrypted, in both fuzzy modes: the results must be the
// same as in plaintext.
func TestEncryptedPHISuite(t *testing.T) {
	for _, mode := range []FuzzyIndex{FuzzyNone, FuzzyPrefix} {
		t.Run(string(mode), func(t *testing.T) {
			testOpts = SQLiteOptions{PHI: testCipher(t, 1), PHIFuzzyIndex: mode}
			defer func() { testOpts = SQLiteOptions{} }()
			t.Run("SearchStudies", TestSearchStudies)
			t.Run("SearchSeriesAndInstances", TestSearchSeriesAndInstances)
			t.Run("InsertInstanceIdempotentAndRoundTrip", TestInsertInstanceIdempotentAndRoundTrip)
			t.Run("ReopenKeepsData", TestReopenKeepsData)
			t.Run("ResultsLifecycle", TestResultsLifecycle)
			t.Run("MoreWildcards", testMoreWildcards)
		})
	}
}

// testMoreWildcards compares encrypted and plaintext answers for queries
// whose matching goes through the decrypted distinct values.
func testMoreWildcards(t *testing.T) {
	ctx := context.Background()
	enc := openTest(t)
	fixture(t, enc)
	old := testOpts
	testOpts = SQLiteOptions{}
	plain := openTest(t)
	testOpts = old
	fixture(t, plain)
	for _, q := range []Query{
		{PatientName: "*o*"}, {PatientName: "?oe^J*"}, {PatientName: "*"}, {PatientID: "?2"}, {AccessionNumber: "ACC*"},
		{PatientName: "d*", FuzzyMatching: true}, {PatientName: "j?h", FuzzyMatching: true}, {PatientName: "anna smi", FuzzyMatching: true},
		{PatientName: "DOE m", FuzzyMatching: true}, {PatientName: "averyveryverylongname", FuzzyMatching: true},
		{PatientName: "^", FuzzyMatching: true}, {PatientName: "nobody", FuzzyMatching: true}, {PatientID: "P1", PatientName: "Doe^John", AccessionNumber: "ACC1"},
		{PatientName: "Doe^John", Limit: 1}, {PatientName: "100%"}, {PatientName: "Doe_John"},
	} {
		a, err1 := enc.SearchStudies(ctx, q)
		b, err2 := plain.SearchStudies(ctx, q)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%+v: encrypted %v (%v), plaintext %v (%v)", q, studyUIDs(a), err1, studyUIDs(b), err2)
		}
		c, _ := enc.SearchInstances(ctx, q)
		d, _ := plain.SearchInstances(ctx, q)
		for i := range c {
			c[i].ReceivedAt = time.Time{}
		}
		for i := range d {
			d[i].ReceivedAt = time.Time{}
		}
		if !reflect.DeepEqual(c, d) {
			t.Errorf("%+v: instances differ (%d vs %d)", q, len(c), len(d))
		}
	}
}

// TestPHIColumnsHoldNoPlaintext: with a PHI cipher the database file
// holds none of the PHI values, and the birth date round-trips.
func TestPHIColumnsHoldNoPlaintext(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), SQLiteOptions{PHI: testCipher(t, 3), PHIFuzzyIndex: FuzzyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	in := Instance{SOPInstanceUID: "1.2.3", SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.9",
		PatientName: "Testperson^Encryption", PatientID: "PHI-123456789", AccessionNumber: "ACC-987654321", PatientBirthDate: "19700203",
		Source: SourceDIMSE, Size: 1, SHA256: "ab", BlobKey: "k"}
	if err := s.InTx(ctx, func(tx *sql.Tx) error { _, err := s.InsertInstanceTx(ctx, tx, &in); return err }); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetInstance(ctx, "1.2.3")
	if err != nil || got.PatientBirthDate != "19700203" || got.PatientName != in.PatientName || got.PatientID != in.PatientID {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	st, err := s.SearchStudies(ctx, Query{PatientName: "testp enc", FuzzyMatching: true})
	if err != nil || len(st) != 1 || st[0].PatientName != in.PatientName || st[0].AccessionNumber != in.AccessionNumber {
		t.Fatalf("fuzzy prefix: %+v %v", st, err)
	}
	s.Close()
	for _, name := range []string{"radflow.db", "radflow.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, v := range []string{"Testperson", "testperson", "Encryption", "encryption", "PHI-123456789", "123456789", "987654321", "19700203"} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s contains %q", name, v)
			}
		}
	}
}

// TestPHIKeyChecks: encrypted data cannot be opened without the key or
// with another key; plaintext rows are encrypted when encryption is
// switched on, and a modified ciphertext is an error, not wrong data.
func TestPHIKeyChecks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "radflow.db")
	s, err := OpenSQLite(ctx, path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, s)
	s.Close()
	s, err = OpenSQLite(ctx, path, SQLiteOptions{PHI: testCipher(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var plain int
	s.ReadDB().QueryRow(`SELECT count(*) FROM instances WHERE patient_name <> '' OR patient_id <> '' OR patient_name_words <> '' OR accession_number <> ''`).Scan(&plain)
	if plain != 0 {
		t.Errorf("%d rows keep plaintext PHI after enabling encryption", plain)
	}
	got, err := s.SearchStudies(ctx, Query{PatientID: "P1"})
	if err != nil || len(got) != 1 || got[0].PatientName != "Doe^John" {
		t.Fatalf("after encrypting existing rows: %+v %v", got, err)
	}
	// Move one row's name ciphertext to another row: decryption fails.
	if _, err := s.WriteDB().Exec(`UPDATE instances SET patient_name_enc = (SELECT patient_name_enc FROM instances WHERE sop_instance_uid = '3.1.1') WHERE sop_instance_uid = '2.1.1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetInstance(ctx, "2.1.1"); !errors.Is(err, keys.ErrIntegrity) {
		t.Errorf("swapped ciphertext: %v, want ErrIntegrity", err)
	}
	s.Close()
	if _, err := OpenSQLite(ctx, path, SQLiteOptions{}); !errors.Is(err, ErrPHIKey) {
		t.Errorf("open without key: %v", err)
	}
	if _, err := OpenSQLite(ctx, path, SQLiteOptions{PHI: testCipher(t, 2)}); !errors.Is(err, ErrPHIKey) {
		t.Errorf("open with another key: %v", err)
	}
	if _, err := OpenSQLite(ctx, path, SQLiteOptions{PHI: testCipher(t, 1), PHIFuzzyIndex: "trigram"}); err == nil {
		t.Error("unknown fuzzy mode accepted")
	}
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abd", false}, {"a%", "abc", true}, {"%c", "abc", true}, {"a_c", "abc", true},
		{"a_c", "ac", false}, {"%b%", "abc", true}, {"%", "", true}, {"_", "", false}, {`100\%`, "100%", true},
		{`100\%`, "1000", false}, {"% jo%", " doe john ", true}, {"% oe%", " doe john ", false}, {"a%b%c", "aXbYc", true},
		{"a%b%c", "aXcYb", false}, {"ü_", "üx", true}, {"ABC", "abc", false},
	} {
		if got := likeMatch(c.p, c.s); got != c.want {
			t.Errorf("likeMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// fixtureN inserts n instances of n/10 distinct patients.
func fixtureN(b *testing.B, s *SQLite, n int) {
	ctx := context.Background()
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		for i := range n {
			in := Instance{SOPInstanceUID: fmt.Sprintf("2.25.%d", i), SOPClassUID: "1.2", StudyInstanceUID: fmt.Sprintf("2.25.%d.1", i/10),
				SeriesInstanceUID: fmt.Sprintf("2.25.%d.2", i/10), PatientID: fmt.Sprintf("P%06d", i/10), PatientName: fmt.Sprintf("Name%d^Given%d", i/10, i%7),
				AccessionNumber: fmt.Sprintf("A%d", i/10), Source: SourceSTOW, Size: 1, SHA256: "a", BlobKey: "k"}
			if _, err := s.InsertInstanceTx(ctx, tx, &in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQIDOExactPatientID: study search by exact Patient ID over
// 20,000 instances (2,000 patients), plaintext column vs blind index.
func BenchmarkQIDOExactPatientID(b *testing.B) {
	for _, mode := range []string{"plain", "blind_index"} {
		b.Run(mode, func(b *testing.B) {
			opts := SQLiteOptions{}
			if mode == "blind_index" {
				opts.PHI = testCipher(b, 1)
			}
			s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "radflow.db"), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fixtureN(b, s, 20000)
			for b.Loop() {
				st, err := s.SearchStudies(context.Background(), Query{PatientID: "P001234"})
				if err != nil || len(st) != 1 || !strings.HasPrefix(st[0].PatientName, "Name1234^") {
					b.Fatal(st, err)
				}
			}
		})
	}
}

// BenchmarkQIDOFuzzyName: fuzzy Patient's Name over the same data:
// plaintext LIKE, encrypted with FuzzyNone (decrypt distinct names),
// encrypted with FuzzyPrefix (token lookup).
func BenchmarkQIDOFuzzyName(b *testing.B) {
	for _, mode := range []string{"plain", "none", "prefix"} {
		b.Run(mode, func(b *testing.B) {
			opts := SQLiteOptions{}
			if mode != "plain" {
				opts.PHI, opts.PHIFuzzyIndex = testCipher(b, 1), FuzzyIndex(mode)
			}
			s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "radflow.db"), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fixtureN(b, s, 20000)
			for b.Loop() {
				st, err := s.SearchStudies(context.Background(), Query{PatientName: "name1234", FuzzyMatching: true})
				if err != nil || len(st) != 1 {
					b.Fatal(len(st), err)
				}
			}
		})
	}
}
