// Package export sends stored instances and radflow's result SRs back to
// clinicians: to a PACS or another DICOM AE by C-STORE (package dimse's
// SCU), de-identifying first (package deid) when the destination is marked
// external.
//
// # API
//
//	cfg, err := export.LoadConfig("destinations.yaml")        // --destinations
//	exp, err := export.New(cfg, export.Options{Source: src, Auditor: aud})
//	res, err := exp.Export(ctx, export.Request{Destination: "pacs",
//		StudyInstanceUID: "1.2.3", IncludeSR: true})
//	// res.Outcomes: one per instance, with the DIMSE status or the reason
//	// it was not sent
//	h := export.NewHandler(exp, export.HandlerOptions{})
//	h.Routes()     // POST /api/v1/exports, GET /api/v1/destinations
//	p := export.NewAutoPusher(exp, export.AutoPushOptions{})
//	p.OnResult(ctx, srSOPInstanceUID, studyInstanceUID) // auto: [sr]
//
// Source is the consumer-side view of the archive (StoreSource adapts
// package store's metadata and blobs); Auditor receives one AuditEvent per
// instance, sent or not.
//
// # Guarantees
//
//   - One association per Export call (re-dialled only after a transient
//     network failure), proposing one presentation context per (SOP class,
//     transfer syntax) to be sent. There is no transcoding: an instance
//     whose context the destination refused is reported with
//     ReasonPresentationContext.
//   - External destinations never receive the stored bytes: every instance
//     goes through deid.Deidentify with the destination's options and
//     project secret; if that fails the instance is not sent
//     (ReasonDeid). Internal destinations receive the stored data set
//     bytes unchanged (streamed, not buffered whole).
//   - Transient failures (connection refused or reset, timeouts, A-ABORT,
//     A-ASSOCIATE-RJ transient) are retried with exponential backoff, up to
//     the destination's retry.attempts associations; instances that already
//     have a DIMSE status are not re-sent.
//   - Export is synchronous; AutoPusher runs auto-pushes on background
//     goroutines from an in-memory queue (not durable: pushes queued when
//     the process stops are lost and are not audited as sent).
//   - No PHI in logs or errors: UIDs, AE titles, destination names and
//     DIMSE statuses only.
//
// It owns: the destinations file format and its validation, the export
// procedure (selection, de-identification, association, retries,
// per-instance outcomes), the REST handlers for exports and destinations,
// and auto-push of result SRs. It does not own: DICOM networking (dimse),
// the de-identification profile (deid), TLS configuration rules
// (tlsconfig), authorisation decisions and the audit trail (the
// integrator's Guard, Options.Authorize and Auditor), or durable job
// queueing (see docs/export.md for what a River job kind would need).
package export
