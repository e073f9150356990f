package export

import (
	"context"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
)

// Appender is what TrailAuditor writes to (*audit.Trail implements it).
type Appender interface {
	Append(ctx context.Context, rec audit.Record) error
}

// TrailAuditor is the Auditor over radflow's audit trail: one record per
// instance, action "export", resource the local instance (original Study
// and SOP Instance UIDs), subject the request's principal (api.PrincipalFrom)
// or "radflow" (system) for auto-pushes, outcome success for sent/warning
// and error otherwise, detail called_ae, dimse_status, reason,
// sop_class_uid and operation (export | auto_export). The destination name
// and the UIDs sent to an external destination are not recorded: the
// trail's detail keys have no slot for them (see docs/export.md).
type TrailAuditor struct {
	Trail Appender
}

// Exported implements Auditor.
func (a TrailAuditor) Exported(ctx context.Context, ev AuditEvent) error {
	rec := audit.Record{
		Action:    ActionExport,
		Resource:  audit.Resource{Type: "instance", StudyInstanceUID: ev.StudyInstanceUID, SOPInstanceUID: ev.SOPInstanceUID},
		Outcome:   audit.OutcomeSuccess,
		RequestID: api.RequestID(ctx),
		Protocol:  "dimse",
		Detail:    map[string]string{"called_ae": ev.AETitle, "operation": "export"},
	}
	if ev.Status != StatusSent && ev.Status != StatusWarning {
		rec.Outcome = audit.OutcomeError
	}
	if ev.Auto {
		rec.SubjectID, rec.SubjectKind, rec.Detail["operation"] = "radflow", audit.KindSystem, "auto_export"
	} else if p, ok := api.PrincipalFrom(ctx); ok && !p.Anonymous {
		rec.SubjectID, rec.SubjectKind, rec.Roles = p.Subject, audit.KindUser, p.Roles
	} else {
		rec.SubjectID, rec.SubjectKind = "anonymous", audit.KindAnonymous
	}
	for k, v := range map[string]string{"dimse_status": ev.DIMSEStatus, "reason": ev.Reason, "sop_class_uid": ev.SOPClassUID} {
		if v != "" {
			rec.Detail[k] = v
		}
	}
	return a.Trail.Append(ctx, rec)
}
