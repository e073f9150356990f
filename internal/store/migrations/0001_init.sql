-- radflow metadata schema, version 1. Portable SQL (SQLite and PostgreSQL)
-- except results.id, which PostgreSQL declares as BIGINT GENERATED ALWAYS
-- AS IDENTITY. Timestamps are fixed-width UTC text
-- (2006-01-02T15:04:05.000000Z), so text order is time order.

CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    sop_class_uid       TEXT NOT NULL,
    study_instance_uid  TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    patient_id          TEXT NOT NULL DEFAULT '',
    patient_name        TEXT NOT NULL DEFAULT '',
    -- lowercased name components separated by single spaces, with a leading
    -- and trailing space, for fuzzy (word prefix) matching
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
    source              TEXT NOT NULL CHECK (source IN ('dimse', 'stow')),
    size                BIGINT NOT NULL,
    sha256              TEXT NOT NULL,
    blob_key            TEXT NOT NULL,
    received_at         TEXT NOT NULL
);

CREATE INDEX instances_study ON instances (study_instance_uid);
CREATE INDEX instances_series ON instances (series_instance_uid);
CREATE INDEX instances_patient_id ON instances (patient_id);
CREATE INDEX instances_study_date ON instances (study_date);
CREATE INDEX instances_accession ON instances (accession_number);

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

CREATE INDEX results_study ON results (study_instance_uid);
CREATE INDEX results_status ON results (status);
