package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "radflow.db"), testSQLiteOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ip(n int) *int { return &n }

// fixture: 3 studies.
//
//	S1 (Doe^John, P1, 20240105, ACC1): series S1.1 CT (2 instances), series S1.2 SR (1)
//	S2 (DOE^JANE^M, P2, 20240220, ACC2): series S2.1 MR (1)
//	S3 (Smith^Anna, P3, 20231231, ACC3): series S3.1 CR (1)
func fixture(t *testing.T, s *SQLite) {
	t.Helper()
	rows := []Instance{
		{SOPInstanceUID: "1.1.1", StudyInstanceUID: "1", SeriesInstanceUID: "1.1", Modality: "CT", PatientName: "Doe^John", PatientID: "P1", StudyDate: "20240105", StudyTime: "101010", AccessionNumber: "ACC1", SeriesNumber: ip(1), InstanceNumber: ip(2)},
		{SOPInstanceUID: "1.1.2", StudyInstanceUID: "1", SeriesInstanceUID: "1.1", Modality: "CT", PatientName: "Doe^John", PatientID: "P1", StudyDate: "20240105", StudyTime: "101010", AccessionNumber: "ACC1", SeriesNumber: ip(1), InstanceNumber: ip(1)},
		{SOPInstanceUID: "1.2.1", StudyInstanceUID: "1", SeriesInstanceUID: "1.2", Modality: "SR", PatientName: "Doe^John", PatientID: "P1", StudyDate: "20240105", StudyTime: "101010", AccessionNumber: "ACC1", SeriesNumber: ip(2)},
		{SOPInstanceUID: "2.1.1", StudyInstanceUID: "2", SeriesInstanceUID: "2.1", Modality: "MR", PatientName: "DOE^JANE^M", PatientID: "P2", StudyDate: "20240220", AccessionNumber: "ACC2"},
		{SOPInstanceUID: "3.1.1", StudyInstanceUID: "3", SeriesInstanceUID: "3.1", Modality: "CR", PatientName: "Smith^Anna", PatientID: "P3", StudyDate: "20231231", AccessionNumber: "ACC3"},
	}
	err := s.InTx(context.Background(), func(tx *sql.Tx) error {
		for i := range rows {
			rows[i].SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
			rows[i].Source = SourceSTOW
			rows[i].Size = 100
			rows[i].SHA256 = "00"
			rows[i].BlobKey = "k/" + rows[i].SOPInstanceUID
			created, err := s.InsertInstanceTx(context.Background(), tx, &rows[i])
			if err != nil {
				return err
			}
			if !created {
				t.Errorf("%s not created", rows[i].SOPInstanceUID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func studyUIDs(st []Study) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.StudyInstanceUID)
	}
	return out
}

func TestSearchStudies(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all, newest first", Query{}, []string{"2", "1", "3"}},
		{"patient id", Query{PatientID: "P1"}, []string{"1"}},
		{"patient id wildcard", Query{PatientID: "P*"}, []string{"2", "1", "3"}},
		{"name exact", Query{PatientName: "Doe^John"}, []string{"1"}},
		{"name exact is case sensitive", Query{PatientName: "doe^john"}, nil},
		{"name exact wildcard", Query{PatientName: "DOE*"}, []string{"2"}},
		{"name fuzzy prefix any component", Query{PatientName: "do", FuzzyMatching: true}, []string{"2", "1"}},
		{"name fuzzy given name", Query{PatientName: "jo", FuzzyMatching: true}, []string{"1"}},
		{"name fuzzy superset of exact", Query{PatientName: "Doe^John", FuzzyMatching: true}, []string{"1"}},
		{"name fuzzy middle not prefix", Query{PatientName: "oe", FuzzyMatching: true}, nil},
		{"date single", Query{StudyDate: "20240105"}, []string{"1"}},
		{"date range", Query{StudyDate: "20240101-20240131"}, []string{"1"}},
		{"date open end", Query{StudyDate: "20240101-"}, []string{"2", "1"}},
		{"date open start", Query{StudyDate: "-20240105"}, []string{"1", "3"}},
		{"modalities in study", Query{ModalitiesInStudy: []string{"SR"}}, []string{"1"}},
		{"modalities in study list", Query{ModalitiesInStudy: []string{"MR", "CR"}}, []string{"2", "3"}},
		{"study uid list", Query{StudyInstanceUID: []string{"3", "1"}}, []string{"1", "3"}},
		{"accession", Query{AccessionNumber: "ACC2"}, []string{"2"}},
		{"limit", Query{Limit: 2}, []string{"2", "1"}},
		{"offset", Query{Offset: 1}, []string{"1", "3"}},
		{"limit offset", Query{Limit: 1, Offset: 2}, []string{"3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.SearchStudies(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(studyUIDs(got), c.want) {
				t.Errorf("got %v, want %v", studyUIDs(got), c.want)
			}
		})
	}

	// Aggregates count all instances of the study, not only the matching.
	got, err := s.SearchStudies(ctx, Query{ModalitiesInStudy: []string{"SR"}})
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	want := Study{StudyInstanceUID: "1", PatientID: "P1", PatientName: "Doe^John", StudyDate: "20240105", StudyTime: "101010",
		AccessionNumber: "ACC1", ModalitiesInStudy: []string{"CT", "SR"}, NumberOfSeries: 2, NumberOfInstances: 3}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("study row %+v, want %+v", got[0], want)
	}

	for _, bad := range []string{"2024", "20240230", "20240105-20240101", "-", "abcdefgh", "20240101-2024"} {
		if _, err := s.SearchStudies(ctx, Query{StudyDate: bad}); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("StudyDate %q: err %v, want ErrInvalidQuery", bad, err)
		}
	}
	if _, err := s.SearchStudies(ctx, Query{Limit: -1}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("negative limit: %v", err)
	}
}

func TestSearchSeriesAndInstances(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	series, err := s.SearchSeries(ctx, Query{StudyInstanceUID: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 2 || series[0].SeriesInstanceUID != "1.1" || series[0].NumberOfInstances != 2 ||
		*series[0].SeriesNumber != 1 || series[1].SeriesInstanceUID != "1.2" || series[1].Modality != "SR" ||
		series[1].NumberOfInstances != 1 || series[0].PatientID != "P1" {
		t.Errorf("series %+v", series)
	}
	series, err = s.SearchSeries(ctx, Query{Modality: []string{"MR"}})
	if err != nil || len(series) != 1 || series[0].SeriesInstanceUID != "2.1" {
		t.Errorf("series by modality %+v %v", series, err)
	}

	inst, err := s.SearchInstances(ctx, Query{SeriesInstanceUID: []string{"1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	// ordered by Instance Number
	if len(inst) != 2 || inst[0].SOPInstanceUID != "1.1.2" || inst[1].SOPInstanceUID != "1.1.1" {
		t.Errorf("instances %+v", inst)
	}
	inst, err = s.SearchInstances(ctx, Query{PatientName: "smi", FuzzyMatching: true})
	if err != nil || len(inst) != 1 || inst[0].SOPInstanceUID != "3.1.1" || inst[0].Source != SourceSTOW || inst[0].BlobKey != "k/3.1.1" {
		t.Errorf("fuzzy instances %+v %v", inst, err)
	}
}

func TestInsertInstanceIdempotentAndRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	in := Instance{SOPInstanceUID: "1.2.3", SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.9",
		TransferSyntaxUID: "1.2.840.10008.1.2.1", PatientName: "Doe^John", CallingAE: "MODALITY1", Source: SourceDIMSE, Size: 530638,
		SHA256: "abc", BlobKey: "aa/bb/x.dcm", InstanceNumber: ip(7), ReceivedAt: time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)}
	for i, wantCreated := range []bool{true, false} {
		var created bool
		err := s.InTx(ctx, func(tx *sql.Tx) (err error) {
			c := in
			created, err = s.InsertInstanceTx(ctx, tx, &c)
			return err
		})
		if err != nil || created != wantCreated {
			t.Fatalf("insert %d: created %v err %v", i, created, err)
		}
	}
	got, err := s.GetInstance(ctx, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	in.ReceivedAt = in.ReceivedAt.Truncate(time.Microsecond)
	if !reflect.DeepEqual(*got, in) {
		t.Errorf("round trip\n got %+v\nwant %+v", *got, in)
	}
	if _, err := s.GetInstance(ctx, "9.9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if ok, err := s.HasInstance(ctx, "1.2.3"); !ok || err != nil {
		t.Errorf("HasInstance %v %v", ok, err)
	}

	// Rolled back: no row.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		c := in
		c.SOPInstanceUID = "1.2.4"
		if _, err := s.InsertInstanceTx(ctx, tx, &c); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if ok, _ := s.HasInstance(ctx, "1.2.4"); ok {
		t.Error("rolled-back row is visible")
	}
}

func TestReopenKeepsData(t *testing.T) {
	// Characters that end or escape a URI path must not change the file.
	dir := filepath.Join(t.TempDir(), "a#b?c%41 d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "radflow.db")
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path, testSQLiteOptions())
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, s)
	var mode string
	var sync int
	if err := s.WriteDB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q %v", mode, err)
	}
	if err := s.WriteDB().QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous %d %v, want 2 (FULL)", sync, err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at its path: %v", err)
	}
	s, err = OpenSQLite(ctx, path, testSQLiteOptions()) // migrations run again: no-op
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.SearchStudies(ctx, Query{})
	if err != nil || len(st) != 3 {
		t.Errorf("after reopen: %d studies, %v", len(st), err)
	}
}

func TestResultsLifecycle(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	k := ResultKey{SOPInstanceUID: "1.1.1", Model: "chest", Version: "1.0.0"}
	if err := s.MarkRunning(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRunning without a row: %v", err)
	}
	for range 2 { // queueing twice keeps one row
		if err := s.InTx(ctx, func(tx *sql.Tx) error { return s.QueueResultTx(ctx, tx, k, "1") }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkRunning(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordError(ctx, k, "transient", false); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetResult(ctx, k)
	if err != nil || r.Status != StatusQueued || r.Error != "transient" || r.Attempts != 1 || r.StudyInstanceUID != "1" {
		t.Fatalf("after retryable error: %+v %v", r, err)
	}
	done := &Result{SOPInstanceUID: k.SOPInstanceUID, Model: k.Model, Version: k.Version, Label: "pneumonia",
		Probabilities: map[string]float64{"normal": 0.25, "pneumonia": 0.75}, Timings: map[string]float64{"infer": 12.5},
		SRSOPInstanceUID: "2.25.1"}
	for range 2 { // a handler that runs twice
		if err := s.MarkRunning(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteResult(ctx, done); err != nil {
			t.Fatal(err)
		}
	}
	// A late failure of a duplicate run does not undo done.
	if err := s.RecordError(ctx, k, "late", true); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListResults(ctx, "", "1")
	if err != nil || len(list) != 1 {
		t.Fatalf("results of study 1: %+v %v", list, err)
	}
	r = &list[0]
	if r.Status != StatusDone || r.Label != "pneumonia" || r.Probabilities["pneumonia"] != 0.75 || r.Probabilities["normal"] != 0.25 ||
		r.Timings["infer"] != 12.5 || r.Error != "" || r.SRSOPInstanceUID != "2.25.1" || r.Attempts != 2 {
		t.Errorf("done result %+v", r)
	}
	// CompleteResult without a queued row creates one, study UID looked up.
	k2 := ResultKey{SOPInstanceUID: "2.1.1", Model: "chest", Version: "1.0.0"}
	if err := s.CompleteResult(ctx, &Result{SOPInstanceUID: k2.SOPInstanceUID, Model: k2.Model, Version: k2.Version, Label: "normal"}); err != nil {
		t.Fatal(err)
	}
	r, err = s.GetResult(ctx, k2)
	if err != nil || r.StudyInstanceUID != "2" || r.Status != StatusDone || len(r.Probabilities) != 0 {
		t.Errorf("created done result %+v %v", r, err)
	}
	if _, err := s.ListResults(ctx, "", ""); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("ListResults without keys: %v", err)
	}
	// Final failure.
	k3 := ResultKey{SOPInstanceUID: "3.1.1", Model: "chest", Version: "1.0.0"}
	if err := s.InTx(ctx, func(tx *sql.Tx) error { return s.QueueResultTx(ctx, tx, k3, "3") }); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordError(ctx, k3, "unsupported photometric interpretation", true); err != nil {
		t.Fatal(err)
	}
	r, _ = s.GetResult(ctx, k3)
	if r.Status != StatusFailed || r.Error != "unsupported photometric interpretation" {
		t.Errorf("failed result %+v", r)
	}
}

func TestFSBlobStore(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(filepath.Join(t.TempDir(), "blobs"), FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	key := InstanceBlobKey("1.2.3", at)
	// sha256("1.2.3") from Python hashlib; directory by UTC minute.
	const uidHashFull = "c47f5b18b8a430e698b9fe15e51f6119984e78334bcf3f45e210d30c37ef2f9e"
	if key2 := InstanceBlobKey("1.2.3", at); key2 == key || key2[:78] != key[:78] {
		t.Errorf("keys %q %q: want same prefix, different nonce", key, key2)
	}
	if !strings.HasPrefix(key, "20260304/0406/"+uidHashFull) || !strings.HasSuffix(key, ".dcm") || len(key) != 14+64+1+16+4 {
		t.Errorf("key %q", key)
	}
	data := bytes.Repeat([]byte("DICM"), 1000)
	info, err := b.Put(ctx, key, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "DICM"×1000, computed independently with Python hashlib.
	if info.Size != 4000 || info.SHA256 != "6c8dad9a483a8ef6c20d41c782c4579d6e20a8865596688d832d6434939cea46" {
		t.Errorf("info %+v", info)
	}
	if !bytes.Equal(readBlob(ctx, t, b, key), data) {
		t.Error("read back differs")
	}
	if st, err := b.Stat(ctx, key); err != nil || st.Size != 4000 {
		t.Errorf("stat %+v %v", st, err)
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Join(b.Root(), "20260304", "0406"))
	if len(ents) != 1 {
		t.Errorf("directory has %d entries, want 1", len(ents))
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("open deleted: %v", err)
	}
	if err := b.Delete(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete deleted: %v", err)
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a\\b", "a//b", "a/.tmp-1", "."} {
		if _, err := b.Put(ctx, bad, bytes.NewReader(nil)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", bad, err)
		}
	}
	// PutNew + SyncDirs: same bytes, directory synced once per key set.
	k1, k2 := InstanceBlobKey("1.2.3", at), InstanceBlobKey("1.2.4", at)
	for _, k := range []string{k1, k2} {
		if _, err := b.PutNew(ctx, k, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.PutNew(ctx, k1, bytes.NewReader(data)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("PutNew over an existing key: %v", err)
	}
	if err := b.SyncDirs(ctx, k1, k2); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Stat(ctx, k2); err != nil || st.Size != 4000 {
		t.Errorf("stat after PutNew %+v %v", st, err)
	}
	if err := b.SyncDirs(ctx, "../x"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("SyncDirs(../x): %v", err)
	}
	// A cancelled Put leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Put(cctx, "x/y.dcm", bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled put: %v", err)
	}
	ents, _ = os.ReadDir(filepath.Join(b.Root(), "x"))
	if len(ents) != 0 {
		t.Errorf("cancelled put left %d files", len(ents))
	}
}

// xorCodec is a stand-in for encryption: it flips every byte.
type xorCodec struct{}

type xorWriter struct{ w io.Writer }

func (x xorWriter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, c := range p {
		q[i] = c ^ 0xFF
	}
	return x.w.Write(q)
}
func (x xorWriter) Close() error { return nil }

type xorReader struct{ r io.Reader }

func (x xorReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	for i := range p[:n] {
		p[i] ^= 0xFF
	}
	return n, err
}

func (xorCodec) Encode(w io.Writer) (io.WriteCloser, error) { return xorWriter{w}, nil }
func (xorCodec) Decode(r io.Reader) (io.Reader, error)      { return xorReader{r}, nil }

func TestFSCodecSeam(t *testing.T) {
	ctx := context.Background()
	b, err := NewFS(t.TempDir(), FSOptions{Codec: xorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("plain DICOM bytes")
	if _, err := b.Put(ctx, "a/b.dcm", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(b.Root(), "a", "b.dcm"))
	if raw[0] != 'p'^0xFF || bytes.Contains(raw, []byte("DICOM")) {
		t.Errorf("stored bytes not encoded: %q", raw)
	}
	rc, _ := b.Open(ctx, "a/b.dcm")
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("decoded %q", got)
	}
}

func TestCheckFree(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil || free == 0 {
		t.Fatalf("free %d %v", free, err)
	}
	if err := CheckFree(dir, 1); err != nil {
		t.Errorf("1 byte watermark: %v", err)
	}
	if err := CheckFree(dir, free*1000+1<<60); !errors.Is(err, ErrStorageFull) {
		t.Errorf("huge watermark: %v", err)
	}
	if err := CheckFree(dir, 0); err != nil {
		t.Errorf("disabled: %v", err)
	}
}

func TestNameWords(t *testing.T) {
	got := []string{nameWords("Doe^John^^^"), nameWords("Yamada^Tarou=山田^太郎"), nameWords("")}
	want := []string{" doe john ", " yamada tarou 山田 太郎 ", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q", got)
	}
	if x := wildcardToLike("a*b?c%d_e\\"); x != `a%b_c\%d\_e\\` {
		t.Errorf("%q", x)
	}
}
