package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/radflow/radflow/internal/access"
	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/export"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/pipeline"
	"github.com/radflow/radflow/internal/policy"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// Defaults of Config's zero values.
const (
	DefaultAETitle         = "RADFLOW"
	DefaultMaxAssociations = 16
	DefaultMaxUpload       = 1 << 30 // bytes per instance
	DefaultOrphanAge       = time.Hour
)

// Config configures New. Zero values take the documented defaults.
type Config struct {
	// DataDir holds radflow.db, blobs/ and tmp/ (created if needed). Required.
	DataDir string
	// HTTPAddr is the host:port of the HTTP server (REST API, DICOMweb,
	// health, metrics); "" serves no HTTP. Port 0 picks a free port.
	HTTPAddr string
	// DICOMAddr is the host:port of the DIMSE SCP; "" serves no DIMSE.
	DICOMAddr string
	// AETitle is the SCP's AE title (default "RADFLOW"); associations
	// calling another title are rejected.
	AETitle string
	// AllowedCallingAEs, when not empty, are the only calling AE titles
	// accepted.
	AllowedCallingAEs []string
	// MaxAssociations bounds concurrent DIMSE associations (default 16).
	MaxAssociations int
	// Workers is how many inference jobs this process runs at once; 0
	// runs none (another process, radflow worker, does).
	Workers int
	// MaxQueueDepth refuses new instances (C-STORE A700, STOW-RS 503)
	// while more jobs wait; 0: no limit.
	MaxQueueDepth int
	// MinFreeDisk refuses new instances while the data volume has fewer
	// free bytes; 0: no check. Also a readiness check.
	MinFreeDisk uint64
	// MaxUpload is the largest instance accepted, in bytes (default 1 GiB;
	// it is held in memory while ingested).
	MaxUpload int64
	// Models is the model repository (e.g. models.Bundled()). Required.
	Models *models.Repository
	// ORT configures the inference sessions (library path, execution
	// provider, threads). The library is loaded only when Workers > 0.
	ORT inference.Options
	// JobTimeout bounds one inference attempt (default: the queue's, 10 min).
	JobTimeout time.Duration
	// OrphanAge: blob files older than this that no row references are
	// removed at start (default 1 h; negative: no sweep).
	OrphanAge time.Duration
	// Version is the software version written into result SRs.
	Version string
	// Logger receives the service's logs; default slog.Default().
	Logger *slog.Logger
	// Security configures encryption at rest (always on), and for a
	// service with listeners authentication, policy, audit and TLS.
	Security Security
	// Extensions add HTTP routes behind the same Guard; each is called
	// once by New with the opened parts.
	Extensions []ExtensionFunc
	// Destinations is the validated destinations file of export
	// (export.LoadConfig; docs/export.md). With HTTP, POST
	// /api/v1/exports and GET /api/v1/destinations are served (policy
	// action export; an external destination also needs deid); nil or no
	// destinations: exports disabled (404 unknown destination, []).
	// Destinations with auto: [sr] receive each result SR this process's
	// workers write; a process without listeners (radflow worker) then
	// audits to WorkerAuditDir.
	Destinations *export.Config
}

// Security is the security part of Config. The zero value is the
// zero-configuration default: keys in <data>/keys (generated), API tokens
// in <data>/auth.db (a first admin token generated, see
// Service.BootstrapToken), the embedded policy, the audit trail in
// <data>/audit, plain HTTP and DIMSE, and any calling AE title accepted as
// a technologist — the last only while DICOMAddr is a loopback address.
type Security struct {
	// KEKEnv is the value of RADFLOW_KEK (keyring JSON or base64 key);
	// KeyringFile a keyring file (e.g. a mounted secret). Neither:
	// <data>/keys/kek.json, generated at first start.
	KEKEnv, KeyringFile string
	// PHIFuzzyIndex: fuzzy Patient's Name matching (store.FuzzyNone,
	// the default, or store.FuzzyPrefix; see docs/security.md).
	PHIFuzzyIndex store.FuzzyIndex
	// AdminToken (RADFLOW_ADMIN_TOKEN) seeds the admin API token; "":
	// the first start generates one.
	AdminToken string
	// JWT, when it names a JWKS file or URL, accepts bearer JWTs of the
	// identity provider.
	JWT auth.JWTConfig
	// PolicyDir replaces the embedded policy (watched for changes).
	PolicyDir string
	// PolicyEvaluator: policy.Config.Evaluator ("" = wasm when possible).
	PolicyEvaluator string
	// AuditKeyFile is the audit HMAC key ("": <data>/keys/audit-hmac.key).
	AuditKeyFile string
	// AuditSinks receive every audit record after it is durable (syslog).
	AuditSinks []audit.Sink
	// HTTPTLS, when set, serves HTTPS (tlsconfig.Server); with client
	// certificates verified, they authenticate through Peers.
	HTTPTLS *tls.Config
	// DICOMTLS, when set, makes the SCP DICOM TLS (tlsconfig.Server).
	DICOMTLS *tls.Config
	// Peers maps DIMSE calling AE titles and client certificates (and
	// HTTPS client certificates) to identities; nil: DefaultPeers(),
	// allowed only on a loopback DICOMAddr.
	Peers *auth.PeerConfig
}

// DefaultPeers is the zero-configuration DIMSE identity: any calling AE
// title is an AE principal (ID the AE title, AuthMethod ae) with the role
// technologist, which the default policy allows to store.
func DefaultPeers() auth.PeerConfig {
	return auth.PeerConfig{DefaultAE: &auth.Identity{Kind: auth.KindAE, Roles: []string{auth.RoleTechnologist}}}
}

// ErrInsecureDefault: the zero-configuration DIMSE identity (any AE title)
// was asked for on a non-loopback address.
var ErrInsecureDefault = errors.New("service: a DICOM listener on a non-loopback address needs a peers configuration (--dicom-peers)")

// Parts are what New opened, for Extensions.
type Parts struct {
	Store  *store.SQLite
	Blobs  *store.FS
	Trail  *audit.Trail
	Policy *policy.Engine
	Logger *slog.Logger
}

// Extension is what an ExtensionFunc adds: routes (mounted behind the
// Guard), the policy mapping of their actions, and a Close called at
// shutdown after the servers stopped (may be nil).
type Extension struct {
	Routes  []api.Route
	Actions map[string]access.Action
	Close   func() error
}

// ExtensionFunc builds an Extension from the opened parts.
type ExtensionFunc func(ctx context.Context, p Parts) (Extension, error)

// Service is a running (after Start) radflow service. Its methods are safe
// for concurrent use.
type Service struct {
	cfg     Config
	log     *slog.Logger
	db      *store.SQLite
	blobs   *store.FS
	queue   *queue.Queue
	ingest  *ingest.Ingester
	runner  *pipeline.Runner
	metrics *api.Metrics
	httpSrv *http.Server
	dimse   *dimse.Server
	tmpDir  string

	keys       *keys.Keys
	tokens     *auth.TokenStore
	firstToken string
	policy     *policy.Engine
	trail      *audit.Trail
	outbox     *auditOutbox // audit records staged with instance rows
	owners     *access.Owners
	extClose   []func() error

	exporter    *export.Exporter
	pusher      *export.AutoPusher
	workerTrail *audit.Trail // auto-push audit of a process without listeners

	mu        sync.Mutex
	httpLn    net.Listener
	dicomLn   net.Listener
	started   bool
	stopGauge context.CancelFunc
	serveErr  chan error
	closed    bool
}

// New opens the data directory and assembles the service without
// listening or working jobs (Start does). errors: a missing DataDir or
// Models, the store's, the queue's, ErrRuntimeUnavailable from ONNX
// Runtime when Workers > 0.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("service: DataDir is required")
	}
	if cfg.Models == nil {
		return nil, errors.New("service: Models is required")
	}
	if cfg.AETitle == "" {
		cfg.AETitle = DefaultAETitle
	}
	if cfg.MaxAssociations <= 0 {
		cfg.MaxAssociations = DefaultMaxAssociations
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.OrphanAge == 0 {
		cfg.OrphanAge = DefaultOrphanAge
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger, metrics: api.NewMetrics(), serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.closeParts()
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("service: data directory: %w", err)
	}
	s.tmpDir = filepath.Join(cfg.DataDir, "tmp")
	// Data sets of associations cut by a crash; nothing references them.
	if err := os.RemoveAll(s.tmpDir); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if err := os.MkdirAll(s.tmpDir, 0o750); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	sec := cfg.Security
	// Encryption at rest: blobs through the keys' codec, PHI columns
	// encrypted with blind indexes.
	if s.keys, err = keys.Open(keys.Options{DataDir: cfg.DataDir, Env: sec.KEKEnv, KeyringFile: sec.KeyringFile, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("service: encryption keys: %w", err)
	}
	if s.db, err = store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "radflow.db"),
		store.SQLiteOptions{PHI: s.keys.PHI(), PHIFuzzyIndex: sec.PHIFuzzyIndex}); err != nil {
		return nil, err
	}
	// keys.Codec is a store.AppendEncoder: an ingested instance is
	// encrypted in one call into a reused buffer and written at once.
	var _ store.AppendEncoder = s.keys.Codec()
	// and a store.ObjectDigester: rows record each blob's object digest,
	// with no pass over the plaintext to hash it.
	var _ store.ObjectDigester = s.keys.Codec()
	if s.blobs, err = store.NewFS(filepath.Join(cfg.DataDir, "blobs"), store.FSOptions{Codec: s.keys.Codec()}); err != nil {
		return nil, err
	}
	serving := cfg.HTTPAddr != "" || cfg.DICOMAddr != ""
	var g *access.Guard
	var dg *access.DIMSE
	if serving {
		if g, dg, err = s.openSecurity(ctx); err != nil {
			return nil, err
		}
	}

	s.runner = pipeline.NewRunner(cfg.Models, cfg.ORT)
	handler := &pipeline.JobHandler{Runner: s.runner, Store: s.db, Blobs: s.blobs, Metric: s.metrics,
		Logger: s.log, SoftwareVersion: cfg.Version}
	if cfg.Workers > 0 {
		if _, err := inference.InitRuntime(cfg.ORT.LibraryPath); err != nil {
			return nil, fmt.Errorf("service: %w (set --ort-lib or RADFLOW_ORT_LIB, or run scripts/fetch-ort.sh)", err)
		}
		// Open every latest model version now: a model that cannot load
		// fails the start, not the first job.
		for _, name := range cfg.Models.Names() {
			v, err := cfg.Models.Get(name, "")
			if err != nil {
				return nil, err
			}
			if _, _, err := s.runner.Load(v); err != nil {
				return nil, fmt.Errorf("service: loading %s: %w", v.Ref(), err)
			}
		}
	}
	qcfg := queue.Config{Workers: cfg.Workers, Recorder: s.db, ReadDB: s.db.ReadDB(), JobTimeout: cfg.JobTimeout, Logger: s.log}
	if cfg.Workers > 0 {
		qcfg.Handler = handler
	}
	if s.queue, err = queue.New(ctx, s.db.WriteDB(), qcfg); err != nil {
		return nil, err
	}
	if s.trail != nil {
		// Records staged before the last stop reach the trail before
		// anything new can be recorded.
		s.outbox = newAuditOutbox(s.db, s.trail, s.log)
		if n, err := s.outbox.drain(ctx); err != nil {
			s.log.Error("audit: staged records not moved to the trail (they stay staged)", "error", err.Error())
		} else if n > 0 {
			s.log.Info("audit: moved records staged before the last stop to the trail", "records", n)
		}
		s.outbox.start()
	}
	icfg := ingest.Config{
		Metadata: s.db, Blobs: s.blobs, Jobs: s.queue, Router: router(cfg.Models),
		MaxQueueDepth: cfg.MaxQueueDepth, MinFreeBytes: cfg.MinFreeDisk, MaxInstanceSize: cfg.MaxUpload,
		Logger: s.log, CoverBlobSyncs: serving,
	}
	if s.outbox != nil {
		icfg.RemovedRecord = s.removedRecord
	}
	if s.ingest, err = ingest.New(icfg); err != nil {
		return nil, err
	}
	s.logRecovered(s.ingest.Recovered())
	if err := s.openExports(ctx); err != nil {
		return nil, err
	}
	handler.SR = s.srSink()

	if cfg.HTTPAddr != "" {
		web, err := dicomweb.New(dicomweb.Config{
			Ingester: stowIngester{s: s, guard: g}, Catalog: catalog{db: s.db, blobs: s.blobs, owners: s.owners},
			MaxInstanceBytes: cfg.MaxUpload, Logger: s.log,
		})
		if err != nil {
			return nil, err
		}
		routes := append(api.FromDICOMweb(web.Routes()), s.exportRoutes()...)
		for k, v := range exportActions() {
			g.Actions[k] = v
		}
		for _, ext := range cfg.Extensions {
			e, err := ext(ctx, Parts{Store: s.db, Blobs: s.blobs, Trail: s.trail, Policy: s.policy, Logger: s.log})
			if err != nil {
				return nil, fmt.Errorf("service: extension: %w", err)
			}
			if e.Close != nil {
				s.extClose = append(s.extClose, e.Close)
			}
			routes = append(routes, e.Routes...)
			for k, v := range e.Actions {
				g.Actions[k] = v
			}
		}
		h, err := api.New(api.Config{
			Guard: g, Auditor: g,
			Logger: s.log, Metrics: s.metrics,
			Results: results{s.db}, Models: modelList{cfg.Models},
			Ready:  s.readyChecks(),
			Routes: routes,
		})
		if err != nil {
			return nil, err
		}
		s.httpSrv = api.NewHTTPServer(cfg.HTTPAddr, h)
		s.httpSrv.TLSConfig = sec.HTTPTLS
		s.httpSrv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	}
	if cfg.DICOMAddr != "" {
		if s.dimse, err = dimse.NewServer(dimse.Config{
			AETitle: cfg.AETitle, CheckCalledAETitle: true, AllowedCallingAETitles: cfg.AllowedCallingAEs,
			MaxAssociations: cfg.MaxAssociations, TempDir: s.tmpDir, Logger: s.log,
			// Typical instances arrive in memory, not through a temp file.
			MemoryDataSetLimit: 64 << 20,
			TLSConfig:          sec.DICOMTLS,
			AcceptAssociation:  dg.AcceptAssociation,
		}, dimseHandler{s: s, guard: dg}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// openSecurity opens the token store (bootstrapping the admin token), the
// JWT verifier, the policy engine, the audit trail and the study owners,
// and builds the HTTP and DIMSE guards.
func (s *Service) openSecurity(ctx context.Context) (*access.Guard, *access.DIMSE, error) {
	cfg, sec := s.cfg, s.cfg.Security
	peerCfg := DefaultPeers()
	if sec.Peers != nil {
		peerCfg = *sec.Peers
	} else if cfg.DICOMAddr != "" && !loopback(cfg.DICOMAddr) {
		return nil, nil, ErrInsecureDefault
	}
	peers, err := auth.NewPeerMapper(peerCfg)
	if err != nil {
		return nil, nil, err
	}
	if s.tokens, err = auth.OpenTokenStore(ctx, filepath.Join(cfg.DataDir, "auth.db")); err != nil {
		return nil, nil, err
	}
	if s.firstToken, err = s.tokens.Bootstrap(ctx, sec.AdminToken); err != nil {
		return nil, nil, err
	}
	authn := &auth.HTTPAuthenticator{Tokens: s.tokens}
	if sec.JWT.JWKSFile != "" || sec.JWT.JWKSURL != "" {
		if authn.JWT, err = auth.NewJWTVerifier(ctx, sec.JWT); err != nil {
			return nil, nil, err
		}
	}
	if sec.HTTPTLS != nil && sec.HTTPTLS.ClientCAs != nil && sec.Peers != nil {
		authn.Certs = peers
	}
	if s.policy, err = policy.New(policy.Config{Dir: sec.PolicyDir, Evaluator: sec.PolicyEvaluator, Logger: s.log}); err != nil {
		return nil, nil, err
	}
	s.log.Info("policy loaded", "policy", s.policy.PolicyDigest(), "evaluator", s.policy.Evaluator())
	auditDir, keyFile := audit.Paths(cfg.DataDir)
	if sec.AuditKeyFile != "" {
		keyFile = sec.AuditKeyFile
	}
	key, err := audit.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, nil, err
	}
	if s.trail, err = audit.Open(audit.Config{Dir: auditDir, Key: key, Sinks: sec.AuditSinks, Logger: s.log, Version: cfg.Version}); err != nil {
		return nil, nil, err
	}
	if s.owners, err = access.NewOwners(ctx, s.db.WriteDB(), s.db.ReadDB()); err != nil {
		return nil, nil, err
	}
	if cfg.HTTPAddr != "" && sec.HTTPTLS == nil && !loopback(cfg.HTTPAddr) {
		s.log.Warn("HTTP on a non-loopback address without TLS: bearer tokens and PHI cross the network in clear text unless a TLS proxy terminates in front (--tls-cert/--tls-key)", "addr", cfg.HTTPAddr)
	}
	g := &access.Guard{Authn: authn, Policy: s.policy, Trail: s.trail, Owners: s.owners, Actions: access.DefaultActions(), Logger: s.log,
		DeferOutcomes: true, // g is also the api Auditor: STOW-RS is recorded with its real outcome
		StudyOf: func(ctx context.Context, sop string) (string, error) {
			in, err := s.db.GetInstance(ctx, sop)
			if err != nil {
				return "", err
			}
			return in.StudyInstanceUID, nil
		}}
	dg := &access.DIMSE{Peers: peers, Policy: s.policy, Trail: s.trail, Logger: s.log}
	return g, dg, nil
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BootstrapToken returns the admin API token generated at this first
// start ("" on later starts, with RADFLOW_ADMIN_TOKEN, or without
// listeners). Print it once; it is stored only as a hash.
func (s *Service) BootstrapToken() string { return s.firstToken }

// KeySource says where the key-encryption keys came from ("env" or the
// keyring file's path).
func (s *Service) KeySource() string { return s.keys.Source }

// Tokens returns the API token store (nil without listeners).
func (s *Service) Tokens() *auth.TokenStore { return s.tokens }

// Trail returns the audit trail (nil without listeners).
func (s *Service) Trail() *audit.Trail { return s.trail }

// TLS reports whether HTTP and DIMSE serve TLS.
func (s *Service) TLS() (http, dicom bool) {
	return s.cfg.Security.HTTPTLS != nil, s.cfg.Security.DICOMTLS != nil
}

// readyChecks are /readyz's: the database answers, the queue depth can be
// read, models are loaded, the data volume has MinFreeDisk free, and
// neither the audit trail nor ingest stopped on a failed fsync.
func (s *Service) readyChecks() map[string]api.Check {
	return map[string]api.Check{
		"db": func(ctx context.Context) error { return s.db.ReadDB().PingContext(ctx) },
		"queue": func(ctx context.Context) error {
			_, err := s.queue.Depth(ctx)
			return err
		},
		"models": func(context.Context) error {
			if len(s.cfg.Models.Names()) == 0 {
				return errors.New("no model loaded")
			}
			return nil
		},
		"disk": api.DiskCheck(s.cfg.DataDir, s.cfg.MinFreeDisk),
		"audit": func(context.Context) error {
			if s.trail == nil {
				return nil
			}
			if err := s.trail.Err(); err != nil {
				return err
			}
			return s.outbox.Err()
		},
		"ingest": func(context.Context) error { return s.ingest.Err() },
	}
}

// Metrics returns the service's Prometheus metrics.
func (s *Service) Metrics() *api.Metrics { return s.metrics }

// Store returns the metadata store (for tools and tests).
func (s *Service) Store() *store.SQLite { return s.db }

// Blobs returns the blob store.
func (s *Service) Blobs() *store.FS { return s.blobs }

// Start sweeps orphan blobs, listens on the configured addresses and
// starts the workers. It returns once listening; serving errors are
// logged. errors: listen errors, the queue's.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("service: already started")
	}
	if s.cfg.OrphanAge > 0 {
		n, err := s.ingest.SweepOrphans(ctx, s.cfg.OrphanAge)
		if err != nil {
			s.log.Warn("orphan sweep failed", "error", err.Error())
		} else if n > 0 {
			s.log.Info("swept orphan blobs", "files_removed_and_packs_tidied", n)
		}
	}
	var err error
	if s.httpSrv != nil {
		if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("service: HTTP: %w", err)
		}
	}
	if s.dimse != nil {
		if s.dicomLn, err = net.Listen("tcp", s.cfg.DICOMAddr); err != nil {
			if s.httpLn != nil {
				s.httpLn.Close()
			}
			return fmt.Errorf("service: DICOM: %w", err)
		}
	}
	if err := s.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if s.httpLn != nil {
		// Read TLSConfig once before Serve starts: ServeTLS replaces it
		// with a clone from its own goroutine.
		tlsOn := s.httpSrv.TLSConfig != nil
		go func() {
			var err error
			if tlsOn {
				err = s.httpSrv.ServeTLS(s.httpLn, "", "") // certificate from TLSConfig.GetCertificate
			} else {
				err = s.httpSrv.Serve(s.httpLn)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("HTTP server stopped", "error", err.Error())
				s.serveErr <- err
			}
		}()
		scheme := "http://"
		if tlsOn {
			scheme = "https://"
		}
		s.log.Info("HTTP listening (REST API /api/v1, DICOMweb /dicomweb)", "url", scheme+s.httpLn.Addr().String())
	}
	if s.dicomLn != nil {
		go func() {
			if err := s.dimse.Serve(s.dicomLn); err != nil && !errors.Is(err, dimse.ErrServerClosed) {
				s.log.Error("DICOM server stopped", "error", err.Error())
				s.serveErr <- err
			}
		}()
		s.log.Info("DICOM listening", "addr", s.dicomLn.Addr().String(), "ae_title", s.cfg.AETitle)
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopGauge = cancel
	go s.gaugeLoop(gctx)
	s.log.Info("radflow service started", "data_dir", s.cfg.DataDir, "workers", s.cfg.Workers, "models", s.modelRefs())
	s.started = true
	return nil
}

// Err returns a channel that receives an error if a listener stops
// serving unexpectedly.
func (s *Service) Err() <-chan error { return s.serveErr }

func (s *Service) modelRefs() []string {
	var refs []string
	for _, name := range s.cfg.Models.Names() {
		for _, v := range s.cfg.Models.Versions(name) {
			refs = append(refs, v.Ref())
		}
	}
	return refs
}

// ModelRefs lists the loaded model versions ("name@version").
func (s *Service) ModelRefs() []string { return s.modelRefs() }

// gaugeLoop keeps radflow_queue_depth current.
func (s *Service) gaugeLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if n, err := s.queue.Depth(ctx); err == nil {
			s.metrics.SetQueueDepth(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HTTPAddr returns the HTTP listener's address ("" before Start or
// without HTTP).
func (s *Service) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// DICOMAddr returns the DIMSE listener's address ("" before Start or
// without DIMSE).
func (s *Service) DICOMAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dicomLn == nil {
		return ""
	}
	return s.dicomLn.Addr().String()
}

// Shutdown stops accepting (DIMSE and HTTP listeners), waits for the
// associations and requests in progress, then for running jobs (until ctx
// ends: their attempts are cancelled and retried at the next start), and
// closes the ingester, the sessions and the database. It may be called
// once; later calls return nil.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var dErr, hErr error
	if s.dimse != nil && s.dicomLn != nil {
		wg.Go(func() { dErr = s.dimse.Shutdown(ctx) })
	}
	if s.httpSrv != nil && s.httpLn != nil {
		wg.Go(func() { hErr = s.httpSrv.Shutdown(ctx) })
	}
	wg.Wait()
	errs = append(errs, dErr, hErr)
	if s.stopGauge != nil {
		s.stopGauge()
	}
	// Nothing reaches the trail once the listeners are down.
	for _, c := range s.extClose {
		errs = append(errs, c())
	}
	s.extClose = nil
	if s.started {
		errs = append(errs, s.queue.Stop(ctx))
	}
	// No job writes an SR any more: run the queued auto-pushes.
	errs = append(errs, s.closeExports(ctx))
	errs = append(errs, s.closeParts())
	s.log.Info("radflow service stopped")
	return errors.Join(errs...)
}

// closeParts closes what New opened, in reverse order.
func (s *Service) closeParts() error {
	var errs []error
	if s.ingest != nil {
		errs = append(errs, s.ingest.Close())
	}
	// Nothing is staged once the ingester is closed: move the rest.
	errs = append(errs, s.outbox.close())
	if s.runner != nil {
		errs = append(errs, s.runner.Close())
	}
	for _, c := range s.extClose {
		errs = append(errs, c())
	}
	errs = append(errs, s.closeExportsNow())
	if s.blobs != nil {
		errs = append(errs, s.blobs.Close()) // gives back the packs' zero fill
	}
	if s.trail != nil {
		errs = append(errs, s.trail.Close())
	}
	if s.policy != nil {
		errs = append(errs, s.policy.Close())
	}
	if s.tokens != nil {
		errs = append(errs, s.tokens.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
