// Package policy is radflow's authorization decision point: an embedded OPA
// (Open Policy Agent v1) engine that evaluates data.radflow.authz.decision
// from the Rego policy in policies/ (or an operator's policy directory) for
// each request and answers allow or deny.
//
// # API
//
//	eng, err := policy.New(policy.Config{Dir: "/etc/radflow/policy"}) // Dir "" = embedded default
//	defer eng.Close()
//	d, err := eng.Decide(ctx, policy.Input{
//		Subject:  policy.Subject{ID: "u-17", Kind: "user", Roles: []string{"radiologist"}, Organisation: "org-a"},
//		Action:   "study:read",
//		Resource: policy.Resource{Type: "study", StudyInstanceUID: "1.2.3", Organisation: "org-a"},
//		Context:  policy.Context{PurposeOfUse: "TREAT", ClientAddress: "192.0.2.1"},
//	})
//	// d.Allow, d.ID (UUID for the audit record), d.BreakGlass, d.Reasons
//
// Decide is default deny: an evaluation error, an undefined result or a
// decision that is not {allow: bool, break_glass: bool, reasons: [string]}
// gives Allow false with a reason, and the error (ErrEvaluation,
// ErrUndefined, ErrMalformedDecision, ErrInvalidInput) for logging. A plain
// deny is not an error.
//
// # Reload
//
// With Config.Dir set, the *.rego files of that directory (not *_test.rego)
// replace the embedded policy. The engine hashes them every
// Config.PollInterval (default 2 s) and recompiles on change; a policy that
// fails to compile is logged and kept out, the previous prepared query stays
// in force, and LastReloadError reports the failure until a later reload
// succeeds. Reload forces the same check now (e.g. on SIGHUP). The prepared
// query is swapped atomically: a Decide in flight finishes on the policy it
// started with.
//
// # Speed
//
// One Decide on the shipped policy (2-core shared VM): 40–45 µs for an
// allow, 60–70 µs for a deny or break-glass, 12–17 KB and 255–380
// allocations, almost all inside OPA's evaluator (about 0.5 µs per
// evaluated expression, a few µs per rule evaluated, ~8 µs fixed per Eval).
// BenchmarkDecideLatency reports p50/p99; its p99 is set by garbage
// collection (GOGC=100: ~250 µs CPU; GOGC=off: ~115 µs), so a server
// should run with a larger GOGC or a GOMEMLIMIT.
//
// It owns: compiling and evaluating the policy, input validation, the
// decision ID, default deny, reloads. It does not own: the policy text
// (package policies), authentication (who the subject is), mapping routes
// and DIMSE operations to actions (package access; see docs/security.md,
// section "The request guard"), or writing the audit record.
package policy
