package export

import (
	"context"
	"testing"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/dimse"
)

type recTrail struct{ recs []audit.Record }

func (r *recTrail) Append(_ context.Context, rec audit.Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	r.recs = append(r.recs, rec)
	return nil
}

// TestTrailAuditorRecordsValidate: the records of sent, rejected and
// auto-pushed instances pass the trail's validation and hold no PHI.
func TestTrailAuditorRecordsValidate(t *testing.T) {
	mr := mrStudy(t)
	src := newSource(t, mr...)
	g := startGoSCP(t, dimse.Config{TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}})
	tr := &recTrail{}
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, TrailAuditor{Trail: tr})
	ctx := context.Background()
	res, err := e.Export(ctx, Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Failed != 3 {
		t.Fatalf("Export = %v, %+v", err, res)
	}
	if len(tr.recs) != 3 {
		t.Fatalf("%d records", len(tr.recs))
	}
	r := tr.recs[0]
	if r.Action != "export" || r.Outcome != audit.OutcomeError || r.Resource.StudyInstanceUID != mrStudyUID || r.Detail["reason"] != ReasonPresentationContext ||
		r.Detail["called_ae"] != "GOPACS" || r.SubjectKind != audit.KindAnonymous || r.Detail["dimse_status"] != "" {
		t.Errorf("record %+v", r)
	}
	ev := AuditEvent{Destination: "d", AETitle: "PACS", Auto: true, StudyInstanceUID: mrStudyUID, SOPInstanceUID: "1.2.3",
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.33", Status: StatusSent, DIMSEStatus: "0000"}
	if err := (TrailAuditor{Trail: tr}).Exported(ctx, ev); err != nil {
		t.Fatal(err)
	}
	r = tr.recs[3]
	if r.SubjectKind != audit.KindSystem || r.Outcome != audit.OutcomeSuccess || r.Detail["operation"] != "auto_export" || r.Detail["dimse_status"] != "0000" {
		t.Errorf("auto record %+v", r)
	}
}
