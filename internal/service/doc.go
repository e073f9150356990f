// Package service assembles radflow's long-running service from its parts:
// the SQLite metadata store and filesystem blob store (package store), the
// River job queue (queue), the ingest pipeline (ingest), the DICOMweb
// service (dicomweb) and the REST API with health, readiness and metrics
// (api) on one HTTP server, the DICOM upper layer SCP (dimse), and the
// inference job handler (pipeline.JobHandler) running the model repository
// (models) with ONNX Runtime (inference).
//
//	svc, err := service.New(ctx, service.Config{DataDir: "radflow-data", HTTPAddr: "127.0.0.1:8080", DICOMAddr: "127.0.0.1:11112"})
//	err = svc.Start(ctx)   // listens; svc.HTTPAddr(), svc.DICOMAddr() give the bound addresses
//	...
//	err = svc.Shutdown(ctx) // stop accepting, drain associations and jobs, close
//
// `radflow serve` is New + Start with both listeners (and workers unless
// Workers is 0); `radflow worker` is the same with no listeners: it only
// works the queue of a data directory another process ingests into.
//
// Data directory layout: radflow.db (+ -wal, -shm: SQLite in WAL mode,
// instance metadata with encrypted PHI columns, results, River's jobs,
// study_owners), blobs/ (received instances and result SRs as Part 10
// files encrypted by the keys codec, blobs/YYYYMMDD/HHMM/<sha256>-<rand>.dcm),
// tmp/ (DIMSE data sets being received; emptied at start), auth.db (API
// tokens), audit/ (the audit trail), keys/ (generated KEK keyring, PHI key,
// audit HMAC key), worker/audit/ (auto-push audit trail of radflow worker).
//
// Security (Config.Security, docs/security.md): encryption at rest always
// (keys.Open, store PHI cipher, blob codec); with listeners, the token
// store (bootstrapping the admin token: BootstrapToken), the JWT verifier,
// the policy engine, the audit trail (closed after the servers stop; its
// failure is a /readyz check), and the guards of package access on every
// HTTP route and C-STORE; HTTPS and DICOM TLS when configured. The
// zero-configuration DIMSE identity (any calling AE is a technologist) is
// refused off loopback (ErrInsecureDefault). Config.Extensions add routes
// behind the same guard.
//
// Export (Config.Destinations, docs/export.md; export.go): with HTTP,
// POST /api/v1/exports and GET /api/v1/destinations of package export
// behind the guard (policy action export), each exported study decided
// again with its owning organisation (study_owners) for export and, for
// an external destination, deid; one audit record per instance
// (export.TrailAuditor). Processes that run jobs wrap the job handler's SR
// sink with export.AutoPushIngester when a destination has auto: [sr]; a
// process without listeners (radflow worker) audits those pushes to
// WorkerAuditDir (<data>/worker/audit). The pusher is closed at shutdown
// after the queue stops.
//
// It owns: the assembly and its order (start and shutdown), the adapters
// between the packages' consumer interfaces (dicomweb.Ingester and
// dicomweb.Catalog over ingest and store, api.Results and api.Models,
// dimse.StoreHandler over ingest, the ingest.Router over models routing)
// and their error mappings to DIMSE statuses and STOW-RS failure reasons,
// readiness checks, and the queue depth gauge. It does not own any protocol,
// storage or inference logic (each in its package), nor flags and
// configuration files (cmd/radflow).
//
// Logs name addresses, AE titles, UIDs and counts, never patient
// attributes.
package service
