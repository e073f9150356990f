-- Encryption at rest of the PHI columns (SQLiteOptions.PHI). With a PHI
-- cipher, patient_id, patient_name, patient_name_words, accession_number
-- and patient_birth_date hold '' and the values live in *_enc
-- (AES-256-GCM, random nonce, bound to the column and the SOP Instance
-- UID); *_bidx hold HMAC-SHA256 blind indexes (32 hex digits) of the
-- exact values for exact QIDO matching. Without a cipher the *_enc and
-- *_bidx columns stay NULL and the plaintext columns are used as before.
-- PostgreSQL: BLOB is BYTEA.
ALTER TABLE instances ADD COLUMN patient_birth_date TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN patient_id_enc BLOB;
ALTER TABLE instances ADD COLUMN patient_name_enc BLOB;
ALTER TABLE instances ADD COLUMN accession_number_enc BLOB;
ALTER TABLE instances ADD COLUMN patient_birth_date_enc BLOB;
ALTER TABLE instances ADD COLUMN patient_id_bidx TEXT;
ALTER TABLE instances ADD COLUMN patient_name_bidx TEXT;
ALTER TABLE instances ADD COLUMN accession_number_bidx TEXT;
CREATE INDEX instances_patient_id_bidx ON instances (patient_id_bidx);
CREATE INDEX instances_patient_name_bidx ON instances (patient_name_bidx);
CREATE INDEX instances_accession_bidx ON instances (accession_number_bidx);

-- One row per distinct value of a matchable PHI field: its blind index and
-- the value encrypted (bound to field and bidx). Wildcard and fuzzy
-- queries decrypt these (one per distinct value, not per instance) and
-- match the resulting blind indexes.
CREATE TABLE phi_terms (
    field TEXT NOT NULL,
    bidx  TEXT NOT NULL,
    enc   BLOB NOT NULL,
    PRIMARY KEY (field, bidx)
);

-- phi_fuzzy_index = prefix: HMAC tokens of every prefix (up to 16
-- characters) of every lowercased word of each distinct Patient's Name.
CREATE TABLE phi_name_prefixes (
    token     TEXT NOT NULL,
    name_bidx TEXT NOT NULL,
    PRIMARY KEY (token, name_bidx)
);

-- name → value: key_check (a blind index of a constant: detects opening
-- the database with another PHI key).
CREATE TABLE phi_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
