package dicomweb

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	// Ingester receives STOW-RS instances; nil leaves the STOW routes out.
	Ingester Ingester
	// Catalog answers QIDO-RS and WADO-RS; nil leaves those routes out.
	Catalog Catalog
	// PathPrefix is where the service is mounted, e.g. "/dicomweb" (the
	// default); routes are registered with it.
	PathPrefix string
	// BaseURL is the absolute URL clients use for PathPrefix, e.g.
	// "https://radflow.example.org/dicomweb", used in RetrieveURL and
	// BulkDataURI. Empty: built from each request's scheme and Host header
	// (set it behind a reverse proxy).
	BaseURL string
	// MaxInstanceBytes limits one STOW part (default 1 GiB); a larger part
	// fails with reason 0xA700 and the request goes on.
	MaxInstanceBytes int64
	// MaxRequestBytes limits a STOW request body (default 8 GiB); a larger
	// body is answered 413.
	MaxRequestBytes int64
	// RetryAfter is sent with 503 when the Ingester is busy (default 30 s).
	RetryAfter time.Duration
	// DefaultLimit is the QIDO page size when the request has no limit
	// (default 1000); MaxLimit caps limit (default 10000).
	DefaultLimit, MaxLimit int
	// Logger receives one line per failed STOW part and per server-side
	// error; it never receives query values or patient attributes.
	// Default: slog.Default().
	Logger *slog.Logger
}

// Service is the DICOMweb HTTP service. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
}

// Route is one HTTP route: Pattern is a net/http ServeMux pattern without
// the method ("/dicomweb/studies/{study}"), Action names what a Guard
// authorises ("dicomweb.stow", "dicomweb.search", "dicomweb.retrieve"),
// BodyLimit is the request body limit the route needs (0: no body), and
// Timeout the request deadline (0: the mounting server's default).
type Route struct {
	Method    string
	Pattern   string
	Action    string
	BodyLimit int64
	Timeout   time.Duration
	Handler   http.Handler
}

// Actions authorised by a Guard for the DICOMweb routes.
const (
	ActionStore    = "dicomweb.stow"
	ActionSearch   = "dicomweb.search"
	ActionRetrieve = "dicomweb.retrieve"
)

// New returns a Service. errors: a Config with neither Ingester nor Catalog.
func New(cfg Config) (*Service, error) {
	if cfg.Ingester == nil && cfg.Catalog == nil {
		return nil, errors.New("dicomweb: Config needs an Ingester or a Catalog")
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = "/dicomweb"
	}
	cfg.PathPrefix = "/" + strings.Trim(cfg.PathPrefix, "/")
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxInstanceBytes <= 0 {
		cfg.MaxInstanceBytes = 1 << 30
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 8 << 30
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.DefaultLimit <= 0 {
		cfg.DefaultLimit = 1000
	}
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger}, nil
}

// Routes lists the service's routes for mounting behind middleware.
func (s *Service) Routes() []Route {
	p := s.cfg.PathPrefix
	var rs []Route
	add := func(method, pattern, action string, limit int64, timeout time.Duration, h http.HandlerFunc) {
		rs = append(rs, Route{Method: method, Pattern: p + pattern, Action: action, BodyLimit: limit, Timeout: timeout, Handler: h})
	}
	if s.cfg.Ingester != nil {
		add("POST", "/studies", ActionStore, s.cfg.MaxRequestBytes, time.Hour, s.stow)
		add("POST", "/studies/{study}", ActionStore, s.cfg.MaxRequestBytes, time.Hour, s.stow)
	}
	if s.cfg.Catalog != nil {
		add("GET", "/studies", ActionSearch, 0, 0, s.qidoStudies)
		add("GET", "/series", ActionSearch, 0, 0, s.qidoSeries)
		add("GET", "/instances", ActionSearch, 0, 0, s.qidoInstances)
		add("GET", "/studies/{study}/series", ActionSearch, 0, 0, s.qidoSeries)
		add("GET", "/studies/{study}/instances", ActionSearch, 0, 0, s.qidoInstances)
		add("GET", "/studies/{study}/series/{series}/instances", ActionSearch, 0, 0, s.qidoInstances)

		add("GET", "/studies/{study}", ActionRetrieve, 0, time.Hour, s.retrieve)
		add("GET", "/studies/{study}/series/{series}", ActionRetrieve, 0, time.Hour, s.retrieve)
		add("GET", "/studies/{study}/series/{series}/instances/{instance}", ActionRetrieve, 0, 10*time.Minute, s.retrieve)
		add("GET", "/studies/{study}/metadata", ActionRetrieve, 0, 10*time.Minute, s.metadata)
		add("GET", "/studies/{study}/series/{series}/metadata", ActionRetrieve, 0, 10*time.Minute, s.metadata)
		add("GET", "/studies/{study}/series/{series}/instances/{instance}/metadata", ActionRetrieve, 0, time.Minute, s.metadata)
		add("GET", "/studies/{study}/series/{series}/instances/{instance}/rendered", ActionRetrieve, 0, time.Minute, s.rendered)
		add("GET", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", ActionRetrieve, 0, time.Minute, s.rendered)
		add("GET", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", ActionRetrieve, 0, time.Minute, s.frames)
	}
	return rs
}

// Handler returns a ServeMux with every route and no middleware (for tests
// and for embedding without package api).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	return mux
}

// baseURL is the absolute URL of the service root for r.
func (s *Service) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.cfg.PathPrefix
}

func (s *Service) instanceURL(base, study, series, sop string) string {
	return base + "/studies/" + study + "/series/" + series + "/instances/" + sop
}

// httpError writes a JSON error body {"error": msg} with status.
func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// warning formats a Warning header value (RFC 7234 5.5, code 299).
func warning(msg string) string {
	return fmt.Sprintf("299 radflow %q", strings.ReplaceAll(msg, `"`, "'"))
}

func writeDICOMJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", MediaDICOMJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
