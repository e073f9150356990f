package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/radflow/radflow/internal/dicomweb"
)

// Route is one mounted route (see dicomweb.Route): Pattern is a ServeMux
// pattern without the method, Action what the Guard authorises, BodyLimit
// the request body limit in bytes (0: Config.DefaultBodyLimit), Timeout the
// request deadline (0: Config.DefaultTimeout).
type Route struct {
	Method    string
	Pattern   string
	Action    string
	BodyLimit int64
	Timeout   time.Duration
	Handler   http.Handler
}

// FromDICOMweb converts the DICOMweb service's routes for Config.Routes.
func FromDICOMweb(rs []dicomweb.Route) []Route {
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route(r)
	}
	return out
}

// Config configures the server. Only zero-value-safe fields are optional.
type Config struct {
	// Guard authorises every request; nil means AllowAll.
	Guard Guard
	// Auditor receives one event per routed request; nil: none.
	Auditor Auditor
	// Logger receives access logs (route pattern, status, bytes, duration,
	// request ID, principal) and errors; never query strings, headers or
	// bodies. Default slog.Default().
	Logger *slog.Logger
	// Metrics is served at /metrics and records HTTP metrics; nil: a new
	// NewMetrics() (then available as Server.Metrics).
	Metrics *Metrics
	// Results backs GET /api/v1/results; nil answers 503.
	Results Results
	// Models backs GET /api/v1/models; nil answers 503.
	Models Models
	// Ready are the /readyz checks by name (e.g. "db", "queue", "models",
	// "disk"); all must pass for 200.
	Ready map[string]Check
	// ReadyTimeout bounds all readiness checks together (default 2 s).
	ReadyTimeout time.Duration
	// Routes are mounted behind the same middleware (FromDICOMweb).
	Routes []Route
	// DefaultTimeout is the request deadline for routes without their own
	// (default 30 s). DefaultBodyLimit is the body limit for routes
	// without their own (default 1 MiB).
	DefaultTimeout   time.Duration
	DefaultBodyLimit int64
}

// Server is the composed HTTP handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	Metrics *Metrics
}

// New builds the server. errors: a route pattern that ServeMux rejects or
// that conflicts with another (reported, not panicked).
func New(cfg Config) (s *Server, err error) {
	if cfg.Guard == nil {
		cfg.Guard = AllowAll{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.DefaultBodyLimit <= 0 {
		cfg.DefaultBodyLimit = 1 << 20
	}
	s = &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), Metrics: cfg.Metrics}
	routes := []Route{
		{Method: "GET", Pattern: "/api/v1/results", Action: ActionResultsRead, Handler: http.HandlerFunc(s.results)},
		{Method: "GET", Pattern: "/api/v1/models", Action: ActionModelsRead, Handler: http.HandlerFunc(s.models)},
		{Method: "GET", Pattern: "/healthz", Action: ActionHealth, Handler: http.HandlerFunc(s.healthz)},
		{Method: "GET", Pattern: "/readyz", Action: ActionReady, Handler: http.HandlerFunc(s.readyz)},
		{Method: "GET", Pattern: "/metrics", Action: ActionMetrics, Handler: cfg.Metrics.Handler()},
	}
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("api: registering routes: %v", p)
		}
	}()
	for _, rt := range append(routes, cfg.Routes...) {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	return s, nil
}

// HTTP server limits (NewHTTPServer). ReadTimeout and WriteTimeout are
// backstops above the longest route deadline (STOW-RS and study WADO-RS,
// 1 h); each route narrows both to its own Timeout (plus WriteGrace for
// the write side) when its handler starts, so a slow client cannot hold a
// connection longer than the route allows.
const (
	ReadHeaderTimeout  = 10 * time.Second
	ServerReadTimeout  = 61 * time.Minute
	ServerWriteTimeout = 61 * time.Minute
	IdleTimeout        = 120 * time.Second
	MaxHeaderBytes     = 64 << 10
	WriteGrace         = 10 * time.Second
)

// NewHTTPServer returns an http.Server for h with header, read, write,
// idle and header-size limits (the constants above).
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ServerReadTimeout,
		WriteTimeout:      ServerWriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
)

// RequestID returns the request ID of ctx ("" outside a request).
func RequestID(ctx context.Context) string { s, _ := ctx.Value(keyRequestID).(string); return s }

// PrincipalFrom returns the Principal the Guard established, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(keyPrincipal).(Principal)
	return p, ok
}

var reRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// recorder captures status and size for logs and metrics.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	once   sync.Once
}

func (r *recorder) WriteHeader(code int) {
	r.once.Do(func() { r.status = code })
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.once.Do(func() { r.status = http.StatusOK })
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP assigns the request ID, routes, logs and records metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-ID")
	if !reRequestID.MatchString(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	r.Header.Set("X-Request-ID", id)
	w.Header().Set("X-Request-ID", id)
	r = r.WithContext(context.WithValue(r.Context(), keyRequestID, id))
	rec := &recorder{ResponseWriter: w}
	defer func() {
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			s.log.Error("http: panic", "request_id", id, "route", route, "panic", fmt.Sprint(p))
			if rec.status == 0 {
				httpJSONError(rec, http.StatusInternalServerError, "internal error")
			}
			status = http.StatusInternalServerError
		}
		d := time.Since(start)
		s.cfg.Metrics.observeHTTP(route, status, d)
		s.log.Info("http", "request_id", id, "method", r.Method, "route", route, "status", status,
			"bytes_in", r.ContentLength, "bytes_out", rec.bytes, "duration_ms", float64(d.Microseconds())/1000)
		if p == http.ErrAbortHandler {
			panic(p) // let net/http cut the connection
		}
	}()
	s.mux.ServeHTTP(rec, r)
}

// wrap applies Guard, audit, body limit and deadline to one route.
func (s *Server) wrap(rt Route) http.Handler {
	limit, timeout := rt.BodyLimit, rt.Timeout
	if limit <= 0 {
		limit = s.cfg.DefaultBodyLimit
	}
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		resource := r.URL.Path
		p, err := s.cfg.Guard.Authorize(r, rt.Action, resource)
		if s.cfg.Auditor != nil {
			rec, _ := w.(*recorder)
			defer func() {
				status := http.StatusOK
				if rec != nil && rec.status != 0 {
					status = rec.status
				}
				s.cfg.Auditor.Audit(r.Context(), AuditEvent{Time: start, RequestID: RequestID(r.Context()), Principal: p,
					Action: rt.Action, Resource: resource, Method: r.Method, Status: status, Duration: time.Since(start)})
			}()
		}
		if err != nil {
			var ch Challenger
			switch {
			case errors.Is(err, ErrUnauthenticated):
				challenge := DefaultChallenge
				if errors.As(err, &ch) {
					challenge = ch.WWWAuthenticate()
				}
				w.Header().Set("WWW-Authenticate", challenge)
				httpJSONError(w, http.StatusUnauthorized, "authentication required")
			case errors.Is(err, ErrForbidden):
				httpJSONError(w, http.StatusForbidden, "forbidden")
			case errors.Is(err, ErrBadRequest):
				httpJSONError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
			case errors.Is(err, ErrUnavailable):
				w.Header().Set("Retry-After", "5")
				httpJSONError(w, http.StatusServiceUnavailable, "authentication is temporarily unavailable")
			default:
				s.log.Error("guard error", "request_id", RequestID(r.Context()), "action", rt.Action, "error", err.Error())
				httpJSONError(w, http.StatusInternalServerError, "authorization failed")
			}
			return
		}
		if r.ContentLength > limit {
			httpJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		// Per-route connection deadlines (the server's are backstops).
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(timeout))
		_ = rc.SetWriteDeadline(now.Add(timeout + WriteGrace))
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), keyPrincipal, p), timeout)
		defer cancel()
		rt.Handler.ServeHTTP(w, r.WithContext(ctx))
	})
}

func httpJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var reUID = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

func (s *Server) results(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "study" && k != "instance" {
			httpJSONError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; use study or instance", k))
			return
		}
	}
	f := ResultFilter{StudyInstanceUID: q.Get("study"), SOPInstanceUID: q.Get("instance")}
	if f.StudyInstanceUID == "" && f.SOPInstanceUID == "" {
		httpJSONError(w, http.StatusBadRequest, "give study=<Study Instance UID> or instance=<SOP Instance UID>")
		return
	}
	for _, u := range []string{f.StudyInstanceUID, f.SOPInstanceUID} {
		if u != "" && (len(u) > 64 || !reUID.MatchString(u)) {
			httpJSONError(w, http.StatusBadRequest, "study and instance must be DICOM UIDs")
			return
		}
	}
	if s.cfg.Results == nil {
		httpJSONError(w, http.StatusServiceUnavailable, "results are not available")
		return
	}
	res, err := s.cfg.Results.ListResults(r.Context(), f)
	if err != nil {
		s.log.Error("results: list failed", "request_id", RequestID(r.Context()), "error", err.Error())
		httpJSONError(w, http.StatusInternalServerError, "listing results failed")
		return
	}
	if res == nil {
		res = []Result{}
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Models == nil {
		httpJSONError(w, http.StatusServiceUnavailable, "models are not available")
		return
	}
	ms, err := s.cfg.Models.ListModels(r.Context())
	if err != nil {
		s.log.Error("models: list failed", "request_id", RequestID(r.Context()), "error", err.Error())
		httpJSONError(w, http.StatusInternalServerError, "listing models failed")
		return
	}
	if ms == nil {
		ms = []Model{}
	}
	writeJSON(w, http.StatusOK, ms)
}

// healthz is liveness: the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every readiness check concurrently under ReadyTimeout:
// 200 {"status":"ready","checks":{name:"ok"}} or 503 with each failing
// check's error text.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	names := make([]string, 0, len(s.cfg.Ready))
	for n := range s.cfg.Ready {
		names = append(names, n)
	}
	sort.Strings(names)
	results := make([]string, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- s.cfg.Ready[n](ctx) }()
			select {
			case err := <-done:
				if err != nil {
					results[i] = err.Error()
				} else {
					results[i] = "ok"
				}
			case <-ctx.Done():
				results[i] = "timeout"
			}
		}()
	}
	wg.Wait()
	checks := map[string]string{}
	ready := true
	for i, n := range names {
		checks[n] = results[i]
		ready = ready && results[i] == "ok"
	}
	if !ready {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "checks": checks})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

// DiskCheck is a readiness Check: the file system holding path has at
// least minFree bytes available to unprivileged users.
func DiskCheck(path string, minFree uint64) Check {
	return func(ctx context.Context) error {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			return fmt.Errorf("statfs: %w", err)
		}
		free := st.Bavail * uint64(st.Bsize)
		if free < minFree {
			return fmt.Errorf("disk almost full: %d bytes free, need %d", free, minFree)
		}
		return nil
	}
}
