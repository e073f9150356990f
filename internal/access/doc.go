// Package access is radflow's request guard: for every HTTP request and
// every DIMSE C-STORE it runs authentication (package auth) → the policy
// decision (package policy) → the audit record (package audit), in that
// order, and fails closed.
//
// HTTP: Guard implements api.Guard. Each api route action maps to a policy
// action and resource type (DefaultActions: dicomweb.stow → instance:store,
// dicomweb.search/retrieve → study:read, results.read → result:read,
// models.read → model:read, metrics.read → metrics:read, ready.read →
// health:read; health.read, i.e. /healthz, is answered without
// credentials and without a record). The policy input carries the subject,
// the resource (Study/Series/SOP Instance UIDs from the path or query, the
// study's owning organisation from Owners) and the context
// (X-Purpose-Of-Use, X-Break-Glass: <reason>, the client address).
//
// Audit: a record is appended for every PHI access (instance:store,
// study:read, result:read, and anything an Action marks PHI), every
// authentication failure (action "authentication", outcome
// unauthenticated) and every denial (outcome denied, with the policy
// decision id), before the handler runs. An Append error fails the request
// (HTTP 500, nothing served or stored). Exception: an allowed request of
// an Action with OutcomeAfter (STOW-RS) under Guard.DeferOutcomes is
// recorded once, after its handler, with its real outcome (Guard.Audit,
// the guard wired as api.Config.Auditor; the handler reports instances
// with NoteInstance), because at authorisation the upload may still break
// off; a failed trail (Failer) refuses it up front. Records are appended
// with a context the client cannot cancel (audit.DetachedContext).
//
// DIMSE: AcceptAssociation maps the calling AE title / verified client
// certificate through auth.PeerMapper (unknown peers are rejected at
// A-ASSOCIATE time and recorded); AuthorizeStore decides instance:store
// for the association's principal before anything is stored (deny →
// dimse.ErrNotAuthorized, status 0124, recorded), or in two steps for an
// SCP that decides when the command arrives and answers after the data
// set (DecideStore, then DenyStore when the refusal is answered);
// RecordStore appends the store's record (UIDs, outcome, DIMSE status)
// before the C-STORE-RSP.
//
// Owners (SQLite table study_owners) remembers the organisation of the
// principal that first stored into a study, for organisation-scoped
// grants (a referring physician sees the studies of their organisation).
//
// It owns: the route → action/resource mapping, request context headers,
// the order authn → policy → audit and its failure semantics, the study
// owner table. It does not own: credential verification (auth), the
// policy text and evaluation (policy, policies/), the trail format
// (audit), HTTP routing and error bodies (api), DIMSE (dimse).
//
// No PHI: records carry UIDs, roles, organisations and codes only; the
// break-glass reason (the caller's words) goes to the trail, never to logs.
package access
