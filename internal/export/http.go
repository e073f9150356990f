package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
)

// ActionExport is the policy action of both routes (security plan:
// "export").
const ActionExport = "export"

// Route is one HTTP route, field for field api.Route (and dicomweb.Route):
// convert with api.Route(r). Pattern is a ServeMux pattern without the
// method; BodyLimit 0 means no body; Timeout 0 the server's default.
type Route struct {
	Method    string
	Pattern   string
	Action    string
	BodyLimit int64
	Timeout   time.Duration
	Handler   http.Handler
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// PathPrefix of the routes (default "/api/v1").
	PathPrefix string
	// Timeout is the deadline of POST /exports (default 30 min): an
	// export of a large study to a slow PACS takes long.
	Timeout time.Duration
	// Logger (default slog.Default()); never receives PHI.
	Logger *slog.Logger
}

// Handler serves the export REST API.
type Handler struct {
	exp  *Exporter
	opts HandlerOptions
	log  *slog.Logger
}

// NewHandler returns the REST handlers over exp.
func NewHandler(exp *Exporter, opts HandlerOptions) *Handler {
	if opts.PathPrefix == "" {
		opts.PathPrefix = "/api/v1"
	}
	opts.PathPrefix = "/" + strings.Trim(opts.PathPrefix, "/")
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{exp: exp, opts: opts, log: opts.Logger}
}

// maxRequestBody bounds POST /exports bodies (10000 UIDs of 64 bytes fit).
const maxRequestBody = 1 << 20

// Routes lists:
//
//	POST /api/v1/exports       {destination, study_instance_uid | sop_instance_uids, include_sr}
//	                           → 200 Result; 400 malformed; 403; 404 unknown destination or
//	                             study/instance; 415; 500 {error, result} when the audit
//	                             trail failed; 502 {error, result} destination unavailable;
//	                             504 {error, result} deadline
//	GET  /api/v1/destinations  → 200 [DestinationInfo] (no addresses, files or secrets)
func (h *Handler) Routes() []Route {
	p := h.opts.PathPrefix
	return []Route{
		{Method: "POST", Pattern: p + "/exports", Action: ActionExport, BodyLimit: maxRequestBody, Timeout: h.opts.Timeout, Handler: http.HandlerFunc(h.export)},
		{Method: "GET", Pattern: p + "/destinations", Action: ActionExport, Handler: http.HandlerFunc(h.destinations)},
	}
}

// ServeMux returns a mux with the routes and no middleware (tests,
// embedding without package api).
func (h *Handler) ServeMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range h.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	return mux
}

// exportBody is the POST /exports request.
type exportBody struct {
	Destination      string   `json:"destination"`
	StudyInstanceUID string   `json:"study_instance_uid"`
	SOPInstanceUIDs  []string `json:"sop_instance_uids"`
	IncludeSR        bool     `json:"include_sr"`
}

func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			jsonError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
	}
	var body exportBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			jsonError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		jsonError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	if dec.More() {
		jsonError(w, http.StatusBadRequest, "malformed JSON body: trailing data")
		return
	}
	if body.Destination == "" {
		jsonError(w, http.StatusBadRequest, "destination is required")
		return
	}
	res, err := h.exp.Export(r.Context(), Request{Destination: body.Destination, StudyInstanceUID: body.StudyInstanceUID,
		SOPInstanceUIDs: body.SOPInstanceUIDs, IncludeSR: body.IncludeSR})
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, ErrUnknownDestination):
		jsonError(w, http.StatusNotFound, fmt.Sprintf("unknown destination %q", body.Destination))
	case errors.Is(err, ErrNotFound):
		jsonError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalidRequest):
		jsonError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrForbidden):
		jsonError(w, http.StatusForbidden, "forbidden")
	case res != nil && errors.Is(err, ErrDestinationUnavailable):
		writeJSON(w, http.StatusBadGateway, errorWithResult{Error: err.Error(), Result: res})
	case res != nil && errors.Is(err, ErrAudit):
		h.log.Error("export: audit failed", "destination", body.Destination, "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, errorWithResult{Error: "audit trail unavailable; export stopped", Result: res})
	case res != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		writeJSON(w, http.StatusGatewayTimeout, errorWithResult{Error: "export did not finish before the request deadline", Result: res})
	default:
		h.log.Error("export failed", "destination", body.Destination, "error", err.Error())
		jsonError(w, http.StatusInternalServerError, "export failed")
	}
}

type errorWithResult struct {
	Error  string  `json:"error"`
	Result *Result `json:"result"`
}

func (h *Handler) destinations(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.exp.Destinations())
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
