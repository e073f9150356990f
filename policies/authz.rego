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
# Vocabulary
# ---------------------------------------------------------------------------

# Authenticated subject kinds. "anonymous" is what the authenticator reports
# when a request carried no credentials at all.
authenticated_kinds := {"user", "service", "ae"}

# Roles that treat patients. Only they may use break-glass.
clinical_roles := {"radiologist", "referring_physician", "technologist"}

# Actions that disclose identified protected health information (PHI):
# images and their metadata, AI results about a patient, identified exports.
identified_phi_actions := {"study:read", "result:read", "export"}

# Actions break-glass can unlock: reading images and results only. It never
# unlocks storing, exporting or anything administrative.
break_glass_actions := {"study:read", "result:read"}

# HL7 v3 PurposeOfUse codes (ActReason) that permit identified PHI access:
# treatment, emergency treatment and healthcare operations (which covers
# an AI service analysing a study for the care pathway). A purpose is not
# required: a request without X-Purpose-Of-Use is taken as treatment or
# operations, which is what every clinical viewer sends implicitly. A request
# that does state a purpose is held to it, so e.g. HRESCH (research) cannot
# read identified studies; research goes through deid. "" stands for "not
# stated".
identified_purposes := {"", "TREAT", "ETREAT", "HOPERAT"}

# Break-glass is an emergency-treatment mechanism: with a stated purpose it
# must be treatment or emergency treatment ("" = not stated).
break_glass_purposes := {"", "TREAT", "ETREAT"}

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
	input.subject.kind in authenticated_kinds
	is_string(input.subject.id)
	input.subject.id != ""
}

# The subject's roles. Unknown role names, and entries that are not strings,
# are carried but grant nothing.
roles contains r if {
	authenticated
	some r in input.subject.roles
	is_string(r)
}

# Same organisation: both sides known and equal. An unknown organisation on
# either side never matches (fail closed).
same_organisation if {
	non_empty_string(input.subject.organisation)
	non_empty_string(input.resource.organisation)
	input.subject.organisation == input.resource.organisation
}

# The stated purpose of use, trimmed and upper-cased; "" when none.
purpose := upper(trim_space(input.context.purpose_of_use)) if {
	is_string(input.context.purpose_of_use)
} else := ""

# Purpose of use check for identified PHI: one of identified_purposes (which
# includes "not stated"). Non-PHI actions ignore the purpose.
purpose_permits if not input.action in identified_phi_actions

purpose_permits if purpose in identified_purposes

break_glass_reason_given if non_empty_string(input.context.break_glass_reason)

break_glass_purpose_permits if purpose in break_glass_purposes

# ---------------------------------------------------------------------------
# Grants. Each rule adds one reason naming the role that grants the action.
# ---------------------------------------------------------------------------

# health:read (/healthz, /readyz) is open to everyone, anonymous included:
# load balancers and kubelet probes carry no credentials, and the answer
# reveals no PHI.
grant contains "health:read is open to every subject" if input.action == "health:read"

# Role grants from the grants table.
grant contains sprintf("role %s grants %s", [r, input.action]) if {
	some r in input.subject.roles
	input.action in grants[r]
	authenticated
	purpose_permits
}

# Organisation-scoped grants.
grant contains sprintf("role %s grants %s within its organisation", [r, input.action]) if {
	some r in input.subject.roles
	input.action in organisation_grants[r]
	authenticated
	same_organisation
	purpose_permits
}

# admin:* — every administrative action (keys, tokens and any added later)
# belongs to the admin role.
grant contains sprintf("role admin grants %s", [input.action]) if {
	startswith(input.action, "admin:")
	authenticated
	"admin" in input.subject.roles
}

# Break-glass: rules test input.context.break_glass == true first, which
# OPA's rule index resolves without evaluating the rest of the rule.
#
# A clinical role asking to read a study or result outside its
# normal scope (another organisation, or a result a technologist may not
# normally read), with context.break_glass true and a non-empty reason, is
# allowed. The decision carries break_glass: true so the audit trail flags
# the access for review. Break-glass only applies when nothing else grants
# the request, so a flag set on an ordinary request is not reported as
# break-glass access.
break_glass_grant contains sprintf("break-glass by role %s for %s", [r, input.action]) if {
	input.context.break_glass == true
	count(grant) == 0
	break_glass_reason_given
	break_glass_purpose_permits
	input.action in break_glass_actions
	some r in roles
	r in clinical_roles
}

# ---------------------------------------------------------------------------
# Deny reasons, reported when nothing grants the request.
# ---------------------------------------------------------------------------

deny_reason contains sprintf("malformed input: %s", [m]) if {
	not well_formed
	some m in malformed
}

deny_reason contains "subject is not authenticated" if {
	well_formed
	not authenticated
}

deny_reason contains sprintf("no role of the subject grants %s", [input.action]) if {
	well_formed
	authenticated
	not role_could_grant
}

deny_reason contains sprintf("%s is limited to the subject's organisation", [input.action]) if {
	well_formed
	some r in roles
	input.action in organisation_grants[r]
	not same_organisation
}

deny_reason contains sprintf("purpose of use %s does not permit identified PHI access", [purpose]) if {
	well_formed
	authenticated
	not purpose_permits
}

deny_reason contains "break-glass requires a non-empty reason" if {
	input.context.break_glass == true
	well_formed
	not break_glass_reason_given
}

deny_reason contains sprintf("break-glass is limited to clinical roles reading studies or results (%s)", [input.action]) if {
	input.context.break_glass == true
	well_formed
	break_glass_reason_given
	not break_glass_eligible
}

deny_reason contains sprintf("break-glass does not permit purpose of use %s", [purpose]) if {
	input.context.break_glass == true
	well_formed
	break_glass_reason_given
	break_glass_eligible
	not break_glass_purpose_permits
}

# Some role of the subject names the action, whatever the other conditions.
role_could_grant if {
	some r in roles
	input.action in grants[r]
}

role_could_grant if {
	some r in roles
	input.action in organisation_grants[r]
}

role_could_grant if {
	"admin" in roles
	startswith(input.action, "admin:")
}

break_glass_eligible if {
	input.action in break_glass_actions
	some r in roles
	r in clinical_roles
}

# ---------------------------------------------------------------------------
# The decision. Default deny: the final else applies whenever no grant holds.
# ---------------------------------------------------------------------------

decision := {"allow": true, "break_glass": false, "reasons": sort(grant)} if {
	well_formed
	count(grant) > 0
} else := {"allow": true, "break_glass": true, "reasons": sort(break_glass_grant)} if {
	input.context.break_glass == true
	well_formed
	count(break_glass_grant) > 0
} else := {"allow": false, "break_glass": false, "reasons": deny_reasons}

# Deny reasons, never empty.
deny_reasons := sort(deny_reason) if {
	count(deny_reason) > 0
} else := [sprintf("no rule allows %s", [action_name])]

action_name := input.action if {
	is_string(input.action)
} else := "this action"
