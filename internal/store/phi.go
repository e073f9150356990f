package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// PHICipher encrypts the PHI columns of the instances table and computes
// their blind indexes (package keys' *PHICipher implements it).
type PHICipher interface {
	// Encrypt seals value for field with a random nonce, bound to aad.
	Encrypt(field, value, aad string) ([]byte, error)
	// Decrypt opens a ciphertext from Encrypt with the same field and aad;
	// errors: an integrity error when it was modified or moved.
	Decrypt(field string, ciphertext []byte, aad string) (string, error)
	// BlindIndex returns a keyed hash (fixed-length text) of value for field.
	BlindIndex(field, value string) string
}

// FuzzyIndex says how fuzzy Patient's Name matching works when PHI is
// encrypted (see docs/security.md, "Fuzzy Patient's Name matching:
// phi_fuzzy_index", for the trade-off).
type FuzzyIndex string

const (
	// FuzzyNone keeps no name-prefix index: a fuzzy (or wildcard) query
	// decrypts every distinct value of the field once and matches in the
	// application. Leaks nothing beyond equality of whole values; costs a
	// scan of the distinct values per query.
	FuzzyNone FuzzyIndex = "none"
	// FuzzyPrefix keeps HMAC tokens of each lowercased name word's
	// prefixes (up to MaxPrefixRunes): fuzzy queries without wildcards are
	// index lookups. Leaks which names share a word prefix, and each
	// name's word count and lengths (up to MaxPrefixRunes).
	FuzzyPrefix FuzzyIndex = "prefix"
)

// MaxPrefixRunes is the longest name-word prefix indexed by FuzzyPrefix;
// longer query words fall back to decrypting the distinct names.
const MaxPrefixRunes = 16

// ErrPHIKey: the database's PHI columns are encrypted and no PHI cipher
// was given, or the cipher's key is not the one they were written with.
var ErrPHIKey = errors.New("store: PHI key missing or not the database's")

// PHI field names (the Encrypt/BlindIndex field argument).
const (
	fieldPatientID       = "patient_id"
	fieldPatientName     = "patient_name"
	fieldAccessionNumber = "accession_number"
	fieldBirthDate       = "patient_birth_date"
	fieldNamePrefix      = "patient_name_prefix"
)

// phiRow holds one instance's encrypted PHI columns (nil: NULL).
type phiRow struct {
	idEnc, nameEnc, accEnc, birthEnc []byte
	idIdx, nameIdx, accIdx           any
}

// sealPHI encrypts in's PHI for the row (aad: its SOP Instance UID).
func (s *SQLite) sealPHI(in *Instance) (phiRow, error) {
	var r phiRow
	var err error
	for _, f := range []struct {
		field, v string
		dst      *[]byte
	}{
		{fieldPatientID, in.PatientID, &r.idEnc},
		{fieldPatientName, in.PatientName, &r.nameEnc},
		{fieldAccessionNumber, in.AccessionNumber, &r.accEnc},
		{fieldBirthDate, in.PatientBirthDate, &r.birthEnc},
	} {
		if *f.dst, err = s.phi.Encrypt(f.field, f.v, in.SOPInstanceUID); err != nil {
			return r, fmt.Errorf("store: encrypting %s: %w", f.field, err)
		}
	}
	r.idIdx = s.phi.BlindIndex(fieldPatientID, in.PatientID)
	r.nameIdx = s.phi.BlindIndex(fieldPatientName, in.PatientName)
	r.accIdx = s.phi.BlindIndex(fieldAccessionNumber, in.AccessionNumber)
	return r, nil
}

// insertTerms records the distinct values of the matchable fields (and,
// with FuzzyPrefix, a new name's prefix tokens).
func (s *SQLite) insertTerms(ctx context.Context, tx *sql.Tx, in *Instance, r phiRow) error {
	ins := tx.StmtContext(ctx, s.stmts.insertTerm)
	for _, f := range []struct {
		field, v string
		idx      any
	}{
		{fieldPatientID, in.PatientID, r.idIdx},
		{fieldPatientName, in.PatientName, r.nameIdx},
		{fieldAccessionNumber, in.AccessionNumber, r.accIdx},
	} {
		bidx := f.idx.(string)
		enc, err := s.phi.Encrypt(f.field, f.v, bidx)
		if err != nil {
			return fmt.Errorf("store: encrypting %s: %w", f.field, err)
		}
		res, err := ins.ExecContext(ctx, f.field, bidx, enc)
		if err != nil {
			return fmt.Errorf("store: inserting PHI term: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 && f.field == fieldPatientName && s.fuzzy == FuzzyPrefix {
			if err := s.insertPrefixes(ctx, tx, bidx, f.v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *SQLite) insertPrefixes(ctx context.Context, tx *sql.Tx, nameBidx, name string) error {
	ins := tx.StmtContext(ctx, s.stmts.insertPrefix)
	for _, tok := range s.prefixTokens(name) {
		if _, err := ins.ExecContext(ctx, tok, nameBidx); err != nil {
			return fmt.Errorf("store: inserting name prefix: %w", err)
		}
	}
	return nil
}

// prefixTokens returns the blind indexes of every prefix (1 to
// MaxPrefixRunes characters) of every word of nameWords(name), distinct.
func (s *SQLite) prefixTokens(name string) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range strings.Fields(nameWords(name)) {
		rs := []rune(w)
		for i := 1; i <= len(rs) && i <= MaxPrefixRunes; i++ {
			p := string(rs[:i])
			if !seen[p] {
				seen[p] = true
				out = append(out, s.phi.BlindIndex(fieldNamePrefix, p))
			}
		}
	}
	return out
}

// openPHI decrypts a row's PHI into in (a NULL column keeps the plaintext
// column's value: rows written without encryption).
func (s *SQLite) openPHI(in *Instance, idEnc, nameEnc, accEnc, birthEnc []byte) error {
	for _, f := range []struct {
		field string
		enc   []byte
		dst   *string
	}{
		{fieldPatientID, idEnc, &in.PatientID},
		{fieldPatientName, nameEnc, &in.PatientName},
		{fieldAccessionNumber, accEnc, &in.AccessionNumber},
		{fieldBirthDate, birthEnc, &in.PatientBirthDate},
	} {
		if f.enc == nil {
			continue
		}
		if s.phi == nil {
			return ErrPHIKey
		}
		v, err := s.phi.Decrypt(f.field, f.enc, in.SOPInstanceUID)
		if err != nil {
			return fmt.Errorf("store: decrypting %s of %s: %w", f.field, in.SOPInstanceUID, err)
		}
		*f.dst = v
	}
	return nil
}

// representativePHI fills the PHI of aggregated rows (studies, series)
// from one representative instance each (max SOP Instance UID), since
// each row's ciphertext is bound to its own instance.
func (s *SQLite) representativePHI(ctx context.Context, reps []string, set func(i int, in *Instance)) error {
	if s.phi == nil || len(reps) == 0 {
		return nil
	}
	list, _ := json.Marshal(reps)
	rows, err := s.read.QueryContext(ctx, `SELECT sop_instance_uid, patient_id, patient_name, accession_number,
		patient_id_enc, patient_name_enc, accession_number_enc FROM instances
		WHERE sop_instance_uid IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	byUID := map[string]*Instance{}
	for rows.Next() {
		in := &Instance{}
		var a, b, c []byte
		if err := rows.Scan(&in.SOPInstanceUID, &in.PatientID, &in.PatientName, &in.AccessionNumber, &a, &b, &c); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := s.openPHI(in, a, b, c, nil); err != nil {
			return err
		}
		byUID[in.SOPInstanceUID] = in
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for i, uid := range reps {
		if in, ok := byUID[uid]; ok {
			set(i, in)
		}
	}
	return nil
}

// matchPHI adds the condition for one encrypted single-value key: a blind
// index lookup, or for wildcards the blind indexes of the distinct values
// that match (each decrypted once).
func (s *SQLite) matchPHI(ctx context.Context, w *where, field, col, val string) error {
	if val == "" {
		return nil
	}
	if !strings.ContainsAny(val, "*?") {
		w.add(col+" = ?", s.phi.BlindIndex(field, val))
		return nil
	}
	pat := wildcardToLike(val)
	idx, err := s.scanTerms(ctx, field, func(v string) bool { return likeMatch(pat, v) })
	if err != nil {
		return err
	}
	w.inJSON(col, idx)
	return nil
}

// fuzzyName adds fuzzy Patient's Name matching under encryption (the same
// semantics as the plaintext LIKE on patient_name_words).
func (s *SQLite) fuzzyName(ctx context.Context, w *where, val string) error {
	words := strings.Fields(strings.NewReplacer("^", " ", "=", " ").Replace(strings.ToLower(val)))
	if len(words) == 0 {
		return nil
	}
	indexed := s.fuzzy == FuzzyPrefix
	for _, word := range words {
		if strings.ContainsAny(word, "*?") || utf8.RuneCountInString(word) > MaxPrefixRunes {
			indexed = false
		}
	}
	if indexed {
		for _, word := range words {
			w.add(`patient_name_bidx IN (SELECT name_bidx FROM phi_name_prefixes WHERE token = ?)`,
				s.phi.BlindIndex(fieldNamePrefix, word))
		}
		return nil
	}
	pats := make([]string, len(words))
	for i, word := range words {
		pats[i] = "% " + wildcardToLike(word) + "%"
	}
	idx, err := s.scanTerms(ctx, fieldPatientName, func(v string) bool {
		nw := nameWords(v)
		for _, p := range pats {
			if !likeMatch(p, nw) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	w.inJSON("patient_name_bidx", idx)
	return nil
}

// scanTerms decrypts every distinct value of field and returns the blind
// indexes of those match accepts.
func (s *SQLite) scanTerms(ctx context.Context, field string, match func(string) bool) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT bidx, enc FROM phi_terms WHERE field = ?`, field)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var bidx string
		var enc []byte
		if err := rows.Scan(&bidx, &enc); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		v, err := s.phi.Decrypt(field, enc, bidx)
		if err != nil {
			return nil, fmt.Errorf("store: decrypting a %s term: %w", field, err)
		}
		if match(v) {
			out = append(out, bidx)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// inJSON adds "col IN (list)" with the list passed as one JSON array
// parameter (no limit on its length; PostgreSQL: col = ANY($n)).
func (w *where) inJSON(col string, vals []string) {
	if len(vals) == 0 {
		w.add("1 = 0")
		return
	}
	b, _ := json.Marshal(vals)
	w.add(col+" IN (SELECT value FROM json_each(?))", string(b))
}

// likeMatch reports whether s matches the LIKE pattern p (% any run, _ one
// character, \ escapes), case sensitively, as SQLite's LIKE with
// case_sensitive_like does.
func likeMatch(p, s string) bool {
	type tok struct {
		kind byte // 'l' literal, '_' one, '%' any run
		r    rune
	}
	var pat []tok
	for rs, i := []rune(p), 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case c == '\\' && i+1 < len(rs):
			i++
			pat = append(pat, tok{'l', rs[i]})
		case c == '%' || c == '_':
			pat = append(pat, tok{byte(c), 0})
		default:
			pat = append(pat, tok{'l', c})
		}
	}
	str := []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pat) && (pat[pi].kind == '_' || pat[pi].kind == 'l' && pat[pi].r == str[si]):
			pi++
			si++
		case pi < len(pat) && pat[pi].kind == '%':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi].kind == '%' {
		pi++
	}
	return pi == len(pat)
}

// setupPHI runs at open: it refuses encrypted data without the key (or
// with another key), encrypts rows written before encryption was switched
// on, and builds or drops the name-prefix tokens for the fuzzy mode.
func (s *SQLite) setupPHI(ctx context.Context) error {
	if s.phi == nil {
		var n int
		if err := s.write.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM instances
			WHERE patient_name_bidx IS NOT NULL LIMIT 1) AS t`).Scan(&n); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: the database holds encrypted PHI; open it with the PHI key", ErrPHIKey)
		}
		return nil
	}
	if s.fuzzy == "" {
		s.fuzzy = FuzzyNone
	}
	if s.fuzzy != FuzzyNone && s.fuzzy != FuzzyPrefix {
		return fmt.Errorf("store: phi_fuzzy_index %q: want none or prefix", s.fuzzy)
	}
	check := s.phi.BlindIndex("key_check", "radflow")
	var stored string
	err := s.write.QueryRowContext(ctx, `SELECT value FROM phi_settings WHERE name = 'key_check'`).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.write.ExecContext(ctx, `INSERT INTO phi_settings (name, value) VALUES ('key_check', ?)`, check); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	case err != nil:
		return fmt.Errorf("store: %w", err)
	case stored != check:
		return fmt.Errorf("%w: the PHI key does not match the one the database was written with", ErrPHIKey)
	}
	if err := s.encryptPlainRows(ctx); err != nil {
		return err
	}
	return s.syncPrefixes(ctx)
}

// encryptPlainRows encrypts the PHI of rows written without encryption
// and blanks their plaintext columns (secure_delete zeroes the old
// cells), then truncates the WAL, which held the plaintext pages.
func (s *SQLite) encryptPlainRows(ctx context.Context) error {
	done := 0
	for {
		rows, err := s.write.QueryContext(ctx, `SELECT sop_instance_uid, patient_id, patient_name, accession_number,
			patient_birth_date FROM instances WHERE patient_name_bidx IS NULL LIMIT 500`)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		var batch []*Instance
		for rows.Next() {
			in := &Instance{}
			if err := rows.Scan(&in.SOPInstanceUID, &in.PatientID, &in.PatientName, &in.AccessionNumber, &in.PatientBirthDate); err != nil {
				rows.Close()
				return fmt.Errorf("store: %w", err)
			}
			batch = append(batch, in)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		err = s.InTx(ctx, func(tx *sql.Tx) error {
			for _, in := range batch {
				r, err := s.sealPHI(in)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE instances SET patient_id = '', patient_name = '',
					patient_name_words = '', accession_number = '', patient_birth_date = '',
					patient_id_enc = ?, patient_name_enc = ?, accession_number_enc = ?, patient_birth_date_enc = ?,
					patient_id_bidx = ?, patient_name_bidx = ?, accession_number_bidx = ? WHERE sop_instance_uid = ?`,
					r.idEnc, r.nameEnc, r.accEnc, r.birthEnc, r.idIdx, r.nameIdx, r.accIdx, in.SOPInstanceUID); err != nil {
					return fmt.Errorf("store: encrypting existing row: %w", err)
				}
				if err := s.insertTerms(ctx, tx, in, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += len(batch)
	}
	if done > 0 {
		if _, err := s.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
	}
	return nil
}

// syncPrefixes builds the prefix tokens of names that lack them
// (FuzzyPrefix) or drops all tokens (FuzzyNone: they leak prefixes).
func (s *SQLite) syncPrefixes(ctx context.Context) error {
	if s.fuzzy == FuzzyNone {
		if _, err := s.write.ExecContext(ctx, `DELETE FROM phi_name_prefixes`); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
	type term struct {
		bidx string
		enc  []byte
	}
	rows, err := s.write.QueryContext(ctx, `SELECT bidx, enc FROM phi_terms WHERE field = ?
		AND bidx NOT IN (SELECT name_bidx FROM phi_name_prefixes)`, fieldPatientName)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var missing []term
	for rows.Next() {
		var t term
		if err := rows.Scan(&t.bidx, &t.enc); err != nil {
			rows.Close()
			return fmt.Errorf("store: %w", err)
		}
		missing = append(missing, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return s.InTx(ctx, func(tx *sql.Tx) error {
		for _, t := range missing {
			name, err := s.phi.Decrypt(fieldPatientName, t.enc, t.bidx)
			if err != nil {
				return fmt.Errorf("store: decrypting a name term: %w", err)
			}
			if err := s.insertPrefixes(ctx, tx, t.bidx, name); err != nil {
				return err
			}
		}
		return nil
	})
}
