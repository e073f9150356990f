package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/export"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/policy"
	"github.com/radflow/radflow/internal/service"
	"github.com/radflow/radflow/internal/store"
	"github.com/radflow/radflow/internal/tlsconfig"
)

// serviceFlags are the options `radflow serve` and `radflow worker` share.
type serviceFlags struct {
	config          string
	data            string
	workers         int
	shutdownTimeout time.Duration
	logLevel        string
	models          modelFlags
	keyring         string
	phiFuzzyIndex   string
	destinations    string
}

func (o *serviceFlags) register(fs *flag.FlagSet, defaultWorkers int) {
	fs.StringVar(&o.config, "config", os.Getenv("RADFLOW_CONFIG"), "YAML configuration `FILE` whose keys are these flag names; flags and RADFLOW_* variables override it [RADFLOW_CONFIG]")
	fs.StringVar(&o.data, "data", "./radflow-data", "data `DIR`: radflow.db (SQLite, WAL), blobs/ (received instances and result SRs), tmp/")
	fs.IntVar(&o.workers, "workers", defaultWorkers, "inference jobs run at once by this process (0: none; a separate radflow worker process runs them)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long to wait for associations, requests and running jobs before cutting them")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to stderr as JSON and never contain patient attributes)")
	fs.StringVar(&o.keyring, "keyring", "", "keyring `FILE` of the key-encryption keys of encryption at rest, e.g. a mounted secret (default DATA/keys/kek.json, generated at first start; RADFLOW_KEK, when set, takes precedence)")
	fs.StringVar(&o.phiFuzzyIndex, "phi-fuzzy-index", "none", "fuzzy Patient's Name matching over the encrypted PHI columns: none (decrypt distinct names per query; leaks nothing more) or prefix (HMAC word-prefix index; faster, leaks shared prefixes)")
	fs.StringVar(&o.destinations, "destinations", "", "YAML `FILE` of the DICOM destinations that studies and result SRs are exported to (docs/export.md): POST /api/v1/exports, and each result SR pushed to the destinations with auto: [sr]; external destinations receive de-identified copies only (default: none, exports disabled)")
	o.models.register(fs)
}

func (o *serviceFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// config builds the service configuration shared by serve and worker.
func (o *serviceFlags) serviceConfig() (service.Config, error) {
	var repo *models.Repository
	var err error
	if o.models.repo != "" {
		repo, err = models.LoadDir(o.models.repo)
	} else {
		repo, err = models.Bundled()
	}
	if err != nil {
		return service.Config{}, fmt.Errorf("loading models: %w", err)
	}
	if o.workers < 0 {
		return service.Config{}, errors.New("--workers must be 0 or more")
	}
	fuzzy := store.FuzzyIndex(o.phiFuzzyIndex)
	if fuzzy != store.FuzzyNone && fuzzy != store.FuzzyPrefix {
		return service.Config{}, fmt.Errorf("--phi-fuzzy-index %q: want none or prefix", o.phiFuzzyIndex)
	}
	var dests *export.Config
	if o.destinations != "" {
		if dests, err = export.LoadConfig(o.destinations); err != nil {
			return service.Config{}, fmt.Errorf("--destinations: %w", err)
		}
	}
	return service.Config{
		Destinations: dests,
		DataDir:      o.data,
		Workers:      o.workers,
		Models:       repo,
		ORT: inference.Options{
			LibraryPath:    o.models.ortLib,
			Provider:       inference.Provider(o.models.provider),
			IntraOpThreads: o.models.threads,
		},
		Version: version,
		Security: service.Security{
			KEKEnv: os.Getenv("RADFLOW_KEK"), KeyringFile: o.keyring, PHIFuzzyIndex: fuzzy,
		},
	}, nil
}

// byteSize is a flag.Value for sizes: a byte count with an optional
// KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024) suffix.
type byteSize uint64

func (b *byteSize) String() string { return formatBytes(uint64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

func parseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || (n > 0 && n*mult/mult != n) {
		return 0, fmt.Errorf("size %q: want a byte count such as 1073741824, 512MiB or 2GB", s)
	}
	return n * mult, nil
}

func formatBytes(v uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.mult && v%u.mult == 0 {
			return strconv.FormatUint(v/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10)
}

// serveOptions are `radflow serve`'s flags.
type serveOptions struct {
	serviceFlags
	http, dicom, ae string
	allowedAEs      string
	maxAssociations int
	maxQueueDepth   int
	minFreeDisk     byteSize
	maxUpload       byteSize
	orphanAge       time.Duration
	jobTimeout      time.Duration
	sec             securityFlags
}

// securityFlags are serve's authentication, policy, audit and TLS options.
type securityFlags struct {
	tlsCert, tlsKey, tlsClientCA                string
	dicomTLSCert, dicomTLSKey, dicomTLSClientCA string
	dicomPeers                                  string
	jwksURL, jwksFile, jwtIssuer, jwtAudience   string
	jwtRolesClaim, jwtOrgClaim                  string
	policyDir                                   string
	policyEvaluator                             string
	auditKeyFile, auditSyslog, auditSyslogCA    string
}

func (o *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.tlsCert, "tls-cert", "", "HTTPS: server certificate `FILE` (PEM, chain leaf first; re-read when it changes); with --tls-key the HTTP listener serves TLS 1.2+ only")
	fs.StringVar(&o.tlsKey, "tls-key", "", "HTTPS: private key `FILE` (PEM) of --tls-cert")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "HTTPS: CA bundle `FILE`; client certificates are then verified when sent and, mapped through --dicom-peers certificates, authenticate requests without a bearer token")
	fs.StringVar(&o.dicomTLSCert, "dicom-tls-cert", "", "DICOM TLS: server certificate `FILE` (PEM); with --dicom-tls-key the DICOM listener speaks TLS 1.2+ only (conventional port 2762)")
	fs.StringVar(&o.dicomTLSKey, "dicom-tls-key", "", "DICOM TLS: private key `FILE` (PEM) of --dicom-tls-cert")
	fs.StringVar(&o.dicomTLSClientCA, "dicom-tls-client-ca", "", "DICOM TLS: CA bundle `FILE`; client certificates are then required (mutual TLS) and mapped to identities by --dicom-peers")
	fs.StringVar(&o.dicomPeers, "dicom-peers", "", "YAML `FILE` mapping DICOM peers (calling AE titles, client certificate names) to identities: roles, organisation (see docs/security.md); default on a loopback listener: any calling AE title is a technologist")
	fs.StringVar(&o.jwksURL, "jwks-url", "", "accept bearer JWTs signed by the identity provider whose JWKS is at `URL` (e.g. Keycloak .../protocol/openid-connect/certs)")
	fs.StringVar(&o.jwksFile, "jwks-file", "", "accept bearer JWTs signed by the keys of this JWKS `FILE`")
	fs.StringVar(&o.jwtIssuer, "jwt-issuer", "", "required JWT iss `VALUE` (with --jwks-url/--jwks-file)")
	fs.StringVar(&o.jwtAudience, "jwt-audience", "radflow", "required JWT aud `VALUE`")
	fs.StringVar(&o.jwtRolesClaim, "jwt-roles-claim", "roles", "dotted `PATH` of the JWT roles claim (Keycloak: realm_access.roles)")
	fs.StringVar(&o.jwtOrgClaim, "jwt-org-claim", "organisation", "dotted `PATH` of the JWT organisation claim")
	fs.StringVar(&o.policyDir, "policy-dir", "", "`DIR` of Rego policy files replacing the built-in policy (package radflow.authz; reloaded when they change)")
	fs.StringVar(&o.policyEvaluator, "policy-evaluator", "", "policy evaluator `NAME`: wasm (OPA's WebAssembly build of the policy) or topdown (OPA's interpreter); empty: wasm when the policy allows it, else topdown")
	fs.StringVar(&o.auditKeyFile, "audit-key-file", "", "HMAC key `FILE` of the audit trail (default DATA/keys/audit-hmac.key, generated); keep it outside the data volume in production")
	fs.StringVar(&o.auditSyslog, "audit-syslog", "", "also forward every audit record as a DICOM audit message to an audit record repository, `URL` tls://host:6514, tcp://host:514 or udp://host:514")
	fs.StringVar(&o.auditSyslogCA, "audit-syslog-ca", "", "CA bundle `FILE` that the tls:// audit record repository's certificate must chain to (default: system roots)")
}

// apply fills cfg.Security from the flags. errors: bad combinations, TLS
// and peers files that cannot be read.
func (o *securityFlags) apply(cfg *service.Config) error {
	sec := &cfg.Security
	sec.AdminToken = os.Getenv("RADFLOW_ADMIN_TOKEN")
	var err error
	if sec.HTTPTLS, err = serverTLS("tls", o.tlsCert, o.tlsKey, o.tlsClientCA, tlsconfig.ClientAuthOptional); err != nil {
		return fmt.Errorf("HTTPS: %w", err)
	}
	if sec.DICOMTLS, err = serverTLS("dicom-tls", o.dicomTLSCert, o.dicomTLSKey, o.dicomTLSClientCA, tlsconfig.ClientAuthRequire); err != nil {
		return fmt.Errorf("DICOM TLS: %w", err)
	}
	if o.dicomPeers != "" {
		pc, err := loadPeers(o.dicomPeers)
		if err != nil {
			return err
		}
		sec.Peers = pc
	}
	if o.jwksURL != "" || o.jwksFile != "" {
		if o.jwksURL != "" && o.jwksFile != "" {
			return errors.New("give --jwks-url or --jwks-file, not both")
		}
		if o.jwtIssuer == "" || o.jwtAudience == "" {
			return errors.New("--jwks-url/--jwks-file need --jwt-issuer and --jwt-audience")
		}
		sec.JWT = auth.JWTConfig{JWKSURL: o.jwksURL, JWKSFile: o.jwksFile, Issuer: o.jwtIssuer, Audience: o.jwtAudience,
			RolesClaim: o.jwtRolesClaim, OrganisationClaim: o.jwtOrgClaim}
	}
	sec.PolicyDir, sec.AuditKeyFile = o.policyDir, o.auditKeyFile
	switch o.policyEvaluator {
	case "", policy.EvaluatorWasm, policy.EvaluatorTopdown:
		sec.PolicyEvaluator = o.policyEvaluator
	default:
		return fmt.Errorf("--policy-evaluator %q: want %s or %s", o.policyEvaluator, policy.EvaluatorWasm, policy.EvaluatorTopdown)
	}
	if o.auditSyslog != "" {
		sink, err := syslogSink(o.auditSyslog, o.auditSyslogCA, cfg.AETitle)
		if err != nil {
			return err
		}
		sec.AuditSinks = append(sec.AuditSinks, sink)
	}
	return nil
}

// serverTLS builds a listener's TLS configuration from the --PREFIX-cert,
// --PREFIX-key and --PREFIX-client-ca flags (nil without a certificate);
// with a client CA, client certificates are checked as withCA says.
func serverTLS(prefix, cert, key, clientCA string, withCA tlsconfig.ClientAuth) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("--%s-cert and --%s-key go together", prefix, prefix)
	}
	if cert == "" {
		if clientCA != "" {
			return nil, fmt.Errorf("--%s-client-ca needs --%s-cert and --%s-key", prefix, prefix, prefix)
		}
		return nil, nil
	}
	ca := tlsconfig.ClientAuthNone
	if clientCA != "" {
		ca = withCA
	}
	return tlsconfig.Server(tlsconfig.ServerOptions{CertFile: cert, KeyFile: key, ClientCAFile: clientCA, ClientAuth: ca})
}

// loadPeers reads a --dicom-peers YAML file (auth.PeerConfig; unknown
// keys are an error).
func loadPeers(path string) (*auth.PeerConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--dicom-peers: %w", err)
	}
	var pc auth.PeerConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&pc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--dicom-peers %s: %w", path, err)
	}
	if _, err := auth.NewPeerMapper(pc); err != nil {
		return nil, fmt.Errorf("--dicom-peers %s: %w", path, err)
	}
	return &pc, nil
}

// syslogSink builds the --audit-syslog sink.
func syslogSink(raw, caFile, aeTitle string) (audit.Sink, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "tls" && u.Scheme != "tcp" && u.Scheme != "udp") {
		return nil, fmt.Errorf("--audit-syslog %q: want tls://host:port, tcp://host:port or udp://host:port", raw)
	}
	cfg := audit.SyslogConfig{Network: u.Scheme, Address: u.Host, Source: audit.Source{AETitle: aeTitle}}
	if u.Scheme == "tls" {
		if cfg.TLS, err = tlsconfig.Client(tlsconfig.ClientOptions{CAFile: caFile}); err != nil {
			return nil, fmt.Errorf("--audit-syslog-ca: %w", err)
		}
	}
	return audit.NewSyslogSink(cfg)
}

func newServeFlags(stderr io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{minFreeDisk: 1 << 30, maxUpload: service.DefaultMaxUpload}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.serviceFlags.register(fs, 2)
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "HTTP `HOST:PORT` of the REST API (/api/v1), DICOMweb (/dicomweb), /healthz, /readyz and /metrics; loopback only by default")
	fs.StringVar(&o.dicom, "dicom", "127.0.0.1:11112", "DICOM (DIMSE C-ECHO/C-STORE SCP) `HOST:PORT`; loopback only by default")
	fs.StringVar(&o.ae, "ae", service.DefaultAETitle, "AE title of the DICOM SCP; associations calling another title are rejected")
	fs.StringVar(&o.allowedAEs, "allowed-calling-aes", "", "comma-separated calling AE `TITLES` accepted (default: any)")
	fs.IntVar(&o.maxAssociations, "max-associations", service.DefaultMaxAssociations, "concurrent DICOM associations; more are rejected (transient, local limit exceeded)")
	fs.IntVar(&o.maxQueueDepth, "max-queue-depth", 10000, "refuse new instances (C-STORE A700, STOW-RS 503 Retry-After) while more inference jobs wait (0: no limit)")
	fs.Var(&o.minFreeDisk, "min-free-disk", "refuse new instances while the data volume has less free `SIZE` (e.g. 1GiB; 0: no check); also a /readyz check")
	fs.Var(&o.maxUpload, "max-upload", "largest instance accepted, `SIZE` (e.g. 1GiB); it is held in memory while stored")
	fs.DurationVar(&o.orphanAge, "orphan-age", service.DefaultOrphanAge, "at start, remove blob files older than this that no instance references (left by a crash), and tidy pack files no live process writes that are older than this; 0: keep them")
	fs.DurationVar(&o.jobTimeout, "job-timeout", 10*time.Minute, "time limit of one inference attempt")
	o.sec.register(fs)
	helpWithEnv(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: radflow serve [flags]

Runs the radflow service: a DICOM Storage SCP (C-STORE, C-ECHO) and an HTTP
server with DICOMweb (STOW-RS, QIDO-RS, WADO-RS under /dicomweb), the REST API
(/api/v1/results, /api/v1/models), /healthz, /readyz and /metrics. Every
stored instance a model's routing rules accept gets an inference job; its
result is served by /api/v1/results and stored as a DICOM Comprehensive SR in
the instance's study. With no flags it serves ./radflow-data on loopback with
the models built into the binary. SIGINT/SIGTERM shut down gracefully.

Secure by default: every HTTP request except /healthz needs
"Authorization: Bearer <token>" (API tokens: radflow tokens; JWTs with
--jwks-url), is decided by the access policy and recorded in the audit trail
(DATA/audit; radflow audit verify). The first start prints an admin API token
once (RADFLOW_ADMIN_TOKEN sets it instead). Stored instances and PHI columns
are encrypted at rest (DATA/keys). TLS: radflow certs dev, then --tls-cert
and --tls-key (HTTPS), --dicom-tls-cert and --dicom-tls-key (DICOM TLS).

Exports (--destinations, docs/export.md): POST /api/v1/exports sends a study
or instances to a DICOM destination by C-STORE (policy action export:
radiologists; an external destination also needs deid and only ever receives
de-identified copies); destinations with auto: [sr] receive each result SR.

Each option is read from, highest first: the flag, the environment variable
shown in brackets, the YAML file of --config (keys are the flag names), the
default. Sizes take KiB/MiB/GiB or KB/MB/GB suffixes.

`)
		fs.PrintDefaults()
	}
	return fs, o
}

// parseServe parses serve's arguments into a service configuration.
func parseServe(args []string, stderr io.Writer) (service.Config, *serveOptions, error) {
	fs, o := newServeFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return service.Config{}, nil, err
	}
	if fs.NArg() > 0 {
		return service.Config{}, nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := applyLayers(fs, o.config); err != nil {
		return service.Config{}, nil, err
	}
	cfg, err := o.serviceConfig()
	if err != nil {
		return service.Config{}, nil, err
	}
	cfg.HTTPAddr, cfg.DICOMAddr, cfg.AETitle = o.http, o.dicom, o.ae
	for _, ae := range strings.Split(o.allowedAEs, ",") {
		if ae = strings.TrimSpace(ae); ae != "" {
			cfg.AllowedCallingAEs = append(cfg.AllowedCallingAEs, ae)
		}
	}
	cfg.MaxAssociations = o.maxAssociations
	cfg.MaxQueueDepth = o.maxQueueDepth
	cfg.MinFreeDisk = uint64(o.minFreeDisk)
	if o.maxUpload == 0 || uint64(o.maxUpload) > 1<<62 {
		return service.Config{}, nil, errors.New("--max-upload must be positive")
	}
	cfg.MaxUpload = int64(o.maxUpload)
	cfg.OrphanAge = o.orphanAge
	if o.orphanAge == 0 {
		cfg.OrphanAge = -1
	}
	cfg.JobTimeout = o.jobTimeout
	if err := o.sec.apply(&cfg); err != nil {
		return service.Config{}, nil, err
	}
	return cfg, o, nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	cfg, o, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "radflow serve:", err)
		return 2
	}
	return runService("serve", cfg, &o.serviceFlags, stdout, stderr)
}

// runService starts the service, prints where it listens, and shuts it
// down on SIGINT/SIGTERM.
func runService(name string, cfg service.Config, o *serviceFlags, stdout, stderr io.Writer) int {
	log, err := o.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "radflow %s: %v\n", name, err)
		return 2
	}
	cfg.Logger = log
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := service.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "radflow %s: %v\n", name, err)
		return 1
	}
	if err := svc.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "radflow %s: %v\n", name, err)
		svc.Shutdown(context.Background())
		return 1
	}
	fmt.Fprintf(stdout, "radflow %s %s\n", name, version)
	httpsOn, dicomTLSOn := svc.TLS()
	scheme := "http"
	if httpsOn {
		scheme = "https"
	}
	if a := svc.HTTPAddr(); a != "" {
		fmt.Fprintf(stdout, "  HTTP      %s://%s  (REST /api/v1, DICOMweb /dicomweb, /healthz, /readyz, /metrics)\n", scheme, a)
	}
	if a := svc.DICOMAddr(); a != "" {
		tlsNote := ""
		if dicomTLSOn {
			tlsNote = "  DICOM TLS"
		}
		fmt.Fprintf(stdout, "  DICOM     %s  AE title %s%s\n", a, cfg.AETitle, tlsNote)
	}
	fmt.Fprintf(stdout, "  data      %s  (encrypted at rest; keys %s)\n", cfg.DataDir, svc.KeySource())
	if svc.Trail() != nil {
		fmt.Fprintf(stdout, "  audit     %s/audit  (radflow audit verify --data %s)\n", cfg.DataDir, cfg.DataDir)
	}
	if tok := svc.BootstrapToken(); tok != "" {
		// Printed once, on stdout only: never logged, stored only as a hash.
		fmt.Fprintf(stdout, "  admin API token (shown once, stored only as its hash; keep it safe):\n    %s\n", tok)
		if a := svc.HTTPAddr(); a != "" {
			fmt.Fprintf(stdout, "    curl -H \"Authorization: Bearer $TOKEN\" %s://%s/api/v1/models\n", scheme, a)
		}
	}
	if svc.Trail() != nil && (!httpsOn || (svc.DICOMAddr() != "" && !dicomTLSOn)) {
		fmt.Fprintf(stdout, "  TLS       off: radflow certs dev, then --tls-cert/--tls-key (HTTPS) and --dicom-tls-cert/--dicom-tls-key (DICOM TLS)\n")
	}
	if dests, auto := svc.Destinations(); len(dests) > 0 {
		var names []string
		for _, d := range dests {
			n := d.Name
			if d.External {
				n += " (external, de-identified)"
			}
			names = append(names, n)
		}
		note := ""
		if auto {
			note = "; result SRs auto-pushed"
		}
		fmt.Fprintf(stdout, "  exports   %s%s\n", strings.Join(names, ", "), note)
	}
	fmt.Fprintf(stdout, "  models    %s\n", strings.Join(svc.ModelRefs(), ", "))
	fmt.Fprintf(stdout, "  workers   %d\n", cfg.Workers)
	code := 0
	select {
	case <-ctx.Done():
	case err := <-svc.Err():
		fmt.Fprintf(stderr, "radflow %s: %v\n", name, err)
		code = 1
	}
	stop()
	fmt.Fprintf(stdout, "radflow %s: shutting down (up to %s)\n", name, o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "radflow %s: shutdown: %v\n", name, err)
		code = 1
	}
	return code
}

// serviceGCPercent is the garbage collector's target for serve and worker
// when GOGC is not set: the live heap is small (about 12 MB) while every
// received instance passes through half-megabyte buffers, so at Go's
// default of 100 the collector ran about every 50 instances under four
// C-STORE associations (GODEBUG=gctrace=1) and emptied the buffer pools
// each time. 400 lets the heap grow to about five times the live data
// (tens of MB) between cycles. GOGC (and GOMEMLIMIT) still win.
const serviceGCPercent = 400

// tuneGC applies serviceGCPercent unless GOGC is set.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serviceGCPercent)
	}
}
