// Package ingest is the one place an instance enters radflow: DIMSE
// C-STORE and DICOMweb STOW-RS both call Ingester.Ingest.
//
// Ingest parses the instance (package dicom), validates its UIDs, refuses
// it under backpressure (queue depth, disk watermark), writes its bytes
// durably to the blob store, and then, in one SQL transaction, inserts the
// instance row, a queued result and a job (package queue) per model version
// the Router picks. It returns only after that transaction is durable, so
// an acknowledged instance survives a crash; anything that fails leaves
// neither row nor blob. A re-sent instance (same SOP Instance UID) is
// acknowledged without storing anything (Created=false).
//
// Group commit: one writer goroutine commits the requests that queued up
// while the previous commit was being fsynced in a single transaction
// (one bad request fails alone: the batch is then rebuilt with a
// savepoint per request), so N concurrent senders share one WAL fsync
// instead of paying N. With a blob
// store that writes now and syncs later (store.FS.PutNewBytes) a request
// reaches the writer while its blob is still being fsynced: the writer
// builds the transaction meanwhile and COMMITs only after every blob of
// the batch is durable (a blob that fails fails its request alone; the
// batch is committed again without it). In radflow serve
// (Config.CoverBlobSyncs) a pack blob needs no fsync of its own: the
// log's fsync after the COMMIT flushes it too, and the instances whose
// batch's flush had not returned are checked at the next start
// (unflushed.go).
//
// It owns: the ingest pipeline, UID validation, backpressure, group
// commit, the check of unflushed blobs after an unclean stop.
// It does not own: parsing (dicom), storage formats (store), job execution
// (queue), model routing rules (the Router is supplied, e.g. from package
// models), protocol status codes (dimse, dicomweb map ErrInvalid/ErrBusy).
package ingest
