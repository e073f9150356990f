// Package store is radflow's durable state: instance metadata and
// inference results in SQL (SQLite first; the SQL is portable and the few
// SQLite specifics are in sqlite.go), and instance bytes in a BlobStore
// (filesystem first; S3 later).
//
// It owns: the schema (embedded migrations in migrations/), the
// InstanceStore and ResultStore interfaces and their SQLite implementation
// (WAL, synchronous=FULL: a committed row survives kill -9 and power loss),
// QIDO-RS matching (UID lists, wildcards, fuzzy patient names, date ranges,
// ModalitiesInStudy, limit/offset) and the BlobStore interface with its
// filesystem implementation (temp file, fsync, rename, fsync directory),
// the Codec seam for encryption at rest, and the free-space watermark check.
// With SQLiteOptions.PHI it stores the PHI columns encrypted and matches
// them through HMAC blind indexes (phi.go; keys come from package keys).
//
// It does not own: parsing DICOM (package dicom), deciding what is stored
// (package ingest), jobs (package queue, which shares the SQLite file and
// write pool), nor the DICOMweb representation of rows (package dicomweb).
//
// PostgreSQL: an implementation would open jackc/pgx through pgx/stdlib so
// the *sql.Tx methods and River's riverdatabasesql driver keep working,
// rewrite the ? placeholders to $n, and declare results.id as an identity
// column; everything else in the SQL is shared.
package store
