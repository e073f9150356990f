package audit

// Source identifies the system that reports the audit events, for the
// exports: DICOM AuditSourceIdentification and FHIR AuditEvent.source.
type Source struct {
	// ID is the AuditSourceID / source.observer identifier; "" means
	// "radflow".
	ID string
	// SiteID is the AuditEnterpriseSiteID / source.site (optional).
	SiteID string
	// AETitle is radflow's DICOM AE title, used as UserID of radflow's
	// ActiveParticipant for DIMSE events ("" means ID).
	AETitle string
}

func (s Source) id() string {
	if s.ID == "" {
		return "radflow"
	}
	return s.ID
}
