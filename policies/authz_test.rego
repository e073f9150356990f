# Rego unit tests for radflow.authz. Run by `go test ./policies/` (OPA's
# tester; any failing or erroring test fails the Go test).
package radflow.authz_test

import data.radflow.authz

# A well-formed request: subject of organisation org-a asking about a study
# of org-a, no purpose of use, no break-glass.
request(kind, id, roles, action) := {
	"subject": {"id": id, "kind": kind, "roles": roles, "organisation": "org-a"},
	"action": action,
	"resource": {
		"type": "study",
		"study_instance_uid": "1.2.840.99.1",
		"sop_instance_uid": "",
		"organisation": "org-a",
		"attributes": {"modality": "CT"},
	},
	"context": {
		"purpose_of_use": "",
		"break_glass": false,
		"break_glass_reason": "",
		"time": "2026-01-02T03:04:05Z",
		"client_address": "192.0.2.10",
	},
}

user(roles, action) := request("user", "user-1", roles, action)

with_context(req, ctx) := object.union(req, {"context": object.union(req.context, ctx)})

with_resource(req, res) := object.union(req, {"resource": object.union(req.resource, res)})

# Every action of the vocabulary, plus one nobody is granted.
actions := [
	"study:read", "instance:store", "result:read", "model:read", "model:promote",
	"audit:read", "audit:verify", "metrics:read", "health:read", "export", "deid",
	"admin:keys", "admin:tokens", "unknown:action",
]

# The role × action matrix (same organisation, no purpose, no break-glass):
# the actions each role is allowed; every other action in `actions` is denied.
allowed := {
	"radiologist": {"study:read", "result:read", "model:read", "export", "deid", "health:read"},
	"referring_physician": {"study:read", "result:read", "health:read"},
	"technologist": {"instance:store", "study:read", "health:read"},
	"ai_service": {"instance:store", "study:read", "result:read", "health:read"},
	"admin": {"model:read", "model:promote", "metrics:read", "deid", "admin:keys", "admin:tokens", "health:read"},
	"auditor": {"audit:read", "audit:verify", "health:read"},
	"unknown_role": {"health:read"},
}

test_role_action_matrix[role][action] if {
	some role, ok in allowed
	some action in actions
	d := authz.decision with input as user([role], action)
	d.allow == (action in ok)
	d.break_glass == false
	count(d.reasons) > 0
}

# Service accounts and AE subjects follow the same matrix as users.
test_kinds_follow_matrix[kind][action] if {
	some kind in ["service", "ae"]
	some action in actions
	d := authz.decision with input as request(kind, "svc-1", ["ai_service"], action)
	d.allow == (action in allowed.ai_service)
}

# Anonymous subjects (no credentials) get health:read and nothing else.
test_anonymous[action] if {
	some action in actions
	d := authz.decision with input as request("anonymous", "", [], action)
	d.allow == (action == "health:read")
}

test_anonymous_reason if {
	d := authz.decision with input as request("anonymous", "", ["radiologist"], "study:read")
	not d.allow
	d.reasons == ["subject is not authenticated"]
}

# Roles claimed without an established identity grant nothing.
test_user_without_id_denied if {
	d := authz.decision with input as request("user", "", ["radiologist"], "study:read")
	not d.allow
}

test_unknown_kind_denied if {
	d := authz.decision with input as request("robot", "r-1", ["radiologist"], "study:read")
	not d.allow
}

test_no_role_reason if {
	d := authz.decision with input as user(["auditor"], "study:read")
	not d.allow
	d.reasons == ["no role of the subject grants study:read"]
}

test_allow_reason_names_role if {
	d := authz.decision with input as user(["radiologist"], "study:read")
	d.allow
	d.reasons == ["role radiologist grants study:read"]
}

# A subject holding several roles gets the union of their grants.
test_multiple_roles_union if {
	d1 := authz.decision with input as user(["admin", "radiologist"], "study:read")
	d1.allow
	d2 := authz.decision with input as user(["admin", "radiologist"], "model:promote")
	d2.allow
	d3 := authz.decision with input as user(["admin", "radiologist"], "audit:read")
	not d3.allow
}

# admin:* is granted by prefix to admins only.
test_admin_prefix if {
	d := authz.decision with input as user(["admin"], "admin:rotate-something")
	d.allow
	e := authz.decision with input as user(["radiologist"], "admin:keys")
	not e.allow
}

# --- organisation scoping (referring_physician) ---------------------------

test_referring_other_organisation_denied[action] if {
	some action in ["study:read", "result:read"]
	d := authz.decision with input as with_resource(user(["referring_physician"], action), {"organisation": "org-b"})
	not d.allow
	d.reasons == [sprintf("%s is limited to the subject's organisation", [action])]
}

test_referring_unknown_resource_organisation_denied if {
	d := authz.decision with input as with_resource(user(["referring_physician"], "study:read"), {"organisation": ""})
	not d.allow
}

test_referring_without_own_organisation_denied if {
	req := user(["referring_physician"], "study:read")
	d := authz.decision with input as object.union(req, {"subject": object.union(req.subject, {"organisation": ""}), "resource": object.union(req.resource, {"organisation": ""})})
	not d.allow
}

# Other roles are not organisation-scoped.
test_radiologist_other_organisation_allowed if {
	d := authz.decision with input as with_resource(user(["radiologist"], "study:read"), {"organisation": "org-b"})
	d.allow
	not d.break_glass
}

# --- purpose of use --------------------------------------------------------

test_purpose_phi_read[purpose] if {
	some purpose, want in {"TREAT": true, "treat": true, "ETREAT": true, "HOPERAT": true, "HRESCH": false, "HPAYMT": false, "MARKETING": false}
	d := authz.decision with input as with_context(user(["radiologist"], "study:read"), {"purpose_of_use": purpose})
	d.allow == want
}

test_purpose_research_reason if {
	d := authz.decision with input as with_context(user(["radiologist"], "result:read"), {"purpose_of_use": "HRESCH"})
	not d.allow
	d.reasons == ["purpose of use HRESCH does not permit identified PHI access"]
}

# Purpose of use does not restrict actions that disclose no identified PHI.
test_purpose_non_phi_ignored[action] if {
	some action in ["deid", "model:read"]
	d := authz.decision with input as with_context(user(["radiologist"], action), {"purpose_of_use": "HRESCH"})
	d.allow
}

# --- break-glass -------------------------------------------------------------

break_glass(req) := with_context(req, {"break_glass": true, "break_glass_reason": "stroke alert, patient transferred"})

test_break_glass_referring_other_organisation[action] if {
	some action in ["study:read", "result:read"]
	d := authz.decision with input as break_glass(with_resource(user(["referring_physician"], action), {"organisation": "org-b"}))
	d.allow
	d.break_glass
	d.reasons == [sprintf("break-glass by role referring_physician for %s", [action])]
}

test_break_glass_technologist_result if {
	d := authz.decision with input as break_glass(user(["technologist"], "result:read"))
	d.allow
	d.break_glass
}

test_break_glass_without_reason_denied[reason] if {
	some reason in ["", "   "]
	req := with_context(user(["technologist"], "result:read"), {"break_glass": true, "break_glass_reason": reason})
	d := authz.decision with input as req
	not d.allow
	not d.break_glass
	"break-glass requires a non-empty reason" in d.reasons
}

test_break_glass_reason_missing_key_denied if {
	req := user(["technologist"], "result:read")
	d := authz.decision with input as json.remove(with_context(req, {"break_glass": true}), ["context/break_glass_reason"])
	not d.allow
}

# Non-clinical roles cannot break the glass.
test_break_glass_non_clinical_denied[role] if {
	some role in ["admin", "auditor", "unknown_role"]
	d := authz.decision with input as break_glass(with_resource(user([role], "result:read"), {"organisation": "org-b"}))
	not d.allow
	not d.break_glass
}

# ai_service reads results normally, so break-glass is not what allows it.
test_break_glass_not_reported_when_normally_allowed[role] if {
	some role in ["radiologist", "ai_service"]
	d := authz.decision with input as break_glass(user([role], "study:read"))
	d.allow
	not d.break_glass
}

# Break-glass unlocks reading only.
test_break_glass_other_actions_denied[action] if {
	some action in ["instance:store", "export", "model:promote", "admin:keys", "audit:read"]
	d := authz.decision with input as break_glass(user(["referring_physician"], action))
	not d.allow
	sprintf("break-glass is limited to clinical roles reading studies or results (%s)", [action]) in d.reasons
}

test_break_glass_purpose[purpose] if {
	some purpose, want in {"TREAT": true, "ETREAT": true, "HOPERAT": false, "HRESCH": false}
	req := with_context(break_glass(with_resource(user(["referring_physician"], "study:read"), {"organisation": "org-b"})), {"purpose_of_use": purpose})
	d := authz.decision with input as req
	d.allow == want
	d.break_glass == want
}

test_break_glass_anonymous_denied if {
	d := authz.decision with input as break_glass(request("anonymous", "", ["radiologist"], "study:read"))
	not d.allow
}

# --- malformed input ---------------------------------------------------------

test_malformed[name] if {
	good := user(["radiologist"], "health:read")
	some name, bad in {
		"input is a string": "study:read",
		"input is an array": [good],
		"action missing": object.remove(good, ["action"]),
		"action empty": object.union(good, {"action": ""}),
		"action is a number": object.union(good, {"action": 7}),
		"subject missing": object.remove(good, ["subject"]),
		"subject is a string": object.union(good, {"subject": "user-1"}),
		"roles is a string": object.union(good, {"subject": object.union(good.subject, {"roles": "radiologist"})}),
		"roles missing": json.remove(good, ["subject/roles"]),
		"resource missing": object.remove(good, ["resource"]),
		"resource is a string": object.union(good, {"resource": "study"}),
		"context missing": object.remove(good, ["context"]),
		"break_glass missing": json.remove(good, ["context/break_glass"]),
		"context is an array": object.union(good, {"context": []}),
		"break_glass is a string": with_context(good, {"break_glass": "true"}),
	}
	d := authz.decision with input as bad
	d.allow == false
	d.break_glass == false
	some r in d.reasons
	startswith(r, "malformed input: ")
}

# Roles that are not strings are ignored like unknown roles.
test_non_string_roles_ignored if {
	d := authz.decision with input as user(["radiologist", 1, {"role": "admin"}], "study:read")
	d.allow
	d.reasons == ["role radiologist grants study:read"]
	e := authz.decision with input as user([1, ["admin"]], "admin:keys")
	not e.allow
	e.reasons == ["no role of the subject grants admin:keys"]
}

test_no_input_denied if {
	d := authz.decision
	not d.allow
}

# --- reasons carry no identifiers -------------------------------------------

test_reasons_free_of_identifiers[label] if {
	some label, req in {
		"allow": user(["radiologist"], "study:read"),
		"deny role": user(["auditor"], "study:read"),
		"deny organisation": with_resource(user(["referring_physician"], "study:read"), {"organisation": "org-b"}),
		"break-glass": break_glass(with_resource(user(["referring_physician"], "study:read"), {"organisation": "org-b"})),
		"deny purpose": with_context(user(["radiologist"], "study:read"), {"purpose_of_use": "HRESCH"}),
	}
	d := authz.decision with input as req
	count(d.reasons) > 0
	every r in d.reasons {
		not contains(r, "1.2.840.99.1")
		not contains(r, "user-1")
		not contains(r, "org-a")
		not contains(r, "org-b")
		not contains(r, "192.0.2.10")
		not contains(r, "stroke")
	}
}
