package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"

	"github.com/radflow/radflow/internal/access"
	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/store"
)

// router routes an instance to the latest version of every model whose
// routing accepts its attributes (models.Repository.Select). Result SRs
// are never routed.
func router(repo *models.Repository) ingest.Router {
	return ingest.RouterFunc(func(in *store.Instance) []ingest.ModelRef {
		if in.Source == store.SourceResult {
			return nil
		}
		ms := repo.Select(models.Attributes{
			Modality:          in.Modality,
			BodyPartExamined:  in.BodyPartExamined,
			SOPClassUID:       in.SOPClassUID,
			StudyDescription:  in.StudyDescription,
			SeriesDescription: in.SeriesDescription,
			CallingAETitle:    in.CallingAE,
		})
		out := make([]ingest.ModelRef, 0, len(ms))
		for _, m := range ms {
			out = append(out, ingest.ModelRef{Model: m.Version.Name, Version: strconv.Itoa(m.Version.Version)})
		}
		return out
	})
}

// Ingest metric outcomes (api.Metrics.ObserveIngest).
func ingestOutcome(out ingest.Outcome, err error) string {
	switch {
	case err == nil && out.Created:
		return "stored"
	case err == nil:
		return "duplicate"
	case errors.Is(err, ingest.ErrInvalid), errors.Is(err, ingest.ErrMismatch),
		errors.Is(err, ingest.ErrStudyMismatch), errors.Is(err, ingest.ErrBusy):
		return "rejected"
	}
	return "failed"
}

// dimseHandler is the C-STORE SCP's handler: the received data set gets
// its Part 10 file meta and goes through Ingest.
//
// Statuses: 0124 Refused: Not authorized when the policy denies
// instance:store to the association's principal (recorded); success 0000
// once the instance is durable and its audit record too (also for an
// instance already stored); A700 Out of Resources for backpressure (queue
// depth, free disk) and for a data set over MaxUpload; A900 when the data
// set's SOP Class/Instance UID differs from the command's; C000 Cannot
// Understand for bytes that do not parse or lack valid UIDs; 0110
// Processing Failure for anything else (storage errors, an audit trail
// that cannot record: then nothing is acknowledged).
type dimseHandler struct {
	s     *Service
	guard *access.DIMSE
}

// startedStore is the dimse.DataSetTap of a C-STORE whose policy
// decision was taken and whose blob is being written while its data set
// arrives (StartStore).
type startedStore struct {
	grant  access.StoreGrant
	denied bool          // the policy refused: Store records and answers it
	gerr   error         // the decision failed: Store answers it
	early  *ingest.Early // nil: ingest the usual way
}

// Data passes p on without a copy for the hash: package dimse keeps it
// unchanged until Store returns or Close is called (DataSetTap).
func (t *startedStore) Data(p []byte) {
	if t.early != nil {
		_, _ = t.early.WriteRetained(p) // sticky: IngestEarly reports it
	}
}

func (t *startedStore) Close() {
	if t.early != nil {
		t.early.Abort()
	}
}

// StartStore decides instance:store as soon as the C-STORE command is in
// (the decision needs nothing of the data set; a denial is recorded by
// Store, once it is answered) and, when the instance is to be stored,
// starts its blob (ingest.Begin) so that the data set is hashed,
// encrypted and written while it arrives.
func (h dimseHandler) StartStore(ctx context.Context, req *dimse.StoreRequest) dimse.DataSetTap {
	t := &startedStore{}
	var allowed bool
	if t.grant, allowed, t.gerr = h.guard.DecideStore(ctx, req); t.gerr != nil || !allowed {
		t.denied = t.gerr == nil
		return t
	}
	head, err := dimse.AppendPart10Header(nil, req.FileMeta())
	if err != nil {
		return t
	}
	t.early = h.s.ingest.Begin(ctx, h.source(req, t.grant))
	if t.early != nil {
		t.Data(head)
	}
	return t
}

func (h dimseHandler) Store(ctx context.Context, req *dimse.StoreRequest) (uint16, error) {
	started, _ := req.Tap.(*startedStore)
	var grant access.StoreGrant
	var err error
	switch {
	case started != nil && started.denied:
		grant = started.grant
		err = h.guard.DenyStore(ctx, grant, req) // recorded now that it is answered
	case started != nil:
		grant, err = started.grant, started.gerr
	default:
		grant, err = h.guard.AuthorizeStore(ctx, req)
	}
	if err != nil {
		h.s.metrics.ObserveIngest("dimse", "rejected")
		return 0, err
	}
	var early *ingest.Early
	if started != nil {
		early = started.early
	}
	status, out, durable, err := h.store(ctx, req, early, grant)
	if status == 0 && err != nil {
		status = dimseStatus(err)
	}
	record := func(status uint16, err error) error {
		return h.guard.RecordStore(ctx, grant, req, access.StoreOutcome{StudyInstanceUID: out.StudyInstanceUID,
			SeriesInstanceUID: out.SeriesInstanceUID, Status: status, Err: err})
	}
	derr, aerr := h.s.durableRecorded(out, err, durable, func() error { return record(status, err) })
	if derr != nil && aerr == nil {
		// Recorded as stored, but the commit did not become durable:
		// record the failure that is answered instead.
		err = derr
		status = dimseStatus(err)
		aerr = record(status, err)
	}
	if aerr != nil {
		h.s.log.Error("C-STORE not acknowledged: audit record failed", "sop_instance_uid", req.SOPInstanceUID, "error", aerr.Error())
		return 0, aerr
	}
	if err == nil {
		if cerr := h.s.owners.Claim(ctx, out.StudyInstanceUID, grant.Principal.Organisation); cerr != nil {
			return 0, cerr
		}
	}
	return status, err
}

// dimseStatus is the status the SCP answers for a handler error (as
// package dimse maps them), for the audit record.
func dimseStatus(err error) uint16 {
	switch {
	case errors.Is(err, dimse.ErrOutOfResources):
		return dimse.StatusOutOfResources
	case errors.Is(err, dimse.ErrDataSetMismatch):
		return dimse.StatusDataSetMismatch
	case errors.Is(err, dimse.ErrCannotUnderstand):
		return dimse.StatusCannotUnderstand
	case errors.Is(err, dimse.ErrNotAuthorized):
		return dimse.StatusNotAuthorized
	}
	return dimse.StatusProcessingFailure
}

// store ingests the data set and returns once its outcome is decided;
// durable (not nil when err is nil) must then be called (see
// ingest.IngestUnsynced).
func (h dimseHandler) store(ctx context.Context, req *dimse.StoreRequest, early *ingest.Early, grant access.StoreGrant) (uint16, ingest.Outcome, func() error, error) {
	if early != nil {
		defer early.Abort() // unless IngestEarly finished it
	}
	if h.s.cfg.MaxUpload > 0 && req.DataSetSize > h.s.cfg.MaxUpload {
		h.s.metrics.ObserveIngest("dimse", "rejected")
		return 0, ingest.Outcome{}, nil, fmt.Errorf("%w: data set of %d bytes, limit %d", dimse.ErrOutOfResources, req.DataSetSize, h.s.cfg.MaxUpload)
	}
	// In memory (the usual case): the file meta goes in front of the
	// received bytes, in place. Ingest reads a *bytes.Buffer in place and
	// does not keep it.
	b, inMemory, err := req.Part10Bytes()
	if err != nil {
		return 0, ingest.Outcome{}, nil, err
	}
	var out ingest.Outcome
	var durable func() error
	// A data set that outgrew memory gave the early blob only its start.
	h.s.metrics.ObserveCStoreBlobWrite(early != nil && inMemory)
	if early != nil && inMemory {
		out, durable, err = h.s.ingest.IngestEarly(ctx, early, b)
		return h.storeResult(out, durable, err)
	}
	buf := bytes.NewBuffer(b)
	if !inMemory {
		f, err := req.OpenDataSet()
		if err != nil {
			return 0, ingest.Outcome{}, nil, err
		}
		defer f.Close()
		buf = ingest.GetBuffer(int(req.DataSetSize) + 1024)
		defer ingest.PutBuffer(buf)
		if _, err := dimse.WritePart10(buf, req.FileMeta(), f); err != nil {
			return 0, ingest.Outcome{}, nil, err
		}
	}
	out, durable, err = h.s.ingest.IngestUnsynced(ctx, buf, h.source(req, grant))
	return h.storeResult(out, durable, err)
}

// source is dimseSource with the instance's success record staged in
// its row's transaction (ingest.SourceInfo.AuditRecord), when the
// service has an audit trail.
func (h dimseHandler) source(req *dimse.StoreRequest, grant access.StoreGrant) ingest.SourceInfo {
	src := dimseSource(req)
	if h.s.outbox != nil { // set with the trail
		src.AuditRecord = func(in *store.Instance) ([]byte, error) {
			return h.s.trail.Stage(h.guard.StoreRecord(grant, req, access.StoreOutcome{
				StudyInstanceUID: in.StudyInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID}))
		}
	}
	return src
}

// dimseSource is what ingest is told of a C-STORE: the calling AE title
// and the command's Affected SOP Class/Instance UIDs, which the data set
// must match.
func dimseSource(req *dimse.StoreRequest) ingest.SourceInfo {
	return ingest.SourceInfo{
		CallingAE:      req.CallingAETitle,
		Source:         store.SourceDIMSE,
		SOPClassUID:    req.SOPClassUID,
		SOPInstanceUID: req.SOPInstanceUID,
	}
}

// storeResult maps an ingest outcome to store's results.
func (h dimseHandler) storeResult(out ingest.Outcome, durable func() error, err error) (uint16, ingest.Outcome, func() error, error) {
	h.s.metrics.ObserveIngest("dimse", ingestOutcome(out, err))
	switch {
	case err == nil:
		return 0x0000, out, durable, nil
	case errors.Is(err, ingest.ErrBusy):
		return 0, out, nil, fmt.Errorf("%w: %w", dimse.ErrOutOfResources, err)
	case errors.Is(err, ingest.ErrMismatch):
		return 0, out, nil, fmt.Errorf("%w: %w", dimse.ErrDataSetMismatch, err)
	case errors.Is(err, ingest.ErrInvalid):
		return 0, out, nil, fmt.Errorf("%w: %w", dimse.ErrCannotUnderstand, err)
	}
	return 0, out, nil, err
}

// stowIngester is the dicomweb.Ingester over Ingest.
type stowIngester struct {
	s *Service
	// guard gets each instance's outcome for the request's own record
	// (access.Guard.NoteInstance, recorded by its Audit); nil: none.
	guard *access.Guard
}

// Each instance gets its own audit record (instance:store with its UIDs
// and outcome, the request's decision id) before the part is reported
// stored; a record that cannot be written fails the part (0110). The
// record is success only for an instance that was stored, error for one
// that was not (its UIDs as far as they were read). The request's own
// record (outcome of the whole upload) is the guard's, after the handler.
func (a stowIngester) Ingest(ctx context.Context, r io.Reader, src dicomweb.Source) (st dicomweb.Stored, rerr error) {
	if a.guard != nil {
		defer func() { a.guard.NoteInstance(ctx, rerr == nil) }()
	}
	info := ingest.SourceInfo{Source: store.SourceSTOW, StudyInstanceUID: src.StudyInstanceUID}
	p, recorded := api.PrincipalFrom(ctx)
	recorded = recorded && a.s.trail != nil && !p.Anonymous
	if recorded && a.s.outbox != nil {
		info.AuditRecord = func(in *store.Instance) ([]byte, error) {
			return a.s.trail.Stage(a.s.stowRecord(ctx, p, src, ingest.Outcome{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID,
				StudyInstanceUID: in.StudyInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID}, nil))
		}
	}
	out, durable, err := a.s.ingest.IngestUnsynced(ctx, r, info)
	a.s.metrics.ObserveIngest("dicomweb", ingestOutcome(out, err))
	st = dicomweb.Stored{
		SOPClassUID:       out.SOPClassUID,
		SOPInstanceUID:    out.SOPInstanceUID,
		StudyInstanceUID:  out.StudyInstanceUID,
		SeriesInstanceUID: out.SeriesInstanceUID,
	}
	if recorded {
		derr, aerr := a.s.durableRecorded(out, err, durable, func() error { return a.s.recordSTOW(ctx, p, src, out, err) })
		if derr != nil && aerr == nil {
			// Recorded as stored, but not durable: record the failure.
			err = derr
			aerr = a.s.recordSTOW(ctx, p, src, out, err)
		}
		if aerr != nil {
			return st, aerr
		}
		if err == nil {
			if cerr := a.s.owners.Claim(ctx, out.StudyInstanceUID, p.Organisation); cerr != nil {
				return st, cerr
			}
		}
	} else if durable != nil {
		err = durable()
	}
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, ingest.ErrStudyMismatch):
		return st, fmt.Errorf("%w: %w", dicomweb.ErrStudyMismatch, err)
	case errors.Is(err, ingest.ErrBusy) && errors.Is(err, store.ErrStorageFull):
		return st, fmt.Errorf("%w: %w", dicomweb.ErrOutOfResources, err)
	case errors.Is(err, ingest.ErrBusy):
		return st, fmt.Errorf("%w: %w", dicomweb.ErrBusy, err)
	case errors.Is(err, ingest.ErrInvalid):
		return st, fmt.Errorf("%w: %w", dicomweb.ErrInvalidInstance, err)
	}
	return st, err
}

// whileDurable runs record (an audit append, which needs an instance's
// outcome but not its durability) while durable (ingest.IngestUnsynced's;
// nil when there is nothing to wait for) waits for the commit to become
// durable, so that the record's fsync and the metadata log's run side by
// side. It returns durable's error and record's.
func whileDurable(durable func() error, record func() error) (derr, rerr error) {
	if durable == nil {
		return nil, record()
	}
	ch := make(chan error, 1)
	go func() { ch <- durable() }()
	rerr = record()
	return <-ch, rerr
}

// durableRecorded waits for an ingest's durability and its audit record:
// when the success record was staged with the row (out.AuditStaged) the
// commit's durability is the record's too, and the outbox's mover is told;
// otherwise record appends it while durable waits (whileDurable).
func (s *Service) durableRecorded(out ingest.Outcome, err error, durable func() error, record func() error) (derr, rerr error) {
	if err == nil && out.AuditStaged {
		derr = durable()
		s.outbox.kick()
		return derr, nil
	}
	return whileDurable(durable, record)
}

// recordSTOW appends the audit record of one STOW-RS instance.
func (s *Service) recordSTOW(ctx context.Context, p api.Principal, src dicomweb.Source, out ingest.Outcome, err error) error {
	rec := s.stowRecord(ctx, p, src, out, err)
	// The record of what happened must survive the client going away (an
	// aborted upload cancels ctx): append without ctx's cancellation.
	actx, cancel := audit.DetachedContext(ctx, 0)
	defer cancel()
	if aerr := s.trail.Append(actx, rec); aerr != nil {
		s.log.Error("STOW-RS instance not reported stored: audit record failed", "request_id", rec.RequestID, "error", aerr.Error())
		return fmt.Errorf("service: audit: %w", aerr)
	}
	return nil
}

// stowRecord is the audit record of one STOW-RS instance (outcome error
// when err is not nil).
func (s *Service) stowRecord(ctx context.Context, p api.Principal, src dicomweb.Source, out ingest.Outcome, err error) audit.Record {
	rec := audit.Record{
		Protocol: audit.ProtocolHTTP, RequestID: api.RequestID(ctx), ClientAddress: stowClient(src.RemoteAddr),
		SubjectID: p.Subject, SubjectKind: p.Kind, Roles: access.AuditRoles(p.Roles), Organisation: p.Organisation,
		Action: "instance:store", Outcome: audit.OutcomeSuccess, PolicyDecisionID: p.DecisionID,
		Resource: audit.Resource{Type: "instance", StudyInstanceUID: access.UID(out.StudyInstanceUID),
			SeriesInstanceUID: access.UID(out.SeriesInstanceUID), SOPInstanceUID: access.UID(out.SOPInstanceUID)},
		Detail: map[string]string{"operation": "stow-instance", "sop_class_uid": access.UID(out.SOPClassUID), "auth_method": p.AuthMethod},
	}
	if err != nil {
		rec.Outcome, rec.Detail["error_kind"] = audit.OutcomeError, "store_failed"
	}
	return rec
}

// stowClient returns the client's IP:port as an audit record takes it,
// "" when it is not one.
func stowClient(addr string) string {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return ""
	}
	return addr
}

// catalog is the dicomweb.Catalog over the store. A request whose
// principal is scoped to an organisation (api.Principal.ScopeOrganisation)
// only finds the studies that organisation owns.
type catalog struct {
	db     *store.SQLite
	blobs  store.BlobStore
	owners *access.Owners
}

// scope limits q to the studies of the request's scope organisation, if
// any; none reports that nothing can match.
func (c catalog) scope(ctx context.Context, q *dicomweb.Query) (none bool, err error) {
	p, ok := api.PrincipalFrom(ctx)
	if !ok || p.ScopeOrganisation == "" {
		return false, nil
	}
	if c.owners == nil {
		return true, nil
	}
	owned, err := c.owners.StudiesOf(ctx, p.ScopeOrganisation)
	if err != nil {
		return false, err
	}
	if len(q.StudyInstanceUIDs) > 0 {
		owned = slices.DeleteFunc(slices.Clone(q.StudyInstanceUIDs), func(u string) bool {
			_, found := slices.BinarySearch(owned, u)
			return !found
		})
	}
	q.StudyInstanceUIDs = owned
	return len(owned) == 0, nil
}

// storeQuery maps a QIDO query to the store's. SOPClassUID has no store
// key: it is matched here (then paging too).
func storeQuery(q dicomweb.Query) store.Query {
	sq := store.Query{
		StudyInstanceUID:  q.StudyInstanceUIDs,
		SeriesInstanceUID: q.SeriesInstanceUIDs,
		SOPInstanceUID:    q.SOPInstanceUIDs,
		PatientID:         q.PatientID,
		AccessionNumber:   q.AccessionNumber,
		PatientName:       q.PatientName,
		FuzzyMatching:     q.FuzzyMatching,
		Limit:             q.Limit,
		Offset:            q.Offset,
	}
	switch {
	case q.StudyDateFrom == "" && q.StudyDateTo == "":
	case q.StudyDateFrom == q.StudyDateTo:
		sq.StudyDate = q.StudyDateFrom
	default:
		sq.StudyDate = q.StudyDateFrom + "-" + q.StudyDateTo
	}
	if q.ModalitiesInStudy != "" {
		sq.ModalitiesInStudy = []string{q.ModalitiesInStudy}
	}
	if q.Modality != "" {
		sq.Modality = []string{q.Modality}
	}
	return sq
}

func catalogErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", dicomweb.ErrNotFound, err)
	}
	return err
}

func (c catalog) SearchStudies(ctx context.Context, q dicomweb.Query) ([]dicomweb.StudyRow, error) {
	if none, err := c.scope(ctx, &q); none || err != nil {
		return nil, err
	}
	rows, err := c.db.SearchStudies(ctx, storeQuery(q))
	if err != nil {
		return nil, catalogErr(err)
	}
	out := make([]dicomweb.StudyRow, len(rows))
	for i, r := range rows {
		out[i] = dicomweb.StudyRow{
			StudyInstanceUID: r.StudyInstanceUID, StudyDate: r.StudyDate, StudyTime: r.StudyTime,
			AccessionNumber: r.AccessionNumber, StudyDescription: r.StudyDescription,
			PatientID: r.PatientID, PatientName: r.PatientName, ModalitiesInStudy: r.ModalitiesInStudy,
			NumberOfStudyRelatedSeries: r.NumberOfSeries, NumberOfStudyRelatedInstances: r.NumberOfInstances,
		}
	}
	return out, nil
}

func (c catalog) SearchSeries(ctx context.Context, q dicomweb.Query) ([]dicomweb.SeriesRow, error) {
	if none, err := c.scope(ctx, &q); none || err != nil {
		return nil, err
	}
	rows, err := c.db.SearchSeries(ctx, storeQuery(q))
	if err != nil {
		return nil, catalogErr(err)
	}
	out := make([]dicomweb.SeriesRow, len(rows))
	for i, r := range rows {
		out[i] = dicomweb.SeriesRow{
			Study: parentStudy(r.StudyInstanceUID, r.StudyDate, r.StudyTime, r.AccessionNumber,
				r.StudyDescription, r.PatientID, r.PatientName),
			SeriesInstanceUID: r.SeriesInstanceUID, Modality: r.Modality, SeriesNumber: itoa(r.SeriesNumber),
			SeriesDescription: r.SeriesDescription, BodyPartExamined: r.BodyPartExamined,
			NumberOfSeriesRelatedInstances: r.NumberOfInstances,
		}
	}
	return out, nil
}

func (c catalog) SearchInstances(ctx context.Context, q dicomweb.Query) ([]dicomweb.InstanceRow, error) {
	if none, err := c.scope(ctx, &q); none || err != nil {
		return nil, err
	}
	sq := storeQuery(q)
	if q.SOPClassUID != "" {
		sq.Limit, sq.Offset = 0, 0
	}
	rows, err := c.db.SearchInstances(ctx, sq)
	if err != nil {
		return nil, catalogErr(err)
	}
	out := make([]dicomweb.InstanceRow, 0, len(rows))
	for i := range rows {
		if q.SOPClassUID != "" && !dicomweb.MatchString(q.SOPClassUID, rows[i].SOPClassUID) {
			continue
		}
		out = append(out, instanceRow(&rows[i]))
	}
	if q.SOPClassUID != "" {
		out = dicomweb.Page(out, q)
	}
	return out, nil
}

func (c catalog) Instance(ctx context.Context, uid string) (dicomweb.InstanceRow, error) {
	if access.UID(uid) == "" {
		return dicomweb.InstanceRow{}, fmt.Errorf("%w: not a SOP Instance UID", dicomweb.ErrNotFound)
	}
	in, err := c.db.GetInstance(ctx, uid)
	if err != nil {
		return dicomweb.InstanceRow{}, catalogErr(err)
	}
	return instanceRow(in), nil
}

func (c catalog) OpenInstance(ctx context.Context, uid string) (io.ReadCloser, error) {
	if access.UID(uid) == "" {
		return nil, fmt.Errorf("%w: not a SOP Instance UID", dicomweb.ErrNotFound)
	}
	in, err := c.db.GetInstance(ctx, uid)
	if err != nil {
		return nil, catalogErr(err)
	}
	rc, err := store.OpenInstance(ctx, c.blobs, in) // verified against the row's digest at EOF
	if err != nil {
		return nil, catalogErr(err)
	}
	return rc, nil
}

func instanceRow(in *store.Instance) dicomweb.InstanceRow {
	return dicomweb.InstanceRow{
		Series: dicomweb.SeriesRow{
			Study: parentStudy(in.StudyInstanceUID, in.StudyDate, in.StudyTime, in.AccessionNumber,
				in.StudyDescription, in.PatientID, in.PatientName),
			SeriesInstanceUID: in.SeriesInstanceUID, Modality: in.Modality, SeriesNumber: itoa(in.SeriesNumber),
			SeriesDescription: in.SeriesDescription, BodyPartExamined: in.BodyPartExamined,
			NumberOfSeriesRelatedInstances: -1,
		},
		SOPClassUID:       in.SOPClassUID,
		SOPInstanceUID:    in.SOPInstanceUID,
		InstanceNumber:    itoa(in.InstanceNumber),
		TransferSyntaxUID: in.TransferSyntaxUID,
		Size:              in.Size,
	}
}

// parentStudy is the study part of a series or instance row (its counts
// unknown: -1).
func parentStudy(uid, date, tm, accession, description, patientID, patientName string) dicomweb.StudyRow {
	return dicomweb.StudyRow{
		StudyInstanceUID: uid, StudyDate: date, StudyTime: tm, AccessionNumber: accession,
		StudyDescription: description, PatientID: patientID, PatientName: patientName,
		NumberOfStudyRelatedSeries: -1, NumberOfStudyRelatedInstances: -1,
	}
}

func itoa(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

// results is api.Results over the store, newest first.
type results struct{ db *store.SQLite }

func (r results) ListResults(ctx context.Context, f api.ResultFilter) ([]api.Result, error) {
	rows, err := r.db.ListResults(ctx, f.SOPInstanceUID, f.StudyInstanceUID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Result, 0, len(rows))
	for _, x := range slices.Backward(rows) {
		out = append(out, api.Result{
			SOPInstanceUID: x.SOPInstanceUID, StudyInstanceUID: x.StudyInstanceUID,
			Model: x.Model, Version: x.Version, Status: string(x.Status),
			Label: x.Label, Probabilities: x.Probabilities, Error: x.Error,
			SRSOPInstanceUID: x.SRSOPInstanceUID, TimingsMS: x.Timings,
			CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
		})
	}
	return out, nil
}

// modelList is api.Models over the repository: every version of every model.
type modelList struct{ repo *models.Repository }

func (m modelList) ListModels(context.Context) ([]api.Model, error) {
	var out []api.Model
	for _, name := range m.repo.Names() {
		for _, v := range m.repo.Versions(name) {
			out = append(out, api.Model{Name: v.Name, Version: strconv.Itoa(v.Version),
				Labels: v.Config.Labels, Modalities: v.Config.Routing.Modalities})
		}
	}
	return out, nil
}
