// Package audit is radflow's audit trail: an append-only, tamper-evident
// record of who did what to which study, when, from where, why and with
// what outcome (45 CFR 164.312(b) audit controls), plus its exports.
//
// # Trail
//
//	key, _ := audit.LoadOrCreateKey(keyFile)          // <data>/keys/audit-hmac.key, 0600
//	tr, _ := audit.Open(audit.Config{Dir: auditDir, Key: key})
//	defer tr.Close()
//	err := tr.Append(ctx, audit.Record{SubjectID: "u1", SubjectKind: audit.KindUser,
//		Action: "study:read", Resource: audit.Resource{Type: "study", StudyInstanceUID: uid},
//		Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolHTTP})
//	// err != nil → fail the request: no unaudited access.
//
// Records are JSON lines in segment files <dir>/audit-000001.jsonl,
// audit-000002.jsonl, ... (a new one after Config.MaxSegmentBytes). Each
// carries seq (1, 2, 3, ...), prev_hash (the previous record's hash) and
// hash = HMAC-SHA256(key, the record's JSON without "hash"). A plain hash
// chain can be recomputed by whoever edits the files; the HMAC cannot
// without the key, which is kept outside the audit directory. Append
// returns after write + fsync; concurrent Appends are batched into one
// write and one fsync (group commit); the caller's cancellation does not
// abort an Append (a client that goes away cannot lose its record), the
// wait is bounded by Config.AppendTimeout. Open resumes the chain after
// the last record, verifying the last segment; a torn final line left by
// a crash is cut off and recorded as an audit:recovered record; then an
// audit:started record is appended (every start) and the last seq/hash
// logged as an anchor.
//
// Verify/Scan check a whole trail and return the first problem (a
// *Problem with kind, file:line and seq): modified record, seq gap
// (removed records), reordered or duplicated records, truncated or
// garbled lines, broken links between segment files, missing segment
// files, and an empty or missing trail (ProblemEmpty: there is always an
// audit:started record). Removing whole records from the very end leaves
// a valid shorter chain that the files alone cannot reveal; VerifyAnchor
// checks the trail against a seq/hash kept outside (the syslog copy, the
// "audit trail opened" log line, a noted "radflow audit verify" line).
//
// # No PHI
//
// Record has no field for patient names, patient IDs, birth dates or
// accession numbers: resources are identified by Study/Series/SOP
// Instance UIDs and model name@version only. Append validates every field
// (UIDs must be UIDs, codes must be codes) and accepts Detail only under
// the keys of DetailKeys, each with a strict value syntax; validation
// errors never echo the rejected value.
//
// # Exports
//
// ToFHIR/FHIRAuditEventJSON write FHIR R4 AuditEvent resources;
// DICOMAuditMessage writes DICOM PS3.15 A.5 audit messages; SyslogSink
// sends those in RFC 5424 syslog messages over TLS (RFC 5425), TCP or UDP
// (RFC 5426). Sinks run behind a Forwarder (Config.Sinks): asynchronous,
// retried with backoff, never failing Append — the local trail is the
// record of truth.
//
// It owns: the record schema and its validation, the trail files, the
// HMAC chain, verification, the FHIR/DICOM mappings and the syslog sink.
// It does not own: deciding what to audit or the policy decision
// (internal/policy, internal/access Guard and DIMSE guard — see
// docs/security.md, "The request guard"), key rotation of the HMAC key,
// retention/archiving of old segments.
package audit
