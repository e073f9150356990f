package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

const instanceColumns = `sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid,
	transfer_syntax_uid, patient_id, patient_name, study_date, study_time, accession_number,
	study_description, series_description, modality, body_part_examined, series_number,
	instance_number, calling_ae, source, size, sha256, blob_key, received_at`

// phiColumns follow instanceColumns in instance SELECTs (see phi.go).
const phiColumns = `, patient_birth_date, patient_id_enc, patient_name_enc, accession_number_enc, patient_birth_date_enc`

// InsertInstanceTx implements InstanceStore.
func (s *SQLite) InsertInstanceTx(ctx context.Context, tx *sql.Tx, in *Instance) (bool, error) {
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	in.ReceivedAt = in.ReceivedAt.UTC().Truncate(time.Microsecond)
	// With a PHI cipher the plaintext PHI columns stay '' (phi.go).
	pid, pname, acc, birth, words := in.PatientID, in.PatientName, in.AccessionNumber, in.PatientBirthDate, nameWords(in.PatientName)
	var enc phiRow
	if s.phi != nil {
		var err error
		if enc, err = s.sealPHI(in); err != nil {
			return false, err
		}
		pid, pname, acc, birth, words = "", "", "", "", ""
	}
	res, err := tx.StmtContext(ctx, s.stmts.insertInstance).ExecContext(ctx,
		in.SOPInstanceUID, in.SOPClassUID, in.StudyInstanceUID, in.SeriesInstanceUID,
		in.TransferSyntaxUID, pid, pname, in.StudyDate, in.StudyTime, acc,
		in.StudyDescription, in.SeriesDescription, in.Modality, in.BodyPartExamined, nullInt(in.SeriesNumber),
		nullInt(in.InstanceNumber), in.CallingAE, string(in.Source), in.Size, in.SHA256, in.BlobKey,
		formatTime(in.ReceivedAt), words,
		birth, enc.idEnc, enc.nameEnc, enc.accEnc, enc.birthEnc, enc.idIdx, enc.nameIdx, enc.accIdx)
	if err != nil {
		return false, fmt.Errorf("store: inserting instance: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: inserting instance: %w", err)
	}
	if n == 1 && s.phi != nil {
		if err := s.insertTerms(ctx, tx, in, enc); err != nil {
			return false, err
		}
	}
	return n == 1, nil
}

// GetInstance implements InstanceStore.
func (s *SQLite) GetInstance(ctx context.Context, uid string) (*Instance, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+instanceColumns+phiColumns+` FROM instances WHERE sop_instance_uid = ?`, uid)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	out, err := s.scanInstances(rows)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return &out[0], nil
}

// HasInstance implements InstanceStore.
func (s *SQLite) HasInstance(ctx context.Context, uid string) (bool, error) {
	var n int
	if err := s.stmts.hasInstance.QueryRowContext(ctx, uid).Scan(&n); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return n > 0, nil
}

// SearchInstances implements InstanceStore.
func (s *SQLite) SearchInstances(ctx context.Context, q Query) ([]Instance, error) {
	var w where
	if err := w.instanceLevel(q); err != nil {
		return nil, err
	}
	if err := s.studyLevel(ctx, &w, q); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+instanceColumns+phiColumns+` FROM instances`+w.sql()+
		` ORDER BY study_instance_uid, series_instance_uid, instance_number, sop_instance_uid`+page(q), w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s.scanInstances(rows)
}

// SearchSeries implements InstanceStore.
func (s *SQLite) SearchSeries(ctx context.Context, q Query) ([]Series, error) {
	var w where
	if err := s.studyLevel(ctx, &w, q); err != nil {
		return nil, err
	}
	w.in("series_instance_uid", q.SeriesInstanceUID)
	w.in("modality", q.Modality)
	rows, err := s.read.QueryContext(ctx, `SELECT study_instance_uid, series_instance_uid, max(modality),
		max(series_description), max(series_number), max(body_part_examined), max(patient_id),
		max(patient_name), max(study_date), max(study_time), max(accession_number),
		max(study_description), count(*), max(sop_instance_uid)
		FROM instances WHERE series_instance_uid IN (SELECT series_instance_uid FROM instances`+w.sql()+`)
		GROUP BY study_instance_uid, series_instance_uid
		ORDER BY study_instance_uid, max(series_number), series_instance_uid`+page(q), w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []Series
	var reps []string
	for rows.Next() {
		var r Series
		var num sql.NullInt64
		var rep string
		if err := rows.Scan(&r.StudyInstanceUID, &r.SeriesInstanceUID, &r.Modality, &r.SeriesDescription, &num,
			&r.BodyPartExamined, &r.PatientID, &r.PatientName, &r.StudyDate, &r.StudyTime, &r.AccessionNumber,
			&r.StudyDescription, &r.NumberOfInstances, &rep); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		r.SeriesNumber = intPtr(num)
		out = append(out, r)
		reps = append(reps, rep)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	err = s.representativePHI(ctx, reps, func(i int, in *Instance) {
		out[i].PatientID, out[i].PatientName, out[i].AccessionNumber = in.PatientID, in.PatientName, in.AccessionNumber
	})
	return out, err
}

// SearchStudies implements InstanceStore.
func (s *SQLite) SearchStudies(ctx context.Context, q Query) ([]Study, error) {
	var w where
	if err := s.studyLevel(ctx, &w, q); err != nil {
		return nil, err
	}
	if len(q.ModalitiesInStudy) > 0 {
		var m where
		m.in("modality", q.ModalitiesInStudy)
		w.add(`study_instance_uid IN (SELECT study_instance_uid FROM instances`+m.sql()+`)`, m.args...)
	}
	// Aggregates run over all the study's instances, not only the matching ones.
	rows, err := s.read.QueryContext(ctx, `SELECT study_instance_uid, max(patient_id), max(patient_name),
		max(study_date), max(study_time), max(accession_number), max(study_description),
		count(DISTINCT series_instance_uid), count(*), max(sop_instance_uid)
		FROM instances WHERE study_instance_uid IN (SELECT study_instance_uid FROM instances`+w.sql()+`)
		GROUP BY study_instance_uid
		ORDER BY max(study_date) DESC, max(study_time) DESC, study_instance_uid`+page(q), w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var out []Study
	var reps []string
	for rows.Next() {
		var r Study
		var rep string
		if err := rows.Scan(&r.StudyInstanceUID, &r.PatientID, &r.PatientName, &r.StudyDate, &r.StudyTime,
			&r.AccessionNumber, &r.StudyDescription, &r.NumberOfSeries, &r.NumberOfInstances, &rep); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, r)
		reps = append(reps, rep)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	err = s.representativePHI(ctx, reps, func(i int, in *Instance) {
		out[i].PatientID, out[i].PatientName, out[i].AccessionNumber = in.PatientID, in.PatientName, in.AccessionNumber
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	// Modalities of the returned studies, in one query.
	var m where
	uids := make([]string, len(out))
	for i := range out {
		uids[i] = out[i].StudyInstanceUID
	}
	m.in("study_instance_uid", uids)
	m.add("modality <> ''")
	mrows, err := s.read.QueryContext(ctx, `SELECT DISTINCT study_instance_uid, modality FROM instances`+m.sql(), m.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer mrows.Close()
	idx := make(map[string]int, len(out))
	for i := range out {
		idx[out[i].StudyInstanceUID] = i
	}
	for mrows.Next() {
		var study, mod string
		if err := mrows.Scan(&study, &mod); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if i, ok := idx[study]; ok {
			out[i].ModalitiesInStudy = append(out[i].ModalitiesInStudy, mod)
		}
	}
	if err := mrows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for i := range out {
		sort.Strings(out[i].ModalitiesInStudy)
	}
	return out, nil
}

// scanInstances reads rows of instanceColumns+phiColumns, decrypting PHI.
func (s *SQLite) scanInstances(rows *sql.Rows) ([]Instance, error) {
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var in Instance
		var series, inst sql.NullInt64
		var src, received string
		var idEnc, nameEnc, accEnc, birthEnc []byte
		if err := rows.Scan(&in.SOPInstanceUID, &in.SOPClassUID, &in.StudyInstanceUID, &in.SeriesInstanceUID,
			&in.TransferSyntaxUID, &in.PatientID, &in.PatientName, &in.StudyDate, &in.StudyTime, &in.AccessionNumber,
			&in.StudyDescription, &in.SeriesDescription, &in.Modality, &in.BodyPartExamined, &series,
			&inst, &in.CallingAE, &src, &in.Size, &in.SHA256, &in.BlobKey, &received,
			&in.PatientBirthDate, &idEnc, &nameEnc, &accEnc, &birthEnc); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if err := s.openPHI(&in, idEnc, nameEnc, accEnc, birthEnc); err != nil {
			return nil, err
		}
		in.Source = Source(src)
		in.SeriesNumber, in.InstanceNumber = intPtr(series), intPtr(inst)
		t, err := parseTime(received)
		if err != nil {
			return nil, err
		}
		in.ReceivedAt = t
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// where accumulates AND-ed conditions with ? placeholders (a PostgreSQL
// implementation rewrites them to $n).
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func (w *where) in(col string, vals []string) {
	if len(vals) == 0 {
		return
	}
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	w.add(col+" IN ("+ph+")", args...)
}

// match adds single value matching with PS3.4 wildcards.
func (w *where) match(col, val string) {
	if val == "" {
		return
	}
	if strings.ContainsAny(val, "*?") {
		w.add(col+` LIKE ? ESCAPE '\'`, wildcardToLike(val))
		return
	}
	w.add(col+" = ?", val)
}

// studyLevel adds the study-level keys; PHI keys go through blind
// indexes when the PHI columns are encrypted (phi.go).
func (s *SQLite) studyLevel(ctx context.Context, w *where, q Query) error {
	if q.Limit < 0 || q.Offset < 0 {
		return fmt.Errorf("%w: negative limit or offset", ErrInvalidQuery)
	}
	w.in("study_instance_uid", q.StudyInstanceUID)
	if s.phi != nil {
		if err := s.matchPHI(ctx, w, fieldPatientID, "patient_id_bidx", q.PatientID); err != nil {
			return err
		}
		if err := s.matchPHI(ctx, w, fieldAccessionNumber, "accession_number_bidx", q.AccessionNumber); err != nil {
			return err
		}
		if q.FuzzyMatching {
			if err := s.fuzzyName(ctx, w, q.PatientName); err != nil {
				return err
			}
		} else if err := s.matchPHI(ctx, w, fieldPatientName, "patient_name_bidx", q.PatientName); err != nil {
			return err
		}
	} else {
		w.match("patient_id", q.PatientID)
		w.match("accession_number", q.AccessionNumber)
	}
	if q.PatientName != "" && s.phi == nil {
		if q.FuzzyMatching {
			for _, word := range strings.Fields(strings.NewReplacer("^", " ", "=", " ").Replace(strings.ToLower(q.PatientName))) {
				w.add(`patient_name_words LIKE ? ESCAPE '\'`, "% "+wildcardToLike(word)+"%")
			}
		} else {
			w.match("patient_name", q.PatientName)
		}
	}
	if q.StudyDate != "" {
		lo, hi, err := dateRange(q.StudyDate)
		if err != nil {
			return err
		}
		switch {
		case lo == hi:
			w.add("study_date = ?", lo)
		default:
			if lo != "" {
				w.add("study_date >= ?", lo)
			}
			if hi != "" {
				w.add("study_date <> '' AND study_date <= ?", hi)
			}
		}
	}
	return nil
}

func (w *where) instanceLevel(q Query) error {
	w.in("series_instance_uid", q.SeriesInstanceUID)
	w.in("sop_instance_uid", q.SOPInstanceUID)
	w.in("modality", q.Modality)
	return nil
}

func page(q Query) string {
	if q.Limit == 0 && q.Offset == 0 {
		return ""
	}
	limit := q.Limit
	if limit == 0 {
		limit = math.MaxInt64 // no limit, in SQL both SQLite and PostgreSQL accept
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, q.Offset)
}

// dateRange parses a DA range (PS3.4 C.2.2.2.5) into inclusive bounds;
// an open end is "".
func dateRange(v string) (lo, hi string, err error) {
	a, b, isRange := strings.Cut(v, "-")
	if !isRange {
		if !isDate(a) {
			return "", "", fmt.Errorf("%w: StudyDate %q is not YYYYMMDD", ErrInvalidQuery, v)
		}
		return a, a, nil
	}
	if (a == "" && b == "") || (a != "" && !isDate(a)) || (b != "" && !isDate(b)) {
		return "", "", fmt.Errorf("%w: StudyDate range %q is not YYYYMMDD-YYYYMMDD", ErrInvalidQuery, v)
	}
	if a != "" && b != "" && a > b {
		return "", "", fmt.Errorf("%w: StudyDate range %q ends before it starts", ErrInvalidQuery, v)
	}
	if a == "" && b != "" {
		return "", b, nil
	}
	if a != "" && b == "" {
		return a, "", nil
	}
	if a == b {
		return a, a, nil
	}
	return a, b, nil
}

func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// wildcardToLike turns a PS3.4 wildcard value into a LIKE pattern with \ as
// the escape character.
func wildcardToLike(v string) string {
	var b strings.Builder
	for _, c := range v {
		switch c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// nameWords returns the lowercased components and words of a PN value
// (alphabetic, ideographic and phonetic groups), space separated, with a
// leading and trailing space: "Doe^John" → " doe john ".
func nameWords(pn string) string {
	f := strings.Fields(strings.NewReplacer("^", " ", "=", " ").Replace(strings.ToLower(pn)))
	if len(f) == 0 {
		return ""
	}
	return " " + strings.Join(f, " ") + " "
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func intPtr(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// BlobKeysWithPrefix returns the blob keys instance rows reference that
// start with prefix (non-empty), in key order, through the blob_key index
// (store.FS.SweepPacks asks for a pack's regions). errors: database
// errors.
func (s *SQLite) BlobKeysWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	if prefix == "" {
		return nil, fmt.Errorf("store: empty blob key prefix")
	}
	// Every key with the prefix sorts in [prefix, prefix with its last
	// byte incremented) (BINARY collation); the ASCII prefixes used here
	// never end in 0xFF.
	upper := prefix[:len(prefix)-1] + string(rune(prefix[len(prefix)-1]+1))
	rows, err := s.read.QueryContext(ctx, `SELECT blob_key FROM instances WHERE blob_key >= ? AND blob_key < ? ORDER BY blob_key`, prefix, upper)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return keys, nil
}

// HasBlobKey reports whether an instance row references the blob key.
func (s *SQLite) HasBlobKey(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM instances WHERE blob_key = ?`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return n > 0, nil
}
