// Package policies ships radflow's default authorization policy: the Rego
// modules in this directory (package radflow.authz, entry point
// data.radflow.authz.decision) and their Rego unit tests (*_test.rego).
//
// FS embeds every *.rego file here. internal/policy compiles the modules
// that do not end in _test.rego; the Go test in this package runs the
// _test.rego modules with OPA's tester and fails on any failing or erroring
// Rego test.
//
// It owns the policy text (the role × action matrix, organisation scoping,
// purpose of use and break-glass rules); see docs/security.md, section
// "Authorization (policy engine)". It does
// not own evaluation, reloading or defaults on error (internal/policy), nor
// authentication (who the subject is and which roles it has).
package policies

import "embed"

// FS holds the shipped policy files at its root: authz.rego and
// authz_test.rego.
//
//go:embed *.rego
var FS embed.FS
