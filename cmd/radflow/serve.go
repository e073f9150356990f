package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/service"
)

// serviceFlags are the options `radflow serve` and `radflow worker` share.
type serviceFlags struct {
	config          string
	data            string
	workers         int
	shutdownTimeout time.Duration
	logLevel        string
	models          modelFlags
}

func (o *serviceFlags) register(fs *flag.FlagSet, defaultWorkers int) {
	fs.StringVar(&o.config, "config", os.Getenv("RADFLOW_CONFIG"), "YAML configuration `FILE` whose keys are these flag names; flags and RADFLOW_* variables override it [RADFLOW_CONFIG]")
	fs.StringVar(&o.data, "data", "./radflow-data", "data `DIR`: radflow.db (SQLite, WAL), blobs/ (received instances and result SRs), tmp/")
	fs.IntVar(&o.workers, "workers", defaultWorkers, "inference jobs run at once by this process (0: none; a separate radflow worker process runs them)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long to wait for associations, requests and running jobs before cutting them")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to stderr as JSON and never contain patient attributes)")
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
	return service.Config{
		DataDir: o.data,
		Workers: o.workers,
		Models:  repo,
		ORT: inference.Options{
			LibraryPath:    o.models.ortLib,
			Provider:       inference.Provider(o.models.provider),
			IntraOpThreads: o.models.threads,
		},
		Version: version,
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
	fs.DurationVar(&o.orphanAge, "orphan-age", service.DefaultOrphanAge, "at start, remove blob files older than this that no instance references (left by a crash); 0: keep them")
	fs.DurationVar(&o.jobTimeout, "job-timeout", 10*time.Minute, "time limit of one inference attempt")
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
	if a := svc.HTTPAddr(); a != "" {
		fmt.Fprintf(stdout, "  HTTP      http://%s  (REST /api/v1, DICOMweb /dicomweb, /healthz, /readyz, /metrics)\n", a)
	}
	if a := svc.DICOMAddr(); a != "" {
		fmt.Fprintf(stdout, "  DICOM     %s  AE title %s\n", a, cfg.AETitle)
	}
	fmt.Fprintf(stdout, "  data      %s\n", cfg.DataDir)
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
