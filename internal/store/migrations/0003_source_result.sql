-- instances.source gains 'result': Structured Reports radflow writes for
-- its own results are stored as instances too (QIDO/WADO serve them).
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt (after
-- sqlite.org/lang_altertable.html). Foreign keys cannot be switched off
-- inside the migration's transaction, and dropping instances while results
-- rows reference it would violate them, so results is copied aside,
-- dropped and rebuilt too (same definition, same ids).
-- PostgreSQL: ALTER TABLE instances DROP CONSTRAINT ..., ADD CHECK (...).

CREATE TABLE instances_new (
    sop_instance_uid    TEXT PRIMARY KEY,
    sop_class_uid       TEXT NOT NULL,
    study_instance_uid  TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    patient_id          TEXT NOT NULL DEFAULT '',
    patient_name        TEXT NOT NULL DEFAULT '',
    patient_name_words  TEXT NOT NULL DEFAULT '',
    study_date          TEXT NOT NULL DEFAULT '',
    study_time          TEXT NOT NULL DEFAULT '',
    accession_number    TEXT NOT NULL DEFAULT '',
    study_description   TEXT NOT NULL DEFAULT '',
    series_description  TEXT NOT NULL DEFAULT '',
    modality            TEXT NOT NULL DEFAULT '',
    body_part_examined  TEXT NOT NULL DEFAULT '',
    series_number       INTEGER,
    instance_number     INTEGER,
    calling_ae          TEXT NOT NULL DEFAULT '',
    source              TEXT NOT NULL CHECK (source IN ('dimse', 'stow', 'result')),
    size                BIGINT NOT NULL,
    sha256              TEXT NOT NULL,
    blob_key            TEXT NOT NULL,
    received_at         TEXT NOT NULL
);

INSERT INTO instances_new SELECT
    sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid,
    transfer_syntax_uid, patient_id, patient_name, patient_name_words,
    study_date, study_time, accession_number, study_description,
    series_description, modality, body_part_examined, series_number,
    instance_number, calling_ae, source, size, sha256, blob_key, received_at
FROM instances;

CREATE TABLE results_copy AS SELECT * FROM results;
DROP TABLE results;
DROP TABLE instances;
ALTER TABLE instances_new RENAME TO instances;

CREATE TABLE results (
    id                  INTEGER PRIMARY KEY,
    sop_instance_uid    TEXT NOT NULL REFERENCES instances (sop_instance_uid),
    study_instance_uid  TEXT NOT NULL,
    model               TEXT NOT NULL,
    version             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    label               TEXT NOT NULL DEFAULT '',
    probabilities       TEXT NOT NULL DEFAULT '{}',
    error               TEXT NOT NULL DEFAULT '',
    sr_sop_instance_uid TEXT NOT NULL DEFAULT '',
    timings             TEXT NOT NULL DEFAULT '{}',
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (sop_instance_uid, model, version)
);

INSERT INTO results SELECT * FROM results_copy;
DROP TABLE results_copy;
CREATE INDEX results_study ON results (study_instance_uid);
CREATE INDEX results_status ON results (status);

CREATE INDEX instances_study ON instances (study_instance_uid);
CREATE INDEX instances_series ON instances (series_instance_uid);
CREATE INDEX instances_patient_id ON instances (patient_id);
CREATE INDEX instances_study_date ON instances (study_date);
CREATE INDEX instances_accession ON instances (accession_number);
CREATE INDEX instances_blob_key ON instances (blob_key);
