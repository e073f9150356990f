# radflow authorization policy (package radflow.authz).
#
# The engine (internal/policy) evaluates data.radflow.authz.decision once per
# request with this input (all keys always present; strings may be empty):
#
#   subject:  {id, kind: user|service|ae|anonymous, roles: [string], organisation}
#   action:   study:read | instance:store | result:read | model:read |
#             model:promote | audit:read | audit:verify | metrics:read |
#             health:read | export | deid | admin:keys | admin:tokens
#   resource: {type: study|instance|result|model|audit|system,
#              study_instance_uid, sop_instance_uid, organisation, attributes}
#   context:  {purpose_of_use, break_glass: bool, break_glass_reason,
#              time (RFC 3339), client_address}
#
# and expects decision = {"allow": bool, "break_glass": bool,
# "reasons": [string]}. Anything else (undefined, wrong types, an evaluation
# error) is treated by the engine as deny. Reasons name roles, actions and
# purpose-of-use codes only: never identifiers, names or addresses, so they
# may be written to logs and to the audit trail.
#
# The rules below implement this role x action matrix (Y allowed, O only for
# resources of the subject's own organisation, BG only by break-glass):
#
#                       radio- referring tech-   ai_     admin auditor anonymous
#                       logist physician nolog.  service
#   study:read          Y      O / BG    Y       Y       -     -       -
#   result:read         Y      O / BG    BG      Y       -     -       -
#   instance:store      -      -         Y       Y       -     -       -
#   model:read          Y      -         -       -       Y     -       -
#   model:promote       -      -         -       -       Y     -       -
#   export              Y      -         -       -       -     -       -
#   deid                Y      -         -       -       Y     -       -
#   admin:* (keys,      -      -         -       -       Y     -       -
#     tokens, ...)
#   metrics:read        -      -         -       -       Y     -       -
#   audit:read/verify   -      -         -       -       -     Y       -
#   health:read         Y      Y         Y       Y       Y     Y       Y
#
# Deployments that need a different matrix copy this directory, edit it and
# start radflow with the policy directory option; the engine reloads it when
# the files change.
package radflow.authz

# ---------------------------------------------------------------------------
# Vocabulary. These sets are written inline in the one or two rules that use
# them (named in brackets): a reference to a constant rule costs a rule
# evaluation on every decision (measured ~3 µs), an inline set ~0.5 µs.
# Edit every place a set appears.
# ---------------------------------------------------------------------------

# Authenticated subject kinds {"user", "service", "ae"} (authenticated).
# "anonymous" is what the authenticator reports when a request carried no
# credentials at all.

# Clinical roles {"radiologist", "referring_physician", "technologist"}:
# the roles that treat patients; only they may use break-glass
# (break_glass_eligible, break_glass_grant).

# Identified PHI actions {"study:read", "result:read", "export"}: actions
# that disclose identified protected health information (PHI): images and
# their metadata, AI results about a patient, identified exports
# (purpose_permits).

# Break-glass actions {"study:read", "result:read"}: reading images and
# results only. Break-glass never unlocks storing, exporting or anything
# administrative (break_glass_eligible, break_glass_grant).

# Identified purposes {"", "TREAT", "ETREAT", "HOPERAT"}: HL7 v3
# PurposeOfUse codes (ActReason) that permit identified PHI access:
# treatment, emergency treatment and healthcare operations (which covers an
# AI service analysing a study for the care pathway). A purpose is not
# required: a request without X-Purpose-Of-Use is taken as treatment or
# operations, which is what every clinical viewer sends implicitly. A request
# that does state a purpose is held to it, so e.g. HRESCH (research) cannot
# read identified studies; research goes through deid. "" stands for "not
# stated" (purpose_permits).

# Break-glass purposes {"", "TREAT", "ETREAT"}: break-glass is an
# emergency-treatment mechanism: with a stated purpose it must be treatment
# or emergency treatment ("" = not stated) (break_glass_purpose_permits).

# Role grants that depend on nothing but the role (and, for identified PHI
# actions, on the purpose of use).
#
# - radiologist: reads every study and AI result of the deployment (the
#   reading service sees all studies), lists models, may export identified
#   studies to other systems and make de-identified copies. Radiologists do
#   not store instances: images come from modalities and technologists.
# - technologist: stores instances (STOW-RS from a workstation) and reads
#   studies to check what arrived. AI results are not theirs to read except
#   by break-glass.
# - ai_service: the service account of AI workers, modalities and PACS that
#   send to radflow: stores instances, reads the studies it analyses and the
#   results it produced.
# - admin: runs the system, not patient care. Least privilege: no PHI at all
#   (no study:read, no result:read, no export; break-glass is for clinical
#   roles only, an administrator who is also a clinician carries both roles).
#   deid is allowed because its output carries no PHI. Every action in the
#   admin: namespace is granted by prefix (see admin_prefix_grant below).
# - auditor: reads and verifies the audit trail, which records UIDs but no
#   names or patient identifiers; no PHI and nothing administrative
#   (separation of duties: admins do not review their own audit trail).
grants := {
	"radiologist": {"study:read", "result:read", "model:read", "export", "deid"},
	"technologist": {"instance:store", "study:read"},
	"ai_service": {"instance:store", "study:read", "result:read"},
	"admin": {"model:read", "model:promote", "metrics:read", "deid"},
	"auditor": {"audit:read", "audit:verify"},
}

# Grants limited to resources of the subject's own organisation.
# A referring physician sees the studies and results of their organisation
# (resource.organisation is the study's owning organisation). A search that is
# not about one study (QIDO at the collection level) must be scoped by the
# caller to the subject's organisation, and it says so by setting
# resource.organisation to that organisation.
organisation_grants := {"referring_physician": {"study:read", "result:read"}}

# ---------------------------------------------------------------------------
# How the rules are laid out (speed). The engine evaluates `decision` once
# per request and its target is a p99 under 100 µs, so every rule below is
# written for OPA's rule index and for few evaluated expressions:
#
# - a condition the index can test (`input.x == "const"`, `x in input.y`,
#   `startswith(input.x, "const")`) prunes the whole rule before any of its
#   body runs; break-glass and deny rules start with such a test;
# - every expression costs about a microsecond, a rule a few (also a
#   reference to a constant rule, hence the inline vocabulary): the cheapest
#   and most selective test of a body comes first, helpers used once are
#   inlined, and the grant and deny rules read input.subject.roles directly
#   (a table lookup by a role name already implies it is a string);
# - the deny reasons of a well-formed request and those of a malformed one
#   are two sets, so no deny rule re-tests well_formed.
#
# - reasons are built with concat, not sprintf: the engine runs this policy
#   compiled to WebAssembly, where sprintf is not built in (a policy that
#   calls it still works, on OPA's slower interpreter).
#
# Changing a rule keeps decisions and reasons identical only if these
# equivalences are kept; the Rego unit tests and the engine's tests check
# both. `go test -bench DecideLatency ./internal/policy/` measures the
# effect.
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Input checks. Anything not shaped as documented above (every key present,
# of its type) is denied with "malformed input: ..." rather than being
# half-interpreted. well_formed is the one check on the hot path; the
# malformed rules, which name what is wrong, are only evaluated for the
# reasons of a deny. They read keys with object.get: `not f(input.x)` would
# be undefined, not true, when x is missing, because OPA evaluates the
# argument outside the negation.
# ---------------------------------------------------------------------------

well_formed if {
	is_string(input.action)
	input.action != ""
	is_array(input.subject.roles)
	is_object(input.resource)
	is_boolean(input.context.break_glass)
}

malformed contains "input is not an object" if not is_object(input)

malformed contains "action is not a non-empty string" if {
	is_object(input)
	not non_empty_string(object.get(input, "action", null))
}

malformed contains "subject is not an object" if {
	is_object(input)
	not is_object(object.get(input, "subject", null))
}

malformed contains "subject.roles is not an array" if {
	is_object(input.subject)
	not is_array(object.get(input.subject, "roles", null))
}

malformed contains "resource is not an object" if {
	is_object(input)
	not is_object(object.get(input, "resource", null))
}

malformed contains "context is not an object" if {
	is_object(input)
	not is_object(object.get(input, "context", null))
}

malformed contains "context.break_glass is not a boolean" if {
	is_object(input.context)
	not is_boolean(object.get(input.context, "break_glass", null))
}

non_empty_string(s) if {
	is_string(s)
	trim_space(s) != ""
}

# ---------------------------------------------------------------------------
# Facts about the request
# ---------------------------------------------------------------------------

# The subject is authenticated when the authenticator established an
# identity: a known kind and a non-empty id.
authenticated if {
	input.subject.kind in {"user", "service", "ae"}
	input.subject.id != ""
	is_string(input.subject.id)
}

# The subject's roles are input.subject.roles, read only when the subject
# is authenticated. Unknown role names, and entries that are not strings,
# are carried but grant nothing: every rule finds a role through a table
# (grants, organisation_grants, clinical_roles) whose keys are strings.

# Same organisation: both sides known and equal. An unknown organisation on
# either side never matches (fail closed). Equal sides need only one side
# tested for being known.
same_organisation if {
	input.subject.organisation == input.resource.organisation
	is_string(input.subject.organisation)
	trim_space(input.subject.organisation) != ""
}

# The stated purpose of use, trimmed and upper-cased; "" when none.
purpose := upper(trim_space(input.context.purpose_of_use)) if {
	is_string(input.context.purpose_of_use)
} else := ""

# Purpose of use check for identified PHI: one of identified_purposes (which
# includes "not stated"). Non-PHI actions ignore the purpose. The first rule
# is the common case (no purpose stated) without computing `purpose`.
purpose_permits if not input.action in {"study:read", "result:read", "export"}

purpose_permits if {
	input.context.purpose_of_use == ""
	"" in {"", "TREAT", "ETREAT", "HOPERAT"}
}

purpose_permits if purpose in {"", "TREAT", "ETREAT", "HOPERAT"}

break_glass_reason_given if non_empty_string(input.context.break_glass_reason)

break_glass_purpose_permits if purpose in {"", "TREAT", "ETREAT"}

# Some authenticated role of the subject is clinical and the action is one
# break-glass can unlock.
break_glass_eligible if {
	input.action in {"study:read", "result:read"}
	authenticated
	some r in input.subject.roles
	r in {"radiologist", "referring_physician", "technologist"}
}

# ---------------------------------------------------------------------------
# Grants. Each rule adds one reason naming the role that grants the action.
# ---------------------------------------------------------------------------

# health:read (/healthz, /readyz) is open to everyone, anonymous included:
# load balancers and kubelet probes carry no credentials, and the answer
# reveals no PHI.
grant contains "health:read is open to every subject" if input.action == "health:read"

# Role grants from the grants table.
grant contains concat("", ["role ", r, " grants ", input.action]) if {
	some r in input.subject.roles
	input.action in grants[r]
	authenticated
	purpose_permits
}

# Organisation-scoped grants.
grant contains concat("", ["role ", r, " grants ", input.action, " within its organisation"]) if {
	some r in input.subject.roles
	input.action in organisation_grants[r]
	same_organisation
	authenticated
	purpose_permits
}

# admin:* — every administrative action (keys, tokens and any added later)
# belongs to the admin role.
grant contains concat("", ["role admin grants ", input.action]) if {
	startswith(input.action, "admin:")
	"admin" in input.subject.roles
	authenticated
}

# Break-glass: a clinical role asking to read a study or result outside its
# normal scope (another organisation, or a result a technologist may not
# normally read), with context.break_glass true and a non-empty reason, is
# allowed. The decision carries break_glass: true so the audit trail flags
# the access for review. Break-glass only applies when nothing else grants
# the request, so a flag set on an ordinary request is not reported as
# break-glass access. The first test lets the rule index skip the rule for
# every ordinary request.
break_glass_grant contains concat("", ["break-glass by role ", r, " for ", input.action]) if {
	input.context.break_glass == true
	input.action in {"study:read", "result:read"}
	grant == set()
	authenticated
	some r in input.subject.roles
	r in {"radiologist", "referring_physician", "technologist"}
	break_glass_reason_given
	break_glass_purpose_permits
}

# ---------------------------------------------------------------------------
# Deny reasons, reported when nothing grants the request: for a malformed
# input what is malformed, else why the request is refused.
# ---------------------------------------------------------------------------

malformed_reason contains concat("", ["malformed input: ", m]) if some m in malformed

deny_reason contains "subject is not authenticated" if not authenticated

deny_reason contains concat("", ["no role of the subject grants ", input.action]) if {
	authenticated
	not role_could_grant
}

deny_reason contains concat("", [input.action, " is limited to the subject's organisation"]) if {
	some r in input.subject.roles
	input.action in organisation_grants[r]
	not same_organisation
	authenticated
}

deny_reason contains concat("", ["purpose of use ", purpose, " does not permit identified PHI access"]) if {
	authenticated
	not purpose_permits
}

deny_reason contains "break-glass requires a non-empty reason" if {
	input.context.break_glass == true
	not break_glass_reason_given
}

deny_reason contains concat("", ["break-glass is limited to clinical roles reading studies or results (", input.action, ")"]) if {
	input.context.break_glass == true
	not break_glass_eligible
	break_glass_reason_given
}

deny_reason contains concat("", ["break-glass does not permit purpose of use ", purpose]) if {
	input.context.break_glass == true
	break_glass_eligible
	not break_glass_purpose_permits
	break_glass_reason_given
}

# Some role of the subject names the action, whatever the other conditions
# (only asked for an authenticated subject).
role_could_grant if {
	some r in input.subject.roles
	input.action in grants[r]
}

role_could_grant if {
	some r in input.subject.roles
	input.action in organisation_grants[r]
}

role_could_grant if {
	startswith(input.action, "admin:")
	"admin" in input.subject.roles
}

# ---------------------------------------------------------------------------
# The decision. Default deny: the final else applies whenever no grant holds.
# ---------------------------------------------------------------------------

decision := {"allow": true, "break_glass": false, "reasons": sort(grant)} if {
	grant != set()
	well_formed
} else := {"allow": true, "break_glass": true, "reasons": sort(break_glass_grant)} if {
	input.context.break_glass == true
	break_glass_grant != set()
	well_formed
} else := {"allow": false, "break_glass": false, "reasons": deny_reasons}

# Deny reasons, never empty.
deny_reasons := sort(deny_reason) if {
	well_formed
	deny_reason != set()
} else := sort(malformed_reason) if {
	not well_formed
	malformed_reason != set()
} else := [concat("", ["no rule allows ", action_name])]

action_name := input.action if {
	is_string(input.action)
} else := "this action"
