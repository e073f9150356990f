// Package dicomweb serves the DICOMweb RESTful services of PS3.18 under a
// base path (radflow mounts it at /dicomweb):
//
//   - STOW-RS  POST /studies, POST /studies/{study}: multipart/related;
//     type="application/dicom" bodies streamed part by part into an Ingester.
//   - QIDO-RS  GET /studies, /series, /instances and their study/series
//     scoped forms, answered from a Catalog as DICOM JSON (PS3.18 F.2).
//   - WADO-RS  GET instance/series/study retrieve (multipart/related of
//     application/dicom parts, bytes as stored), /metadata (DICOM JSON),
//     /rendered (PNG or JPEG, modality LUT + VOI window), /frames/{list}
//     (application/octet-stream frames).
//
// It also has Client, a STOW-RS client used by tests and benchmarks.
//
// It owns: the HTTP protocol of DICOMweb, media types, DICOM JSON encoding
// and decoding, the mapping of Ingester errors to STOW failure reasons, the
// parsing of QIDO query parameters into a Query. It does not own: storage,
// indexing or the matching implementation of a real catalog (the consumer
// interfaces Ingester and Catalog are implemented by the store/ingest
// packages and wired by radflow serve), DICOM parsing (package dicom), pixel
// decoding and LUTs (package pixel), authentication, authorisation, logging
// and metrics middleware (package api, which mounts Routes behind its Guard).
//
// Conformance choices (also in docs/openapi.yaml):
//   - QIDO with no match answers 200 with an empty JSON array [] (not 204).
//   - Retrieve sends instances in their stored transfer syntax; no
//     transcoding (an Accept asking for another transfer syntax gets 406).
//   - Query values are never logged (PatientName/PatientID are PHI).
package dicomweb
