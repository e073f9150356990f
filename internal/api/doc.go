// Package api composes radflow's HTTP server: the REST API under /api/v1
// (results, models), /healthz, /readyz, /metrics, and any mounted routes
// (the DICOMweb service under /dicomweb), all behind one middleware chain:
// request ID → recover → access log → Guard (identity/policy/audit hook) →
// body limit → timeout.
//
// It owns: routing, the Guard hook and Principal, request IDs, structured
// access logs without PHI (route pattern, status, sizes, duration; never
// query strings), request size limits and deadlines, the Prometheus
// registry and the Metrics other packages record into, readiness checks.
// It does not own: the DICOMweb protocol (package dicomweb), results and
// model storage (consumer interfaces Results and Models, implemented by the
// store and models packages), authentication, policy and audit (the Guard
// implementation is package access, wired by package service; the default
// AllowAll is for tests and embedding). Guard errors map to 401 (with
// WWW-Authenticate), 403, 400, 503 and 500; each route narrows the
// connection's read/write deadlines to its own timeout.
package api
