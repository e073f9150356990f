package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/radflow/radflow/internal/access"
	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/export"
	"github.com/radflow/radflow/internal/pipeline"
	"github.com/radflow/radflow/internal/policy"
)

// Route actions of the export routes, mapped by exportActions. The export
// package names both routes "export"; the service tells them apart so that
// listing destinations (no PHI) is not recorded as an export.
const (
	actionExport       = export.ActionExport // POST /api/v1/exports
	actionDestinations = "export.destinations"
)

// exportActions maps the export routes to the policy: both need the
// policy action export; the export itself is a PHI action (recorded on
// success too, resource study: the UIDs are in the body, decided per
// study by authorizeExport).
func exportActions() map[string]access.Action {
	return map[string]access.Action{
		actionExport:       {Policy: "export", Resource: "study", PHI: true, Operation: "export"},
		actionDestinations: {Policy: "export", Resource: "system", Operation: "destinations"},
	}
}

// WorkerAuditDir is the audit trail of a process without listeners
// (radflow worker) that auto-pushes result SRs: <data>/worker/audit, keyed
// by the same HMAC key as serve's trail. serve holds <data>/audit, so a
// worker cannot append there; verify it with
// `radflow audit verify --data <data>/worker --audit-key-file <data>/keys/audit-hmac.key`.
func WorkerAuditDir(dataDir string) string { return filepath.Join(dataDir, "worker", "audit") }

// autoSR reports whether cfg has a destination with auto: [sr].
func autoSR(cfg *export.Config) bool {
	if cfg == nil {
		return false
	}
	for _, d := range cfg.Destinations {
		for _, a := range d.Auto {
			if a == export.AutoSR {
				return true
			}
		}
	}
	return false
}

// openExports builds the exporter over the store and the audit trail, and
// the auto-pusher when this process runs inference jobs and a destination
// has auto: [sr]. A process with listeners always gets an exporter (with
// no destinations file it has none: POST /api/v1/exports answers 404); a
// worker gets one only to auto-push, with its own trail (WorkerAuditDir).
func (s *Service) openExports(ctx context.Context) error {
	cfg := s.cfg
	serving := cfg.HTTPAddr != "" || cfg.DICOMAddr != ""
	push := cfg.Workers > 0 && autoSR(cfg.Destinations)
	if !serving && !push {
		return nil
	}
	trail := s.trail
	if !serving {
		_, keyFile := audit.Paths(cfg.DataDir)
		if cfg.Security.AuditKeyFile != "" {
			keyFile = cfg.Security.AuditKeyFile
		}
		key, err := audit.LoadOrCreateKey(keyFile)
		if err != nil {
			return err
		}
		dir := WorkerAuditDir(cfg.DataDir)
		if s.workerTrail, err = audit.Open(audit.Config{Dir: dir, Key: key, Sinks: cfg.Security.AuditSinks, Logger: s.log}); err != nil {
			if errors.Is(err, audit.ErrLocked) {
				return fmt.Errorf("service: auto-push needs the worker audit trail %s, which another radflow worker holds: run one auto-pushing worker per data directory (start the others without --destinations): %w", dir, err)
			}
			return fmt.Errorf("service: worker audit trail: %w", err)
		}
		trail = s.workerTrail
	}
	opts := export.Options{
		Source:  export.StoreSource{Meta: s.db, Blobs: s.blobs},
		Auditor: export.TrailAuditor{Trail: exportAppender{trail}},
		Logger:  s.log,
	}
	if serving {
		opts.Authorize = s.authorizeExport
	}
	var err error
	if s.exporter, err = export.New(cfg.Destinations, opts); err != nil {
		return err
	}
	if push {
		s.pusher = export.NewAutoPusher(s.exporter, export.AutoPushOptions{Logger: s.log})
	}
	return nil
}

// srSink is the job handler's SR sink: the ingester, wrapped to announce
// each stored result SR to the auto-pusher when there is one.
func (s *Service) srSink() pipeline.SRIngester {
	if s.pusher == nil {
		return s.ingest
	}
	return export.AutoPushIngester{Next: s.ingest, Pusher: s.pusher}
}

// exportRoutes are POST /api/v1/exports and GET /api/v1/destinations. The
// export route carries the request's policy context (purpose of use,
// break-glass, client address) to authorizeExport.
func (s *Service) exportRoutes() []api.Route {
	h := export.NewHandler(s.exporter, export.HandlerOptions{Logger: s.log})
	var out []api.Route
	for _, r := range h.Routes() {
		ar := api.Route(r)
		if r.Method == http.MethodGet {
			ar.Action = actionDestinations
		} else {
			next := ar.Handler
			ar.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				ctx := context.WithValue(req.Context(), exportCtxKey{}, exportRequestContext(req))
				next.ServeHTTP(w, req.WithContext(ctx))
			})
		}
		out = append(out, ar)
	}
	return out
}

type exportCtxKey struct{}

// exportRequestContext reads the policy context headers as the Guard does
// (which already answered 400 to malformed ones).
func exportRequestContext(r *http.Request) policy.RequestContext {
	c := policy.RequestContext{ClientAddress: r.RemoteAddr}
	c.PurposeOfUse = strings.ToUpper(strings.TrimSpace(r.Header.Get(access.HeaderPurposeOfUse)))
	if vs, ok := r.Header[http.CanonicalHeaderKey(access.HeaderBreakGlass)]; ok {
		c.BreakGlass = true
		if len(vs) > 0 {
			c.BreakGlassReason = strings.TrimSpace(vs[0])
		}
	}
	return c
}

// authorizeExport is export.Options.Authorize: the Guard allowed the
// route (action export, no study: the UIDs are in the body); here each
// exported study is decided with its owning organisation (study_owners),
// for action export and, when the destination is external, also deid
// (the request makes a de-identified copy). A denial appends a denied
// record (action, study, destination AE title, decision id) and answers
// 403; a record that cannot be written answers 500.
func (s *Service) authorizeExport(ctx context.Context, dest export.DestinationInfo, studies []string) error {
	p, ok := api.PrincipalFrom(ctx)
	if !ok || p.Anonymous {
		return fmt.Errorf("%w: no authenticated principal", export.ErrForbidden)
	}
	rc, _ := ctx.Value(exportCtxKey{}).(policy.RequestContext)
	actions := []string{"export"}
	if dest.External {
		actions = append(actions, "deid")
	}
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	for _, study := range studies {
		org := ""
		if s.owners != nil {
			var err error
			if org, err = s.owners.StudyOrganisation(ctx, study); err != nil {
				return fmt.Errorf("service: study owner: %w", err)
			}
		}
		for _, act := range actions {
			dec, err := s.policy.Decide(ctx, policy.Input{
				Subject:  policy.Subject{ID: p.Subject, Kind: p.Kind, Roles: roles, Organisation: p.Organisation},
				Action:   act,
				Resource: policy.Resource{Type: "study", StudyInstanceUID: study, Organisation: org},
				Context:  rc,
			})
			if err != nil {
				return fmt.Errorf("service: export policy: %w", err)
			}
			if dec.Allow {
				continue
			}
			rec := audit.Record{
				Protocol: audit.ProtocolHTTP, RequestID: api.RequestID(ctx), ClientAddress: rc.ClientAddress,
				SubjectID: p.Subject, SubjectKind: p.Kind, Roles: access.AuditRoles(p.Roles), Organisation: p.Organisation,
				Action: act, Outcome: audit.OutcomeDenied, PolicyDecisionID: dec.ID, PurposeOfUse: rc.PurposeOfUse,
				Resource: audit.Resource{Type: "study", StudyInstanceUID: access.UID(study)},
				Detail: map[string]string{"operation": "export", "reason": "policy_denied", "http_status": "403",
					"called_ae": dest.AETitle, "auth_method": p.AuthMethod},
			}
			if aerr := s.trail.Append(ctx, rec); aerr != nil {
				return fmt.Errorf("service: audit: %w", aerr)
			}
			return fmt.Errorf("%w: %s not allowed for a study of this request", export.ErrForbidden, act)
		}
	}
	return nil
}

// exportAppender completes export.TrailAuditor's records with what the
// request guard knows: the roles the trail accepts (access.AuditRoles),
// the organisation, the policy decision and the authentication method.
type exportAppender struct{ trail *audit.Trail }

func (a exportAppender) Append(ctx context.Context, rec audit.Record) error {
	rec.Roles = access.AuditRoles(rec.Roles)
	if p, ok := api.PrincipalFrom(ctx); ok && !p.Anonymous && rec.SubjectKind != audit.KindSystem {
		rec.Organisation, rec.PolicyDecisionID = p.Organisation, p.DecisionID
		rec.SubjectKind = p.Kind
		if rec.Detail == nil {
			rec.Detail = map[string]string{}
		}
		rec.Detail["auth_method"] = p.AuthMethod
	}
	return a.trail.Append(ctx, rec)
}

// closeExports stops the auto-pusher (queued pushes run until ctx ends;
// the rest are dropped with a warning), then closes the worker trail.
func (s *Service) closeExports(ctx context.Context) error {
	var errs []error
	if s.pusher != nil {
		if err := s.pusher.Close(ctx); err != nil {
			s.log.Warn("export: auto-pushes still queued at shutdown were dropped", "error", err.Error())
		}
		s.pusher = nil
	}
	if s.workerTrail != nil {
		errs = append(errs, s.workerTrail.Close())
		s.workerTrail = nil
	}
	return errors.Join(errs...)
}

// closeExportsNow is closeExports for a failed New (no pushes to wait for).
func (s *Service) closeExportsNow() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.closeExports(ctx)
}

// Destinations lists the export destinations (nil when this process has
// no exporter) and whether result SRs are auto-pushed.
func (s *Service) Destinations() (dests []export.DestinationInfo, autoPush bool) {
	if s.exporter == nil {
		return nil, false
	}
	return s.exporter.Destinations(), s.pusher != nil
}
