package access

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/policy"
)

// Failer reports a sticky audit trail failure (implemented by
// *audit.Trail): when non-nil, nothing is accepted for storage.
type Failer interface {
	Err() error
}

// DIMSE guards the DIMSE SCP: association identity and C-STORE policy
// and audit.
type DIMSE struct {
	// Peers maps calling AE titles and client certificates. Required.
	Peers *auth.PeerMapper
	// Policy decides instance:store. Required.
	Policy Decider
	// Trail records; when it also implements Failer, a failed trail
	// refuses stores before anything is written. Required.
	Trail Appender
	// Logger gets rejections (AE titles and reasons only).
	Logger *slog.Logger
}

// StoreGrant is the outcome of AuthorizeStore for one C-STORE.
type StoreGrant struct {
	Principal  auth.Principal
	DecisionID string
}

func clientAddr(a net.Addr) string {
	if a == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// requestID names a DIMSE message in the audit trail: the peer's
// address and port (one association per connection) and the message ID.
func requestID(a net.Addr, msgID uint16) string {
	id := "dimse"
	if ap, err := netip.ParseAddrPort(fmt.Sprint(a)); err == nil {
		id += "-" + ap.Addr().Unmap().String() + "-" + strconv.Itoa(int(ap.Port()))
	}
	if msgID != 0 {
		id += "." + strconv.Itoa(int(msgID))
	}
	return id
}

func validAE(ae string) string {
	if len(ae) == 0 || len(ae) > 16 {
		return ""
	}
	for i := 0; i < len(ae); i++ {
		if ae[i] < 0x20 || ae[i] > 0x7e || ae[i] == '\\' {
			return ""
		}
	}
	return ae
}

// AcceptAssociation is dimse.Config.AcceptAssociation: the peer must map
// to an identity, else the association is rejected (reason 3) and an
// authentication record (outcome unauthenticated) is appended.
func (d *DIMSE) AcceptAssociation(info dimse.AssociationInfo) error {
	_, err := d.Peers.AssociationPrincipal(info.CallingAETitle, info.PeerCertificate)
	if err == nil {
		return nil
	}
	method := "ae"
	if info.PeerCertificate != nil {
		method = "tls"
	}
	rec := audit.Record{
		Protocol: audit.ProtocolDIMSE, RequestID: requestID(info.RemoteAddr, 0), ClientAddress: clientAddr(info.RemoteAddr),
		SubjectKind: audit.KindAnonymous, Action: audit.ActionAuthentication, Outcome: audit.OutcomeUnauthenticated,
		Detail: map[string]string{"calling_ae": validAE(info.CallingAETitle), "called_ae": validAE(info.CalledAETitle),
			"reason": "peer_not_mapped", "auth_method": method, "operation": "a-associate"},
	}
	if aerr := appendRecord(context.Background(), d.Trail, rec); aerr != nil && d.Logger != nil {
		d.Logger.Error("audit append failed for a rejected association", "error", aerr.Error())
	}
	if d.Logger != nil {
		d.Logger.Warn("association rejected: peer not mapped to an identity", "calling_ae", validAE(info.CallingAETitle),
			"remote", clientAddr(info.RemoteAddr), "reason", err.Error())
	}
	return fmt.Errorf("%w: %w", dimse.ErrCallingAENotRecognized, err)
}

func (d *DIMSE) record(req *dimse.StoreRequest, p auth.Principal) audit.Record {
	rec := audit.Record{
		Protocol: audit.ProtocolDIMSE, RequestID: requestID(req.RemoteAddr, req.MessageID), ClientAddress: clientAddr(req.RemoteAddr),
		SubjectID: p.ID, SubjectKind: string(p.Kind), Roles: auditRoles(p.Roles), Organisation: p.Organisation,
		Action: "instance:store", Resource: audit.Resource{Type: "instance", SOPInstanceUID: uid(req.SOPInstanceUID)},
		Detail: map[string]string{"calling_ae": validAE(req.CallingAETitle), "called_ae": validAE(req.CalledAETitle),
			"sop_class_uid": uid(req.SOPClassUID), "transfer_syntax_uid": uid(req.TransferSyntaxUID),
			"auth_method": string(p.AuthMethod), "operation": "c-store"},
	}
	if rec.SubjectKind == "" {
		rec.SubjectKind = audit.KindAE
	}
	return rec
}

// AuthorizeStore decides instance:store for the association's principal
// before the data set is stored (DecideStore, then DenyStore on a
// denial). errors: dimse.ErrNotAuthorized (status 0124; a denied record
// was appended), or any other error (status 0110: the peer no longer
// maps, the policy failed, the audit trail failed).
func (d *DIMSE) AuthorizeStore(ctx context.Context, req *dimse.StoreRequest) (StoreGrant, error) {
	g, allowed, err := d.DecideStore(ctx, req)
	if err != nil || allowed {
		return g, err
	}
	return g, d.DenyStore(ctx, g, req)
}

// DecideStore is AuthorizeStore's decision without its record: allowed
// reports the policy's answer, and a denial is to be recorded with
// DenyStore once it is answered. The C-STORE SCP decides as soon as the
// command is in (it needs nothing of the data set) and answers only once
// the data set has arrived: an association that breaks in between was
// never answered, and gets no record saying it was refused. errors: as
// AuthorizeStore's other than ErrNotAuthorized.
func (d *DIMSE) DecideStore(ctx context.Context, req *dimse.StoreRequest) (g StoreGrant, allowed bool, err error) {
	if f, ok := d.Trail.(Failer); ok {
		if err := f.Err(); err != nil {
			return StoreGrant{}, false, fmt.Errorf("access: audit trail unavailable: %w", err)
		}
	}
	p, err := d.Peers.AssociationPrincipal(req.CallingAETitle, req.PeerCertificate)
	if err != nil {
		return StoreGrant{}, false, fmt.Errorf("access: %w", err)
	}
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	dec, derr := d.Policy.Decide(ctx, policy.Input{
		Subject:  policy.Subject{ID: p.ID, Kind: string(p.Kind), Roles: roles, Organisation: p.Organisation},
		Action:   "instance:store",
		Resource: policy.Resource{Type: "instance", SOPInstanceUID: req.SOPInstanceUID, Organisation: p.Organisation},
		Context:  policy.RequestContext{ClientAddress: clientAddr(req.RemoteAddr)},
	})
	if derr != nil {
		return StoreGrant{}, false, fmt.Errorf("access: policy: %w", derr)
	}
	return StoreGrant{Principal: p, DecisionID: dec.ID}, dec.Allow, nil
}

// DenyStore appends the record of a C-STORE that DecideStore refused
// (outcome denied, status 0124) and returns the error to answer it with.
// errors: dimse.ErrNotAuthorized, or the audit trail's error (then answer
// 0110).
func (d *DIMSE) DenyStore(ctx context.Context, g StoreGrant, req *dimse.StoreRequest) error {
	rec := d.record(req, g.Principal)
	rec.PolicyDecisionID, rec.Outcome = g.DecisionID, audit.OutcomeDenied
	rec.Detail["reason"], rec.Detail["dimse_status"] = "policy_denied", "0124"
	if err := appendRecord(ctx, d.Trail, rec); err != nil {
		return fmt.Errorf("access: audit: %w", err)
	}
	return fmt.Errorf("%w: instance:store denied by policy", dimse.ErrNotAuthorized)
}

// StoreOutcome is what RecordStore writes about a C-STORE.
type StoreOutcome struct {
	StudyInstanceUID, SeriesInstanceUID string
	// Status is the DIMSE status answered (0000 success).
	Status uint16
	// Err is the storage error, nil on success.
	Err error
}

// StoreRecord returns the record RecordStore appends (for staging it
// with the instance's row instead: package service, ingest.SourceInfo).
func (d *DIMSE) StoreRecord(g StoreGrant, req *dimse.StoreRequest, out StoreOutcome) audit.Record {
	rec := d.record(req, g.Principal)
	rec.PolicyDecisionID = g.DecisionID
	rec.Resource.StudyInstanceUID, rec.Resource.SeriesInstanceUID = uid(out.StudyInstanceUID), uid(out.SeriesInstanceUID)
	rec.Outcome = audit.OutcomeSuccess
	if out.Err != nil || out.Status != 0 {
		rec.Outcome = audit.OutcomeError
		rec.Detail["error_kind"] = "store_failed"
	}
	rec.Detail["dimse_status"] = fmt.Sprintf("%04X", out.Status)
	return rec
}

// RecordStore appends the record of an authorised C-STORE before its
// response is sent. An error means the store must not be acknowledged
// (answer 0110).
func (d *DIMSE) RecordStore(ctx context.Context, g StoreGrant, req *dimse.StoreRequest, out StoreOutcome) error {
	rec := d.StoreRecord(g, req, out)
	if err := appendRecord(ctx, d.Trail, rec); err != nil {
		return fmt.Errorf("access: audit: %w", err)
	}
	return nil
}
